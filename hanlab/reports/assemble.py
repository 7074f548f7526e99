"""A :class:`~hanlab.reports.model.CampaignReportData` from job record files alone
(``hanlab report jobs JOB.json…``), until campaigns keep their own (issue 10, item 5).

Rigs come from the rig files given, else from the bundled rig of the same name
(:mod:`hanlab.labdata`), else from what the records say (CH variant ``unknown``). There
is no plan: every variant that ran counts as planned against every selected device of its
roles (see :mod:`hanlab.reports.analysis`), and traceability lists the jobs as unplanned.
A record's captures are looked for in the lab output folder that holds its ``jobs/``
folder (``<out>/jobs/<id>/job.json`` -> ``<out>``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hanlab.errors import BadInputError
from hanlab.reports.model import (
    SCHEMA,
    CampaignReportData,
    DeviceRecord,
    JobEntry,
    RigRecord,
    check_report_data,
)

__all__ = ["data_from_job_files", "data_from_job_records", "load_job_record", "rig_record"]


def load_job_record(path: Path | str) -> dict[str, Any]:
    """One ``job.json`` (a JOB record) as a dict.

    Raises:
        BadInputError: unreadable, not JSON, or not a job record.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: cannot read a job record: {error}") from None
    if not isinstance(data, dict) or "steps" not in data or "id" not in data:
        raise BadInputError(f"{path}: not a job record (no id/steps)",
                            hint="give the job.json of a job folder, or hanlab jobs show --json")
    return data


def rig_record(path: Path | str) -> RigRecord:
    """The :class:`RigRecord` of a rig file: its selected devices (spares left out, they
    are the variants' to consume) with model and firmware version.

    Raises:
        ConfigError: the rig file is invalid.
    """
    from hanlab.config.loader import load_rig

    rig, _ = load_rig(Path(path))
    devices = [DeviceRecord(eui64=d.eui64, role=d.role.value, band=d.band.value,
                            name=d.name, model=d.model, firmware_version=d.firmware_version)
               for d in rig.devices if not d.spare]  # spares are consumed, not selected
    return RigRecord(name=rig.name, ch_variant=rig.ch_variant.value,
                     description=rig.description or "", devices=devices)


def _rig_from_records(name: str, records: list[dict[str, Any]]) -> RigRecord:
    seen: dict[str, DeviceRecord] = {}
    for record in records:
        for step in record["steps"]:
            eui, role = step.get("target_eui64"), step.get("target_role")
            if eui and role:
                seen.setdefault(eui, DeviceRecord(eui64=eui, role=str(role).split("#")[0]))
    return RigRecord(name=name, ch_variant="unknown", devices=list(seen.values()))


def data_from_job_files(paths: Sequence[Path | str], *,
                        rig_files: Sequence[Path | str] = (),
                        campaign_id: str | None = None, operator: str = "",
                        targets: dict[str, float] | None = None,
                        issues: list[dict[str, Any]] | None = None) -> CampaignReportData:
    """The report data of the jobs in ``paths`` (``job.json`` files), oldest first.

    Raises:
        BadInputError: a file is not a job record; ConfigError: a bad rig file.
    """
    if not paths:
        raise BadInputError("no job records given")
    entries = []
    for p in paths:
        folder = Path(p).resolve().parent
        entries.append((folder.parent.parent if folder.parent.name == "jobs" else folder,
                        load_job_record(p)))
    return data_from_job_records(entries, rig_files=rig_files, campaign_id=campaign_id,
                                 operator=operator, targets=targets, issues=issues)


def data_from_job_records(entries: Sequence[tuple[Path, dict[str, Any]]], *,
                          rig_files: Sequence[Path | str] = (),
                          campaign_id: str | None = None, operator: str = "",
                          targets: dict[str, float] | None = None,
                          issues: list[dict[str, Any]] | None = None,
                          name: str = "job records") -> CampaignReportData:
    """The report data of job records (each with the folder its captures are relative
    to, a lab's output folder), oldest first (as :func:`data_from_job_files`).

    Raises:
        BadInputError: no records; ConfigError: a bad rig file.
    """
    from hanlab.labdata import bundled_rig

    if not entries:
        raise BadInputError("no job records given")
    loaded = sorted(entries, key=lambda item: item[1].get("submitted_ns") or 0)
    rigs = {r["name"]: r for r in (rig_record(p) for p in rig_files)}
    for _, record in loaded:
        rig = record["rig"]
        if rig not in rigs:
            bundled = bundled_rig(rig)
            rigs[rig] = (rig_record(bundled) if bundled is not None else
                         _rig_from_records(rig, [r for _, r in loaded if r["rig"] == rig]))
    jobs: list[JobEntry] = []
    for out, record in loaded:
        device = next(iter((record.get("devices") or {}).values()), None)
        band = next((d.get("band") for d in rigs[record["rig"]]["devices"]
                     if d["eui64"] == device), None)
        jobs.append(JobEntry(record=record, device=device, band=band,
                             captures_dir=str(out), evidence={}))
    records = [r for _, r in loaded]
    started = [r["started_ns"] for r in records if r.get("started_ns")]
    ended = [r["ended_ns"] for r in records if r.get("ended_ns")]
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "campaign": {"id": campaign_id or f"jobs-{records[0]['id']}", "name": name,
                     "plan_name": "(none: the jobs given)", "operator": operator,
                     "lab": records[0].get("lab", ""),
                     "created_ns": records[0].get("submitted_ns"),
                     "started_ns": min(started) if started else None,
                     "ended_ns": max(ended) if ended else None},
        "rigs": [rigs[n] for n in dict.fromkeys(r["rig"] for r in records)],
        "plan": [], "jobs": jobs, "targets": dict(targets or {}),
        "issues": list(issues or []), "generated_ns": time.time_ns()}
    return check_report_data(data)
