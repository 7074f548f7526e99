"""One rig under supervision: its sources, bus, capture sink, live stats and MQTT publisher.

Each sniffer's source runs in its own supervised task (STYLE.md §8): a source that fails
(:class:`~hanlab.errors.SourceError`, an OS error, or any bug) is reported as a ``failed``
source event, restarted with exponential backoff (0.5 s doubling to 30 s), and once it
delivers again a ``gap`` event with the gap's start and end is published (MQTT ``source``
kind, and an Interface Statistics Block in the pcapng). Other sniffers and rigs never
notice. Live sources publish without waiting (a slow sink drops and counts); file sources
(``lossless`` drivers) wait for the sinks instead, so a replay never loses a frame.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlab.capture.sink import CaptureSink
from hanlab.config.models import BrokerConfig, RigConfig, SnifferConfig
from hanlab.daemon.clockcheck import ClockCheck
from hanlab.errors import SourceError
from hanlab.events.bus import EventBus
from hanlab.events.mqtt import MqttPublisher
from hanlab.events.stats import LiveStats
from hanlab.sources import SourceEvent, SourceSpec, driver_class
from hanlab.sources.base import now_ns

if TYPE_CHECKING:
    from hanlab.correlate.live import LiveCorrelator

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass
class RigOptions:
    """How a rig runs.

    Attributes:
        lab: lab name (MQTT topics).
        broker: the broker to publish to, or ``None`` for no MQTT.
        capture_folder: overrides the rig's capture folder when set.
        exit_when_done: stop the rig once every source is exhausted (replay).
        backoff_start_s, backoff_max_s: source restart backoff.
        stats_interval_s: live statistics period.
    """

    lab: str = "lab"
    broker: BrokerConfig | None = None
    capture_folder: Path | None = None
    exit_when_done: bool = False
    backoff_start_s: float = BACKOFF_START_S
    backoff_max_s: float = BACKOFF_MAX_S
    stats_interval_s: float = 1.0


class RigRunner:
    """Runs one rig until :meth:`stop` (or, with ``exit_when_done``, until its sources end).

    Args:
        rig: the rig configuration.
        driver_settings: sniffer id -> validated driver settings.
        options: see :class:`RigOptions`.
        correlator: a live correlator fed from this rig's bus (issue 5: "each SR
            correlated"); it publishes ``exchange`` and ``timings`` on the bus. It is
            drained after the sources stop and before the sinks close.
    """

    def __init__(self, rig: RigConfig, driver_settings: dict[str, Any],
                 options: RigOptions, *, correlator: LiveCorrelator | None = None) -> None:
        self.rig = rig
        self.driver_settings = driver_settings
        self.options = options
        self.bus = EventBus()
        self.stats = LiveStats(self.bus, [s.id for s in rig.sniffers], options.stats_interval_s)
        # cross-sniffer clock check: None unless two sniffers share a channel
        self.clockcheck = ClockCheck.for_rig(rig, self.bus, options.stats_interval_s)
        folder = options.capture_folder or rig.capture.folder
        cap = rig.capture
        self.capture = CaptureSink(
            self.bus.subscribe("capture", maxsize=512),
            folder, rig.name, {s.id: s.description() for s in rig.sniffers},
            int(cap.rotate_size_mb * 1024 * 1024) if cap.rotate_size_mb else None,
            cap.rotate_duration_s, cap.flush_interval_s,
            {s.id: s.band for s in rig.sniffers},
        )
        self.correlator = correlator
        if correlator is not None:
            correlator.attach(self.bus)
        self.mqtt: MqttPublisher | None = None
        if options.broker is not None:
            self.mqtt = MqttPublisher(
                self.bus.subscribe("mqtt", maxsize=10_000, frames=False),
                options.broker, options.lab, rig.name,
                status={"sniffers": [{"id": s.id, "driver": s.driver, "band": s.band.value,
                                      "page": s.page, "channel": s.channel}
                                     for s in rig.sniffers]},
            )
        self.source_counters: dict[str, dict[str, int]] = {}
        self.gaps: list[SourceEvent] = []
        self.damaged: list[SourceEvent] = []
        self._stop = asyncio.Event()

    def report(self, event: SourceEvent) -> None:
        """Put a source event on the bus (never blocks)."""
        if event.kind == "gap":
            self.gaps.append(event)
        elif event.kind == "damaged":
            self.damaged.append(event)
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
                    async for batch in source.batches():
                        if gap_start_ns is not None:
                            self._emit("gap", sniffer.id, gap_start_ns=gap_start_ns,
                                       gap_end_ns=now_ns(), reason=gap_reason)
                            gap_start_ns = None
                        self.stats.add(batch)
                        if observe is not None:
                            observe(batch)
                        if lossless:
                            await self.bus.publish(batch)
                        else:
                            self.bus.publish_nowait(batch)
                        backoff_s = self.options.backoff_start_s
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

    def stop(self) -> None:
        """Ask the rig to stop (sources first, then sinks after draining)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until stopped; always drains and closes the sinks."""
        sinks = [asyncio.create_task(self.capture.run(), name=f"capture-{self.rig.name}")]
        if self.mqtt is not None:
            sinks.append(asyncio.create_task(self.mqtt.run(), name=f"mqtt-{self.rig.name}"))
        stats_task = asyncio.create_task(self.stats.run(), name=f"stats-{self.rig.name}")
        correlate = (asyncio.create_task(self.correlator.run(),
                                         name=f"correlate-{self.rig.name}")
                     if self.correlator is not None else None)
        sources = [asyncio.create_task(self._supervise(s), name=f"source-{s.id}")
                   for s in self.rig.sniffers]
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            if self.options.exit_when_done:
                all_done = asyncio.ensure_future(asyncio.gather(*sources))
                waiting: list[asyncio.Future[object]] = [stop_wait, all_done]  # type: ignore[list-item]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            else:
                await stop_wait
        finally:
            for task in [*sources, stop_wait, stats_task]:
                task.cancel()
            await asyncio.gather(*sources, stop_wait, stats_task, return_exceptions=True)
            if correlate is not None and self.correlator is not None:
                correlate.cancel()  # sources are stopped: take the rest synchronously
                await asyncio.gather(correlate, return_exceptions=True)
                self.correlator.drain()
            self.stats.report()
            await self.bus.close()
            results = await asyncio.gather(*sinks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("rig %s: sink failed: %s", self.rig.name, result)
