"""Running a campaign: a plan's jobs on the daemons that own the rigs (or the lab runtime
started in this process), one job at a time per rig, rigs in parallel (issue 10, item 3).

**The state lives in the results store**, never only in this process
(:mod:`hanlab.store.schema` ``campaigns``, ``campaign_jobs``, ``campaign_devices``). A
planned job goes ``pending`` → ``submitting`` (written before the job is submitted, with
the job's label ``campaign:<id>:<seq>``) → ``submitted`` (its job id written) → ``done``
(``result``: the job's final state) or ``skipped`` (``detail``: why). After a ``kill -9``
of the campaign process or of the daemon, :meth:`CampaignRunner.run` goes on from there:

* ``submitted``: the job is followed again (a daemon that was killed marks it
  ``interrupted`` when it restarts);
* ``submitting``: the job submitted under its label, if the daemon got it, is adopted,
  else it is submitted; so no job is submitted twice;
* a job that ended ``interrupted`` is kept as it is (an attempt) and the planned job
  runs again whole, as a new job; a finished job never runs again.

**Suspension** (seed 000 "Suspension Criteria and Resumption Requirement"): a device
(not a CHF/GPF) that leaves ``no_response_srs`` consecutive SRs without a response (the
step outcome ``timeout``, counted across jobs), or to which a failed
install-and-commission job's failed step went, is suspended; its remaining jobs are
skipped with the reason, the other devices' go on. :func:`resume_device` lifts it.

**Stop rules** and the **window** of the plan (:mod:`hanlab.campaign.plan`): outside
the window no job starts (the campaign says it waits); a stop rule met skips every job
not started, with the rule as the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from hanlab.campaign.plan import DEVICE_ROLES_CH, LoadedPlan, Plan, PlannedJob
from hanlab.errors import BadInputError, HanlabError
from hanlab.runtime.service import NotFoundError
from hanlab.store import ResultsStore, StoreUnavailableError
from hanlab.store import schema as t

__all__ = ["CampaignRunner", "RigLink", "create_campaign", "new_campaign_id",
           "resume_device"]

Row = dict[str, Any]
FINAL_JOB_STATES: Final = frozenset({"passed", "failed", "cancelled", "interrupted",
                                     "error"})
FAILED: Final = frozenset({"failed", "error"})
#: a campaign whose owner wrote no heartbeat for this long is taken over (s)
STALE_OWNER_S: Final = 30.0


class RigLink(Protocol):
    """How a campaign reaches the service running a rig (a daemon's API or the lab
    runtime in this process)."""

    async def submit(self, spec: Row) -> Row:
        """Queue a job; its JOB. Raises HanlabError if the service is away."""
        ...

    async def job(self, job_id: str) -> Row:
        """A job's JOB. Raises NotFoundError, or HanlabError if the service is away."""
        ...


def new_campaign_id(now_ns: int | None = None) -> str:
    """``c-<UTC yyyymmddThhmmss>-<6 hex>``."""
    when = dt.datetime.fromtimestamp((now_ns or time.time_ns()) / 1e9, dt.UTC)
    return f"c-{when:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_campaign(store: ResultsStore, loaded: LoadedPlan, jobs: list[PlannedJob],
                    options: Row) -> str:
    """Write a new campaign (its plan, lines, planned jobs and device records) to the
    store; its id.

    Args:
        options: how it runs (``mode``: ``daemon`` or ``in-process``; ``time_scale``,
            ``tags``, ``limit``, ``ignore_window``), kept with it for ``resume``.
    """
    campaign_id = new_campaign_id()
    now = time.time_ns()
    plan = loaded.plan
    store.put_campaign({
        "id": campaign_id, "name": plan.name, "plan_file": str(loaded.path.absolute()),
        "plan": plan.model_dump(mode="json"), "lab": loaded.lab.config.name,
        "options": {**options, "lab_file": str(loaded.lab_file.absolute())},
        "state": "pending", "detail": "", "created_ns": now, "started_ns": None,
        "ended_ns": None, "owner": "", "heartbeat_ns": None})
    from hanlab.config.loader import line_of

    store.put_campaign_lines([
        {"campaign_id": campaign_id, "line_index": i,
         "file_line": line_of(loaded.node, ("lines", i)),
         "name": line.name or f"line {i + 1}", "line": line.model_dump(mode="json")}
        for i, line in enumerate(plan.lines)])
    rigs = {r.name: r for r in loaded.lab.rigs}
    for name in sorted({j.rig for j in jobs}):
        rig = rigs[name]
        for device in rig.devices:
            if device.spare:  # the variants' to consume, not a selected device (DIT.EX.3)
                continue
            store.put_campaign_device({
                "campaign_id": campaign_id, "rig": name, "eui64": device.eui64,
                "role": device.role.value, "band": device.band.value,
                "ch_variant": rig.ch_variant.value, "record": device.record(),
                "suspended": False, "suspended_reason": "", "suspended_ns": None,
                "no_response_streak": 0})
    for job in jobs:
        store.put_campaign_job({
            "campaign_id": campaign_id, "seq": job.seq, "line_index": job.line_index,
            "rig": job.rig, "scenario": job.scenario, "variant": job.variant,
            "devices": job.devices, "involved": job.involved, "repeat": job.repeat,
            "estimate_s": job.estimate_s, "state": "skipped" if job.skip else "pending",
            "result": None, "job_id": None, "attempts": [], "detail": job.skip,
            "updated_ns": now})
    return campaign_id


def load_campaign(store: ResultsStore, campaign_id: str) -> Row:
    """The ``campaigns`` row. Raises NotFoundError."""
    rows = store.rows(t.campaigns, id=campaign_id)
    if not rows:
        raise NotFoundError(f"no campaign {campaign_id!r} in results store {store.url}",
                            hint="hanlab campaign status lists them")
    return rows[0]


def resume_device(store: ResultsStore, campaign_id: str, eui64: str,
                  rig: str | None = None) -> list[int]:
    """Lift the suspension of a device (seed 000: "resumption of testing can commence
    once a fix has been identified"): its jobs skipped for it become pending again (run
    them with ``hanlab campaign resume``). The seqs made pending.

    Raises:
        NotFoundError: no such campaign or device.
        BadInputError: the device is not suspended.
    """
    from hanlab.config.models import normalise_eui64

    load_campaign(store, campaign_id)
    try:
        eui = normalise_eui64(eui64)
    except ValueError as error:
        raise BadInputError(f"DEVICE: {error}") from None
    devices = [d for d in store.rows(t.campaign_devices, campaign_id=campaign_id)
               if d["eui64"] == eui and (rig is None or d["rig"] == rig)]
    if not devices:
        raise NotFoundError(f"campaign {campaign_id} has no device {eui}")
    if not any(d["suspended"] for d in devices):
        raise BadInputError(f"device {eui} is not suspended in campaign {campaign_id}")
    rigs = {d["rig"] for d in devices}
    for device in devices:
        store.put_campaign_device({**device, "suspended": False, "suspended_reason": "",
                                   "suspended_ns": None, "no_response_streak": 0})
    still = {(d["rig"], d["eui64"]) for d in store.rows(t.campaign_devices,
                                                       campaign_id=campaign_id)
             if d["suspended"]}
    reopened = []
    for job in store.rows(t.campaign_jobs, campaign_id=campaign_id):
        if (job["state"] == "skipped" and job["rig"] in rigs and eui in job["involved"]
                and job["detail"].startswith("device ")
                and not any((job["rig"], e) in still for e in job["involved"])):
            store.put_campaign_job({**job, "state": "pending", "detail": "",
                                    "updated_ns": time.time_ns()})
            reopened.append(job["seq"])
    return reopened


@dataclass
class _Progress:
    failures: int = 0
    consecutive_failures: int = 0
    finished: int = 0
    stop_reason: str = ""
    events: list[str] = field(default_factory=list)


class CampaignRunner:
    """Runs (or resumes) one campaign to its end (see the module docstring).

    Args:
        store: the results store holding the campaign.
        campaign_id: the campaign.
        links: rig name -> how to reach the service running it.
        poll_s: seconds between looks at a running job.
        on_event: called with one line per thing that happened (job finished, device
            suspended, waiting for the window, a daemon away, …).
        ignore_window: start jobs outside the plan's window.
        now: the local time (tests).

    Raises:
        BadInputError: another live process runs the campaign.
    """

    def __init__(self, store: ResultsStore, campaign_id: str, links: dict[str, RigLink], *,
                 poll_s: float = 0.2, on_event: Callable[[str], None] | None = None,
                 ignore_window: bool = False,
                 now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.store = store
        self.id = campaign_id
        self.links = links
        self.poll_s = poll_s
        self.on_event = on_event or (lambda line: None)
        self.ignore_window = ignore_window
        self.now = now
        self.campaign = load_campaign(store, campaign_id)
        self.plan = Plan.model_validate(self.campaign["plan"])
        self.jobs = {j["seq"]: j for j in store.rows(t.campaign_jobs,
                                                    campaign_id=campaign_id)}
        self.devices = {(d["rig"], d["eui64"]): d
                        for d in store.rows(t.campaign_devices, campaign_id=campaign_id)}
        self.progress = _Progress()
        done = sorted((j for j in self.jobs.values() if j["state"] == "done"),
                      key=lambda j: j["updated_ns"])
        for job in done:
            self._count(job["result"])
        self._check_owner()

    # -- bookkeeping --------------------------------------------------------------------

    def _check_owner(self) -> None:
        owner = self.campaign["owner"]
        if not owner or owner == _owner() or self.campaign["state"] in ("completed",
                                                                          "stopped"):
            return
        host, _, pid = owner.rpartition(":")
        heartbeat_s = (time.time_ns() - (self.campaign["heartbeat_ns"] or 0)) / 1e9
        if host == socket.gethostname():
            from hanlab.daemon.statefile import pid_alive

            if pid.isdigit() and pid_alive(int(pid)) and heartbeat_s < STALE_OWNER_S * 10:
                raise BadInputError(f"campaign {self.id} is being run by pid {pid} on this "
                                    "host", hint="hanlab campaign status shows it")
        elif heartbeat_s < STALE_OWNER_S:
            raise BadInputError(f"campaign {self.id} is being run on host {host}")

    def _put_campaign(self, **update: Any) -> None:
        self.campaign.update(update, owner=_owner(), heartbeat_ns=time.time_ns())
        self.store.put_campaign(self.campaign)

    def _put_job(self, job: Row, **update: Any) -> None:
        job.update(update, updated_ns=time.time_ns())
        self.store.put_campaign_job(job)

    def _event(self, line: str) -> None:
        self.progress.events.append(line)
        self.on_event(line)

    def _count(self, result: str | None) -> None:
        self.progress.finished += 1
        if result in FAILED:
            self.progress.failures += 1
            self.progress.consecutive_failures += 1
        else:
            self.progress.consecutive_failures = 0

    def _stop_rule(self) -> str:
        rules = self.plan.stop
        if self.progress.stop_reason:
            return self.progress.stop_reason
        reason = ""
        if rules.max_failures is not None and self.progress.failures >= rules.max_failures:
            reason = f"stop rule: {self.progress.failures} failed jobs (max_failures " \
                     f"{rules.max_failures})"
        elif (rules.max_consecutive_failures is not None
              and self.progress.consecutive_failures >= rules.max_consecutive_failures):
            reason = (f"stop rule: {self.progress.consecutive_failures} failed jobs in a "
                      f"row (max_consecutive_failures {rules.max_consecutive_failures})")
        elif rules.max_duration_s is not None and self.campaign["started_ns"]:
            ran_s = (time.time_ns() - self.campaign["started_ns"]) / 1e9
            if ran_s >= rules.max_duration_s:
                reason = f"stop rule: ran {ran_s:.0f} s (max_duration_s " \
                         f"{rules.max_duration_s:g})"
        self.progress.stop_reason = reason
        return reason

    def _suspended_reason(self, job: Row) -> str:
        for eui in job["involved"]:
            device = self.devices.get((job["rig"], eui))
            if device is not None and device["suspended"]:
                return f"device {eui} ({device['role']}) suspended: " \
                       f"{device['suspended_reason']}"
        return ""

    # -- suspension (seed 000 "Suspension Criteria") ----------------------------------

    def _suspend(self, device: Row, reason: str) -> None:
        device.update(suspended=True, suspended_reason=reason, suspended_ns=time.time_ns())
        self.store.put_campaign_device(device)
        self._event(f"device {device['eui64']} ({device['role']}) on {device['rig']} "
                    f"suspended: {reason}")

    def _judge_devices(self, job: Row, record: Row) -> None:
        rules = self.plan.suspension
        changed: dict[tuple[str, str], Row] = {}
        for step in record.get("steps", []):
            eui = step.get("target_eui64")
            device = self.devices.get((job["rig"], eui or ""))
            if step.get("kind") != "sr" or device is None or step.get("status") == "skipped":
                continue
            if device["role"] in DEVICE_ROLES_CH or device["suspended"]:
                continue
            if step.get("outcome") == "timeout" and not step.get("response_code"):
                device["no_response_streak"] += 1
                if device["no_response_streak"] >= rules.no_response_srs:
                    self._suspend(device, f"{device['no_response_streak']} consecutive SRs "
                                  f"without a response (last: SR {step.get('sr_variant')} "
                                  f"in job {record['id']})")
            elif step.get("response_code"):
                device["no_response_streak"] = 0
            changed[(job["rig"], device["eui64"])] = device
        if (rules.install_and_commission and record.get("scenario") == "install-and-commission"
                and record.get("state") == "failed"):
            for step in record.get("steps", []):
                device = self.devices.get((job["rig"], step.get("target_eui64") or ""))
                if (step.get("status") == "failed" and not step.get("optional")
                        and device is not None and device["role"] not in DEVICE_ROLES_CH
                        and not device["suspended"]):
                    self._suspend(device, f"install and commission failed (job "
                                  f"{record['id']}, step {step.get('index')} SR "
                                  f"{step.get('sr_variant')}: {step.get('outcome')})")
        for device in changed.values():
            self.store.put_campaign_device(device)

    # -- running ----------------------------------------------------------------------

    async def run(self) -> Row:
        """Run every job not finished; the campaign row at the end (``state``:
        ``completed``, or ``stopped`` by a stop rule)."""
        if self.campaign["state"] == "completed":
            return self.campaign
        self._put_campaign(state="running", detail="",
                           started_ns=self.campaign["started_ns"] or time.time_ns())
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"campaign-{self.id}")
        try:
            rigs = sorted({j["rig"] for j in self.jobs.values()})
            await asyncio.gather(*(self._rig_loop(rig) for rig in rigs))
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        stopped = self.progress.stop_reason
        self._put_campaign(state="stopped" if stopped else "completed", detail=stopped,
                           ended_ns=time.time_ns())
        with contextlib.suppress(StoreUnavailableError):
            self.store.flush()
        return self.campaign

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self._put_campaign()
            if self.store.degraded:
                with contextlib.suppress(StoreUnavailableError):
                    self.store.flush()

    def _next(self, rig: str) -> Row | None:
        for seq in sorted(self.jobs):
            job = self.jobs[seq]
            if job["rig"] == rig and job["state"] in ("pending", "submitting", "submitted"):
                return job
        return None

    async def _rig_loop(self, rig: str) -> None:
        while (job := self._next(rig)) is not None:
            if job["state"] == "pending":
                reason = self._stop_rule() or self._suspended_reason(job)
                if reason:
                    self._put_job(job, state="skipped", detail=reason)
                    self._event(f"skipped #{job['seq']} {rig} {job['scenario']}/"
                                f"{job['variant']}: {reason}")
                    continue
                if not await self._window_open():
                    continue
            record = await self._run_one(rig, job)
            if record is None:
                continue
            if record["state"] == "interrupted":
                self._put_job(job, state="pending", job_id=None,
                              detail=f"attempt {record['id']} interrupted: rerun whole")
                self._event(f"rerun #{job['seq']} {rig} {job['scenario']}/{job['variant']}:"
                            f" job {record['id']} was interrupted")
                continue
            self._judge_devices(job, record)
            self._put_job(job, state="done", result=record["state"], detail=record["detail"])
            self._count(record["state"])
            self._event(self._describe(job, record))

    def _describe(self, job: Row, record: Row) -> str:
        took = ((record["ended_ns"] or 0) - (record["started_ns"] or record["ended_ns"] or 0))
        devices = " ".join(f"{r}={e[-5:]}" for r, e in job["devices"].items())
        done = sum(1 for j in self.jobs.values() if j["state"] in ("done", "skipped"))
        return (f"[{done}/{len(self.jobs)}] {record['state']:<11} {job['rig']} "
                f"{job['scenario']}/{job['variant']} {devices} ({took / 1e9:.1f} s, job "
                f"{record['id']})").replace("  ", " ")

    async def _window_open(self) -> bool:
        window = self.plan.window
        if window is None or self.ignore_window:
            return True
        wait_s = window.seconds_until_open(self.now())
        if wait_s <= 0:
            if self.campaign["state"] == "waiting":
                self._put_campaign(state="running", detail="")
            return True
        if self.campaign["state"] != "waiting":
            self._put_campaign(state="waiting", detail=f"outside the window "
                               f"{window.start}-{window.stop}: next job in {wait_s:.0f} s")
            self._event(f"waiting {wait_s:.0f} s for the window {window.start}-{window.stop}")
        await asyncio.sleep(min(wait_s, 30.0))
        return False

    def _label(self, job: Row) -> str:
        return f"campaign:{self.id}:{job['seq']}"

    async def _run_one(self, rig: str, job: Row) -> Row | None:
        """Submit (or adopt) the job and follow it to its end; its final record, or
        ``None`` to look at the planned job again (the service went away)."""
        link = self.links[rig]
        if job["state"] == "submitting":
            adopted = self._adopt(job)
            if adopted is not None:
                self._put_job(job, state="submitted", job_id=adopted)
        if job["state"] in ("pending", "submitting"):
            self._put_job(job, state="submitting")
            spec = {"rig": rig, "scenario": job["scenario"], "variants": [job["variant"]],
                    "devices": job["devices"], "repeat": job["repeat"],
                    "include_optional": self._line_optional(job), "label": self._label(job),
                    "wait": True}
            try:
                submitted = await link.submit(spec)
            except BadInputError as error:
                self._put_job(job, state="done", result="error", detail=str(error))
                self._count("error")
                self._event(f"refused #{job['seq']} {rig}: {error}")
                return None
            except HanlabError as error:
                self._event(f"{rig}: cannot submit now ({error}); retrying")
                await asyncio.sleep(1.0)
                return None
            self._put_job(job, state="submitted", job_id=submitted["id"],
                          attempts=[*job["attempts"], submitted["id"]])
        return await self._follow(rig, job)

    def _line_optional(self, job: Row) -> bool:
        return self.plan.lines[job["line_index"]].include_optional

    def _adopt(self, job: Row) -> str | None:
        """The job the service got under this planned job's label, if any (a kill
        between submitting and writing its id)."""
        try:
            found = self.store.jobs(label=self._label(job))
        except StoreUnavailableError:
            return None
        fresh = [record for record, _ in found if record["id"] not in job["attempts"]]
        if fresh:
            job["attempts"] = [*job["attempts"], fresh[-1]["id"]]
            return str(fresh[-1]["id"])
        return None

    async def _follow(self, rig: str, job: Row) -> Row | None:
        link = self.links[rig]
        job_id = job["job_id"]
        away_since: float | None = None
        while True:
            try:
                record = await link.job(job_id)
            except NotFoundError:
                self._put_job(job, state="pending", job_id=None,
                              detail=f"job {job_id} is unknown to the rig's service: rerun")
                return None
            except HanlabError as error:
                if away_since is None:
                    away_since = time.monotonic()
                    self._event(f"{rig}: its service is away ({error}); waiting")
                await asyncio.sleep(1.0)
                continue
            if away_since is not None:
                self._event(f"{rig}: its service is back")
                away_since = None
            if record["state"] in FINAL_JOB_STATES:
                return record
            await asyncio.sleep(self.poll_s)
