"""JUnit XML of a campaign (issue 10, item 5): one ``testcase`` per test (scenario
variant × device, see :mod:`hanlab.reports.analysis`), one ``testsuite`` per rig.

Valid against the JUnit schema CI tools read (the Jenkins xUnit plugin's
``junit-10.xsd``, checked in the tests): ``testsuites/testsuite[@name, @tests,
@failures, @errors, @skipped, @time, @timestamp]/testcase[@name, @classname, @time]``.
A test whose latest run failed has a ``failure`` (message: the failed steps, text: their
details and RequestIDs); a planned test never run is ``skipped``; a job that ended in
error gives an ``error``. ``time``: seconds of the latest run. Properties name the CH
variant, band, device, priority and jobs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lxml import etree

from hanlab.reports.analysis import Analysis, analyse_campaign
from hanlab.reports.model import CampaignReportData, check_report_data

__all__ = ["render_junit"]


def render_junit(data: CampaignReportData | dict[str, Any]) -> bytes:
    """The campaign as JUnit XML (UTF-8 bytes with the XML declaration).

    Raises:
        BadInputError: ``data`` does not have the documented shape.
    """
    analysis = analyse_campaign(check_report_data(data))
    return _junit(analysis)


def _junit(a: Analysis) -> bytes:
    records = {j["record"]["id"]: j["record"] for j in a.data["jobs"]}
    root = etree.Element("testsuites", name=f"DIT campaign {a.data['campaign']['id']}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for rig in dict.fromkeys(c.rig for c in a.cells):
        cells = [c for c in a.cells if c.rig == rig and (c.planned or c.executed)]
        suite = etree.SubElement(root, "testsuite", name=rig)
        props = etree.SubElement(suite, "properties")
        info = a.rigs.get(rig)
        for name, value in (("ch_variant", cells[0].ch_variant if cells else ""),
                            ("ch_label", info.get("ch_label", "") if info else ""),
                            ("campaign", a.data["campaign"]["id"])):
            etree.SubElement(props, "property", name=name, value=str(value or ""))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        seconds = 0.0
        first_ns: int | None = None
        for c in cells:
            counts["tests"] += 1
            latest = c.latest
            record = records.get(latest.job_id) if latest else None
            run = _run_record(record, c.variant, latest.repetition) if latest else None
            duration = float(run.get("duration_s") or 0.0) if run else 0.0
            seconds += duration
            if run and run.get("started_ns"):
                first_ns = min(first_ns or run["started_ns"], run["started_ns"])
            case = etree.SubElement(
                suite, "testcase", name=f"{c.scenario}/{c.variant} @ {c.role} {c.device}",
                classname=f"{rig}.{c.scenario}", time=f"{duration:.3f}")
            case_props = etree.SubElement(case, "properties")
            for name, value in (("device", c.device), ("role", c.role), ("band", c.band),
                                ("priority", c.priority or ""),
                                ("business_critical", str(c.critical).lower()),
                                ("runs", str(len(c.runs))),
                                ("jobs", " ".join(dict.fromkeys(r.job_id for r in c.runs)))):
                etree.SubElement(case_props, "property", name=name, value=value)
            if latest is None:
                counts["skipped"] += 1
                etree.SubElement(case, "skipped", message="planned, not run")
            elif record is not None and record.get("state") == "error":
                counts["errors"] += 1
                error = etree.SubElement(case, "error", type="job-error",
                                         message=str(record.get("detail") or "error"))
                error.text = str(record.get("detail") or "")
            elif not latest.passed:
                counts["failures"] += 1
                steps = [s for s in (record or {}).get("steps", [])
                         if s.get("variant") == c.variant
                         and s.get("repetition") == latest.repetition
                         and s.get("status") == "failed" and not s.get("optional")]
                message = "; ".join(f"step {s.get('index')} {s.get('sr_variant') or s.get('kind')}"
                                    f": {s.get('outcome')}" for s in steps) or "failed"
                failure = etree.SubElement(case, "failure", type="step-failed",
                                           message=message)
                failure.text = "\n".join(
                    f"job {latest.job_id} step {s.get('index')}: {s.get('detail') or ''}"
                    for s in steps)
        # the schema's testcase has no properties element: move them to system-out
        for case in suite.findall("testcase"):
            case_props = case.find("properties")
            if case_props is not None:
                out = etree.SubElement(case, "system-out")
                out.text = "\n".join(f"{p.get('name')}={p.get('value')}" for p in case_props)
                case.remove(case_props)
        for name, count in counts.items():
            suite.set(name, str(count))
        suite.set("time", f"{seconds:.3f}")
        if first_ns:
            suite.set("timestamp", dt.datetime.fromtimestamp(first_ns / 1e9, dt.UTC)
                      .strftime("%Y-%m-%dT%H:%M:%S"))
        totals["tests"] += counts["tests"]
        totals["failures"] += counts["failures"]
        totals["errors"] += counts["errors"]
        totals["time"] += seconds
    for name in ("tests", "failures", "errors"):
        root.set(name, str(int(totals[name])))
    root.set("time", f"{totals['time']:.3f}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def _run_record(record: dict[str, Any] | None, variant: str,
                repetition: int) -> dict[str, Any] | None:
    for run in (record or {}).get("variant_runs") or []:
        if run.get("variant") == variant and run.get("repetition") == repetition:
            return dict(run)
    return None
