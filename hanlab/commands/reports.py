"""``hanlab report``, ``hanlab evidence``, ``hanlab annotate`` and ``hanlab issues``
(issue 10, items 5-7; seed 000 Table 9 and Table 10).

* ``hanlab report render DATA.json -o report.html [--junit F] [--csv DIR] [--parquet DIR]``
  renders a :class:`~hanlab.reports.model.CampaignReportData` JSON file;
  ``hanlab report jobs JOB.json… -o report.html [--rig RIG…] [--evidence DIR] …`` builds
  that data from job records first (and, with ``--evidence``, a triage bundle per failed
  step, linked from the report).
* ``hanlab evidence JOB_OR_RECORD [STEP] -o DIR|ZIP`` writes triage bundles
  (:mod:`hanlab.reports.evidence`): from a ``job.json``, a job id under ``--jobs``, or a
  job of a running daemon (its captures downloaded through the control API).
* ``hanlab annotate CAPTURE… --duis-log LOG [--keys KEYS] -o OUT`` writes whole captures
  with every exchange's frames commented.
* ``hanlab issues add|raise|update|list|export LOG`` keeps a campaign's test issue log.

Key material is never printed; keys files written are mode 600.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from hanlab.errors import BadInputError

report_app = typer.Typer(help="Campaign reports (HTML, JUnit, CSV, Parquet).",
                         no_args_is_help=True)
issues_app = typer.Typer(help="The test issue log of a campaign (seed 000 Table 10).",
                         no_args_is_help=True)

KeysOption = Annotated[Path | None, typer.Option("--keys", help="YAML keys file (secret).")]
RigOption = Annotated[Path | None, typer.Option(
    "--rig", help="Rig file: device roles, and the keys of an emulated rig.")]


def _keyring(keys: Path | None, rig: Path | None) -> Any:
    from hanlab.zigbee.keyring import Keyring

    if keys is not None:
        return Keyring.load(keys)
    if rig is not None:
        from hanlab.commands.decode import emulated_keyring
        from hanlab.config.loader import load_rig

        config, _ = load_rig(rig)
        if any(s.driver == "emulated" for s in config.sniffers):
            return emulated_keyring(rig)
    return None


def _roles(rig: Path | None) -> dict[str, str] | None:
    if rig is None:
        return None
    from hanlab.config.loader import load_rig

    config, _ = load_rig(rig)
    return {d.eui64: d.role.value for d in config.devices}


def _outputs(data: Any, out: Path, junit: Path | None, csv_dir: Path | None,
             parquet_dir: Path | None) -> None:
    written = write_reports(data, out, junit=junit, csv_dir=csv_dir,
                            parquet_dir=parquet_dir)
    sys.stderr.write("wrote " + ", ".join(str(p) for p in written) + "\n")


JunitOption = Annotated[Path | None, typer.Option("--junit", help="JUnit XML file to write.")]
CsvOption = Annotated[Path | None, typer.Option(
    "--csv", help="Folder for exchanges.csv and timings.csv.")]
ParquetOption = Annotated[Path | None, typer.Option(
    "--parquet", help="Folder for exchanges.parquet and timings.parquet.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="The HTML report to write.")]


@report_app.command("render")
def render(data_file: Annotated[Path, typer.Argument(help="Report data (JSON).")],
           out: OutOption, junit: JunitOption = None, csv_dir: CsvOption = None,
           parquet_dir: ParquetOption = None) -> None:
    """Render a campaign's report data (``campaign_report_data`` as JSON; shape in
    hanlab.reports.model) to one self-contained HTML file, and JUnit / CSV / Parquet.

    Example:

      hanlab report render campaign.json -o report.html --junit junit.xml --csv out/
    """
    try:
        data = json.loads(data_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{data_file}: cannot read report data: {error}") from None
    _outputs(data, out, junit, csv_dir, parquet_dir)


@report_app.command("jobs")
def report_jobs(
    records: Annotated[list[Path], typer.Argument(help="job.json files.")],
    out: OutOption,
    rig: Annotated[list[Path] | None, typer.Option(
        "--rig", help="Rig files (CH variant, devices); default: the bundled rig of "
                      "the same name.")] = None,
    campaign: Annotated[str | None, typer.Option(help="Campaign id shown.")] = None,
    operator: Annotated[str, typer.Option(help="Operator shown.")] = "",
    targets: Annotated[Path | None, typer.Option(
        "--targets", help="YAML/JSON {SR variant, Service Reference or *: seconds}.")] = None,
    issues: Annotated[Path | None, typer.Option("--issues", help="Issue log (YAML).")] = None,
    evidence: Annotated[Path | None, typer.Option(
        "--evidence", help="Also write a triage bundle (ZIP) per failed step into this "
                           "folder, linked from the report.")] = None,
    keys: KeysOption = None,
    junit: JunitOption = None, csv_dir: CsvOption = None, parquet_dir: ParquetOption = None,
) -> None:
    """A report of job records (no campaign needed): every variant that ran counts as
    planned against every selected device.

    Example:

      hanlab report jobs captures/jobs/*/job.json -o report.html --evidence evidence/
    """
    from hanlab.correlate.stats import load_targets
    from hanlab.reports.assemble import data_from_job_files
    from hanlab.reports.issues import IssueLog

    log = IssueLog(issues) if issues is not None else None
    data = data_from_job_files(records, rig_files=rig or [], campaign_id=campaign,
                               operator=operator,
                               targets=load_targets(targets) if targets else None,
                               issues=[i.to_dict() for i in log.issues] if log else None)
    if evidence is not None:
        from hanlab.reports.evidence import build_bundle, find_step

        rig_files = {p.stem: p for p in rig or []}
        for entry in data["jobs"]:
            record = entry["record"]
            failed = [s for s in record["steps"] if s.get("status") == "failed"
                      and not s.get("optional")]
            rig_file = rig_files.get(record["rig"]) or _bundled(record["rig"])
            ring = _keyring(keys, rig_file)
            for step in failed:
                (chosen,) = find_step(record, str(record["steps"].index(step) + 1))
                name = f"{record['id']}_step{record['steps'].index(step) + 1}.zip"
                try:
                    build_bundle(record, chosen, evidence / name,
                                 captures_dir=Path(str(entry.get("captures_dir") or ".")),
                                 keyring=ring, device_roles=_roles(rig_file))
                except BadInputError as error:
                    sys.stderr.write(f"hanlab: no bundle for {record['id']}: {error}\n")
                    continue
                link = Path(evidence / name)
                try:
                    link = link.resolve().relative_to(out.resolve().parent)
                except ValueError:
                    link = link.resolve()
                from hanlab.reports.model import step_key

                entry.setdefault("evidence", {})[step_key(chosen)] = link.as_posix()
    _outputs(data, out, junit, csv_dir, parquet_dir)


def _bundled(name: str) -> Path | None:
    from hanlab.labdata import bundled_rig

    return bundled_rig(name)


def _record_and_captures(job: str, jobs_folder: Path, captures: Path | None,
                         daemon: str | None, work: Path, *,
                         download: bool = True) -> tuple[dict[str, Any], Path]:
    from hanlab.reports.assemble import load_job_record

    path = Path(job)
    if path.is_file():
        record = load_job_record(path)
        folder = path.resolve().parent
        default = folder.parent.parent if folder.parent.name == "jobs" else folder
        return record, captures or default
    local = jobs_folder / job / "job.json"
    if local.is_file():
        return load_job_record(local), captures or jobs_folder.parent
    if (jobs_folder.parent / "hanlab.db").is_file():  # the lab's results store (SQLite)
        from hanlab.store import open_store

        store = open_store(None, jobs_folder.parent)
        try:
            stored = store.get_job(job)
        finally:
            store.close()
        if stored is not None:
            return dict(stored), captures or jobs_folder.parent
    # a job of a running daemon: its record, and its captures downloaded
    from hanlab.commands.jobs import _clients

    async def fetch() -> dict[str, Any]:
        for client in _clients(daemon, "viewer"):
            async with client:
                try:
                    record: dict[str, Any] = await client.job(job)
                except Exception:
                    continue
                for name in record.get("captures") or [] if download else []:
                    await client.download_capture(record["rig"], name, work / name)
                return record
        raise BadInputError(f"{job}: no such job record file, job under {jobs_folder}, "
                            "or job of a running daemon")

    return asyncio.run(fetch()), work


def evidence(
    job: Annotated[str, typer.Argument(help="job.json, a job id (--jobs) or a daemon's job.")],
    step: Annotated[str | None, typer.Argument(
        help="Step: its number in the record, variant#rep/index, or RequestID "
             "(default: every failed step).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder, or a .zip file.")] = Path(
        "evidence"),
    keys: KeysOption = None, rig: RigOption = None,
    captures: Annotated[Path | None, typer.Option(
        "--captures", help="Folder of the job's captures (default: the lab output folder "
                           "holding jobs/).")] = None,
    margin: Annotated[float, typer.Option(help="Seconds kept around the exchange.")] = 2.0,
    jobs: Annotated[Path, typer.Option("--jobs", help="Jobs folder for a job id.")] = Path(
        "captures/jobs"),
    daemon: Annotated[str | None, typer.Option("--daemon", help="A daemon's URL.")] = None,
) -> None:
    """Triage bundle of a step: its frames from every band (commented with RequestID, SR
    and segment), the keys as Wireshark zigbee_pc_keys, the DUIS documents, a timeline.

    Example:

      hanlab evidence captures/jobs/j-20261201T101500-3f2a/job.json 3 --rig rigs/r.yaml \\
          -o bundle.zip

      WIRESHARK_CONFIG_DIR=bundle/wireshark tshark -r bundle/frames.pcapng \\
          -Y 'frame.comment contains "90-B3-D5-1F-30-01-00-00:"'
    """
    from hanlab.reports.evidence import build_bundle, find_step
    from hanlab.reports.model import step_key

    with tempfile.TemporaryDirectory(prefix="hanlab-evidence-") as work:
        record, folder = _record_and_captures(job, jobs, captures, daemon, Path(work))
        rig_file = rig or _bundled(str(record.get("rig")))
        ring = _keyring(keys, rig_file)
        chosen = find_step(record, step)
        for item in chosen:
            target = out
            if len(chosen) > 1:
                name = step_key(item).replace("#", "_").replace("/", "_")
                target = (out.with_name(f"{out.stem}-{name}.zip") if out.suffix == ".zip"
                          else out / name)
            build_bundle(record, item, target, captures_dir=folder, keyring=ring,
                         device_roles=_roles(rig_file), margin_s=margin)
            sys.stderr.write(f"wrote {target} (job {record['id']} step {step_key(item)})\n")


def annotate(
    captures: Annotated[list[Path], typer.Argument(help="pcap/pcapng captures of a run.")],
    duis_log: Annotated[Path, typer.Option("--duis-log", help="DUIS log (JSON Lines).")],
    out: Annotated[Path, typer.Option("--out", "-o",
                                      help="Folder (or a .pcapng for one capture).")],
    keys: KeysOption = None, rig: RigOption = None,
) -> None:
    """Write whole captures again with every exchange's frames commented (RequestID, SR,
    segment), for Wireshark's frame.comment.

    Example:

      hanlab annotate captures/run1/*.pcapng --duis-log captures/run1/rig_duis.jsonl \\
          --keys lab.keys.yaml -o annotated/
    """
    from hanlab.reports.evidence import annotate_captures

    for path in [*captures, duis_log]:
        if not path.is_file():
            raise BadInputError(f"{path}: no such file")
    written = annotate_captures(captures, duis_log, out, keyring=_keyring(keys, rig),
                                device_roles=_roles(rig))
    sys.stderr.write("wrote " + ", ".join(str(p) for p in written) + "\n")


LogArgument = Annotated[Path, typer.Argument(help="The campaign's issue log (YAML).")]


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"{text!r}: not a date (YYYY-MM-DD)") from None


@issues_app.command("add")
def issues_add(
    log: LogArgument,
    title: Annotated[str, typer.Option(help="One line.")],
    severity: Annotated[int, typer.Option(min=1, max=5, help="1 (highest) .. 5.")],
    owner: Annotated[str, typer.Option(
        help="DSP, 'CSP N', 'CSP C/S' or 'device manufacturer'.")],
    campaign: Annotated[str | None, typer.Option(help="Campaign id (new log).")] = None,
    manufacturer: Annotated[str, typer.Option(help="Device manufacturer.")] = "",
    status: Annotated[str, typer.Option(help="open, in progress, fixed, retest, deferred, "
                                             "closed, rejected.")] = "open",
    work_off: Annotated[str | None, typer.Option(help="Work-off date YYYY-MM-DD.")] = None,
    job: Annotated[str | None, typer.Option(help="Linked job id.")] = None,
    step: Annotated[str | None, typer.Option(help="Linked step key.")] = None,
    request_id: Annotated[str | None, typer.Option(help="Linked RequestID.")] = None,
    device: Annotated[str | None, typer.Option(help="Linked device EUI-64.")] = None,
    evidence_link: Annotated[str | None, typer.Option(
        "--evidence", help="Triage bundle path or URL.")] = None,
    raised_by: Annotated[str, typer.Option(help="Who raises it.")] = "",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
) -> None:
    """Raise a test issue by hand.

    Example:

      hanlab issues add issues.yaml --campaign c-1 --title "GSME no response" \\
          --severity 3 --owner "device manufacturer" --manufacturer Acme
    """
    from hanlab.reports.issues import IssueLog

    issue_log = IssueLog(log, campaign)
    issue = issue_log.add(title=title, severity=severity, owner=owner,
                          manufacturer=manufacturer, status=status,
                          work_off_date=_date(work_off), job_id=job, step=step,
                          request_id=request_id, device=device, evidence=evidence_link,
                          raised_by=raised_by, description=description)
    issue_log.save()
    sys.stdout.write(f"{issue.id}\n")


@issues_app.command("raise")
def issues_raise(
    log: LogArgument,
    records: Annotated[list[Path], typer.Argument(help="job.json files.")],
    severity: Annotated[int, typer.Option(min=1, max=5)] = 3,
    owner: Annotated[str, typer.Option(help="Owner of the new issues.")] = "DSP",
    manufacturer: Annotated[str, typer.Option()] = "",
    campaign: Annotated[str | None, typer.Option(help="Campaign id (new log).")] = None,
    raised_by: Annotated[str, typer.Option()] = "",
) -> None:
    """One issue per failed mandatory step of the jobs that has none yet (triage sets
    the owner and severity later with `update`)."""
    from hanlab.reports.assemble import load_job_record
    from hanlab.reports.issues import IssueLog

    issue_log = IssueLog(log, campaign)
    added = issue_log.raise_failed([load_job_record(p) for p in records], severity=severity,
                                   owner=owner, manufacturer=manufacturer,
                                   raised_by=raised_by)
    issue_log.save()
    sys.stdout.write("".join(f"{i.id}\t{i.title}\n" for i in added))


@issues_app.command("update")
def issues_update(
    log: LogArgument, issue_id: Annotated[str, typer.Argument(help="TI-nnnn")],
    status: Annotated[str | None, typer.Option()] = None,
    severity: Annotated[int | None, typer.Option(min=1, max=5)] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    manufacturer: Annotated[str | None, typer.Option()] = None,
    work_off: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    evidence_link: Annotated[str | None, typer.Option("--evidence")] = None,
) -> None:
    """Change an issue's status, severity, owner, work-off date or evidence."""
    from hanlab.reports.issues import IssueLog

    fields = {k: v for k, v in (("status", status), ("severity", severity), ("owner", owner),
                                ("manufacturer", manufacturer),
                                ("work_off_date", _date(work_off)),
                                ("evidence", evidence_link)) if v is not None}
    issue_log = IssueLog(log)
    issue_log.update(issue_id, **fields)
    issue_log.save()


@issues_app.command("list")
def issues_list(
    log: LogArgument,
    quality_gate: Annotated[str | None, typer.Option(
        help="Quality Gate Meeting date for the mask check (default today).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The issues and the defect mask check per service provider (Table 10)."""
    from hanlab.reports.issues import IssueLog, mask_check

    issue_log = IssueLog(log)
    gate = _date(quality_gate) or dt.datetime.now(dt.UTC).date()
    rows = mask_check(issue_log.issues, gate)
    if as_json:
        sys.stdout.write(json.dumps({
            "issues": [i.to_dict() for i in issue_log.issues],
            "mask": [{"provider": r.provider, "severity": r.severity,
                      "outstanding": r.outstanding, "limit": r.limit,
                      "work_off_by": r.work_off_by.isoformat() if r.work_off_by else None,
                      "late": r.late, "within": r.within} for r in rows]}, indent=1) + "\n")
        return
    for i in issue_log.issues:
        sys.stdout.write(f"{i.id}  sev {i.severity}  {i.owner:19} {i.status:11} "
                         f"{i.work_off_date or '':10}  {i.title}\n")
    sys.stdout.write(f"defect mask (outstanding; work-off from {gate}):\n")
    for provider in dict.fromkeys(r.provider for r in rows):
        mine = [r for r in rows if r.provider == provider]
        cells = "  ".join(f"S{r.severity} {r.outstanding}/{r.limit}"
                          f"{' late ' + ','.join(r.late) if r.late else ''}" for r in mine)
        sys.stdout.write(f"  {provider:8} {cells}  "
                         f"{'within' if all(r.within for r in mine) else 'OUTSIDE'}\n")


@issues_app.command("export")
def issues_export(log: LogArgument,
                  out: Annotated[Path | None, typer.Option("--out", "-o")] = None) -> None:
    """The issue log as CSV (stdout or a file)."""
    from hanlab.reports.issues import IssueLog

    text = IssueLog(log).to_csv()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def write_reports(data: Any, out: Path, *, junit: Path | None = None,
                  csv_dir: Path | None = None, parquet_dir: Path | None = None) -> list[Path]:
    """Write the campaign report of ``data`` (:class:`~hanlab.reports.model.
    CampaignReportData`) to ``out`` (HTML) and, where given, JUnit XML, CSV and Parquet
    tables; the files written (``hanlab report`` and ``hanlab campaign report``)."""
    from hanlab.reports.html import render_campaign_report

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_campaign_report(data), encoding="utf-8")
    written = [out]
    if junit is not None:
        from hanlab.reports.junit import render_junit

        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(render_junit(data))
        written.append(junit)
    if csv_dir is not None:
        from hanlab.reports.tables import write_csv

        written += write_csv(data, csv_dir)
    if parquet_dir is not None:
        from hanlab.reports.tables import write_parquet

        written += write_parquet(data, parquet_dir)
    return written


def register(app: typer.Typer) -> None:
    """Add ``report``, ``evidence``, ``annotate`` and ``issues`` to the hanlab CLI."""
    app.add_typer(report_app, name="report")
    app.command("evidence")(evidence)
    app.command("annotate")(annotate)
    app.add_typer(issues_app, name="issues")
