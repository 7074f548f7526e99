"""``hanlab jobs list|show|cancel|rerun``: the jobs of the running daemons, or of a jobs
folder when none runs (issue 9, item 4).

Daemons are found through their state files (:mod:`hanlab.daemon.statefile`) or named
with ``--daemon URL``; without a daemon, ``list`` and ``show`` read the job records under
``--jobs`` from the results store beside it (default ``captures/jobs``: the SQLite store
``captures/hanlab.db``, where ``hanlab up`` and in-process runs keep them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hanlab.commands import print_table
from hanlab.errors import HanlabError

jobs_app = typer.Typer(help="Jobs on the lab's rigs: list, show, cancel, rerun.",
                       no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

DaemonOption = Annotated[str | None, typer.Option(
    "--daemon", help="A daemon's control URL (default: every daemon of this user).")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON output.")]
FolderOption = Annotated[Path, typer.Option(
    "--jobs", help="Jobs folder read when no daemon runs.")]


def _clients(daemon_url: str | None, role: str) -> list[Any]:
    from hanlab.daemon.client import ApiClient
    from hanlab.daemon.statefile import find_daemons

    daemons = find_daemons()
    if daemon_url is None:
        return [ApiClient.for_daemon(d, role) for d in daemons]
    for daemon in daemons:
        if daemon.url.rstrip("/") == daemon_url.rstrip("/"):
            return [ApiClient.for_daemon(daemon, role)]
    token = os.environ.get("HANLAB_TOKEN")
    if token is None:
        raise HanlabError(f"--daemon {daemon_url}: no token",
                          hint="set HANLAB_TOKEN to the daemon's viewer or operator token")
    return [ApiClient(daemon_url, token)]


def _offline(folder: Path) -> list[dict[str, Any]]:
    from hanlab.runtime.jobs import JobStore

    if not (folder.parent / "hanlab.db").is_file():
        return []
    store = JobStore(folder)
    try:
        return [r.to_dict() for r in store.list(limit=1000)]
    finally:
        store.db.close()


async def _each(clients: list[Any], call: str, *args: Any) -> list[Any]:
    out = []
    for client in clients:
        async with client:
            out.append(await getattr(client, call)(*args))
    return out


def _when(ts_ns: int | None) -> str:
    if not ts_ns:
        return ""
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@jobs_app.command("list")
def list_jobs(
    rig: Annotated[str | None, typer.Option(help="Only this rig's jobs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    daemon: DaemonOption = None, as_json: JsonOption = False,
    jobs: FolderOption = Path("captures/jobs"),
) -> None:
    """List jobs, newest first: id, rig, scenario, state, progress.

    Example:

      hanlab jobs list --rig emulated-dual-band
    """
    clients = _clients(daemon, "viewer")
    if clients:
        found = [job for batch in asyncio.run(_each(clients, "jobs", rig, state, limit))
                 for job in batch]
    else:
        found = [j for j in _offline(jobs) if (rig is None or j["rig"] == rig)
                 and (state is None or j["state"] == state)]
    found.sort(key=lambda j: j["submitted_ns"], reverse=True)
    found = found[:limit]
    if as_json:
        typer.echo(json.dumps(found, indent=1))
        return
    table = Table(title="jobs")
    for column in ("id", "rig", "scenario", "state", "steps", "submitted (UTC)", "detail"):
        # never cut a cell to "j-2026…": ids whole, other cells wrap (80 columns, pipes)
        table.add_column(column, no_wrap=column == "id", overflow="fold")
    for job in found:
        progress = job.get("progress", {})
        table.add_row(job["id"], job["rig"], job["scenario"], job["state"],
                      f"{progress.get('steps_done', 0)}/{progress.get('steps_total', 0)}",
                      _when(job["submitted_ns"]), job.get("detail", ""))
    print_table(console, table)


def _find(job_id: str, daemon: str | None, folder: Path) -> tuple[dict[str, Any], Any]:
    from hanlab.runtime.service import NotFoundError

    for client in _clients(daemon, "viewer"):
        try:
            return asyncio.run(_each([client], "job", job_id))[0], client
        except NotFoundError:
            continue
    for job in _offline(folder):
        if job["id"] == job_id:
            return job, None
    raise NotFoundError(f"no job {job_id!r} on any running daemon or in {folder}",
                        hint="hanlab jobs list")


@jobs_app.command("show")
def show_job(
    job_id: Annotated[str, typer.Argument(help="The job id (hanlab jobs list).")],
    daemon: DaemonOption = None, as_json: JsonOption = False,
    jobs: FolderOption = Path("captures/jobs"),
) -> None:
    """Show a job: its steps, verdicts, per-band timings and evidence files.

    Example:

      hanlab jobs show j-20261201T101500-3f2a --json > job.json
    """
    from hanlab.scenarios.cli_run import describe_step, print_job_report

    job, _ = _find(job_id, daemon, jobs)
    if as_json:
        typer.echo(json.dumps(job, indent=1))
        return
    for step in job.get("steps", []):
        console.print(f"  {step['variant']} #{step['repetition']} {describe_step(step)}",
                      markup=False)
    print_job_report(job, console, where="record")


@jobs_app.command("cancel")
def cancel_job(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    daemon: DaemonOption = None,
) -> None:
    """Cancel a queued job, or the running one after its current step.

    Example:

      hanlab jobs cancel j-20261201T101500-3f2a
    """
    job = _operate(daemon, "cancel", job_id)
    console.print(f"job {job_id}: {job['state']} {job.get('detail', '')}".rstrip(),
                  markup=False)


@jobs_app.command("rerun")
def rerun_job(
    job_id: Annotated[str, typer.Argument(help="The job id (e.g. an interrupted job).")],
    daemon: DaemonOption = None,
) -> None:
    """Queue a job again with its spec; the old record stays as it is.

    A daemon killed mid-job records the job interrupted and never runs it again by
    itself: this is how an operator asks for it. The new job's record names the old one
    (rerun_of).

    Example:

      hanlab jobs rerun j-20261201T101500-3f2a
    """
    job = _operate(daemon, "rerun", job_id)
    console.print(f"job {job['id']} queued on {job['rig']} (rerun of {job_id})", markup=False)


def _operate(daemon: str | None, action: str, job_id: str) -> dict[str, Any]:
    """``action`` (an operator call of :class:`~hanlab.daemon.client.ApiClient`) on the
    job, at whichever running daemon has it. Raises NotFoundError when none has it."""
    from hanlab.runtime.service import NotFoundError

    for client in _clients(daemon, "operator"):
        try:
            job: dict[str, Any] = asyncio.run(_each([client], action, job_id))[0]
        except NotFoundError:
            continue
        return job
    raise NotFoundError(f"no running daemon has a job {job_id!r}", hint="hanlab jobs list")


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` command group."""
    app.add_typer(jobs_app, name="jobs")
