"""The data of a campaign's report, read from the results store alone (issue 10; DIT.EX.3,
EX.5 "all planned tests ... executed against all selected devices", EX.8 "test results
documented and evidence captured", EX.10 "full test traceability to the test plan").

:func:`campaign_report_data` is what report renderers (HTML, JUnit, CSV…) consume: a view
of the records, never a second bookkeeping. :func:`campaign_summary` is its
deterministic part (no ids, times or timing figures): two runs of one plan on
identical rigs give equal summaries, whatever database holds them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hanlab.campaign.runner import load_campaign
from hanlab.store import ResultsStore
from hanlab.store import schema as t

__all__ = ["campaign_report_data", "campaign_summary", "list_campaigns"]

Row = dict[str, Any]


def list_campaigns(store: ResultsStore) -> list[Row]:
    """Every campaign (``campaigns`` rows without the plan), oldest first."""
    rows = store.rows(t.campaigns)
    rows.sort(key=lambda r: r["created_ns"])
    return [{k: v for k, v in r.items() if k != "plan"} for r in rows]


def campaign_report_data(store: ResultsStore, campaign_id: str) -> dict[str, Any]:
    """Everything a report of campaign ``campaign_id`` shows, as JSON-ready data.

    Shape (``*_ns``: int ns since the UNIX epoch, UTC; ``None`` where unknown)::

        {"schema": 1,
         "campaign": {"id": "c-20261201T200000-1a2b3c", "name": "overnight-emulated",
                      "plan_file": "/abs/plans/overnight-emulated.yaml", "lab": "default",
                      "state": "pending" | "running" | "waiting" | "completed" | "stopped",
                      "detail": "",                 # why stopped / what it waits for
                      "created_ns", "started_ns", "ended_ns",
                      "options": {"mode": "daemon" | "in-process", "time_scale", "tags",
                                  "limit", "ignore_window", "lab_file"},
                      "plan": {...}},               # the plan as validated (Plan model)
         "lines": [{"index": 0, "name": "...", "file_line": 42,   # line in the plan file
                    "line": {...},                                # the PlanLine
                    "job_seqs": [0, 1, ...],                      # its planned jobs
                    "job_ids": ["j-...", ...]}],                  # every attempt's job
         "devices": [{"rig", "eui64", "role", "band", "ch_variant",
                      "record": {DeviceConfig fields: manufacturer, model,
                                 firmware_version, smets_version, chts_version,
                                 gbcs_version, zigbee_stack, silicon_vendor,
                                 cpl_reference, release_note, emulated, ...},
                      "suspended": bool, "suspended_reason": "", "suspended_ns"}],
         "jobs": [{"seq": 0, "line_index": 0, "rig": "emulated-dual-band",
                   "ch_variant": "dual_band", "scenario": "meter-reading",
                   "variant": "gas-instantaneous",
                   "devices": {"GSME": "00-DB-..."},      # as submitted
                   "involved": ["00-DB-..."],             # every device its steps address
                   "bands": ["subGHz"],                   # the bands of those devices
                   "device_records": [DEVICE, ...],       # of the involved devices
                   "state": "pending" | "submitting" | "submitted" | "done" | "skipped",
                   "result": "passed" | "failed" | "error" | "cancelled" | None,
                   "detail": "",                          # skip reason, failure detail
                   "estimate_s": 0.6,
                   "job_id": "j-..." | None,              # the final attempt
                   "record": JOB | None,                  # its JobRecord dict (service.py)
                   "attempts": [{"id": "j-...", "state": "interrupted", "detail": "...",
                                 "started_ns", "ended_ns"}]}],   # every attempt, in order
         "counts": {"planned": n, "done": n, "skipped": n, "passed": n, "failed": n,
                    "error": n, "interrupted_attempts": n, "suspended_devices": n},
         "timings": TIMINGS}   # TimingStats.summary() of every final job's exchanges,
                               # with the plan's timing_targets (DIT.11)

    Raises:
        NotFoundError: no such campaign.
        StoreUnavailableError: the database cannot be read now.
    """
    from hanlab.correlate.stats import TimingStats
    from hanlab.runtime.jobs import exchange_from_record

    campaign = load_campaign(store, campaign_id)
    lines = store.rows(t.campaign_lines, campaign_id=campaign_id)
    planned = store.rows(t.campaign_jobs, campaign_id=campaign_id)
    devices = [{k: v for k, v in d.items() if k != "campaign_id"}
               for d in store.rows(t.campaign_devices, campaign_id=campaign_id)]
    by_device = {(d["rig"], d["eui64"]): d for d in devices}
    ids = [i for job in planned for i in job["attempts"]]
    records = {r["id"]: r for r, _ in store.jobs(ids=ids)} if ids else {}
    stats = TimingStats(campaign["plan"].get("timing_targets") or {})
    jobs = []
    for job in planned:
        record = records.get(job["job_id"] or "") if job["state"] == "done" else None
        if record is None and job["state"] == "done" and job["attempts"]:
            record = records.get(job["attempts"][-1])
        involved = [by_device[(job["rig"], e)] for e in job["involved"]
                    if (job["rig"], e) in by_device]
        if record is not None:
            stats.add_all(exchange_from_record(e) for e in record["exchanges"])
        rig_device = next((d for d in devices if d["rig"] == job["rig"]), None)
        jobs.append({
            "seq": job["seq"], "line_index": job["line_index"], "rig": job["rig"],
            "ch_variant": rig_device["ch_variant"] if rig_device else None,
            "scenario": job["scenario"], "variant": job["variant"],
            "devices": job["devices"], "involved": job["involved"],
            "bands": sorted({d["band"] for d in involved}), "device_records": involved,
            "state": job["state"], "result": job["result"], "detail": job["detail"],
            "estimate_s": job["estimate_s"], "job_id": job["job_id"], "record": record,
            "attempts": [{"id": i, **{k: records[i][k] for k in
                                      ("state", "detail", "started_ns", "ended_ns")}}
                         for i in job["attempts"] if i in records]})
    results = Counter(j["result"] for j in jobs if j["state"] == "done")
    return {
        "schema": 1,
        "campaign": {k: v for k, v in campaign.items() if k not in ("owner", "heartbeat_ns")},
        "lines": [{"index": line["line_index"], "name": line["name"],
                   "file_line": line["file_line"], "line": line["line"],
                   "job_seqs": [j["seq"] for j in jobs if j["line_index"] == line["line_index"]],
                   "job_ids": [a["id"] for j in jobs if j["line_index"] == line["line_index"]
                               for a in j["attempts"]]}
                  for line in lines],
        "devices": devices,
        "jobs": jobs,
        "counts": {"planned": len(jobs),
                   "done": sum(j["state"] == "done" for j in jobs),
                   "skipped": sum(j["state"] == "skipped" for j in jobs),
                   **{k: results.get(k, 0) for k in ("passed", "failed", "error",
                                                     "cancelled")},
                   "interrupted_attempts": sum(a["state"] == "interrupted"
                                               for j in jobs for a in j["attempts"]),
                   "suspended_devices": sum(bool(d["suspended"]) for d in devices)},
        "timings": stats.summary(),
    }


def campaign_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The deterministic part of :func:`campaign_report_data`'s result: the plan's
    lines, each planned job's devices, state, result and per-step statuses and outcomes,
    the device records and suspensions, the counts, and which timing groups were
    measured (band, SR variant, role, segment, count), without ids, times or figures."""
    def steps(record: Row | None) -> list[tuple[Any, ...]]:
        if record is None:
            return []
        return [(s["variant"], s["repetition"], s["index"], s["kind"], s["status"],
                 s["outcome"], s["target_eui64"], s["band"]) for s in record["steps"]]

    return {
        "name": data["campaign"]["name"], "state": data["campaign"]["state"],
        "lines": [(line["index"], line["name"], line["file_line"], line["job_seqs"])
                  for line in data["lines"]],
        "devices": [(d["rig"], d["eui64"], d["role"], d["band"], d["record"],
                     d["suspended"], d["suspended_reason"].split(" (")[0])
                    for d in data["devices"]],
        "jobs": [(j["seq"], j["rig"], j["ch_variant"], j["scenario"], j["variant"],
                  j["devices"], j["involved"], j["bands"], j["state"], j["result"],
                  j["detail"].split(" (")[0] if j["state"] == "skipped" else "",
                  steps(j["record"]))
                 for j in data["jobs"]],
        "counts": data["counts"],
        "timing_groups": sorted((r["band"], r["sr_variant"], r["device_role"],
                                 r["segment"], r["count"])
                                for r in data["timings"]["rows"]),
    }
