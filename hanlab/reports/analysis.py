"""What a campaign report says, computed once from :class:`CampaignReportData` (issue 10,
item 5; seed 000 §"Exit Criteria", Table 9).

* A **test** is one scenario variant on one rig against one device (the device under test:
  each non-CH device the variant's SR steps target, e.g. the GSME and the PPMID of a PPMID
  exchange). Its **runs** are the variant runs of the campaign's jobs; a test's verdict is
  that of its latest completed run (a re-test after a fix replaces the earlier result, as
  a test instance does in a test management tool). Tests are *planned* for every variant
  of every plan line against every selected device of the rig with a role the variant
  targets (DIT.EX.3 / EX.5: "executed against all selected devices"); without a plan, for
  the variants that ran.
* **Business critical** = the library variant's ``priority`` is ``High`` (seed 000 lists
  the critical business scenarios with their priorities; hanlab takes High as business
  critical). Medium, Low or none: non-business critical.
* **DIT.EX.3** (single band CH variants): every planned test executed, and every planned
  variant passed with at least one of the selected devices ("any combination of the
  selected devices", footnote 7: the heatmap), on the proviso that every remaining failure
  is proved to be in the end device: each failed test needs an issue owned by the device
  manufacturer (:mod:`hanlab.reports.issues`), otherwise it is *unattributed* and EX.3 is
  not met.
* **DIT.EX.5** (dual band CH variants): every planned test executed; at least 85 % of the
  completed non-business-critical tests passed; 100 % of the business-critical ones.
* Both are given per CH variant (``ch_label``, else ``ch_variant``) and band (the band of
  the device under test), and for all bands of the variant together.

Units: times in ns inside, µs / ms in the views (named so).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from hanlab.reports.model import CampaignReportData, RigRecord, step_key

__all__ = ["BUSINESS_CRITICAL", "EX5_NON_CRITICAL_PASS", "Analysis", "FailedStep",
           "TestCell", "TimingSample", "Verdict", "analyse_campaign", "format_ns"]

#: the library priority that makes a variant business critical
BUSINESS_CRITICAL: Final = "High"
#: DIT.EX.5: minimum pass rate of completed non-business-critical tests
EX5_NON_CRITICAL_PASS: Final = 0.85
#: roles of the Communications Hub itself (not devices under test)
CH_ROLES: Final = frozenset({"CHF", "GPF", "DCC"})
#: job states in which a variant run that is not in the record never completed
_RID = re.compile(r"([0-9A-F]{2}(?:-[0-9A-F]{2}){7}:[0-9A-F]{2}(?:-[0-9A-F]{2}){7}:\d+)")


def format_ns(ts_ns: int | None) -> str:
    """``2026-12-01 10:15:00Z`` (UTC) of ``ts_ns``, or ``—``."""
    if not ts_ns:
        return "—"
    when = dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC)
    return f"{when:%Y-%m-%d %H:%M:%S}Z"


@cache
def _library() -> dict[str, Any]:
    from hanlab.scenarios.loader import load_library

    return dict(load_library())


def variant_info(scenario: str, variant: str) -> tuple[str, str | None, set[str]]:
    """``(title, priority, device-under-test roles)`` of a library variant (roles through
    the variant's aliases, ``GSME#2`` as ``GSME``; CH roles left out); unknown scenario or
    variant: ``(variant, None, set())``."""
    from hanlab.scenarios.models import SrStep, WaitAlertStep

    found = _library().get(scenario)
    if found is None:
        return variant, None, set()
    try:
        var = found.variant(variant)
    except KeyError:
        return variant, None, set()
    roles: set[str] = set()
    for step in found.steps_of(var):
        refs: list[str] = []
        if isinstance(step, SrStep) and step.target is not None:
            refs.append(step.target)
        elif isinstance(step, WaitAlertStep):
            refs.extend(r for r in (step.source, *(step.stimulus or {})) if r is not None)
        for ref in refs:
            base = ref.split("#")[0]
            base = var.roles.get(base, base).split("#")[0]
            if base not in CH_ROLES:
                roles.add(base)
    return var.title, var.priority, roles


def step_request_id(step: dict[str, Any]) -> str | None:
    """The step's RequestID, or the one its detail names (a timed-out SR)."""
    rid = step.get("request_id")
    if rid:
        return str(rid)
    found = _RID.search(str(step.get("detail") or ""))
    return found.group(1) if found else None


@dataclass
class Run:
    """One variant run against one device."""

    job_id: str
    repetition: int
    passed: bool
    ended_ns: int
    failed_steps: list[int]


@dataclass
class TestCell:
    """One test: a variant on a rig against one device (see the module docstring)."""

    rig: str
    ch_variant: str
    ch_group: str
    scenario: str
    variant: str
    title: str
    priority: str | None
    device: str
    role: str
    band: str
    planned: bool = False
    runs: list[Run] = field(default_factory=list)
    attributed: bool = False  # a device-manufacturer issue covers its failure

    @property
    def critical(self) -> bool:
        """Business critical (library priority High)."""
        return self.priority == BUSINESS_CRITICAL

    @property
    def executed(self) -> bool:
        """At least one completed run."""
        return bool(self.runs)

    @property
    def latest(self) -> Run | None:
        """The latest completed run."""
        return max(self.runs, key=lambda r: r.ended_ns) if self.runs else None

    @property
    def passed(self) -> bool | None:
        """The latest run's verdict; ``None`` if never run."""
        latest = self.latest
        return None if latest is None else latest.passed

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``not run``."""
        passed = self.passed
        return "not run" if passed is None else ("passed" if passed else "failed")


@dataclass
class Verdict:
    """One exit criterion for one CH variant and band (``band`` ``all`` for the sum)."""

    criterion: str  # DIT.EX.3 | DIT.EX.5
    ch_group: str
    ch_variant: str
    band: str
    met: bool
    planned: int
    executed: int
    passed: int
    critical_completed: int
    critical_passed: int
    other_completed: int
    other_passed: int
    variants_planned: int
    variants_passed: int
    reasons: list[str]

    @property
    def critical_rate(self) -> float | None:
        """Pass rate of completed business-critical tests (0..1) or ``None``."""
        return (self.critical_passed / self.critical_completed if self.critical_completed
                else None)

    @property
    def other_rate(self) -> float | None:
        """Pass rate of completed non-business-critical tests (0..1) or ``None``."""
        return self.other_passed / self.other_completed if self.other_completed else None


@dataclass
class FailedStep:
    """A failed mandatory step (or a job that ended in error before any step)."""

    job_id: str
    rig: str
    scenario: str
    variant: str
    repetition: int
    index: int
    key: str
    kind: str
    sr_variant: str | None
    sr_name: str | None
    target_role: str | None
    target: str | None
    request_id: str | None
    outcome: str | None
    detail: str
    started_ns: int
    evidence: str | None
    issues: list[str]


@dataclass
class TimingSample:
    """One answered SR exchange's segments (ns), for the plots and exports."""

    job_id: str
    rig: str
    band: str
    sr_variant: str
    role: str
    device: str
    request_id: str
    match_level: str
    segments_ns: dict[str, int | None]


@dataclass
class TraceLine:
    """One plan line (or the unplanned jobs) and its jobs (DIT.EX.10)."""

    id: str
    scenario: str
    variants: list[str]
    rig: str | None
    title: str
    jobs: list[dict[str, Any]]


@dataclass
class Analysis:
    """Everything the views show (see :func:`analyse_campaign`)."""

    data: CampaignReportData
    cells: list[TestCell]
    verdicts: list[Verdict]
    failed: list[FailedStep]
    samples: list[TimingSample]
    trace: list[TraceLine]
    targets: dict[str, float]
    devices: dict[tuple[str, str], dict[str, Any]]  # (rig, eui64) -> DEVICE
    rigs: dict[str, RigRecord]

    def groups(self) -> list[str]:
        """CH variant groups in rig order."""
        return list(dict.fromkeys(c.ch_group for c in self.cells)) or [
            _group(r) for r in self.data["rigs"]]

    def target_for(self, sr_variant: str) -> float | None:
        """End-to-end target (s) of an SR variant: variant, Service Reference, ``*``."""
        from hanlab.correlate.stats import target_for

        return target_for(self.targets, sr_variant)


def _group(rig: RigRecord) -> str:
    return rig.get("ch_label") or rig["ch_variant"]


def _device_band(device: dict[str, Any] | None) -> str:
    return str((device or {}).get("band") or "2.4GHz")


def analyse_campaign(data: CampaignReportData) -> Analysis:
    """The tests, verdicts, failed steps, timing samples and traceability of ``data``
    (already checked with :func:`~hanlab.reports.model.check_report_data`)."""
    rigs = {r["name"]: r for r in data["rigs"]}
    devices: dict[tuple[str, str], dict[str, Any]] = {}
    for rig in data["rigs"]:
        for device in rig["devices"]:
            devices[(rig["name"], device["eui64"])] = dict(device)
    issues = list(data.get("issues") or [])
    cells: dict[tuple[str, str, str, str], TestCell] = {}

    def cell(rig_name: str, scenario: str, variant: str, eui: str, role: str) -> TestCell:
        key = (rig_name, scenario, variant, eui)
        found = cells.get(key)
        if found is None:
            rig: RigRecord = rigs.get(rig_name) or {"name": rig_name,
                                                     "ch_variant": "unknown", "devices": []}
            title, priority, _ = variant_info(scenario, variant)
            found = cells[key] = TestCell(
                rig=rig_name, ch_variant=rig["ch_variant"], ch_group=_group(rig),
                scenario=scenario, variant=variant, title=title, priority=priority,
                device=eui, role=role, band=_device_band(devices.get((rig_name, eui))))
        return found

    # planned tests: plan line variants x selected devices of the roles they target
    for line in data["plan"]:
        rig_names = ([str(line.get("rig"))] if line.get("rig") else
                     sorted({j["record"]["rig"] for j in data["jobs"]
                             if j["record"]["id"] in line["job_ids"]}))
        variants = line.get("variants") or _all_variants(line["scenario"])
        for rig_name in rig_names:
            line_rig = rigs.get(rig_name)
            for variant in variants:
                _, _, roles = variant_info(line["scenario"], variant)
                for device in (line_rig["devices"] if line_rig else []):
                    if device["role"] in roles:
                        cell(rig_name, line["scenario"], variant, device["eui64"],
                             device["role"]).planned = True

    # executed runs
    for entry in data["jobs"]:
        record = entry["record"]
        rig_name = record["rig"]
        for run in record.get("variant_runs") or []:
            steps = [s for s in record["steps"] if s.get("variant") == run["variant"]
                     and s.get("repetition") == run["repetition"]]
            duts: dict[str, str] = {}
            for step in steps:
                role = str(step.get("target_role") or "").split("#")[0]
                eui = step.get("target_eui64")
                if eui and role and role not in CH_ROLES and step.get("status") != "skipped":
                    duts.setdefault(str(eui), role)
            if not duts:
                eui = entry.get("device") or next(iter(record.get("devices", {}).values()),
                                                  None)
                known = devices.get((rig_name, str(eui))) if eui else None
                duts = {str(eui): str(known["role"]) if known else "?"} if eui else {
                    "(none)": "—"}
            for eui, role in duts.items():
                target = cell(rig_name, run["scenario"], run["variant"], eui, role)
                if not data["plan"]:
                    target.planned = True
                target.runs.append(Run(record["id"], int(run["repetition"]),
                                       bool(run["passed"]), int(run.get("ended_ns") or 0),
                                       list(run.get("failed_steps") or [])))
    if not data["plan"]:  # planned = the variants that ran, against every selected device
        for c in list(cells.values()):
            _, _, roles = variant_info(c.scenario, c.variant)
            run_rig = rigs.get(c.rig)
            for device in (run_rig["devices"] if run_rig else []):
                if device["role"] in (roles or {c.role}):
                    cell(c.rig, c.scenario, c.variant, device["eui64"],
                         device["role"]).planned = True

    failed = _failed_steps(data, issues)
    for c in cells.values():
        if c.passed is False:
            c.attributed = any(_device_issue(i) and (
                i.get("device") == c.device or any(
                    i.get("job_id") == r.job_id for r in c.runs if not r.passed))
                for i in issues)
    ordered = sorted(cells.values(), key=lambda c: (
        [r["name"] for r in data["rigs"]].index(c.rig) if c.rig in rigs else 99,
        c.scenario, c.variant, c.band, c.role, c.device))
    targets: dict[str, float] = {}
    for entry in data["jobs"]:
        targets.update((entry["record"].get("timings") or {}).get("targets") or {})
    targets.update(data.get("targets") or {})
    return Analysis(data=data, cells=ordered, verdicts=_verdicts(ordered), failed=failed,
                    samples=_samples(data, devices), trace=_trace(data), targets=targets,
                    devices=devices, rigs=rigs)


def _all_variants(scenario: str) -> list[str]:
    found = _library().get(scenario)
    return [v.id for v in found.variants] if found is not None else []


def _device_issue(issue: dict[str, Any]) -> bool:
    return str(issue.get("owner", "")).lower().startswith("device")


def _verdicts(cells: list[TestCell]) -> list[Verdict]:
    out: list[Verdict] = []
    groups: dict[tuple[str, str], list[TestCell]] = defaultdict(list)
    for c in cells:
        if c.planned or c.executed:
            groups[(c.ch_group, c.ch_variant)].append(c)
    for (group, ch_variant), members in groups.items():
        bands = sorted({c.band for c in members}, key=lambda b: (b != "2.4GHz", b))
        for band in [*bands, "all"] if len(bands) > 1 else bands:
            chosen = [c for c in members if band in ("all", c.band)]
            out.append(_verdict(group, ch_variant, band, chosen))
    return out


def _verdict(group: str, ch_variant: str, band: str, cells: Iterable[TestCell]) -> Verdict:
    cells = [c for c in cells if c.planned or c.executed]
    planned = [c for c in cells if c.planned]
    executed = [c for c in cells if c.executed]
    passed = [c for c in executed if c.passed]
    critical = [c for c in executed if c.critical]
    other = [c for c in executed if not c.critical]
    variants = {(c.rig, c.scenario, c.variant) for c in planned}
    variants_passed = {(c.rig, c.scenario, c.variant) for c in passed}
    reasons: list[str] = []
    missing = [c for c in planned if not c.executed]
    if missing:
        reasons.append(f"{len(missing)} of {len(planned)} planned tests not executed "
                       f"(e.g. {missing[0].scenario}/{missing[0].variant} against "
                       f"{missing[0].role} {missing[0].device})")
    dual = ch_variant == "dual_band"
    if dual:
        criterion = "DIT.EX.5"
        if other and len([c for c in other if c.passed]) / len(other) < EX5_NON_CRITICAL_PASS:
            reasons.append(f"non-business-critical pass rate "
                           f"{100 * len([c for c in other if c.passed]) / len(other):.1f} % "
                           f"< {100 * EX5_NON_CRITICAL_PASS:.0f} %")
        failed_critical = [c for c in critical if not c.passed]
        if failed_critical:
            reasons.append(f"{len(failed_critical)} business-critical test(s) failed "
                           f"(100 % required), e.g. {failed_critical[0].scenario}/"
                           f"{failed_critical[0].variant} on {failed_critical[0].device}")
    else:
        criterion = "DIT.EX.3"
        unpassed = sorted(variants - variants_passed)
        if unpassed:
            reasons.append(f"{len(unpassed)} planned variant(s) passed with no selected "
                           f"device, e.g. {unpassed[0][1]}/{unpassed[0][2]}")
        unattributed = [c for c in executed if not c.passed and not c.attributed]
        if unattributed:
            reasons.append(f"{len(unattributed)} failed test(s) not proved to be in the end "
                           "device (no device-manufacturer issue logged), e.g. "
                           f"{unattributed[0].scenario}/{unattributed[0].variant} on "
                           f"{unattributed[0].device}")
    if not planned:
        reasons.append("no planned tests")
    return Verdict(
        criterion=criterion, ch_group=group, ch_variant=ch_variant, band=band,
        met=not reasons, planned=len(planned), executed=len(executed), passed=len(passed),
        critical_completed=len(critical), critical_passed=len([c for c in critical
                                                               if c.passed]),
        other_completed=len(other), other_passed=len([c for c in other if c.passed]),
        variants_planned=len(variants), variants_passed=len(variants & variants_passed),
        reasons=reasons)


def _failed_steps(data: CampaignReportData, issues: list[dict[str, Any]]) -> list[FailedStep]:
    out: list[FailedStep] = []
    for entry in data["jobs"]:
        record = entry["record"]
        links = entry.get("evidence") or {}
        for step in record["steps"]:
            if step.get("status") != "failed" or step.get("optional"):
                continue
            key = step_key(step)
            out.append(FailedStep(
                job_id=record["id"], rig=record["rig"], scenario=str(step.get("scenario")),
                variant=str(step.get("variant")), repetition=int(step.get("repetition") or 0),
                index=int(step.get("index") or 0), key=key, kind=str(step.get("kind")),
                sr_variant=step.get("sr_variant"), sr_name=step.get("sr_name"),
                target_role=step.get("target_role"), target=step.get("target_eui64"),
                request_id=step_request_id(step), outcome=step.get("outcome"),
                detail=str(step.get("detail") or ""),
                started_ns=int(step.get("started_ns") or 0), evidence=links.get(key),
                issues=[str(i.get("id")) for i in issues if i.get("job_id") == record["id"]
                        and i.get("step") in (key, None, "")]))
        if record.get("state") == "error" and not record["steps"]:
            out.append(FailedStep(
                job_id=record["id"], rig=record["rig"], scenario=record["scenario"],
                variant=",".join(record.get("variants") or []), repetition=0, index=0,
                key="(job)", kind="job", sr_variant=None, sr_name=None, target_role=None,
                target=None, request_id=None, outcome="error",
                detail=str(record.get("detail") or ""),
                started_ns=int(record.get("started_ns") or 0), evidence=None,
                issues=[str(i.get("id")) for i in issues if i.get("job_id") == record["id"]]))
    return out


def _samples(data: CampaignReportData,
             devices: dict[tuple[str, str], dict[str, Any]]) -> list[TimingSample]:
    out: list[TimingSample] = []
    for entry in data["jobs"]:
        record = entry["record"]
        for exchange in record.get("exchanges") or []:
            if exchange.get("kind") != "sr" or exchange.get("outcome") != "responded":
                continue
            target = str(exchange.get("target") or "")
            role = exchange.get("device_role") or "unknown"
            if role == "unknown":
                role = (devices.get((record["rig"], target)) or {}).get("role", "unknown")
            out.append(TimingSample(
                job_id=record["id"], rig=record["rig"], band=str(exchange.get("band")
                                                                 or "none"),
                sr_variant=str(exchange.get("sr_variant") or "unknown"), role=str(role),
                device=target, request_id=str(exchange.get("request_id") or ""),
                match_level=str(exchange.get("match_level") or "none"),
                segments_ns=dict(exchange.get("segments_ns") or {})))
    return out


def _trace(data: CampaignReportData) -> list[TraceLine]:
    by_id = {j["record"]["id"]: j["record"] for j in data["jobs"]}
    lines: list[TraceLine] = []
    listed: set[str] = set()
    for line in data["plan"]:
        jobs = [by_id.get(job_id, {"id": job_id, "state": "missing"})
                for job_id in line["job_ids"]]
        listed.update(line["job_ids"])
        lines.append(TraceLine(line["id"], line["scenario"], list(line.get("variants") or []),
                               line.get("rig"), line.get("title") or "", jobs))
    rest = [j["record"] for j in data["jobs"] if j["record"]["id"] not in listed]
    if rest:
        lines.append(TraceLine("(unplanned)", "", [], None, "jobs of no plan line", rest))
    return lines
