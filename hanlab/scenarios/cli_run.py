"""``hanlab scenario run``: a job on the rig's runtime, submitted to the running daemon
that serves the rig, or to the same runtime started in-process for the run's duration
(issue 9, item 4). Either way the job is the lab runtime's: the same capture,
correlation and per-band timings (DIT.11).

The daemon is found through the state files daemons write for their user
(:func:`hanlab.daemon.statefile.daemon_for_rig`), or named with ``--daemon URL``;
``--no-daemon`` forces in-process. Step progress is streamed from the job's record; the
per-band timing report of the job is printed at the end (plain text, ≤ 80 columns, the
same in a terminal and through a pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from hanlab.errors import BadInputError, HanlabError

__all__ = ["daemon_client", "follow_job", "print_job_report", "run_command"]

_STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
POLL_S = 0.25


def describe_step(step: dict[str, Any]) -> str:
    """One line for a finished step (response code, alert, timeout, match level)."""
    if step["kind"] == "sr":
        what = (f"SR {step['sr_variant']} {step['sr_name']} -> {step['target_role']}"
                f" ({step['user_role']}, CV{step['command_variant'] or '?'})")
        codes = (f"ack {step['ack_code'] or '-'} response {step['response_code'] or '-'}")
    elif step["kind"] == "wait":
        stimulus = step.get("stimulus")
        what = f"wait alert{' after ' + stimulus if stimulus else ''}"
        codes = f"alert {step['alert_code'] or '-'}"
    else:
        what, codes = step["kind"], ""
    opt = " (optional)" if step["optional"] else ""
    level = f" [{step['match_level']}]" if step.get("match_level") else ""
    return (f"{step['index']:>3} {step['status']:<7} {what}{opt}: {codes} "
            f"{step['outcome'] or ''} {step['duration_s']:.3f} s{level} "
            f"{step['detail']}").rstrip()


async def follow_job(get_job: Callable[[str], Awaitable[dict[str, Any]]], job_id: str,
                     console: Console, *, poll_s: float = POLL_S) -> dict[str, Any]:
    """Print a job's steps as they finish until it ends; its final record."""
    shown_steps = 0
    shown_runs = 0
    last_state = ""
    while True:
        record = await get_job(job_id)
        state = record["state"]
        if state != last_state:
            if state == "queued" and record.get("detail"):
                console.print(f"queued: {record['detail']}", markup=False)
            last_state = state
        steps = record.get("steps", [])
        runs = record.get("variant_runs", [])
        for step in steps[shown_steps:]:
            style = _STATUS_STYLE.get(step["status"], "default")
            console.print(f"  [{style}]{escape(describe_step(step))}[/]", highlight=False)
        shown_steps = len(steps)
        for run in runs[shown_runs:]:
            verdict = "[green]PASS[/]" if run["passed"] else "[bold red]FAIL[/]"
            console.print(f"{verdict} {run['scenario']}/{run['variant']} "
                          f"#{run['repetition']}: {run['srs_answered']}/{run['srs_sent']} "
                          f"SRs answered, {run['duration_s']:.2f} s", highlight=False)
        shown_runs = len(runs)
        if state not in ("queued", "running"):
            return record
        await asyncio.sleep(poll_s)


def print_job_report(record: dict[str, Any], console: Console, *, where: str) -> None:
    """The job's verdict, per-band timing table and where its evidence is."""
    from hanlab.correlate.stats import text_table

    runs = record.get("variant_runs", [])
    passed = sum(1 for r in runs if r["passed"])
    sent = sum(r["srs_sent"] for r in runs)
    answered = sum(r["srs_answered"] for r in runs)
    console.print(f"job {record['id']} on {record['rig']}: {record['state']}"
                  f"{' (' + record['detail'] + ')' if record.get('detail') else ''}; "
                  f"{passed}/{len(runs)} variant runs passed, {answered}/{sent} SRs "
                  "answered", markup=False)
    rows = record.get("timings", {}).get("rows", [])
    console.print(text_table(rows), markup=False, highlight=False, soft_wrap=True)
    levels: dict[str, int] = {}
    for exchange in record.get("exchanges", []):
        levels[exchange["match_level"]] = levels.get(exchange["match_level"], 0) + 1
    console.print(f"{len(record.get('exchanges', []))} SR exchanges ("
                  + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())) + ")",
                  markup=False)
    captures = ", ".join(record.get("captures", [])) or "none"
    console.print(f"captures: {captures}; DUIS log: {record.get('duis_log')} ({where})",
                  markup=False, soft_wrap=True)


def _rig_name(rig: str) -> tuple[str, Path | None]:
    """The rig's name and its file: ``rig`` is a rig file or the name of a rig."""
    path = Path(rig)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        from hanlab.config.loader import load_rig

        if not path.is_file():
            raise BadInputError(f"{path}: file not found", hint="give a rig file or a rig name")
        loaded, _ = load_rig(path)
        return loaded.name, path
    from hanlab.labdata import bundled_rig

    local = Path("rigs") / f"{rig}.yaml"  # a checkout's rigs/ folder
    return rig, bundled_rig(rig) or (local if local.is_file() else None)


@contextlib.asynccontextmanager
async def _in_process(rig_name: str, rig_file: Path | None, lab_path: Path | None,
                      out: Path, time_scale: float | None) -> AsyncIterator[Any]:
    """The rig's lab runtime started in this process (no API), stopped on exit."""
    from hanlab.config.loader import load_lab
    from hanlab.runtime.emulation import EmulationSettings
    from hanlab.runtime.lab import LabOptions, LabRuntime

    if lab_path is not None:
        lab = load_lab(lab_path)
    elif rig_file is not None:
        lab = load_lab(rig_file)
    else:
        raise BadInputError(f"no running daemon serves rig {rig_name!r} and no rig file "
                            "or bundled rig has that name",
                            hint="start `hanlab up`, or give --rig a rig file")
    if rig_name not in {r.name for r in lab.rigs}:
        raise BadInputError(f"--lab {lab_path}: has no rig {rig_name!r}")
    mqtt = lab.config.broker.host is not None  # the lab's broker; never an embedded one
    runtime = LabRuntime(lab, LabOptions(mqtt=mqtt, out=out, api=False,
                                         emulation=EmulationSettings(time_scale=time_scale)))
    task = asyncio.create_task(runtime.run(), name="scenario-lab")
    try:
        await asyncio.wait_for(runtime.runtimes[rig_name].started.wait(), 60)
        yield runtime
    finally:
        runtime.stop()
        await asyncio.gather(task, return_exceptions=True)


async def run_command(
    scenario: str, *, rig: str, variants: list[str], repeat: int, devices: dict[str, str],
    include_optional: bool, wait: bool, lab_path: Path | None, out: Path,
    time_scale: float | None, daemon_url: str | None, no_daemon: bool, console: Console,
) -> bool:
    """Run ``scenario`` as a job on ``rig`` (see the module docstring); whether it passed.

    Raises:
        BadInputError: a bad job (unknown rig, scenario, variant or device).
        HanlabError: the daemon refused it (rig busy or down) or cannot be reached.
    """
    rig_name, rig_file = _rig_name(rig)
    spec = {"rig": rig_name, "scenario": scenario, "variants": variants, "repeat": repeat,
            "devices": devices, "include_optional": include_optional, "wait": wait}
    if not no_daemon:
        client = daemon_client(rig_name, daemon_url)
        if client is not None:
            async with client:
                record = await client.submit(spec)
                console.print(f"job {record['id']} queued on {rig_name} at {client.url}",
                              markup=False)
                try:
                    final = await follow_job(client.job, record["id"], console)
                except (KeyboardInterrupt, asyncio.CancelledError):
                    await client.cancel(record["id"])
                    raise
            print_job_report(final, console, where=f"daemon {client.url}")
            return bool(final["state"] == "passed")
    async with _in_process(rig_name, rig_file, lab_path, out, time_scale) as runtime:
        record = runtime.submit(spec)
        console.print(f"job {record['id']} on {rig_name} (in-process; records in "
                      f"{runtime.out / 'jobs'})", markup=False)

        async def get_job(job_id: str) -> dict[str, Any]:
            job: dict[str, Any] = runtime.job(job_id)
            return job

        final = await follow_job(get_job, record["id"], console)
    print_job_report(final, console, where="in-process")
    return bool(final["state"] == "passed")


def daemon_client(rig_name: str, daemon_url: str | None) -> Any:
    """An API client of the daemon serving ``rig_name`` (operator token), or ``None``."""
    from hanlab.daemon.client import ApiClient
    from hanlab.daemon.statefile import daemon_for_rig, find_daemons

    if daemon_url is not None:
        token = os.environ.get("HANLAB_TOKEN")
        if token is None:
            for daemon in find_daemons():
                if daemon.url.rstrip("/") == daemon_url.rstrip("/"):
                    return ApiClient.for_daemon(daemon, "operator")
            raise HanlabError(f"--daemon {daemon_url}: no operator token",
                              hint="set HANLAB_TOKEN to the daemon's operator token")
        return ApiClient(daemon_url, token)
    found = daemon_for_rig(rig_name)
    if found is None:
        return None
    return ApiClient.for_daemon(found, "operator")
