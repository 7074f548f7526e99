"""``hanlab plan show`` and ``hanlab campaign run|status|resume|resume-device`` (issue 10,
items 2 and 3): test plans expanded into jobs, and campaigns that run them over the
lab's rigs, resumably, with their state in the results store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hanlab.errors import BadInputError

plan_app = typer.Typer(help="Test plans: what a plan runs.", no_args_is_help=True)
campaign_app = typer.Typer(help="Campaigns: a plan's jobs over the lab's rigs, resumable.",
                           no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

LabOption = Annotated[Path | None, typer.Option(
    "--lab", help="Lab file (default: the plan's lab:, else the bundled default lab).")]
OutOption = Annotated[Path | None, typer.Option(
    "--out", help="The lab's output folder: captures, job files, and the default results "
                  "store <out>/hanlab.db (default: the lab's capture_folder, else "
                  "./captures).")]
TimeScaleOption = Annotated[float | None, typer.Option(
    "--time-scale", min=0.01, max=1000,
    help="Emulated rigs run in-process: emulated seconds per host second (default: the "
         "plan's emulation.time_scale).")]
TagOption = Annotated[list[str] | None, typer.Option(
    "--tag", help="Only the lines with this tag (repeatable).")]
LimitOption = Annotated[int | None, typer.Option(
    "--limit", min=1, help="At most this many jobs per rig (a CI-sized subset).")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON output.")]


def _store_of(lab: Any, out: Path | None) -> Any:
    from hanlab.runtime.lab import open_lab_store

    return open_lab_store(lab, (out or lab.config.capture_folder or Path("captures"))
                          .absolute())


def _devices_text(devices: dict[str, str]) -> str:
    return " ".join(f"{role}={eui[-5:]}" for role, eui in devices.items()) or "-"


@plan_app.command("show")
def show(
    plan: Annotated[Path, typer.Argument(help="Plan file (YAML).")],
    lab: LabOption = None, time_scale: TimeScaleOption = None, tag: TagOption = None,
    limit: LimitOption = None, as_json: JsonOption = False,
) -> None:
    """List the jobs a plan expands to and the estimated duration (rigs in parallel,
    each rig's jobs one at a time). A plan naming a rig, scenario, variant or device
    that does not exist, or a selection leaving a role empty: every problem as
    file:line: field: message, exit 2.

    Examples:

      hanlab plan show plans/overnight-emulated.yaml

      hanlab plan show plans/overnight-emulated.yaml --tag subghz --json
    """
    from hanlab.campaign.plan import estimated_duration_s, expand, load_plan, select

    loaded = load_plan(plan, lab)
    jobs = select(expand(loaded, time_scale=time_scale), tags=tag, limit_per_rig=limit)
    rigs = {r.name: r for r in loaded.lab.rigs}
    bands = {(r, d.eui64): d.band.value for r in rigs for d in rigs[r].devices}
    total_s = estimated_duration_s(jobs)
    if as_json:
        print(json.dumps({"plan": loaded.plan.name, "lab": loaded.lab.config.name,
                          "estimated_duration_s": total_s,
                          "jobs": [{**vars(j), "bands": sorted({bands[(j.rig, e)]
                                                                for e in j.involved})}
                                   for j in jobs]}, indent=1))
        return
    console.print(f"plan {loaded.plan.name} on lab {loaded.lab.config.name}: "
                  "#, line, rig, scenario/variant, devices, bands, estimate", markup=False)
    for job in jobs:
        job_bands = ",".join(sorted({bands[(job.rig, e)] for e in job.involved}))
        note = f" SKIPPED: {job.skip}" if job.skip else ""
        console.print(f"{job.seq:>4} L{job.line_index + 1} {job.rig} {job.scenario}/"
                      f"{job.variant} {_devices_text(job.devices)} [{job_bands}] "
                      f"{job.estimate_s:.1f} s{note}", markup=False)
    skipped = sum(1 for j in jobs if j.skip)
    per_rig = ", ".join(f"{r} {sum(1 for j in jobs if j.rig == r and not j.skip)}"
                        for r in sorted({j.rig for j in jobs}))
    console.print(f"{len(jobs)} jobs ({skipped} not runnable: skipped); per rig: {per_rig}; "
                  f"estimated duration {total_s:.0f} s (rigs in parallel)", markup=False)


def _run_campaign(store: Any, campaign_id: str, lab: Any, out: Path | None,
                  daemon_url: str | None) -> int:
    """Run or resume a campaign; the exit status (0: completed, nothing failed, no
    device suspended)."""
    from hanlab.campaign.links import rig_links
    from hanlab.campaign.plan import Plan
    from hanlab.campaign.report import campaign_report_data
    from hanlab.campaign.runner import CampaignRunner, load_campaign
    from hanlab.runtime.emulation import EmulationSettings
    from hanlab.store import schema as t

    campaign = load_campaign(store, campaign_id)
    options = campaign["options"]
    plan = Plan.model_validate(campaign["plan"])
    emulation: EmulationSettings = plan.emulation
    if options.get("time_scale") is not None:
        emulation = emulation.model_copy(update={"time_scale": options["time_scale"]})
    rigs = sorted({j["rig"] for j in store.rows(t.campaign_jobs, campaign_id=campaign_id)})
    folder = (out or lab.config.capture_folder or Path("captures")).absolute()

    async def drive() -> None:
        async with rig_links(lab, rigs, mode=options["mode"], store=store, out=folder,
                             emulation=emulation, daemon_url=daemon_url) as links:
            runner = CampaignRunner(store, campaign_id, links,
                                    on_event=lambda line: console.print(line, markup=False),
                                    ignore_window=bool(options.get("ignore_window")))
            await runner.run()

    try:
        asyncio.run(drive())
        data = campaign_report_data(store, campaign_id)
    finally:
        store.close()
    counts = data["counts"]
    console.print(f"campaign {campaign_id} {data['campaign']['state']}"
                  f"{': ' + data['campaign']['detail'] if data['campaign']['detail'] else ''}"
                  f"; {counts['planned']} jobs: {counts['passed']} passed, "
                  f"{counts['failed']} failed, {counts['error']} error, {counts['skipped']} "
                  f"skipped; {counts['interrupted_attempts']} interrupted attempts rerun; "
                  f"{counts['suspended_devices']} devices suspended", markup=False)
    ok = (data["campaign"]["state"] == "completed" and not counts["failed"]
          and not counts["error"] and not counts["suspended_devices"])
    return 0 if ok else 1


@campaign_app.command("run")
def run(
    plan: Annotated[Path, typer.Argument(help="Plan file (YAML).")],
    lab: LabOption = None, out: OutOption = None, time_scale: TimeScaleOption = None,
    tag: TagOption = None, limit: LimitOption = None,
    ignore_window: Annotated[bool, typer.Option(
        "--ignore-window", help="Start jobs outside the plan's window.")] = False,
    no_daemon: Annotated[bool, typer.Option(
        "--no-daemon", help="Run the rigs in this process even if a daemon serves them.")
    ] = False,
    daemon: Annotated[str | None, typer.Option(
        "--daemon", help="Submit to the daemon at this control URL.")] = None,
) -> None:
    """Run a plan as a new campaign: its jobs go to the daemons that own the rigs (one
    job at a time per rig, rigs in parallel), or, when no daemon serves them, to the lab
    runtime started in this process. Prints one line per finished job, suspension and
    wait; the campaign id first. Killed (even kill -9)? `hanlab campaign resume ID`
    goes on: no finished job runs again, an interrupted one runs again whole.

    Exit status: 0 when it completed with nothing failed and no device suspended;
    1 otherwise; 2 for a bad plan or an unreachable results store.

    Examples:

      hanlab campaign run plans/overnight-emulated.yaml

      hanlab campaign run plans/overnight-emulated.yaml --tag ci --time-scale 20 \\
          --ignore-window --out /tmp/night
    """
    from hanlab.campaign.links import served_rigs
    from hanlab.campaign.plan import estimated_duration_s, expand, load_plan, select
    from hanlab.campaign.runner import create_campaign

    loaded = load_plan(plan, lab)
    jobs = select(expand(loaded, time_scale=time_scale), tags=tag, limit_per_rig=limit)
    if not any(not j.skip for j in jobs):
        raise BadInputError(f"{plan}: the plan (with --tag/--limit) selects no job to run")
    store = _store_of(loaded.lab, out)
    rigs = sorted({j.rig for j in jobs})
    served = [] if no_daemon else served_rigs(rigs, daemon)
    if served and set(served) != set(rigs):
        raise BadInputError(f"daemons serve rigs {', '.join(served)} but not "
                            f"{', '.join(sorted(set(rigs) - set(served)))}",
                            hint="start them under one daemon, or run with --no-daemon")
    mode = "daemon" if served else "in-process"
    campaign_id = create_campaign(store, loaded, jobs, {
        "mode": mode, "time_scale": time_scale, "tags": tag or [], "limit": limit,
        "ignore_window": ignore_window})
    console.print(f"campaign {campaign_id}: {len(jobs)} jobs on {', '.join(rigs)} "
                  f"({mode}), estimated {estimated_duration_s(jobs):.0f} s; results store "
                  f"{store.url}", markup=False)
    raise typer.Exit(_run_campaign(store, campaign_id, loaded.lab, out, daemon))


def _lab_for(lab: Path | None) -> Any:
    from hanlab.config.loader import load_lab
    from hanlab.labdata import default_lab

    return load_lab(lab or default_lab())


@campaign_app.command("resume")
def resume(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="Campaign id.")],
    lab: LabOption = None, out: OutOption = None,
    daemon: Annotated[str | None, typer.Option(
        "--daemon", help="Submit to the daemon at this control URL.")] = None,
) -> None:
    """Go on with a campaign that was stopped or killed (its state is in the results
    store): finished jobs stay finished, interrupted ones run again whole, the rest
    run. It runs the way it started (through daemons, or in-process).

    Examples:

      hanlab campaign resume c-20261201T200000-1a2b3c

      hanlab campaign resume c-20261201T200000-1a2b3c --lab labs/my-lab.yaml --out /data
    """
    from hanlab.campaign.runner import load_campaign

    lab_model = _lab_for(lab)
    store = _store_of(lab_model, out)
    campaign = load_campaign(store, campaign_id)
    if lab is None and campaign["options"].get("lab_file"):
        lab_model = _lab_for(Path(campaign["options"]["lab_file"]))
    console.print(f"campaign {campaign_id}: resuming ({campaign['state']}); results store "
                  f"{store.url}", markup=False)
    raise typer.Exit(_run_campaign(store, campaign_id, lab_model, out, daemon))


@campaign_app.command("status")
def status(
    campaign_id: Annotated[str | None, typer.Argument(
        metavar="[CAMPAIGN]", help="Campaign id (default: list every campaign).")] = None,
    lab: LabOption = None, out: OutOption = None, as_json: JsonOption = False,
) -> None:
    """A campaign's progress from the results store (counts, running jobs, suspended
    devices), or every campaign. --json: the report data
    (hanlab.campaign.report.campaign_report_data).

    Examples:

      hanlab campaign status

      hanlab campaign status c-20261201T200000-1a2b3c --json > report-data.json
    """
    from hanlab.campaign.report import campaign_report_data, list_campaigns

    store = _store_of(_lab_for(lab), out)
    try:
        if campaign_id is None:
            rows = list_campaigns(store)
            if as_json:
                print(json.dumps(rows, indent=1))
                return
            for row in rows:
                console.print(f"{row['id']} {row['name']} {row['state']} {row['detail']}",
                              markup=False)
            return
        data = campaign_report_data(store, campaign_id)
    finally:
        store.close()
    if as_json:
        print(json.dumps(data, indent=1))
        return
    c, counts = data["campaign"], data["counts"]
    console.print(f"campaign {c['id']} ({c['name']}, lab {c['lab']}): {c['state']} "
                  f"{c['detail']}".rstrip(), markup=False)
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()), markup=False)
    for job in data["jobs"]:
        if job["state"] in ("submitting", "submitted"):
            console.print(f"  running #{job['seq']} {job['rig']} {job['scenario']}/"
                          f"{job['variant']} job {job['job_id']}", markup=False)
    for device in data["devices"]:
        if device["suspended"]:
            console.print(f"  suspended {device['rig']} {device['role']} {device['eui64']}: "
                          f"{device['suspended_reason']}", markup=False)


@campaign_app.command("report")
def report(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="Campaign id.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML report file.")],
    lab: LabOption = None, out: OutOption = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also JUnit XML here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also CSV tables here.")] = None,
    parquet: Annotated[Path | None, typer.Option(
        "--parquet", help="Also Parquet tables here.")] = None,
    issues: Annotated[Path | None, typer.Option(
        "--issues", help="The campaign's test issue log (hanlab issues).")] = None,
) -> None:
    """The campaign's report from the results store: one self-contained HTML file
    (DIT.EX.3/EX.5 verdicts per CH variant and band, heatmap, per-band timing plots,
    failed steps, traceability to the plan), and JUnit, CSV, Parquet.

    Example:

      hanlab campaign report c-20261201T200000-1a2b3c -o night.html --junit night.xml
    """
    from hanlab.campaign.report import campaign_report_data
    from hanlab.commands.reports import write_reports
    from hanlab.reports.from_campaign import report_data_from_campaign

    lab_file = _lab_for(lab)
    store = _store_of(lab_file, out)
    try:
        raw = campaign_report_data(store, campaign_id)
    finally:
        store.close()
    issue_rows = None
    if issues is not None:
        from hanlab.reports.issues import IssueLog

        issue_rows = [i.to_dict() for i in IssueLog(issues, campaign_id).issues]
    data = report_data_from_campaign(raw, captures_dir=out, issues=issue_rows)
    for path in write_reports(data, output, junit=junit, csv_dir=csv, parquet_dir=parquet):
        console.print(f"wrote {path}", markup=False)


@campaign_app.command("resume-device")
def resume_device_command(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="Campaign id.")],
    device: Annotated[str, typer.Argument(metavar="DEVICE", help="The device's EUI-64.")],
    rig: Annotated[str | None, typer.Option(help="Only on this rig.")] = None,
    lab: LabOption = None, out: OutOption = None,
) -> None:
    """Lift a device's suspension (seed 000: testing resumes once a fix is approved):
    its jobs skipped for it are planned again; run them with `hanlab campaign resume`.

    Examples:

      hanlab campaign resume-device c-20261201T200000-1a2b3c 00-DB-12-00-00-00-D2-02
    """
    from hanlab.campaign.runner import resume_device

    store = _store_of(_lab_for(lab), out)
    try:
        seqs = resume_device(store, campaign_id, device, rig)
    finally:
        store.close()
    console.print(f"device {device} resumed in campaign {campaign_id}: {len(seqs)} jobs "
                  f"planned again; run: hanlab campaign resume {campaign_id}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``plan`` and ``campaign`` command groups."""
    app.add_typer(plan_app, name="plan")
    app.add_typer(campaign_app, name="campaign")
