"""Jobs: a scenario with its variants, target devices, repeats and options, on one rig
(issue 9, item 2; DESIGN.md "One lab runtime, jobs on it").

* :class:`JobSpec` is what a client submits; :func:`check_spec` refuses, naming the field,
  an unknown rig, scenario, variant or device before anything is queued.
* :class:`JobRecord` is **the one record of a job**: state, progress, every step, every
  variant run, the SR exchanges, the timing statistics and the capture files that cover
  it. The API, the CLI, MQTT ``job`` events and reports all read it; nothing else keeps
  job results.
* :class:`JobStore` keeps each record in the results store (:mod:`hanlab.store`: SQLite
  ``<out>/hanlab.db`` or the lab's PostgreSQL; issue 10, item 4), written whole after
  every step in one transaction, so a kill never leaves half a record; the job's own
  DUIS log stays a file, ``<folder>/<id>/duis.jsonl``. A record is never overwritten by
  another job. At start, jobs a killed daemon left ``queued`` or ``running`` become
  ``interrupted`` with everything recorded up to the kill; they are not run again unless
  a client asks (:meth:`hanlab.runtime.lab.LabRuntime.rerun`, or a campaign).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hanlab.correlate.exchange import Exchange
from hanlab.correlate.stats import TimingStats
from hanlab.errors import BadInputError
from hanlab.runtime.service import JobRefusedError, NotFoundError
from hanlab.scenarios.runner import StepResult, VariantResult

if TYPE_CHECKING:
    from hanlab.store import ResultsStore

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "JobRecord", "JobSpec", "JobState", "JobStore",
           "check_spec", "parse_spec"]

JobState = Literal["queued", "running", "passed", "failed", "cancelled", "interrupted",
                   "error"]
ACTIVE_STATES: Final = frozenset({"queued", "running"})
FINAL_STATES: Final = frozenset({"passed", "failed", "cancelled", "interrupted", "error"})
JOB_ID: Final = re.compile(r"^j-\d{8}T\d{6}-[0-9a-f]{6}$")


class JobSpec(BaseModel):
    """What a client submits (API ``POST /api/v1/jobs``; ``hanlab scenario run``).

    Attributes:
        rig: the rig's name.
        scenario: a scenario of the library (``hanlab scenarios list``).
        variants: variant ids to run, in order (empty: every variant).
        devices: role reference -> EUI-64 of the device the job targets for that role
            (``{"GSME": "00-DB-12-00-00-00-D2-02"}``; default: the first of each role
            in the rig file, as ``ROLE`` always meant; ``ROLE#2`` is then the next one).
        repeat: runs of each variant (1..1000).
        include_optional: run the optional steps.
        label: free text for the operator (≤ 200 characters).
        wait: queue even if a sniffer of the rig is down now (else refused, 409).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rig: str = Field(min_length=1, max_length=64)
    scenario: str = Field(min_length=1, max_length=64)
    variants: list[str] = Field(default_factory=list, max_length=100)
    devices: dict[str, str] = Field(default_factory=dict, max_length=50)
    repeat: int = Field(default=1, ge=1, le=1000)
    include_optional: bool = True
    label: str = Field(default="", max_length=200)
    wait: bool = False


def parse_spec(data: Any) -> JobSpec:
    """``data`` (a JSON object) as a :class:`JobSpec`.

    Raises:
        JobRefusedError: not an object, an unknown field, or a bad value (the first
            problem, naming its field).
    """
    if not isinstance(data, dict):
        raise JobRefusedError("(body)", "a job is a JSON object {rig, scenario, …}")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        message = ("is not a job field" if first["type"] == "extra_forbidden"
                   else first["msg"])
        raise JobRefusedError(where, message) from None


def check_spec(spec: JobSpec, *, rigs: dict[str, Any]) -> tuple[Any, list[str]]:
    """Check a spec against the lab: the rig, scenario, variants and devices exist, and
    the rig has the spares the variants consume (:func:`hanlab.scenarios.runner.
    check_consumption`).

    Args:
        rigs: rig name -> :class:`hanlab.config.models.RigConfig`.

    Returns:
        the scenario (:class:`hanlab.scenarios.models.Scenario`) and the variant ids to
        run (every variant when the spec names none).

    Raises:
        JobRefusedError: the field at fault and why.
    """
    from hanlab.config.models import normalise_eui64
    from hanlab.scenarios.loader import get_scenario, load_library

    rig = rigs.get(spec.rig)
    if rig is None:
        raise JobRefusedError("rig", f"no rig {spec.rig!r} in this lab",
                              hint="one of: " + ", ".join(sorted(rigs)))
    try:
        scenario = get_scenario(spec.scenario, load_library())
    except BadInputError as error:
        raise JobRefusedError("scenario", error.message, hint=error.hint) from None
    known = [v.id for v in scenario.variants]
    for variant in spec.variants:
        if variant not in known:
            raise JobRefusedError("variants", f"scenario {scenario.name} has no variant "
                                  f"{variant!r}", hint="one of: " + ", ".join(known))
    by_eui = {d.eui64: d for d in rig.devices}
    for role, eui64 in spec.devices.items():
        try:
            eui = normalise_eui64(eui64)
        except ValueError as error:
            raise JobRefusedError(f"devices.{role}", str(error)) from None
        device = by_eui.get(eui)
        if device is None:
            raise JobRefusedError(f"devices.{role}", f"rig {rig.name} has no device {eui}")
        base = role.partition("#")[0]
        if device.role.value != base:
            raise JobRefusedError(f"devices.{role}", f"{eui} is a {device.role.value}, "
                                  f"not a {base}")
        if device.spare:
            raise JobRefusedError(f"devices.{role}", f"{eui} is a spare of rig {rig.name}: "
                                  "only the variants that consume a spare use it",
                                  hint="choose an installed device")
    chosen = list(spec.variants) or known
    from hanlab.scenarios.runner import check_consumption, devices_by_role

    try:
        check_consumption(scenario, [scenario.variant(v) for v in chosen], rig.name,
                          devices_by_role(rig), devices_by_role(rig, spare=True))
    except BadInputError as error:
        raise JobRefusedError("variants", error.message, hint=error.hint) from None
    return scenario, chosen


def new_job_id(now_ns: int | None = None) -> str:
    """``j-<UTC yyyymmddThhmmss>-<6 hex>``: sortable by submission, unique."""
    when = dt.datetime.fromtimestamp((now_ns or time.time_ns()) / 1e9, dt.UTC)
    return f"j-{when:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass
class JobRecord:
    """The one record of a job (shape: ``JOB`` in :mod:`hanlab.runtime.service`)."""

    id: str
    rig: str
    lab: str
    scenario: str
    variants: list[str]
    devices: dict[str, str]
    repeat: int
    include_optional: bool
    label: str
    state: JobState = "queued"
    detail: str = ""
    submitted_ns: int = 0
    started_ns: int | None = None
    ended_ns: int | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    variant_runs: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    captures: list[str] = field(default_factory=list)
    duis_log: str = ""
    rerun_of: str | None = None

    @classmethod
    def new(cls, spec: JobSpec, *, lab: str, variants: list[str], steps_per_run: int,
            rerun_of: str | None = None) -> JobRecord:
        """A queued record for ``spec`` (variants resolved, steps counted)."""
        now = time.time_ns()
        runs = len(variants) * spec.repeat
        return cls(
            id=new_job_id(now), rig=spec.rig, lab=lab, scenario=spec.scenario,
            variants=variants, devices=dict(spec.devices), repeat=spec.repeat,
            include_optional=spec.include_optional, label=spec.label, submitted_ns=now,
            progress={"steps_done": 0, "steps_total": steps_per_run * spec.repeat,
                      "variant_runs_done": 0, "variant_runs_total": runs, "current": ""},
            timings=TimingStats().summary(), rerun_of=rerun_of)

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.state in ACTIVE_STATES

    def spec(self) -> JobSpec:
        """The spec that runs this job again."""
        return JobSpec(rig=self.rig, scenario=self.scenario, variants=self.variants,
                       devices=self.devices, repeat=self.repeat,
                       include_optional=self.include_optional, label=self.label, wait=True)

    def to_dict(self) -> dict[str, Any]:
        """The full JSON-ready record (``JOB``)."""
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """``JOB_SUMMARY``: the record without steps, exchanges and timings."""
        out = self.to_dict()
        for key in ("steps", "exchanges", "timings"):
            out.pop(key)
        return out

    # -- progress (called by the job's scenario runner observer) ------------------------

    def step_finished(self, result: VariantResult, step: StepResult) -> None:
        """Record one finished step."""
        self.steps.append(step_record(result, step))
        self.progress["steps_done"] = len(self.steps)

    def variant_finished(self, result: VariantResult,
                         exchanges: dict[str, Exchange]) -> None:
        """Record one finished variant run: its steps again (now with their exchanges),
        its verdict, and its SR exchanges."""
        done = {(s["variant"], s["repetition"], s["index"]): i
                for i, s in enumerate(self.steps)}
        for step in result.steps:
            at = done.get((result.variant, result.repetition, step.index))
            if at is not None:
                self.steps[at] = step_record(result, step)
        self.variant_runs.append({
            "scenario": result.scenario, "variant": result.variant, "title": result.title,
            "repetition": result.repetition, "passed": result.passed,
            "started_ns": result.started_ns, "ended_ns": result.ended_ns,
            "duration_s": round(result.duration_s, 6), "srs_sent": result.srs_sent,
            "srs_answered": result.srs_answered,
            "failed_steps": [s.index for s in result.steps
                             if s.status == "failed" and not s.optional]})
        for step in result.steps:
            exchange = exchanges.get(step.request_id or "")
            if exchange is not None:
                self.exchanges.append(exchange_record(exchange))
        self.progress["variant_runs_done"] = len(self.variant_runs)

    def timing_stats(self, targets: dict[str, float] | None = None) -> TimingStats:
        """The timing statistics of the job's SR exchanges (DIT.11)."""
        stats = TimingStats(targets)
        for record in self.exchanges:
            stats.add(exchange_from_record(record))
        return stats


def step_record(result: VariantResult, step: StepResult) -> dict[str, Any]:
    """A step as stored in the job record (``STEP``)."""
    return {"scenario": result.scenario, "variant": result.variant,
            "repetition": result.repetition, **asdict(step),
            "duration_s": round(step.duration_s, 6)}


def exchange_record(exchange: Exchange) -> dict[str, Any]:
    """An exchange as stored in the job record: its fields plus ``segments_ns``."""
    return {**exchange.to_dict(), "segments_ns": exchange.segments_ns()}


def exchange_from_record(record: dict[str, Any]) -> Exchange:
    """The :class:`Exchange` of a stored exchange record."""
    fields = {k: v for k, v in record.items() if k != "segments_ns"}
    return Exchange(**fields)


class JobStore:
    """Job records in the results store (see the module docstring).

    Args:
        folder: ``<folder>/<job id>/`` holds each job's own files (its DUIS log).
        store: the results database (:class:`hanlab.store.ResultsStore`); default the
            embedded SQLite ``<folder>/../hanlab.db``.
        rigs: the rigs whose jobs this store runs (a lab's, when several hosts share one
            database): only their records are loaded and only their active ones marked
            ``interrupted`` at start; ``None``: every rig's.

    Raises:
        BadInputError: the folder cannot be created; the database is unreachable.
    """

    def __init__(self, folder: Path, store: ResultsStore | None = None, *,
                 rigs: Iterable[str] | None = None) -> None:
        from hanlab.store import open_store

        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"{self.folder}: cannot create the jobs folder: "
                                f"{error.strerror}") from None
        self.db = store if store is not None else open_store(None, self.folder.parent)
        self.rigs = None if rigs is None else sorted(rigs)
        self.records: dict[str, JobRecord] = {}
        self.load()

    def job_folder(self, job_id: str) -> Path:
        """The folder of one job."""
        return self.folder / job_id

    def load(self) -> list[JobRecord]:
        """Read every record (of :attr:`rigs`); those left active by a killed daemon
        become ``interrupted`` (and are saved so). The records that were interrupted now."""
        interrupted = []
        for data, updated_ns in self.db.jobs(rigs=self.rigs):
            try:
                record = JobRecord(**data)
            except TypeError as error:
                logging.getLogger(__name__).warning("job %s: unreadable record skipped: %s",
                                                    data.get("id"), error)
                continue
            if record.active:
                was = record.state
                record.state = "interrupted"
                record.detail = (f"the daemon stopped while the job was {was}; results up "
                                 "to then are kept")
                record.ended_ns = record.ended_ns or updated_ns
                self.save(record)
                interrupted.append(record)
            self.records[record.id] = record
        return interrupted

    def add(self, record: JobRecord) -> None:
        """Keep and save a new record."""
        self.records[record.id] = record
        self.save(record)

    def save(self, record: JobRecord) -> None:
        """Write the record whole to the results store (spooled on disk while the
        database is away)."""
        self.db.put_job(record.to_dict())

    def get(self, job_id: str) -> JobRecord:
        """One record.

        Raises:
            NotFoundError: no such job.
        """
        record = self.records.get(job_id) if JOB_ID.match(job_id or "") else None
        if record is None and JOB_ID.match(job_id or ""):
            data = self.db.get_job(job_id)  # a job of another lab host
            record = None if data is None else JobRecord(**data)
        if record is None:
            raise NotFoundError(f"no job {job_id!r}", hint="hanlab jobs list")
        return record

    def list(self, *, rig: str | None = None, state: str | None = None,
             limit: int = 100) -> list[JobRecord]:
        """Records, newest first."""
        out = [r for r in self.records.values()
               if (rig is None or r.rig == rig) and (state is None or r.state == state)]
        out.sort(key=lambda r: r.submitted_ns, reverse=True)
        return out[:max(0, limit)]
