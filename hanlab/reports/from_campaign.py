"""The report input (:class:`~hanlab.reports.model.CampaignReportData`) of a campaign in
the results store: :func:`hanlab.campaign.report.campaign_report_data` reshaped, nothing
recomputed (issue 10, item 5: "reports are views of the record, never a second
bookkeeping").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hanlab.reports.model import CampaignReportData, DeviceRecord, RigRecord, check_report_data

__all__ = ["report_data_from_campaign"]


def _device(device: dict[str, Any]) -> DeviceRecord:
    record = device.get("record") or {}
    out: dict[str, Any] = {"eui64": device["eui64"], "role": device["role"],
                           "band": device.get("band") or "2.4GHz"}
    for key in ("name", "manufacturer", "model", "firmware_version", "gbcs_version",
                "zigbee_stack", "silicon_vendor", "cpl_reference"):
        if record.get(key) is not None:
            out[key] = record[key]
    version = record.get("smets_version") or record.get("chts_version")
    if version:
        out["smets_chts_version"] = version
    return out  # type: ignore[return-value]


def report_data_from_campaign(data: dict[str, Any], *, captures_dir: Path | None = None,
                              issues: list[dict[str, Any]] | None = None
                              ) -> CampaignReportData:
    """``data`` (:func:`~hanlab.campaign.report.campaign_report_data`) as report input.

    Args:
        captures_dir: where the jobs' capture files are (the lab's output folder).
        issues: the campaign's test issue log (``Issue.to_dict()`` each).

    Raises:
        BadInputError: the data does not give a report (a field at fault named).
    """
    campaign = data["campaign"]
    plan = campaign.get("plan") or {}
    rigs: dict[str, RigRecord] = {}
    for device in data.get("devices", []):
        rig = rigs.setdefault(device["rig"], {"name": device["rig"],
                                              "ch_variant": device.get("ch_variant")
                                              or "single_band", "devices": []})
        rig["devices"].append(_device(device))
    lines = [{"id": f"L{line['index'] + 1}",
              "title": line.get("name") or f"line {line['index'] + 1}",
              "scenario": ", ".join(line.get("line", {}).get("scenarios") or ["all"])
              if isinstance(line.get("line", {}).get("scenarios"), list) else "all",
              "job_ids": list(line.get("job_ids") or [])} for line in data.get("lines", [])]
    jobs = []
    for job in data.get("jobs", []):
        record = job.get("record")
        if record is None:
            continue
        involved = list(job.get("involved") or [])
        chosen = list((job.get("devices") or {}).values())
        bands = list(job.get("bands") or [])
        jobs.append({"record": record, "device": (chosen or involved or [None])[0],
                     "band": bands[0] if bands else None,
                     "plan_line": f"L{job['line_index'] + 1}",
                     "captures_dir": None if captures_dir is None else str(captures_dir)})
    out = {"schema": 1,
           "campaign": {"id": campaign["id"], "name": campaign.get("name") or campaign["id"],
                        "plan_name": plan.get("name") or campaign.get("name") or "",
                        "plan_path": str(campaign.get("plan_file") or ""),
                        "created_ns": campaign.get("created_ns"),
                        "started_ns": campaign.get("started_ns"),
                        "ended_ns": campaign.get("ended_ns"),
                        "lab": campaign.get("lab") or ""},
           "rigs": list(rigs.values()), "plan": lines, "jobs": jobs,
           "targets": dict(plan.get("timing_targets") or {}), "issues": issues or []}
    return check_report_data(out)
