"""The input of every campaign report view: :class:`CampaignReportData` (issue 10, item 5).

``campaign_report_data(store, campaign_id)`` (the campaign engineer's, from the results
database) and :func:`hanlab.reports.assemble.data_from_job_files` (``hanlab report jobs``)
both return this shape; :func:`check_report_data` checks it once, so the renderers can
trust it. All times are ``*_ns``: int, ns since the UNIX epoch, UTC. Unknown keys are
allowed (and ignored) everywhere, so the producer can add fields first.

Shape (``?``: may be absent)::

    {"schema": 1,
     "campaign": {"id": "c-2026-12-01-night", "name"?: "...", "plan_name"?: "DIT core",
                  "plan_path"?: "plans/dit.yaml", "operator"?: "A. Tester",
                  "created_ns"?: int, "started_ns"?: int | null, "ended_ns"?: int | null,
                  "lab"?: "default", "notes"?: "...",
                  "quality_gate_date"?: "2026-12-15"},        # Table 10 work-off origin
     "rigs": [{"name": "emulated-dual-band", "ch_variant": "dual_band" | "single_band",
               "ch_label"?: "CSP N dual band CH",               # the CH variant's name
               "service_provider"?: "CSP N" | "CSP C/S",
               "description"?: "...",
               "devices": [DEVICE, ...]}],
     "plan": [{"id": "L1", "scenario": "meter-reading", "variants"?: ["gas-instantaneous"],
               "rig"?: "emulated-dual-band", "devices"?: {"GSME": "00-DB-.."},
               "repeat"?: 1, "title"?: "...", "job_ids": ["j-..", ...]}],
     "jobs": [{"record": JOB,                  # hanlab.runtime.service JOB, in full
               "device"?: "00-DB-.." | null,   # the device the job targets
               "band"?: "subGHz" | "2.4GHz" | null,
               "plan_line"?: "L1" | null,
               "captures_dir"?: "/lab/captures",   # where record["captures"] live
               "evidence"?: {STEP_KEY: "evidence/j-../step-3.zip"}}],  # bundle links
     "targets"?: {"4.1.1": 30.0, "4.1": 30.0, "*": 60.0},     # end-to-end targets, s
     "issues"?: [ISSUE, ...],                  # hanlab.reports.issues.Issue.to_dict()
     "ch_impact"?: IMPACT,                     # hanlab.firmware.impact.ch_impact()
     "generated_ns"?: int}

``DEVICE``: ``{"eui64", "role", "band"?, "name"?, "manufacturer"?, "model"?,
"firmware_version"?, "smets_chts_version"?, "gbcs_version"?, "zigbee_stack"?,
"silicon_vendor"?, "cpl_reference"?}`` (strings; ``role`` ESME, GSME, IHD, PPMID, HCALCS,
HHT, CHF, GPF). ``STEP_KEY``: :func:`step_key` (``variant#repetition/index``).

Errors: :func:`check_report_data` raises :class:`~hanlab.errors.BadInputError` naming the
first field at fault.
"""

from __future__ import annotations

from typing import Any, Final, NotRequired

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from hanlab.errors import BadInputError

__all__ = ["SCHEMA", "CampaignMeta", "CampaignReportData", "DeviceRecord", "JobEntry",
           "PlanLine", "RigRecord", "check_report_data", "step_key"]

SCHEMA: Final = 1
_OPEN = ConfigDict(extra="allow")


@with_config(_OPEN)
class DeviceRecord(TypedDict):
    """One device of a rig with its campaign record (seed 000 §"Device selection")."""

    eui64: str
    role: str
    band: NotRequired[str]
    name: NotRequired[str | None]
    manufacturer: NotRequired[str]
    model: NotRequired[str]
    firmware_version: NotRequired[str]
    smets_chts_version: NotRequired[str]
    gbcs_version: NotRequired[str]
    zigbee_stack: NotRequired[str]
    silicon_vendor: NotRequired[str]
    cpl_reference: NotRequired[str]


@with_config(_OPEN)
class RigRecord(TypedDict):
    """One rig (meter set) of the campaign: its Communications Hub variant and devices."""

    name: str
    ch_variant: str
    ch_label: NotRequired[str]
    service_provider: NotRequired[str]
    description: NotRequired[str]
    devices: list[DeviceRecord]


@with_config(_OPEN)
class PlanLine(TypedDict):
    """One line of the test plan and the jobs that executed it (DIT.EX.10)."""

    id: str
    scenario: str
    variants: NotRequired[list[str]]
    rig: NotRequired[str | None]
    devices: NotRequired[dict[str, str]]
    repeat: NotRequired[int]
    title: NotRequired[str]
    job_ids: list[str]


@with_config(_OPEN)
class JobEntry(TypedDict):
    """One job of the campaign: its full record plus what the campaign knows of it."""

    record: dict[str, Any]
    device: NotRequired[str | None]
    band: NotRequired[str | None]
    plan_line: NotRequired[str | None]
    captures_dir: NotRequired[str | None]
    evidence: NotRequired[dict[str, str]]


@with_config(_OPEN)
class CampaignMeta(TypedDict):
    """Campaign metadata."""

    id: str
    name: NotRequired[str]
    plan_name: NotRequired[str]
    plan_path: NotRequired[str]
    operator: NotRequired[str]
    created_ns: NotRequired[int | None]
    started_ns: NotRequired[int | None]
    ended_ns: NotRequired[int | None]
    lab: NotRequired[str]
    notes: NotRequired[str]
    quality_gate_date: NotRequired[str | None]


@with_config(_OPEN)
class CampaignReportData(TypedDict):
    """Everything a campaign report shows (shape in the module docstring)."""

    schema: NotRequired[int]
    campaign: CampaignMeta
    rigs: list[RigRecord]
    plan: list[PlanLine]
    jobs: list[JobEntry]
    targets: NotRequired[dict[str, float]]
    issues: NotRequired[list[dict[str, Any]]]
    generated_ns: NotRequired[int]


_ADAPTER: TypeAdapter[CampaignReportData] = TypeAdapter(CampaignReportData)
_JOB_KEYS = ("id", "rig", "scenario", "state", "steps", "variant_runs", "exchanges")


def check_report_data(data: Any) -> CampaignReportData:
    """``data`` checked against :class:`CampaignReportData` (and each job record for the
    ``JOB`` keys the views read).

    Raises:
        BadInputError: the first field at fault, e.g. ``jobs.2.record: no 'steps'``.
    """
    try:
        checked = _ADAPTER.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise BadInputError(f"report data: {where}: {first['msg']}",
                            hint="see hanlab.reports.model for the shape") from None
    for index, job in enumerate(checked["jobs"]):
        missing = [k for k in _JOB_KEYS if k not in job["record"]]
        if missing:
            raise BadInputError(f"report data: jobs.{index}.record: no {missing[0]!r} "
                                "(a JOB record of hanlab.runtime.service)")
    return checked


def step_key(step: dict[str, Any]) -> str:
    """The key of a step within its job: ``variant#repetition/index`` (e.g.
    ``gas-instantaneous#2/1``), stable across re-renders; used by ``evidence`` links,
    JUnit and ``hanlab evidence JOB STEP``."""
    return f"{step.get('variant')}#{step.get('repetition')}/{step.get('index')}"
