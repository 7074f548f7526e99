"""The lab rehearsal of a CH firmware roll-out, end to end (issue 12, item 5).

SECMP0024 (seeds 002/004) over the lab's emulated rigs as a small estate. Given a running
:class:`~hanlab.runtime.lab.LabRuntime`, a :class:`~hanlab.firmware.ch_image.ChImage` and a
:class:`RehearsalPlan`, :func:`rehearse` orchestrates parts that exist elsewhere (it owns
no mechanism of its own):

1. ``before``: the plan's jobs on every rig (lab jobs, :meth:`LabRuntime.submit`);
2. ``estate``: one :class:`~hanlab.emulator.dcc.rollout.model.ChRecord` per rig, its GUID
   the CHF's EUI-64, its Import Supplier the lab's ``IS`` DUIS User and, when the rig has a
   GSME, its Gas Supplier the ``GS`` User (split supply, SECMP0024 2.4);
3. ``notify`` (Requirement 1) in a :class:`~hanlab.emulator.dcc.rollout.service.
   RolloutService` with ``RolloutConfig(pilot_max_size=<pilot rigs>, batch_min_size=1)``
   (printed as lab overrides);
4. ``pilot`` (Requirement 2): each pilot CH's first Supplier submits it, the second
   instructs it (2.4); the DCC starts the pilot; the deployment hook's order is carried
   out by :meth:`RigRuntime.upgrade_ch` (the CH really reboots into the image on its HAN,
   its devices rejoin) and the outcome reported (success: every device back);
5. the Suppliers instruct the safe launch (Requirement 3); an ``incident`` with emergency
   stop (Requirement 6, 2.7) suspends the roll-out, the DCC pauses it, and a deployment
   that falls due while paused is refused (``deploy_refused``, no order sent); the DCC
   decides ``proceed``;
6. ``safe_launch``: the DCC deploys what is due in batches of ``batch_size`` (one rig per
   batch by default), each batch's CHs upgraded on their HANs, outcomes reported;
7. ``after``: the plan's jobs again; ``impact``: :func:`hanlab.firmware.impact.ch_impact`
   per rig and over all rigs (before/after per band × SR variant × device), its after side
   carrying each rig's upgrade record as a ``ch_firmware`` step (the rejoins table).

The roll-out's calendar is simulated: the DCC's clock starts at the host's time and jumps
to each activation date (the seed's dates are days and months apart); HAN time is the
emulated rigs'. Everything is recorded in ``REHEARSAL`` (:func:`rehearse`'s result)::

    {"schema": 1, "image": {...ChImage}, "image_id", "plan": {...}, "config_deviations",
     "rigs": {rig: {"guid", "suppliers", "group", "before_jobs", "after_jobs",
                    "upgrade": {...ChUpgradeRecord}, "outcome": {"success", "reason"}}},
     "timeline": [{"seq", "ts_ns", "rollout_at", "phase", "event", ...}],
     "notices": [{"seq", "kind", "at", "to", "body"}], "orders": [{...DeployOrder}],
     "impact": IMPACT, "impact_per_rig": {rig: IMPACT},
     "job_records": [JOB, ...]}   # in full; not in rehearsal.json (the store has them)

:func:`write_outputs` also writes the campaign report of the before and after jobs with
the impact as its ``ch_impact`` section (:func:`hanlab.reports.html.render_campaign_report`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hanlab.emulator.dcc.rollout.model import (
    ChRecord,
    Decision,
    DeployOrder,
    Priority,
    RolloutState,
    Severity,
    iso,
)
from hanlab.emulator.dcc.rollout.rules import RolloutConfig, RuleViolation
from hanlab.emulator.dcc.rollout.service import RolloutService
from hanlab.errors import BadInputError, HanlabError
from hanlab.firmware.ch_image import ChImage
from hanlab.firmware.impact import ch_impact
from hanlab.frames import Band

__all__ = ["RehearsalPlan", "check_image", "default_jobs", "installed_chf", "plan_for",
           "rehearse", "rehearse_lab", "write_outputs"]

SCHEMA = 1
Json = dict[str, Any]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RehearsalPlan:
    """Which rigs take the image when, and what is measured around it.

    Attributes:
        pilot: rig names of the pilot group (SECMP0024 2.3).
        safe_launch: rig names of the safe launch group (2.1: the eligible rest).
        batch_size: CHs per safe-launch batch (2.4; the lab's ``batch_min_size`` is 1).
        jobs: per rig name, the job specs (without ``rig``) run before and after.
        jobs_per_rig: how many times each rig's job specs run on each side.
        upgrade_timeout_s: host seconds to wait for a rig's devices after its upgrade.
        job_timeout_s: host seconds one job may take.
    """

    pilot: tuple[str, ...]
    safe_launch: tuple[str, ...]
    batch_size: int = 1
    jobs: Mapping[str, Sequence[Json]] = field(default_factory=dict)
    jobs_per_rig: int = 1
    upgrade_timeout_s: float = 600.0
    job_timeout_s: float = 600.0

    @property
    def rigs(self) -> tuple[str, ...]:
        """Every rig of the estate, pilot first."""
        return (*self.pilot, *self.safe_launch)


def default_jobs(rig: Any) -> list[Json]:
    """The job measured on ``rig`` (a :class:`~hanlab.config.models.RigConfig`): the
    ``meter-reading`` instantaneous reads of its ESME and, if it has one, its GSME (the
    sub-GHz GSME when there is one, so that a dual-band rig gives sub-GHz exchanges), three
    repetitions each (``impact.MIN_SAMPLES``). Seed 000: DIT business forum, Meter Reading.
    """
    installed = [d for d in rig.devices if not d.spare]
    variants, devices = [], {}
    if any(d.role.value == "ESME" for d in installed):
        variants.append("electricity-instantaneous")
    gsmes = [d for d in installed if d.role.value == "GSME"]
    if gsmes:
        variants.append("gas-instantaneous")
        gsme = next((d for d in gsmes if d.band is Band.SUB_GHZ), gsmes[0])
        devices["GSME"] = str(gsme.eui64)
    return [{"scenario": "meter-reading", "variants": variants, "devices": devices,
             "repeat": 3, "label": "CH firmware rehearsal"}]


def installed_chf(rig: Any) -> Any:
    """The installed CHF of ``rig`` (a :class:`~hanlab.config.models.RigConfig`): its
    EUI-64 is the CH GUID (SECMP0024 2.2).

    Raises:
        BadInputError: the rig has no installed CHF.
    """
    chf = next((d for d in rig.devices if d.role.value == "CHF" and not d.spare), None)
    if chf is None:
        raise BadInputError(f"rig {rig.name}: has no installed CHF (the CH GUID)")
    return chf


def check_image(lab: Any, plan: RehearsalPlan, image: ChImage) -> None:
    """Refuse an ``image`` some plan rig's CH already runs (as its rig file records it),
    for then it is not eligible (SECMP0024 2.2) and nothing would upgrade.

    Raises:
        BadInputError: naming ``--image`` and the rigs.
    """
    rigs = {r.name: r for r in lab.rigs}
    same = [n for n in plan.rigs if installed_chf(rigs[n]).firmware_version == image.version]
    if same:
        raise BadInputError(f"--image {image.version}: the CH of rig(s) {', '.join(same)} "
                            "already runs it", hint="give the version to upgrade to")


def plan_for(lab: Any, pilot: Sequence[str] = (), *, batch_size: int = 1,
             jobs_per_rig: int = 1, jobs: Mapping[str, Sequence[Json]] | None = None
             ) -> RehearsalPlan:
    """A plan over ``lab``'s (a :class:`~hanlab.config.models.Lab`) emulated rigs:
    ``pilot`` (default: the first emulated rig), the safe launch every other emulated
    rig, :func:`default_jobs` unless ``jobs`` given.

    Raises:
        BadInputError: an unknown rig, a rig that is not emulated (its CH cannot be
            upgraded from here) or without an installed CHF, no rig left for the safe
            launch, ``batch_size`` or ``jobs_per_rig`` below 1.
    """
    from hanlab.runtime.emulation import is_emulated_rig

    rigs = {r.name: r for r in lab.rigs}
    emulated = [r.name for r in lab.rigs if is_emulated_rig(r)]
    if not emulated:
        raise BadInputError(f"lab {lab.config.name}: has no emulated rig to rehearse on")
    for name in pilot:
        if name not in rigs:
            raise BadInputError(f"--pilot {name}: no such rig in lab {lab.config.name}",
                                hint="rigs: " + ", ".join(rigs))
        if name not in emulated:
            raise BadInputError(f"--pilot {name}: not an emulated rig (its CH upgrades "
                                "from the DCC simulator, not from here)")
    chosen = tuple(dict.fromkeys(pilot)) or (emulated[0],)
    rest = tuple(n for n in emulated if n not in chosen)
    if not rest:
        raise BadInputError("every emulated rig is in the pilot: none is left for the "
                            "safe launch", hint="name fewer rigs with --pilot")
    if batch_size < 1 or jobs_per_rig < 1:
        raise BadInputError("batch size and jobs per rig must be at least 1")
    for name in (*chosen, *rest):
        installed_chf(rigs[name])
    per_rig = {n: list((jobs or {}).get(n) or default_jobs(rigs[n])) for n in (*chosen, *rest)}
    return RehearsalPlan(chosen, rest, batch_size, per_rig, jobs_per_rig)


class _Rehearsal:
    """One run of :func:`rehearse` (its state and records)."""

    def __init__(self, lab: Any, image: ChImage, plan: RehearsalPlan,
                 progress: Progress) -> None:
        self.lab, self.image, self.plan, self.say = lab, image, plan, progress
        self.clock = [dt.datetime.now(dt.UTC).replace(microsecond=0)]
        self.timeline: list[Json] = []
        self.pending: list[DeployOrder] = []
        self.rigs: dict[str, Json] = {}
        self.rig_of_guid: dict[str, str] = {}
        self.image_id = image.version
        self.service: RolloutService  # made by rollout()

    # -- records ---------------------------------------------------------------------

    def note(self, phase: str, event: str, text: str | None = None, **detail: Any) -> None:
        self.timeline.append({"seq": len(self.timeline) + 1, "ts_ns": time.time_ns(),
                              "rollout_at": iso(self.clock[0]), "phase": phase,
                              "event": event, **detail})
        if text:
            self.say(text)

    def advance(self, to: dt.datetime) -> None:
        self.clock[0] = max(self.clock[0], to)

    # -- jobs ------------------------------------------------------------------------

    async def _job(self, spec: Json) -> Json:
        record: Json = self.lab.submit(spec)
        deadline = time.monotonic() + self.plan.job_timeout_s
        while record["state"] in ("queued", "running"):
            if time.monotonic() > deadline:
                self.lab.cancel(record["id"])
                raise HanlabError(f"job {record['id']} on {spec['rig']} took longer than "
                                  f"{self.plan.job_timeout_s:g} s")
            await asyncio.sleep(0.1)
            record = self.lab.job(record["id"])
        return record

    async def _rig_jobs(self, rig: str, side: str) -> list[Json]:
        records = []
        for _ in range(self.plan.jobs_per_rig):
            for spec in self.plan.jobs[rig]:
                record = await self._job({**spec, "rig": rig})
                records.append(record)
                exchanges = len(record.get("exchanges") or [])
                self.note(side, "job", f"  {side}: {rig}: job {record['id']} "
                          f"{record['state']} ({exchanges} exchanges)", rig=rig,
                          job_id=record["id"], state=record["state"])
        return records

    async def measure(self, side: str) -> dict[str, list[Json]]:
        self.note(side, "phase", f"{side}: jobs on {', '.join(self.plan.rigs)}")
        results = await asyncio.gather(*(self._rig_jobs(r, side) for r in self.plan.rigs))
        return dict(zip(self.plan.rigs, results, strict=True))

    # -- the estate and the roll-out ---------------------------------------------------

    def estate(self) -> list[ChRecord]:
        users = {u.role: u.eui64.duis for u in self.lab.users}
        importer = users.get("IS") or next(iter(users.values()), None)
        if importer is None:
            raise BadInputError(f"lab {self.lab.name}: has no DUIS User to act as Supplier")
        records = []
        for name in self.plan.rigs:
            rig = self.lab.runtimes[name].rig
            chf = installed_chf(rig)
            has_gas = any(d.role.value == "GSME" and not d.spare for d in rig.devices)
            gas = (users.get("GS") or importer) if has_gas else None
            ch = ChRecord(str(chf.eui64), chf.model or "emulated-ch",
                          chf.firmware_version or "unknown", importer, gas)
            records.append(ch)
            self.rig_of_guid[ch.guid] = name
            self.rigs[name] = {"guid": ch.guid, "device_model": ch.device_model,
                               "suppliers": list(ch.suppliers),
                               "group": "pilot" if name in self.plan.pilot else "safe_launch",
                               "before_jobs": [], "after_jobs": [], "upgrade": None,
                               "outcome": None}
        models = {c.device_model for c in records}
        if len(models) > 1:
            raise BadInputError("the rigs' CHs are of different Device Models ("
                                + ", ".join(sorted(models)) + "): one image is for one model")
        check_image(self.lab.model, self.plan, self.image)
        return records

    async def carry_out(self, phase: str) -> None:
        """Every pending deployment order: the rig's CH upgraded on its HAN, the outcome
        reported to the DCC."""
        orders = list(self.pending)
        self.pending.clear()  # the hook appends to this very list
        for order in orders:
            self.note(phase, "order", rig=self.rig_of_guid[order.guid], guid=order.guid,
                      activation_at=iso(order.activation_at), group=order.group)
        if orders:
            self.advance(max(o.activation_at for o in orders))
        await asyncio.gather(*(self._upgrade(phase, o) for o in orders))

    async def _upgrade(self, phase: str, order: DeployOrder) -> None:
        rig = self.rig_of_guid[order.guid]
        self.say(f"  {phase}: {rig}: CH {order.guid} upgrading to {self.image.describe()}")
        try:
            record = await self.lab.runtimes[rig].upgrade_ch(
                self.image, mode="upgrade", timeout_s=self.plan.upgrade_timeout_s)
        except HanlabError as error:  # one rig's failure is its outcome, not the end
            record = {"error": str(error), "devices": [], "missing": ["(upgrade failed)"]}
        devices = record.get("devices") or []
        back = [d for d in devices if d.get("back")]
        missing = list(record.get("missing") or [])
        success = not missing and "error" not in record
        reason = "" if success else (record.get("error") or "devices not back: "
                                     + ", ".join(map(str, missing)))
        self.rigs[rig]["upgrade"] = record
        self.rigs[rig]["outcome"] = {"success": success, "reason": reason}
        self.note(phase, "upgraded", f"  {phase}: {rig}: devices back {len(back)}/"
                  f"{len(devices)}" + ("" if success else f" ({reason})"), rig=rig,
                  guid=order.guid, back=len(back), devices=len(devices), missing=missing)
        self.service.report_outcome(order.image_id, order.guid, success, reason)
        self.note(phase, "outcome", rig=rig, guid=order.guid, success=success, reason=reason)

    async def rollout(self, chs: list[ChRecord]) -> None:
        plan = self.plan
        config = RolloutConfig(pilot_max_size=len(plan.pilot), batch_min_size=1)
        self.service = RolloutService(chs, config, clock=lambda: self.clock[0],
                                      deploy=self.pending.append)
        for line in config.deviations():
            self.say(f"  override: {line}")
        s, image_id = self.service, self.image_id
        model = chs[0].device_model
        s.notify(image_id, model, self.image.version, release_note=f"RN-{image_id}",
                 severity=Severity.MEDIUM, priority=Priority.NORMAL)
        self.note("notify", "notified", f"notify: {image_id} for {len(chs)} CHs of model "
                  f"{model}", eligible=len(s.rollout(image_id).eligible))

        # the pilot: each CH's first Supplier submits it, a second one instructs it too
        by_guid = {c.guid: c for c in chs}
        pilot = [self.rigs[r]["guid"] for r in plan.pilot]
        activation = self.clock[0] + dt.timedelta(days=1)
        firsts = sorted({by_guid[g].suppliers[0] for g in pilot})
        for supplier in firsts:
            mine = [g for g in pilot if by_guid[g].suppliers[0] == supplier]
            s.submit_pilot(supplier, image_id, mine, activation)
            self.note("pilot", "pilot_submitted", supplier=supplier, guids=mine)
        seconds = sorted({x for g in pilot for x in by_guid[g].suppliers[1:]})
        for supplier in seconds:
            mine = [g for g in pilot if supplier in by_guid[g].suppliers[1:]]
            s.instruct(supplier, image_id, mine, activation, scope="pilot")
            self.note("pilot", "pilot_instructed", supplier=supplier, guids=mine)
        s.start_pilot(image_id)
        self.note("pilot", "pilot_started", f"pilot: {', '.join(plan.pilot)} "
                  f"(activation {iso(activation)})")
        await self.carry_out("pilot")
        state = s.rollout(image_id).state.value
        self.note("pilot", "pilot_ended", f"pilot ended: roll-out {state}", state=state)

        # safe launch instructions, then an incident halts the roll-out
        launch_at = self.clock[0] + dt.timedelta(days=1)
        suppliers = sorted({x for c in chs for x in c.suppliers})
        for supplier in suppliers:
            remaining = s.remaining_safe_launch(supplier, image_id)
            if remaining:
                s.instruct(supplier, image_id, remaining, launch_at)
                self.note("safe_launch", "instructed", supplier=supplier, guids=remaining,
                          activation_at=iso(launch_at))
        incident = s.raise_incident(suppliers[0], image_id, "CH firmware rehearsal: a "
                                    "device was slow to rejoin after the pilot upgrade",
                                    emergency_stop=True)
        self.note("incident", "incident", f"incident {incident.incident_id}: emergency "
                  f"stop -> roll-out {s.rollout(image_id).state.value}",
                  incident_id=incident.incident_id, state=s.rollout(image_id).state.value)
        s.decide(incident.incident_id, Decision.PAUSE)
        self.advance(launch_at)  # the instructed date arrives while paused
        sent = len(s.orders)
        try:
            s.deploy_due(image_id, batch_size=plan.batch_size)
        except RuleViolation as refused:
            self.note("incident", "deploy_refused", f"paused: the deployment due at "
                      f"{iso(launch_at)} is held ({refused.rule.value})",
                      rule=refused.rule.value, state=s.rollout(image_id).state.value)
        if len(s.orders) != sent or self.pending:
            raise HanlabError("the roll-out deployed while paused")  # the service's rule
        s.decide(incident.incident_id, Decision.PROCEED)
        self.note("incident", "proceed", f"DCC decision: proceed -> roll-out "
                  f"{s.rollout(image_id).state.value}", state=s.rollout(image_id).state.value)

        # the safe launch in batches
        batch = 0
        while s.rollout(image_id).state is RolloutState.SAFE_LAUNCH:
            s.deploy_due(image_id, batch_size=plan.batch_size)
            if not self.pending:
                break
            batch += 1
            self.note("safe_launch", "batch", f"safe launch batch {batch}: "
                      + ", ".join(self.rig_of_guid[o.guid] for o in self.pending),
                      batch=batch, guids=[o.guid for o in self.pending])
            await self.carry_out("safe_launch")
        state = s.rollout(image_id).state.value
        self.note("safe_launch", "ended", f"roll-out {state}", state=state)

    def notices(self) -> list[Json]:
        seen: dict[int, Json] = {}
        actors = [*sorted({x for r in self.rigs.values() for x in r["suppliers"]}), "dcc"]
        for actor in actors:
            for n in self.service.notices_for(actor, 0, limit=100_000):
                entry = seen.setdefault(n.seq, {"seq": n.seq, "kind": n.kind, "at": iso(n.at),
                                                "to": [], "body": n.body})
                entry["to"].append(actor)
        return [seen[k] for k in sorted(seen)]


def _upgrade_step(rig: str, upgrade: Json | None) -> list[Json]:
    """The rig's upgrade record as a job-record-shaped ``ch_firmware`` step (what
    :func:`ch_impact` reads the rejoins from)."""
    if not upgrade or not upgrade.get("devices"):
        return []
    return [{"id": f"upgrade:{rig}", "exchanges": [],
             "steps": [{"kind": "ch_firmware", "ch_upgrade": upgrade}]}]


async def rehearse(lab: Any, image: ChImage, plan: RehearsalPlan, *,
                   progress: Progress | None = None) -> Json:
    """Run the rehearsal of ``plan`` on ``lab`` (a running :class:`LabRuntime`, every
    rig's DUIS side ready) for ``image``; the ``REHEARSAL`` record (module docstring).

    Raises:
        BadInputError: a plan rig not in the lab, the rigs' CHs of several models, a CH
            already on ``image``'s version, no DUIS User.
        RuleViolation: the roll-out service refused a step (a bug of the plan).
        HanlabError: a job did not end in time.
    """
    missing = [r for r in plan.rigs if r not in lab.runtimes]
    if missing:
        raise BadInputError(f"no rig {', '.join(missing)} in lab {lab.name}")
    run = _Rehearsal(lab, image, plan, progress or (lambda _text: None))
    chs = run.estate()
    run.note("estate", "estate", f"estate: {len(chs)} CHs: " + ", ".join(
        f"{run.rig_of_guid[c.guid]} {c.guid}{' (split supply)' if c.split else ''}"
        for c in chs), chs=[asdict(c) for c in chs])
    before = await run.measure("before")
    await run.rollout(chs)
    after = await run.measure("after")
    per_rig: dict[str, Json] = {}
    for rig in plan.rigs:
        run.rigs[rig]["before_jobs"] = [r["id"] for r in before[rig]]
        run.rigs[rig]["after_jobs"] = [r["id"] for r in after[rig]]
        per_rig[rig] = ch_impact(before[rig], after[rig] + _upgrade_step(
            rig, run.rigs[rig]["upgrade"]))
    impact = ch_impact([r for rig in plan.rigs for r in before[rig]],
                       [r for rig in plan.rigs for r in after[rig]]
                       + [x for rig in plan.rigs
                          for x in _upgrade_step(rig, run.rigs[rig]["upgrade"])])
    bands = sorted({row["band"] for row in impact["timings"]})
    run.note("impact", "impact", f"impact: {len(impact['timings'])} timing groups over "
             f"bands {', '.join(bands) or '-'}", bands=bands)
    return {"schema": SCHEMA, "image": image.model_dump(), "image_id": run.image_id,
            "plan": {"pilot": list(plan.pilot), "safe_launch": list(plan.safe_launch),
                     "batch_size": plan.batch_size, "jobs_per_rig": plan.jobs_per_rig,
                     "jobs": {k: list(v) for k, v in plan.jobs.items()}},
            "config_deviations": run.service.config.deviations(), "rigs": run.rigs,
            "timeline": run.timeline, "notices": run.notices(),
            "orders": [{**asdict(o), "activation_at": iso(o.activation_at)}
                       for o in run.service.orders],
            "impact": impact, "impact_per_rig": per_rig,
            "job_records": [r for side in (before, after) for rig in plan.rigs
                            for r in side[rig]]}


def write_outputs(result: Mapping[str, Any], out: Path) -> list[Path]:
    """Write ``REHEARSAL`` to ``out``: ``rehearsal.json`` (everything but the full job
    records, the timeline included), ``impact.json`` and ``impact.html`` (all rigs),
    ``impact-<rig>.html`` per rig (:func:`hanlab.reports.impact_html.render_impact_report`)
    and ``report.html``, the campaign report of the jobs with the impact as its
    ``ch_impact`` section; the paths written.

    Raises:
        BadInputError: ``out`` cannot be written.
    """
    from hanlab.firmware.impact import impact_json
    from hanlab.reports.assemble import data_from_job_records
    from hanlab.reports.html import render_campaign_report
    from hanlab.reports.impact_html import render_impact_report

    records = list(result.get("job_records") or [])
    kept = {k: v for k, v in result.items() if k != "job_records"}
    files = {"rehearsal.json": json.dumps(kept, indent=2) + "\n",
             "impact.json": impact_json(result["impact"]),
             "impact.html": render_impact_report(result["impact"])}
    if records:
        data = dict(data_from_job_records(
            [(out.absolute(), r) for r in records], campaign_id=f"rehearsal-{kept['image_id']}",
            name=f"CH firmware rehearsal of {kept['image_id']}"))
        data["ch_impact"] = result["impact"]
        files["report.html"] = render_campaign_report(data)
    for rig, impact in result["impact_per_rig"].items():
        files[f"impact-{rig}.html"] = render_impact_report(impact)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            written.append(out / name)
    except OSError as error:
        raise BadInputError(f"{out}: cannot write the rehearsal's records: {error}") from None
    return written


async def rehearse_lab(lab: Any, image: ChImage, plan: RehearsalPlan, out: Path, *,
                       emulation: Any = None, progress: Progress | None = None) -> Json:
    """Start ``lab`` (a :class:`~hanlab.config.models.Lab`) in this process, its records
    under ``out`` (as :func:`hanlab.campaign.links.rig_links` runs a campaign's rigs),
    :func:`rehearse` on it and stop it; the ``REHEARSAL`` record.

    Raises:
        HanlabError: a rig's DUIS side did not start; as :func:`rehearse`.
    """
    from hanlab.campaign.links import rig_links
    from hanlab.runtime.emulation import EmulationSettings
    from hanlab.runtime.lab import open_lab_store

    check_image(lab, plan, image)
    store = open_lab_store(lab, out)
    try:
        async with rig_links(lab, list(plan.rigs), mode="in-process", store=store, out=out,
                             emulation=emulation or EmulationSettings()) as links:
            runtime = links[plan.rigs[0]].runtime
            return await rehearse(runtime, image, plan, progress=progress)
    finally:
        store.close()
