"""The rig runtime: the one way a rig runs, real or emulated (issue 9, item 1; DESIGN.md
"One lab runtime, jobs on it").

Per rig, always on::

    sources (one supervised task per sniffer) ─▶ bus ─▶ pcapng per band · MQTT · stats
                                                   └──▶ live correlator ─▶ exchanges, timings
    DUIS client + receiver + DUIS log (rig clock) ───────▲
    job queue: one job at a time (a rig is one HAN) ─ ScenarioRunner steps

Each sniffer's source runs in its own supervised task (STYLE.md §8): a source that fails
(:class:`~hanlab.errors.SourceError`, an OS error, or any bug) is reported as a ``failed``
source event, restarted with exponential backoff (0.5 s doubling to 30 s), and once it
delivers again a ``gap`` event with the gap's start and end is published (MQTT ``source``
kind, and an Interface Statistics Block in the pcapng). Other sniffers and rigs never
notice. Live sources publish without waiting (a slow sink drops and counts); file sources
(``lossless`` drivers) wait for the sinks instead, so a replay never loses a frame.

An emulated rig differs only at the edges (:mod:`hanlab.runtime.emulation`): its sniffers
share an emulated HAN, its correlator knows the keys that HAN derives, its clock is the
HAN's, and with ``duis: endpoint: emulated`` an emulated DCC is its DCC
(:mod:`hanlab.runtime.duis_side`). Nothing downstream knows the difference.

Jobs (:mod:`hanlab.runtime.jobs`): :meth:`RigRuntime.enqueue` queues a record; one worker
runs them in order through a :class:`~hanlab.scenarios.runner.ScenarioRunner` on the
rig's DUIS client, stimulus and live correlator, updating the job's record after every
step (saved, and published as an MQTT ``job`` event). While a job runs on an emulated
rig its traffic generator pauses. Cancel: the running step finishes or times out, the
rest is recorded ``skipped``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlab.capture.sink import CaptureSink
from hanlab.config.duis import DuisConfig
from hanlab.config.models import BrokerConfig, RigConfig, SnifferConfig
from hanlab.correlate.dit8_live import rig_dit8
from hanlab.correlate.exchange import Exchange
from hanlab.correlate.live import LiveCorrelator
from hanlab.daemon.clockcheck import ClockCheck
from hanlab.duis.counters import RequestCounterStore
from hanlab.errors import HanlabError, SourceError
from hanlab.events.bus import BusEvent, EventBus
from hanlab.events.mqtt import MqttPublisher
from hanlab.events.stats import LiveStats
from hanlab.runtime.emulation import (
    REORDER_HOST_S,
    EmulationSettings,
    emulated_driver_settings,
    emulated_keyring,
    han_settings,
    is_emulated_rig,
)
from hanlab.sources import SourceEvent, SourceSpec, driver_class
from hanlab.sources.base import now_ns
from hanlab.zigbee.keyring import Keyring

if TYPE_CHECKING:  # imported where used: start-up of `hanlab capture` (issue 15)
    from hanlab.duis.client import DuisUser
    from hanlab.runtime.jobs import JobRecord, JobStore

log = logging.getLogger(__name__)

__all__ = ["BACKOFF_MAX_S", "BACKOFF_START_S", "RigOptions", "RigRuntime"]

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
#: kept for the API and dashboard
RECENT_EXCHANGES = 200
RECENT_EVENTS = 200
#: host seconds a sink may take to drain at stop
SINK_STOP_S = 10.0


@dataclass
class RigOptions:
    """How a rig runs.

    Attributes:
        lab: lab name (MQTT topics, job records).
        broker: the broker to publish to, or ``None`` for no MQTT.
        capture_folder: overrides the rig's capture folder when set.
        exit_when_done: stop the rig once every source is exhausted (replay).
        backoff_start_s, backoff_max_s: source restart backoff.
        stats_interval_s: live statistics period.
        duis: the lab's ``duis:`` section, or ``None``: no DUIS side (no jobs).
        users: the lab's DUIS Users with their keys (with ``duis``).
        counters: the lab's RequestID counter store (with ``duis``).
        emulation: applied to an emulated rig's HAN.
        jobs: the lab's job store, or ``None``: no jobs.
        status: extra fields of the retained MQTT ``status`` (the control URL).
        correlate: run the live correlator (always in the lab runtime; off only for
            ``hanlab capture`` conversions).
        index: the rig's position in the lab (0, 1, …): with a fixed DUIS receiver
            port P, rig n's receiver listens on P + n (each rig has its own receiver).
    """

    lab: str = "lab"
    broker: BrokerConfig | None = None
    capture_folder: Path | None = None
    exit_when_done: bool = False
    backoff_start_s: float = BACKOFF_START_S
    backoff_max_s: float = BACKOFF_MAX_S
    stats_interval_s: float = 1.0
    duis: DuisConfig | None = None
    users: list[DuisUser] = field(default_factory=list)
    counters: RequestCounterStore | None = None
    emulation: EmulationSettings = field(default_factory=EmulationSettings)
    jobs: JobStore | None = None
    status: dict[str, Any] = field(default_factory=dict)
    correlate: bool = True
    index: int = 0


def rig_keyring(rig: RigConfig) -> Keyring | None:
    """A real rig's keys for its correlator: its secrets file's keyring sections
    (:meth:`Keyring.load` ignores the ``mqtt`` section), or ``None`` without one.

    Raises:
        BadInputError: the secrets file cannot be read or a key entry is invalid.
    """
    return None if rig.secrets is None else Keyring.load(rig.secrets)


class RigRuntime:
    """Runs one rig until :meth:`stop` (or, with ``exit_when_done``, until its sources end).

    Args:
        rig: the rig configuration (loaded and validated once, by the caller).
        driver_settings: sniffer id -> validated driver settings.
        options: see :class:`RigOptions`.

    Attributes:
        bus, stats, capture, correlator, mqtt: the pipeline's parts.
        state: ``starting``, ``running``, ``stopped`` or ``failed``.
        duis: the rig's :class:`~hanlab.runtime.duis_side.RigDuis` while it runs.
    """

    def __init__(self, rig: RigConfig, driver_settings: dict[str, Any],
                 options: RigOptions) -> None:
        self.rig = rig
        self.options = options
        self.emulated = is_emulated_rig(rig)
        self.time_scale = 1.0
        keyring: Keyring | None
        reorder_ns: int | None = None
        han: Any = None
        if self.emulated:
            recipient = next((u.eui64 for u in options.users if u.role == "IS"),
                             options.users[0].eui64 if options.users else None)
            han = han_settings(rig, driver_settings, options.emulation,
                               alert_recipient=recipient)
            driver_settings = emulated_driver_settings(rig, driver_settings, han)
            self.time_scale = float(han.time_scale)
            keyring = emulated_keyring(rig, han) if options.correlate else None
            reorder_ns = int((REORDER_HOST_S * self.time_scale + 0.05) * 1e9)
        else:
            keyring = rig_keyring(rig) if options.correlate else None
        self.driver_settings = driver_settings
        self.bus = EventBus()
        self.stats = LiveStats(self.bus, [s.id for s in rig.sniffers], options.stats_interval_s)
        # cross-sniffer clock check: None unless two sniffers share a channel
        self.clockcheck = ClockCheck.for_rig(rig, self.bus, options.stats_interval_s)
        self.capture_folder = options.capture_folder or rig.capture.folder
        cap = rig.capture
        self.capture = CaptureSink(
            self.bus.subscribe("capture", maxsize=512),
            self.capture_folder, rig.name, {s.id: s.description() for s in rig.sniffers},
            int(cap.rotate_size_mb * 1024 * 1024) if cap.rotate_size_mb else None,
            cap.rotate_duration_s, cap.flush_interval_s,
            {s.id: s.band for s in rig.sniffers},
            retain_days=cap.retain_days, retain_total_mb=cap.retain_total_mb,
        )
        self.correlator: LiveCorrelator | None = None
        self.recent_exchanges: deque[Exchange] = deque(maxlen=RECENT_EXCHANGES)
        if options.correlate:
            kwargs: dict[str, Any] = {} if reorder_ns is None else {"reorder_ns": reorder_ns}
            self.correlator = LiveCorrelator(
                keyring, [s.id for s in rig.sniffers],
                device_roles={d.eui64: d.role.value for d in rig.devices}, **kwargs)
            self.correlator.attach(self.bus)
            self.correlator.on_exchange.append(self.recent_exchanges.append)
        #: DIT.8 duty-cycle and frequency-agility monitor (rigs with a sub-GHz sniffer)
        self.dit8 = rig_dit8(rig, keyring, han, self.time_scale) if options.correlate else None
        if self.dit8 is not None:
            self.dit8.attach(self.bus)
        self.mqtt: MqttPublisher | None = None
        if options.broker is not None:
            self.mqtt = MqttPublisher(
                self.bus.subscribe("mqtt", maxsize=10_000, frames=False),
                options.broker, options.lab, rig.name,
                status={"sniffers": [{"id": s.id, "driver": s.driver, "band": s.band.value,
                                      "page": s.page, "channel": s.channel}
                                     for s in rig.sniffers], **options.status},
            )
        self.source_counters: dict[str, dict[str, int]] = {}
        self.sniffer_state: dict[str, str] = {s.id: "down" for s in rig.sniffers}
        self.sniffer_error: dict[str, str | None] = {s.id: None for s in rig.sniffers}
        self.gaps: list[SourceEvent] = []
        self.damaged: list[SourceEvent] = []
        self.failures: list[SourceEvent] = []
        self.recent_events: deque[SourceEvent] = deque(maxlen=RECENT_EVENTS)
        self.state = "starting"
        self.duis: Any = None  # hanlab.runtime.duis_side.RigDuis while running
        self.duis_error: str | None = None
        self.duis_ready = asyncio.Event()
        self.started = asyncio.Event()
        self.queue: deque[JobRecord] = deque()
        self.current: JobRecord | None = None
        self._job_waiting = asyncio.Event()
        self._current_runner: Any = None
        self._stop = asyncio.Event()
        self.on_source_event: list[Callable[[RigRuntime, SourceEvent], None]] = []

    # -- source supervision -------------------------------------------------------------

    def report(self, event: SourceEvent) -> None:
        """Put a source event on the bus (never blocks)."""
        if event.kind == "gap":
            self.gaps.append(event)
        elif event.kind == "damaged":
            self.damaged.append(event)
        elif event.kind == "failed":
            self.failures.append(event)
        state = {"started": "up", "failed": "down", "stopped": "down",
                 "finished": "finished"}.get(event.kind)
        if state is not None and event.sniffer_id in self.sniffer_state:
            self.sniffer_state[event.sniffer_id] = state
        if event.kind in ("failed", "damaged"):
            self.sniffer_error[event.sniffer_id] = str(event.detail.get("reason", ""))
        self.recent_events.append(event)
        for callback in self.on_source_event:
            callback(self, event)
        self.bus.publish_nowait(event)

    def _emit(self, kind: str, sniffer_id: str, **detail: Any) -> None:
        self.report(SourceEvent(kind, sniffer_id, now_ns(), detail))

    async def _supervise(self, sniffer: SnifferConfig) -> None:
        cls = driver_class(sniffer.driver)
        spec = SourceSpec(sniffer.id, sniffer.band, sniffer.page, sniffer.channel,
                          self.driver_settings[sniffer.id], self.rig.name, self.rig)
        lossless = bool(getattr(cls, "lossless", False))
        backoff_s = self.options.backoff_start_s
        gap_start_ns: int | None = None
        gap_reason = ""
        while True:
            source = cls(spec, self.report)
            observe = self.clockcheck.observer(sniffer.id, source) if self.clockcheck else None
            self.source_counters[sniffer.id] = source.counters
            try:
                async with source:
                    self._emit("started", sniffer.id, driver=sniffer.driver)
                    self.started.set()
                    async for batch in source.batches():
                        if gap_start_ns is not None:
                            self._emit("gap", sniffer.id, gap_start_ns=gap_start_ns,
                                       gap_end_ns=now_ns(), reason=gap_reason)
                            gap_start_ns = None
                        self.stats.add(batch)
                        if observe is not None:
                            observe(batch)
                        backoff_s = self.options.backoff_start_s
                        if lossless:
                            await self.bus.publish(batch)
                        else:
                            self.bus.publish_nowait(batch)
                self._emit("finished", sniffer.id, counters=dict(source.counters))
                return
            except asyncio.CancelledError:
                self._emit("stopped", sniffer.id, counters=dict(source.counters))
                raise
            except (SourceError, OSError) as exc:
                reason = str(exc)
            except Exception as exc:  # a driver bug must not take the rig down
                log.exception("sniffer %s/%s crashed", self.rig.name, sniffer.id)
                reason = f"{type(exc).__name__}: {exc}"
            if gap_start_ns is None:
                gap_start_ns, gap_reason = now_ns(), reason
            self._emit("failed", sniffer.id, reason=reason, retry_in_s=backoff_s)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self.options.backoff_max_s)

    # -- jobs ---------------------------------------------------------------------------

    @property
    def accepts_jobs(self) -> bool:
        """The rig has a DUIS side and a job store."""
        return self.options.duis is not None and self.options.jobs is not None

    def sniffers_down(self) -> list[str]:
        """Sniffers not delivering now (``finished`` replay sources count as up)."""
        return [sid for sid, state in self.sniffer_state.items() if state == "down"]

    def enqueue(self, record: JobRecord) -> None:
        """Queue a job record (already saved in the store) behind the others."""
        self.queue.append(record)
        self._job_waiting.set()
        self.publish_job(record)

    def cancel(self, record: JobRecord) -> None:
        """Cancel a queued job (it never runs) or the running one (after its step)."""
        if record in self.queue:
            self.queue.remove(record)
            record.state = "cancelled"
            record.detail = "cancelled before it started"
            record.ended_ns = time.time_ns()
            self._save(record)
        elif record is self.current and self._current_runner is not None:
            record.detail = "cancel requested: the running step finishes first"
            self._current_runner.cancel()
            self._save(record)

    async def upgrade_ch(self, image: Any, *, mode: str = "upgrade",
                         connect: tuple[Any, ...] = (),
                         timeout_s: float = 600.0) -> dict[str, Any]:
        """Upgrade this rig's CH to ``image`` (:class:`hanlab.firmware.ch_image.ChImage`)
        now, through its DCC, and wait for its devices (the roll-out portal's call;
        :meth:`hanlab.runtime.duis_side.RigDuis.ch_firmware`). Returns the upgrade record.

        Raises:
            HanlabError: the rig's DUIS side is not running; BadInputError: an upgrade is
                under way there.
        """
        if self.duis is None:
            raise HanlabError(f"rig {self.rig.name}: its DUIS side is not running",
                              hint="start the rig (hanlab up) first")
        return dict(await self.duis.ch_firmware(image, mode, list(connect), timeout_s))

    def publish_job(self, record: JobRecord, step: dict[str, Any] | None = None) -> None:
        """An MQTT ``job`` event: the job's summary (and the step just finished)."""
        payload = record.summary()
        if step is not None:
            payload["step"] = step
        self.bus.publish_nowait(BusEvent("job", payload))

    def _save(self, record: JobRecord) -> None:
        if self.options.jobs is not None:
            self.options.jobs.save(record)
        self.publish_job(record)

    async def _job_worker(self) -> None:
        from hanlab.runtime.execute import run_job

        while True:
            while not self.queue:
                self._job_waiting.clear()
                await self._job_waiting.wait()
            record = self.queue.popleft()
            self.current = record
            try:
                await run_job(self, record)
            finally:
                self.current = None
                self._current_runner = None

    async def _duis_and_jobs(self) -> None:
        """Start the DUIS side once the sources run, then serve jobs until cancelled."""
        duis_config = self.options.duis
        if duis_config is None or self.options.counters is None:
            return  # e.g. hanlab capture: no DUIS side, nothing of it imported
        from hanlab.runtime.duis_side import RigDuis

        await self.started.wait()
        log_path = Path(self.capture_folder) / f"{self.rig.name}_duis.jsonl"
        if duis_config.log is not None:
            log_path = duis_config.log.with_name(
                f"{duis_config.log.stem}-{self.rig.name}{duis_config.log.suffix}")
        try:
            side = RigDuis(self.rig, duis_config, users=self.options.users,
                           counters=self.options.counters, log_path=log_path, bus=self.bus,
                           emulated=self.emulated, time_scale=self.time_scale,
                           receiver_port_offset=self.options.index)
            async with side:
                self.duis = side
                if self.correlator is not None and side.log is not None:
                    side.log.sinks.append(self.correlator.duis_line)
                    clock = side.clock_ns
                    if clock is not None:
                        self.correlator.clock_ns = clock
                if self.dit8 is not None and side.log is not None:
                    side.log.sinks.append(self.dit8.duis_line)
                self.duis_ready.set()
                try:
                    if self.options.jobs is not None:
                        await self._job_worker()
                    else:
                        await asyncio.Event().wait()
                finally:
                    self.duis = None
        except HanlabError as error:
            self.duis_error = str(error)
            log.error("rig %s: its DUIS side did not start: %s", self.rig.name, error)
            self.duis_ready.set()
            self._refuse_queue(f"the rig's DUIS side did not start: {error}")

    def _refuse_queue(self, reason: str) -> None:
        while self.queue:
            record = self.queue.popleft()
            record.state = "error"
            record.detail = reason
            record.ended_ns = time.time_ns()
            self._save(record)

    # -- running ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the rig to stop (jobs and DUIS first, sources next, sinks after draining)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until stopped; always drains and closes the sinks."""
        name = self.rig.name
        sinks = [asyncio.create_task(self.capture.run(), name=f"capture-{name}")]
        if self.dit8 is not None:
            sinks.append(asyncio.create_task(self.dit8.run(), name=f"dit8-{name}"))
        if self.mqtt is not None:
            sinks.append(asyncio.create_task(self.mqtt.run(), name=f"mqtt-{name}"))
        stats_task = asyncio.create_task(self.stats.run(), name=f"stats-{name}")
        correlate = (asyncio.create_task(self.correlator.run(), name=f"correlate-{name}")
                     if self.correlator is not None else None)
        sources = [asyncio.create_task(self._supervise(s), name=f"source-{s.id}")
                   for s in self.rig.sniffers]
        duis = asyncio.create_task(self._duis_and_jobs(), name=f"duis-{name}")
        stop_wait = asyncio.create_task(self._stop.wait())
        self.state = "running"
        try:
            if self.options.exit_when_done:
                all_done = asyncio.ensure_future(asyncio.gather(*sources))
                waiting: list[asyncio.Future[object]] = [stop_wait, all_done]  # type: ignore[list-item]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            else:
                await stop_wait
        finally:
            self.state = "stopped"
            duis.cancel()  # the running job is recorded interrupted; DUIS lines end here
            await asyncio.gather(duis, return_exceptions=True)
            self._interrupt_queue()
            for task in [*sources, stop_wait, stats_task]:
                task.cancel()
            await asyncio.gather(*sources, stop_wait, stats_task, return_exceptions=True)
            if correlate is not None and self.correlator is not None:
                correlate.cancel()  # sources are stopped: take the rest synchronously
                await asyncio.gather(correlate, return_exceptions=True)
                self.correlator.drain()
            self.stats.report()
            await self.bus.close()
            # a sink gets SINK_STOP_S to drain; stop never waits longer on it (issue 14)
            _, late = await asyncio.wait(sinks, timeout=SINK_STOP_S)
            for task in late:
                log.error("rig %s: sink %s did not stop within %g s; cancelled", name,
                          task.get_name(), SINK_STOP_S)
                task.cancel()
            results = await asyncio.gather(*sinks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("rig %s: sink failed: %s", name, result)

    def _interrupt_queue(self) -> None:
        while self.queue:
            record = self.queue.popleft()
            record.state = "interrupted"
            record.detail = "the daemon stopped before the job started"
            record.ended_ns = time.time_ns()
            if self.options.jobs is not None:
                self.options.jobs.save(record)

    # -- views (the control API) ----------------------------------------------------------

    def problems(self) -> list[str]:
        """What went wrong on this rig, for the exit summary: a failed capture write,
        frames dropped or clamped at the source, MQTT events lost, malformed frames."""
        out = []
        capture = self.capture
        if capture.failed:
            out.append(f"capture writing failed: {capture.error} ({capture.frames_lost:,} "
                       "frames lost)")
        if capture.frames_skipped:
            out.append(f"{capture.frames_skipped:,} frames the pcapng writer could not encode")
        for sid, counters in self.source_counters.items():
            if counters.get("out_of_range"):
                out.append(f"{sid}: {counters['out_of_range']:,} frames with out-of-range "
                           "fields dropped or clamped")
        if self.mqtt is not None and self.mqtt.dropped:
            out.append(f"{self.mqtt.dropped:,} MQTT events lost while the broker was away")
        if self.correlator is not None:
            malformed = self.correlator.correlator.counts.get("frames_malformed", 0)
            if malformed:
                out.append(f"{malformed:,} frames the correlator could not read (counted, "
                           "skipped)")
        return out

    def sniffer_views(self) -> list[dict[str, Any]]:
        """``SNIFFER`` of every sniffer (:mod:`hanlab.runtime.service`)."""
        drops = self.bus.dropped_frames()
        out = []
        for s in self.rig.sniffers:
            counts = self.stats.counts[s.id]
            out.append({
                "id": s.id, "driver": s.driver, "band": s.band.value, "page": s.page,
                "channel": s.channel, "state": self.sniffer_state[s.id],
                "frames": counts.frames, "frames_per_s": self.stats.rates.get(s.id, 0.0),
                "bytes": counts.bytes, "fcs_errors": counts.fcs_errors,
                "drops": drops.get(s.id, 0),
                "gaps": [{"gap_start_ns": g.detail.get("gap_start_ns"),
                          "gap_end_ns": g.detail.get("gap_end_ns"),
                          "reason": g.detail.get("reason", "")}
                         for g in self.gaps if g.sniffer_id == s.id][-50:],
                "last_error": self.sniffer_error[s.id]})
        return out

    def captures_covering(self, since: dict[str, int]) -> list[Path]:
        """Capture files written since the per-band file counts ``since`` (each band's
        file open then included)."""
        out: list[Path] = []
        for band, files in self.capture.bands.items():
            start = max(0, since.get(band.value, 0) - 1)
            out.extend(files.files[start:])
        return out

    def capture_marks(self) -> dict[str, int]:
        """Per band, how many capture files exist now (see :meth:`captures_covering`)."""
        return {band.value: len(files.files) for band, files in self.capture.bands.items()}

    def wait_stopped(self) -> bool:
        """Whether :meth:`stop` was asked."""
        return self._stop.is_set()

