"""Test plans (issue 10, item 2): rigs × scenarios/variants × device selection, repeats,
timing targets, a time window, stop and suspension rules, as YAML validated like rig
files (every problem ``file:line: field: message``, exit 2, before anything runs).

A plan file::

    name: overnight-emulated
    lab: ../labs/default.yaml        # default: the bundled default lab
    rigs: [emulated-single-band, emulated-dual-band]   # default: every rig of the lab
    repeat: 1
    window: {start: "20:00", stop: "06:00"}            # local times; may span midnight
    timing_targets: {"4.1": 30.0}    # end-to-end seconds per SR class; none by default
    stop: {max_failures: 100}
    suspension: {no_response_srs: 3, install_and_commission: true}
    lines:
      - name: everything
        scenarios: all               # or [meter-reading, ppmid/ppmid-exchange-gas]
        priority: [High, Medium]     # optional filter on the variants' priority
        devices: all                 # or {GSME: all, ESME: 00-DB-…, PPMID: [EUI, …]}
        combine: each                # each device of a role in turn | product
        tags: [ci]

**Expansion** (:func:`expand`): each line, on each of its rigs, each selected variant
becomes one job per device combination (a job's ``devices`` is ``{role: EUI-64}``:
that device first for its role, :class:`hanlab.runtime.jobs.JobSpec`). ``all`` selects
every device of the role on the rig, sub-GHz ones included; ``each`` runs each selected
device of every role in turn (as many jobs as the largest selection: DIT.EX.3 "any
combination of the selected devices"), ``product`` every combination. A variant needing
a role the rig has no device of is planned but skipped with the reason (``hanlab plan
show`` lists it), so coverage gaps show in the report instead of vanishing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hanlab.config.models import EUI64, Lab, RigConfig, Slug
from hanlab.errors import ConfigError
from hanlab.runtime.emulation import EmulationSettings

__all__ = ["DEVICE_ROLES_CH", "Plan", "PlanLine", "PlannedJob", "StopRules",
           "SuspensionRules", "Window", "expand", "load_plan", "select"]

#: Communications Hub roles: never suspended (seed 000 "any device (excluding
#: Communications Hubs)")
DEVICE_ROLES_CH = frozenset({"CHF", "GPF"})
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
#: rough emulated seconds per step kind (plan show; measured on the emulated lab at time
#: scale 20 on 2 shared cores: 336 jobs in 400 s)
_ESTIMATE_S = {"sr": 3.0, "sr_GSME": 10.0, "wait": 4.0, "external": 0.0}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Model):
    """When a campaign may start jobs: local times ``HH:MM``; ``stop`` before ``start``
    spans midnight (``20:00``-``06:00``). Outside it the campaign waits; a running job
    finishes."""

    start: str
    stop: str

    @field_validator("start", "stop")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(str(value)):
            raise ValueError(f"{value!r} is not a local time HH:MM (e.g. 20:00)")
        return str(value)

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.stop:
            raise ValueError("start and stop are equal: an empty window")
        return self

    @staticmethod
    def _minutes(text: str) -> int:
        hours, minutes = text.split(":")
        return int(hours) * 60 + int(minutes)

    def seconds_until_open(self, now: dt.datetime) -> float:
        """0 when ``now`` (local) is inside the window, else seconds until it opens."""
        start, stop = self._minutes(self.start), self._minutes(self.stop)
        minute = now.hour * 60 + now.minute + now.second / 60
        inside = (start <= minute < stop) if start < stop else (minute >= start
                                                                or minute < stop)
        if inside:
            return 0.0
        return ((start - minute) % (24 * 60)) * 60.0


class StopRules(_Model):
    """When a campaign stops early; the jobs not run are skipped with the rule.

    Attributes:
        max_failures: failed jobs (failed or error) after which it stops.
        max_consecutive_failures: failed jobs in a row (any rig) after which it stops.
        max_duration_s: host seconds after the campaign first started.
    """

    max_failures: int | None = Field(default=None, ge=1)
    max_consecutive_failures: int | None = Field(default=None, ge=1)
    max_duration_s: float | None = Field(default=None, gt=0)


class SuspensionRules(_Model):
    """When a device is suspended (seed 000 "Suspension Criteria": a device "bricked or
    frozen where no response from any service request is obtained"; "the install and
    commission process has failed").

    Attributes:
        no_response_srs: consecutive SRs to the device without a response (any jobs).
        install_and_commission: a failed install-and-commission job suspends the devices
            its failed steps were sent to.
    """

    no_response_srs: int = Field(default=3, ge=1, le=1000)
    install_and_commission: bool = True


DeviceChoice = Literal["all", "first"] | EUI64 | list[EUI64]


class PlanLine(_Model):
    """One line of a plan (see the module docstring).

    Attributes:
        name: shown in reports (traceability, DIT.EX.10); default ``line <n>``.
        rigs: the line's rigs (default: the plan's).
        scenarios: ``all``, or scenario names and ``scenario/variant`` ids.
        priority: only variants of these priorities (``none``: variants without one).
        devices: ``all`` (every role: every device), or per role ``all``, ``first``,
            an EUI-64 or a list of them; roles not named: ``all``.
        combine: ``each`` (each selected device of a role in turn) or ``product``.
        repeat: runs of each variant in a job (default: the plan's).
        tags: for ``--tag`` (run a subset).
        include_optional: run the optional steps.
    """

    name: str = Field(default="", max_length=200)
    rigs: list[Slug] | None = None
    scenarios: Literal["all"] | list[Annotated[str, Field(min_length=1, max_length=130)]] = "all"
    priority: list[Literal["High", "Medium", "Low", "none"]] | None = None
    devices: Literal["all"] | dict[Annotated[str, Field(pattern=r"^[A-Z]+$")],
                                   DeviceChoice] = "all"
    combine: Literal["each", "product"] = "each"
    repeat: int | None = Field(default=None, ge=1, le=1000)
    tags: list[Slug] = Field(default_factory=list)
    include_optional: bool = True


class Plan(_Model):
    """A test plan file (see the module docstring).

    Attributes:
        name, description: the plan.
        lab: the lab file whose rigs it uses (relative to the plan file; default the
            bundled default lab).
        rigs: the plan's rigs (default: every rig of the lab).
        repeat: runs of each variant in a job.
        window: when jobs may start (local times); none: any time.
        timing_targets: end-to-end target seconds per SR variant (``4.1.1``), Service
            Reference (``4.1``) or ``*`` (DIT.11); none by default: the seeds give none.
        stop, suspension: see :class:`StopRules`, :class:`SuspensionRules`.
        emulation: how the emulated rigs run when the campaign starts the lab itself
            (in-process); a daemon's rigs run as the daemon was started.
        lines: what to run.
    """

    name: Slug
    description: str = ""
    lab: Path | None = None
    rigs: list[Slug] = Field(default_factory=list)
    repeat: int = Field(default=1, ge=1, le=1000)
    window: Window | None = None
    timing_targets: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    stop: StopRules = StopRules()
    suspension: SuspensionRules = SuspensionRules()
    emulation: EmulationSettings = EmulationSettings()
    lines: list[PlanLine] = Field(min_length=1)


@dataclass
class PlannedJob:
    """One job a plan expands to.

    Attributes:
        seq: position in the campaign (0-based; the order jobs run on their rig).
        line_index: the plan line it comes from; rig, scenario, variant: what runs.
        devices: role -> EUI-64 given to the job (``JobSpec.devices``).
        involved: every device the job's steps address (suspension applies to these).
        repeat, include_optional: as in the job spec.
        estimate_s: estimated host seconds.
        skip: why it cannot run on this rig (a role without a device), else ``""``.
        tags: the line's tags.
    """

    seq: int
    line_index: int
    rig: str
    scenario: str
    variant: str
    devices: dict[str, str]
    involved: list[str]
    repeat: int
    include_optional: bool
    estimate_s: float
    skip: str = ""
    tags: list[str] = field(default_factory=list)

    def spec(self, label: str) -> dict[str, Any]:
        """The job spec to submit (``LabService.submit``)."""
        return {"rig": self.rig, "scenario": self.scenario, "variants": [self.variant],
                "devices": self.devices, "repeat": self.repeat,
                "include_optional": self.include_optional, "label": label, "wait": True}


@dataclass
class LoadedPlan:
    """A plan with where it came from: its file, YAML node tree and the lab it uses."""

    plan: Plan
    path: Path
    node: yaml.Node | None
    lab: Lab
    lab_file: Path


def load_plan(path: Path, lab_override: Path | None = None) -> LoadedPlan:
    """Load and check a plan file against its lab and the scenario library.

    Args:
        lab_override: use this lab file instead of the plan's ``lab:``.

    Raises:
        ConfigError: every problem as ``file:line: field: message`` (a rig, scenario,
            variant or device that does not exist; a selection leaving a role empty).
    """
    from hanlab.config.loader import load_lab, load_yaml_model
    from hanlab.labdata import default_lab

    plan, node = load_yaml_model(path, Plan, "a plan file (name, lines, …)")
    lab_file = lab_override or (
        (plan.lab if plan.lab.is_absolute() else path.parent / plan.lab)
        if plan.lab is not None else default_lab())
    lab = load_lab(lab_file)
    loaded = LoadedPlan(plan, path, node, lab, lab_file)
    expand(loaded)  # checks every line
    return loaded


def _variant_refs(scenario: Any, variant: Any) -> tuple[list[tuple[str, int]], set[str]]:
    """The (role, 1-based index) refs a variant's steps use, aliases resolved, and the
    roles only its optional steps use."""
    from hanlab.scenarios.models import step_role_refs

    refs: list[tuple[str, int]] = []
    mandatory: set[str] = set()
    for step in scenario.steps_of(variant):
        for ref in step_role_refs(step):
            base, _, index = ref.partition("#")
            role, _, alias_index = variant.role_ref(base).partition("#")
            pair = (role, int(index or alias_index or 1))
            if role != "DCC" and pair not in refs:
                refs.append(pair)
            if role != "DCC" and not step.optional:
                mandatory.add(role)
    optional_only = {r for r, _ in refs} - mandatory
    return refs, optional_only


def _estimate(scenario: Any, variant: Any, time_scale: float) -> float:
    from hanlab.scenarios.models import ChFirmwareStep, PauseStep, SrStep, WaitAlertStep

    total = 0.0
    for step in scenario.steps_of(variant):
        if isinstance(step, SrStep):
            role = variant.role_ref(step.target or "")
            total += _ESTIMATE_S["sr_GSME" if str(role).startswith("GSME") else "sr"]
        elif isinstance(step, WaitAlertStep):
            total += _ESTIMATE_S["wait"]
        elif isinstance(step, PauseStep):
            total += step.pause_s
        elif isinstance(step, ChFirmwareStep):  # the reboot and the devices' rejoins
            total += 2 * step.ch_firmware.reboot_s
    return round(total / time_scale, 3)


def _selection(line: PlanLine, rig: RigConfig, role: str) -> list[str]:
    """The installed EUI-64s a line selects for ``role`` on ``rig``, in rig file order
    (spares are the variants' to consume, never selected)."""
    devices = [d.eui64 for d in rig.devices if d.role.value == role and not d.spare]
    choice: Any = "all" if line.devices == "all" else line.devices.get(role, "all")
    if choice == "all":
        return devices
    if choice == "first":
        return devices[:1]
    wanted = [choice] if isinstance(choice, str) else list(choice)
    return [eui for eui in devices if eui in wanted]


def expand(loaded: LoadedPlan, *, time_scale: float | None = None) -> list[PlannedJob]:
    """Every job of the plan, in campaign order (lines, rigs, scenarios, variants,
    combinations).

    Args:
        time_scale: emulated rigs' time scale for the estimates (default the plan's
            ``emulation.time_scale``, else 1).

    Raises:
        ConfigError: every problem of every line (see :func:`load_plan`).
    """
    from hanlab.config.loader import problem_at
    from hanlab.runtime.emulation import is_emulated_rig

    plan, path, node = loaded.plan, loaded.path, loaded.node
    rigs = {r.name: r for r in loaded.lab.rigs}
    scale = time_scale or plan.emulation.time_scale or 1.0
    problems: list[str] = []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(problem_at(path, node, loc, message))

    for i, name in enumerate(plan.rigs):
        if name not in rigs:
            problem(("rigs", i), f"lab {loaded.lab_file} has no rig {name!r} (it has "
                    f"{', '.join(rigs)})")
    jobs: list[PlannedJob] = []
    for li, line in enumerate(plan.lines):
        for i, name in enumerate(line.rigs or []):
            if name not in rigs:
                problem(("lines", li, "rigs", i), f"lab {loaded.lab_file} has no rig "
                        f"{name!r}")
        line_rigs = [rigs[r] for r in line.rigs or plan.rigs or list(rigs) if r in rigs]
        def at_line(loc: tuple[str | int, ...], message: str, li: int = li) -> None:
            problem(("lines", li, *loc), message)

        chosen = _line_variants(line, at_line)
        _check_devices(line, line_rigs, at_line)
        reported: set[str] = set()
        for rig in line_rigs:
            rig_scale = scale if is_emulated_rig(rig) else 1.0
            for scenario, variant in chosen:
                made, empty = _variant_jobs(line, li, rig, scenario, variant, rig_scale,
                                            line.repeat or plan.repeat)
                jobs.extend(made)
                if empty and f"{rig.name}/{empty}" not in reported:
                    reported.add(f"{rig.name}/{empty}")
                    problem(("lines", li, "devices"), f"the selection leaves role {empty} "
                            f"empty on rig {rig.name} (needed by "
                            f"{scenario.name}/{variant.id})")
    if problems:
        raise ConfigError(problems)
    for seq, job in enumerate(jobs):
        job.seq = seq
    return jobs


Problem = Callable[[tuple[str | int, ...], str], None]


def _line_variants(line: PlanLine, problem: Problem) -> list[tuple[Any, Any]]:
    """The (scenario, variant) pairs a line names, priority filter applied."""
    from hanlab.scenarios.loader import load_library

    library = load_library()
    names = ([f"{s}/{v.id}" for s in library for v in library[s].variants]
             if line.scenarios == "all" else line.scenarios)
    chosen: list[tuple[Any, Any]] = []
    for si, item in enumerate(names):
        scenario_name, _, variant_id = item.partition("/")
        scenario = library.get(scenario_name)
        if scenario is None:
            problem(("scenarios", si), f"no scenario {scenario_name!r} in the library "
                    "(hanlab scenarios list)")
            continue
        variants = [v for v in scenario.variants if not variant_id or v.id == variant_id]
        if not variants:
            problem(("scenarios", si), f"scenario {scenario_name} has no variant "
                    f"{variant_id!r} (it has {', '.join(v.id for v in scenario.variants)})")
        chosen.extend((scenario, v) for v in variants
                      if line.priority is None or (v.priority or "none") in line.priority)
    return chosen


def _check_devices(line: PlanLine, rigs: list[RigConfig], problem: Problem) -> None:
    """Every EUI-64 a line names is a device of that role on one of its rigs."""
    if line.devices == "all":
        return
    on_rigs = {d.eui64: d.role.value for rig in rigs for d in rig.devices}
    for role, choice in line.devices.items():
        for eui in [choice] if isinstance(choice, str) else list(choice):
            if eui in ("all", "first"):
                continue
            if eui not in on_rigs:
                problem(("devices", role), f"no device {eui} on rig(s) "
                        f"{', '.join(r.name for r in rigs)}")
            elif on_rigs[eui] != role:
                problem(("devices", role), f"{eui} is a {on_rigs[eui]}, not a {role}")


def _variant_jobs(line: PlanLine, li: int, rig: RigConfig, scenario: Any, variant: Any,
                  scale: float, repeat: int) -> tuple[list[PlannedJob], str | None]:
    """The jobs of one variant on one rig, and the role the selection leaves empty (a
    problem), if any."""
    from hanlab.runtime.execute import job_devices
    from hanlab.scenarios.runner import devices_by_role, missing_devices

    refs, optional_only = _variant_refs(scenario, variant)
    roles = list(dict.fromkeys(r for r, _ in refs))
    common: dict[str, Any] = {
        "seq": 0, "line_index": li, "rig": rig.name, "scenario": scenario.name,
        "variant": variant.id, "repeat": repeat, "include_optional": line.include_optional,
        "tags": line.tags}
    missing = [r for r in roles if r not in optional_only
               and not any(d.role.value == r for d in rig.devices)]
    if missing:
        return [PlannedJob(devices={}, involved=[], estimate_s=0.0,
                           skip=f"rig {rig.name} has no {', '.join(missing)} (the variant "
                                "needs one)", **common)], None
    lacking = missing_devices(variant, devices_by_role(rig), devices_by_role(rig, spare=True))
    if lacking:
        return [PlannedJob(devices={}, involved=[], estimate_s=0.0,
                           skip=f"rig {rig.name} lacks what the variant consumes: "
                                + "; ".join(lacking), **common)], None
    usable: list[tuple[str, list[str]]] = []
    for role in roles:
        selected = _selection(line, rig, role)
        if not selected and role not in optional_only:
            return [], role
        if selected:
            usable.append((role, selected))
    estimate = _estimate(scenario, variant, scale) * repeat
    jobs = []
    for combo in _combinations([s for _, s in usable], line.combine):
        devices = {role: eui for (role, _), eui in zip(usable, combo, strict=True)}
        by_role = job_devices(rig, devices)
        involved: list[str] = []
        for role, index in refs:
            euis = by_role.get(role, [])
            if index <= len(euis) and euis[index - 1].duis not in involved:
                involved.append(euis[index - 1].duis)
        jobs.append(PlannedJob(devices=devices, involved=involved, estimate_s=estimate,
                               **common))
    return jobs, None


def _combinations(selections: list[list[str]], combine: str) -> list[tuple[str, ...]]:
    if not selections:
        return [()]
    if combine == "product":
        return list(itertools.product(*selections))
    count = max(len(s) for s in selections)
    return [tuple(s[i % len(s)] for s in selections) for i in range(count)]


def select(jobs: list[PlannedJob], *, tags: list[str] | None = None,
           limit_per_rig: int | None = None) -> list[PlannedJob]:
    """The jobs of lines carrying any of ``tags`` (all jobs without tags), at most
    ``limit_per_rig`` runnable jobs per rig (a CI-sized subset), in order."""
    out: list[PlannedJob] = []
    per_rig: dict[str, int] = {}
    for job in jobs:
        if tags and not set(tags) & set(job.tags):
            continue
        if limit_per_rig is not None and not job.skip:
            if per_rig.get(job.rig, 0) >= limit_per_rig:
                continue
            per_rig[job.rig] = per_rig.get(job.rig, 0) + 1
        elif limit_per_rig is not None and job.skip:
            continue
        out.append(job)
    return out


def estimated_duration_s(jobs: list[PlannedJob]) -> float:
    """Host seconds the jobs take: rigs run in parallel, each rig's jobs one by one."""
    per_rig: dict[str, float] = {}
    for job in jobs:
        per_rig[job.rig] = per_rig.get(job.rig, 0.0) + job.estimate_s
    return max(per_rig.values(), default=0.0)
