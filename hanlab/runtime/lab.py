"""The lab runtime behind ``hanlab up``: every rig of a lab as a
:class:`~hanlab.runtime.rig.RigRuntime` under one asyncio loop, the jobs on them, and the
control API (issue 9; DESIGN.md "One lab runtime, jobs on it").

It starts the embedded MQTT broker when the lab configures none, the control API and
dashboard (:mod:`hanlab.daemon.api`; tokens created on first start), writes the state
file through which a CLI on this host finds it, runs one rig runtime per rig (a rig that
crashes is logged and the others keep running) and stops cleanly on SIGINT/SIGTERM: jobs
stop (recorded ``interrupted``), DUIS sides close, sources stop, sinks drain, files close,
each rig's retained status turns ``offline``.

Every rig's runtime has its DUIS side when the lab has a ``duis:`` section, and every
emulated rig has one anyway: a lab without ``duis:`` gets an emulated DCC with two Users
(import supplier ``IS`` 90-B3-D5-1F-30-01-00-00 and gas supplier ``GS``
90-B3-D5-1F-30-02-00-00, the ZAZ1 test PKI's EUI-64s) with one-run signing keys.

:class:`LabRuntime` implements :class:`~hanlab.runtime.service.LabService`, which the
API serves and ``hanlab scenario run --no-daemon`` uses in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlab.config.duis import DuisConfig, DuisUserConfig
from hanlab.config.models import Lab
from hanlab.events.broker import EmbeddedBroker
from hanlab.runtime.emulation import EmulationSettings, ephemeral_user, is_emulated_rig
from hanlab.runtime.rig import RigOptions, RigRuntime
from hanlab.runtime.service import Json, NotFoundError, RigBusyError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_USERS", "LabOptions", "LabRuntime", "open_lab_store"]

DEFAULT_USERS = (
    DuisUserConfig(name="import-supplier", eui64="90-B3-D5-1F-30-01-00-00", role="IS",
                   supplier="old"),
    DuisUserConfig(name="gas-supplier", eui64="90-B3-D5-1F-30-02-00-00", role="GS",
                   supplier="old"),
    DuisUserConfig(name="new-import-supplier", eui64="90-B3-D5-1F-30-03-00-00", role="IS",
                   supplier="new"),
    DuisUserConfig(name="new-gas-supplier", eui64="90-B3-D5-1F-30-04-00-00", role="GS",
                   supplier="new"),
)
"""The Users of a lab with an emulated DCC and no ``duis:`` section: an old and a new
supplier per fuel for Change of Supplier (seed 001: "Two service user simulators"); each
gets an ephemeral signing key (:func:`hanlab.runtime.emulation.ephemeral_user`)."""

if TYPE_CHECKING:  # imported where used: start-up of `hanlab capture` (issue 15)
    from hanlab.duis.client import DuisUser
    from hanlab.runtime.jobs import JobStore
    from hanlab.store import ResultsStore


@dataclass
class LabOptions:
    """How ``hanlab up`` runs a lab.

    Attributes:
        mqtt: publish to MQTT (the lab's broker, or the embedded one).
        out: the lab's output folder: every rig's captures and the ``jobs/`` folder
            (default: the lab file's ``capture_folder``, else ``./captures``).
        exit_when_done: stop once every rig's sources are exhausted (replay labs).
        duration_s: stop after this many seconds, or ``None``.
        emulation: applied to every emulated rig.
        api: serve the control API and dashboard (and write the state file).
        api_port: overrides the lab file's API port (0: any free port).
        jobs: accept jobs (a DUIS side per rig); off for ``hanlab capture``.
        store: the results store to use (a campaign running the lab in-process shares
            its own); default: the lab's (:func:`open_lab_store`).
    """

    mqtt: bool = True
    out: Path | None = None
    exit_when_done: bool = False
    duration_s: float | None = None
    emulation: EmulationSettings = field(default_factory=EmulationSettings)
    api: bool = True
    api_port: int | None = None
    jobs: bool = True
    store: ResultsStore | None = None


def open_lab_store(lab: Lab, out: Path) -> ResultsStore:
    """The lab's results store: the lab file's ``store:`` (PostgreSQL shared by the
    lab's hosts), else SQLite ``<out>/hanlab.db``.

    Raises:
        BadInputError: the database is unreachable (one line; the CLI exits 2).
    """
    from hanlab.store import open_store

    config = lab.config.store
    return open_store(None if config is None else config.url, out,
                      None if config is None else config.spool_folder)


class LabRuntime:
    """Runs every rig of ``lab`` and the jobs on them (see the module docstring).

    Args:
        lab: the loaded lab (rig files loaded and validated once).
        options: see :class:`LabOptions`.

    Raises:
        BadInputError: a User's key file cannot be read; the jobs folder cannot be made.
    """

    def __init__(self, lab: Lab, options: LabOptions | None = None) -> None:
        from hanlab.duis.counters import RequestCounterStore

        self.model = lab
        self.options = options = options or LabOptions()
        self.name = lab.config.name
        self.out = (options.out or lab.config.capture_folder or Path("captures")).absolute()
        broker = lab.config.broker if options.mqtt else None
        self.duis_config = self._duis_config() if options.jobs else None
        self.users: list[DuisUser] = []
        self.store: JobStore | None = None
        self.db: ResultsStore | None = None
        counters = None
        if self.duis_config is not None:
            from hanlab.runtime.jobs import JobStore

            self.users = self._users(self.duis_config)
            self.db = options.store or open_lab_store(lab, self.out)
            self.store = JobStore(self.out / "jobs", self.db,
                                  rigs=[r.name for r in lab.rigs])
            counters = RequestCounterStore(self.duis_config.counter_state_folder
                                           if "counter_state_folder"
                                           in self.duis_config.model_fields_set
                                           else self.out / "duis-counters")
        self.runtimes: dict[str, RigRuntime] = {}
        for index, rig in enumerate(lab.rigs):
            settings = {sid: s for (rname, sid), s in lab.driver_settings.items()
                        if rname == rig.name}
            has_duis = self.duis_config is not None and (
                lab.config.duis is not None or is_emulated_rig(rig))
            self.runtimes[rig.name] = RigRuntime(rig, settings, RigOptions(
                lab=self.name, broker=broker, capture_folder=options.out or
                lab.config.capture_folder, exit_when_done=options.exit_when_done,
                duis=self.duis_config if has_duis else None, users=self.users,
                counters=counters, emulation=options.emulation,
                jobs=self.store if has_duis else None, correlate=options.jobs, index=index))
        self.embedded: EmbeddedBroker | None = (
            EmbeddedBroker.for_config(lab.config.broker) if broker is not None and broker.embedded
            else None)
        self.api_server: Any = None
        self.control_url: str | None = None
        self.tokens_path: Path | None = None
        self.tokens_created = False
        self.state_file: Path | None = None
        self.started_ns = time.time_ns()
        self._stop = asyncio.Event()

    @property
    def runners(self) -> list[RigRuntime]:
        """The rig runtimes in lab order."""
        return list(self.runtimes.values())

    def _duis_config(self) -> DuisConfig | None:
        duis = self.model.config.duis
        if duis is not None:
            return duis
        if any(is_emulated_rig(r) for r in self.model.rigs):
            return DuisConfig(endpoint="emulated", users=list(DEFAULT_USERS))
        return None

    @staticmethod
    def _users(duis: DuisConfig) -> list[DuisUser]:
        users = duis.duis_users()
        if duis.endpoint != "emulated":
            return users
        return [u if u.signing_key is not None
                else ephemeral_user(u.eui64, u.role, supplier=u.supplier) for u in users]

    # -- life cycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every rig to stop."""
        self._stop.set()
        for runtime in self.runtimes.values():
            runtime.stop()

    async def _run_rig(self, runtime: RigRuntime) -> None:
        try:
            await runtime.run()
        except Exception:
            runtime.state = "failed"
            log.exception("rig %s stopped on an error; the other rigs go on", runtime.rig.name)

    async def _start_api(self, stack: contextlib.AsyncExitStack) -> None:
        from hanlab.daemon.api import ApiServer
        from hanlab.daemon.statefile import remove_state, write_state
        from hanlab.daemon.tokens import TokenStore

        config = self.model.config.api
        if self.options.api_port is not None:
            config = config.model_copy(update={"port": self.options.api_port})
        tokens, self.tokens_created = TokenStore.load_or_create(config.tokens_file)
        self.tokens_path = tokens.path
        server = await stack.enter_async_context(ApiServer(self, config, tokens))
        self.api_server = server
        self.control_url = server.url
        for runtime in self.runtimes.values():
            if runtime.mqtt is not None:
                runtime.mqtt.status_fields.update(
                    control_url=server.url, host=socket.gethostname(), pid=os.getpid())
        self.state_file = write_state(lab=self.name, url=server.url,
                                      rigs=list(self.runtimes), tokens_file=tokens.path,
                                      started_ns=self.started_ns)
        stack.callback(remove_state, self.state_file)

    async def run(self, on_start: Callable[[LabRuntime], None] | None = None) -> None:
        """Run until stopped (signal, :meth:`stop`, duration, or every rig done);
        ``on_start`` is called once the broker and API are up and the rigs start."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.embedded is not None:
                    await self.embedded.start()
                    stack.push_async_callback(self.embedded.stop)
                if (self.options.api and self.model.config.api.enabled
                        and self.store is not None):
                    await self._start_api(stack)
                if self.db is not None:
                    flusher = asyncio.create_task(_flush_spool(self.db), name="store-spool")
                    if self.options.store is None:
                        stack.callback(self.db.close)
                    stack.push_async_callback(_cancelled, flusher)
                rigs = [asyncio.create_task(self._run_rig(r), name=f"rig-{r.rig.name}")
                        for r in self.runtimes.values()]
                if on_start is not None:
                    on_start(self)
                timer = (loop.call_later(self.options.duration_s, self.stop)
                         if self.options.duration_s is not None else None)
                try:
                    done: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*rigs))
                    stop_wait: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
                    await asyncio.wait([done, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                    stop_wait.cancel()
                finally:
                    if timer is not None:
                        timer.cancel()
                    self.stop()
                    await asyncio.gather(*rigs, return_exceptions=True)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    # -- LabService -----------------------------------------------------------------------

    def _runtime(self, name: str) -> RigRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise NotFoundError(f"no rig {name!r} in lab {self.name}")
        return runtime

    def lab(self) -> Json:
        """The lab: name, host, control URL, rig names."""
        return {"name": self.name, "host": socket.gethostname(), "pid": os.getpid(),
                "control_url": self.control_url, "started_ns": self.started_ns,
                "rigs": list(self.runtimes),
                "store": None if self.db is None else self.db.url}

    def rigs(self) -> list[Json]:
        """Every rig with its status."""
        return [self.rig(name) for name in self.runtimes]

    def rig(self, name: str) -> Json:
        """One rig. Raises NotFoundError."""
        runtime = self._runtime(name)
        rig = runtime.rig
        return {
            "name": rig.name, "ch_variant": rig.ch_variant.value,
            "description": rig.description, "state": runtime.state,
            "emulated": runtime.emulated, "duis": runtime.accepts_jobs,
            "duis_error": runtime.duis_error,
            "sniffers": runtime.sniffer_views(),
            "devices": [d.record() for d in rig.devices],
            "job": None if runtime.current is None else runtime.current.summary(),
            "queued": len(runtime.queue)}

    def sniffers(self, rig: str) -> list[Json]:
        """The rig's sniffers with counters and gaps. Raises NotFoundError."""
        return self._runtime(rig).sniffer_views()

    def events(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest source events. Raises NotFoundError."""
        events = list(self._runtime(rig).recent_events)[-max(0, limit):] if limit else []
        return [{"kind": e.kind, "sniffer_id": e.sniffer_id, "ts_ns": e.ts_ns,
                 "detail": _jsonable(e.detail)} for e in events]

    def exchanges(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest exchanges. Raises NotFoundError."""
        from hanlab.runtime.jobs import exchange_record

        recent = list(self._runtime(rig).recent_exchanges)[-max(0, limit):] if limit else []
        return [exchange_record(e) for e in recent]

    def timings(self, rig: str) -> Json:
        """The rig's timing summary since start. Raises NotFoundError."""
        from hanlab.correlate.stats import TimingStats

        correlator = self._runtime(rig).correlator
        return (correlator.stats if correlator is not None else TimingStats()).summary()

    def ota(self, rig: str) -> list[Json]:
        """The rig's OTA transfers (see :meth:`LabService.ota`). Raises NotFoundError."""
        correlator = self._runtime(rig).correlator
        return [] if correlator is None else correlator.ota.summaries()

    def dutycycle(self, rig: str) -> Json:
        """The rig's DIT.8 state and history (see :meth:`LabService.dutycycle`)."""
        from hanlab.correlate.dit8_live import dutycycle_view

        return dutycycle_view(self._runtime(rig).dit8)

    def submit(self, spec: Json) -> Json:
        """Queue a job; the new JOB (see :meth:`LabService.submit`)."""
        from hanlab.runtime.jobs import JobRecord, check_spec, parse_spec

        parsed = parse_spec(spec)
        scenario, variants = check_spec(parsed, rigs={n: r.rig for n, r in
                                                      self.runtimes.items()})
        runtime = self.runtimes[parsed.rig]
        if not runtime.accepts_jobs or self.store is None:
            raise RigBusyError(f"rig {parsed.rig} takes no jobs: the lab has no duis: "
                               "section for its (real) sniffers")
        if runtime.state in ("stopped", "failed") or runtime.wait_stopped():
            raise RigBusyError(f"rig {parsed.rig} is {runtime.state}")
        if runtime.duis_error is not None:
            raise RigBusyError(f"rig {parsed.rig}: {runtime.duis_error}")
        down = runtime.sniffers_down() if runtime.started.is_set() else []
        if down and not parsed.wait:
            raise RigBusyError(
                f"rig {parsed.rig}: sniffer(s) {', '.join(down)} are down: "
                + "; ".join(f"{s}: {runtime.sniffer_error.get(s) or 'not started'}"
                            for s in down),
                hint="fix the sniffers, or queue the job anyway with wait")
        steps = sum(len(scenario.steps_of(scenario.variant(v))) for v in variants)
        record = JobRecord.new(parsed, lab=self.name, variants=variants,
                               steps_per_run=steps)
        self.store.add(record)
        runtime.enqueue(record)
        return record.to_dict()

    def rerun(self, job_id: str) -> Json:
        """Queue a new job with the spec of ``job_id`` (see :meth:`LabService.rerun`)."""
        record = self._store().get(job_id)
        new = self.submit(record.spec().model_dump())
        stored = self._store().get(new["id"])
        stored.rerun_of = job_id
        self._store().save(stored)
        return stored.to_dict()

    def _store(self) -> JobStore:
        if self.store is None:
            raise NotFoundError(f"lab {self.name} keeps no jobs")
        return self.store

    def jobs(self, rig: str | None = None, state: str | None = None,
             limit: int = 100) -> list[Json]:
        """Job summaries, newest first."""
        if self.store is None:
            return []
        return [r.summary() for r in self.store.list(rig=rig, state=state, limit=limit)]

    def job(self, job_id: str) -> Json:
        """One job in full. Raises NotFoundError."""
        return self._store().get(job_id).to_dict()

    def cancel(self, job_id: str) -> Json:
        """Cancel a queued or running job; the JOB."""
        record = self._store().get(job_id)
        if not record.active:
            raise RigBusyError(f"job {job_id} already ended ({record.state})")
        self._runtime(record.rig).cancel(record)
        return record.to_dict()

    def captures(self, rig: str) -> list[Json]:
        """The rig's capture files. Raises NotFoundError."""
        runtime = self._runtime(rig)
        out = []
        for band, files in runtime.capture.bands.items():
            for index, path in enumerate(files.files):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                out.append({"name": path.name, "band": band.value,
                            "size_bytes": stat.st_size, "modified_ns": stat.st_mtime_ns,
                            "open": index == len(files.files) - 1
                            and runtime.state == "running"})
        return out

    def capture_path(self, rig: str, name: str) -> Path:
        """The path of one listed capture file (anything else: NotFoundError)."""
        runtime = self._runtime(rig)
        for path in runtime.capture.files:
            if path.name == name:
                return path
        raise NotFoundError(f"rig {rig} has no capture file {name!r}")

    def scenarios(self) -> list[Json]:
        """The scenario library."""
        from hanlab.scenarios.loader import load_library

        return [{"name": s.name, "seed": s.seed, "title": s.title,
                 "variants": [{"id": v.id, "title": v.title, "priority": v.priority}
                              for v in s.variants]}
                for s in load_library().values()]


async def _flush_spool(db: ResultsStore) -> None:
    """Write spooled results back once the database is reachable again."""
    from hanlab.store import StoreUnavailableError

    while True:
        await asyncio.sleep(db.retry_s)
        if db.degraded:
            with contextlib.suppress(StoreUnavailableError):
                db.flush()


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)

