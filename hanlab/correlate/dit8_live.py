"""DIT.8 monitoring live on a rig's bus: a sink feeding :class:`~hanlab.correlate.dit8.Dit8Monitor`
and publishing MQTT events (``hanlab/v1/<lab>/<rig>/dutycycle`` and ``…/agility``,
DESIGN.md Conventions).

Payloads (``schema`` 1):

* ``dutycycle``, one per state change: ``transmitter``, ``ts_ns``, ``old``, ``new``,
  ``duty_cycle_pct``, ``alert_code`` (the GBCS Alert Code a CH raises for it) and
  ``thresholds``; retained so a new subscriber sees the latest change.
* ``agility``, one per move of the CH's sub-GHz channel
  (:meth:`~hanlab.correlate.agility.AgilityEvent.to_dict`).

Between frames the sink lets the monitor's time pass every ``tick_s`` host seconds (the
rig's clock: last frame time + host time elapsed × ``time_scale``), so a fall below a
threshold is published without waiting for the next frame. A frame the monitor cannot
take is counted and skipped; the sink never stops the rig.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from hanlab.correlate.agility import AgilityEvent
from hanlab.correlate.dit8 import Dit8Monitor
from hanlab.correlate.dutycycle import StateChange
from hanlab.events.bus import CLOSED, BusEvent, EventBus, Subscription

log = logging.getLogger(__name__)

__all__ = ["SCHEMA_VERSION", "Dit8Sink"]

SCHEMA_VERSION = 1


class Dit8Sink:
    """The rig's DIT.8 monitor on its bus.

    Args:
        monitor: the monitor (its callbacks are set here).
        time_scale: the rig clock's rate against the host's (emulated rigs).
        tick_s: host seconds between ticks without frames.
    """

    def __init__(self, monitor: Dit8Monitor, *, time_scale: float = 1.0,
                 tick_s: float = 1.0) -> None:
        self.monitor = monitor
        self.time_scale = time_scale
        self.tick_s = tick_s
        self.errors = 0
        self._bus: EventBus | None = None
        self._sub: Subscription | None = None
        self._last_ts_ns = 0
        self._last_host_s = time.monotonic()
        monitor.on_change = self._changed
        monitor.on_agility = self._moved

    def attach(self, bus: EventBus, *, maxsize: int = 20_000) -> Subscription:
        """Subscribe to ``bus``'s frames and publish events on it."""
        self._bus = bus
        self._sub = bus.subscribe("dit8", maxsize=maxsize, events=False)
        return self._sub

    def _publish(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        if self._bus is not None:
            self._bus.publish_nowait(BusEvent(kind, {"schema": SCHEMA_VERSION, **payload},
                                              retain=retain))

    def _changed(self, transmitter: str, change: StateChange) -> None:
        self._publish("dutycycle", {"transmitter": transmitter, **change.to_dict(),
                                    "thresholds": self.monitor.thresholds.to_dict()},
                      retain=True)

    def _moved(self, event: AgilityEvent) -> None:
        self._publish("agility", event.to_dict())

    def duis_line(self, line: dict[str, Any]) -> None:
        """A DUIS log line (alerts join the monitor's moves)."""
        try:
            self.monitor.duis_line(line)
        except Exception:  # a bad line must not reach the DUIS log writer
            self.errors += 1
            log.exception("DIT.8 monitor: DUIS log line skipped")

    def tick(self) -> None:
        """Let the monitor's time pass to the rig's estimated now."""
        if self._last_ts_ns:
            elapsed_s = time.monotonic() - self._last_host_s
            self.monitor.advance(self._last_ts_ns + int(elapsed_s * self.time_scale * 1e9))

    async def run(self) -> None:
        """Consume frames until the bus closes (cancel to stop sooner)."""
        sub = self._sub
        if sub is None:
            raise RuntimeError("Dit8Sink.run before attach")
        while True:
            try:
                item = await asyncio.wait_for(sub.get(), self.tick_s)
            except TimeoutError:
                self.tick()
                continue
            if item is CLOSED:
                return
            if not isinstance(item, list):
                continue
            for frame in item:
                try:
                    self.monitor.feed(frame)
                except Exception:  # one bad frame never takes the rig down
                    self.errors += 1
                    if self.errors <= 10:
                        log.exception("DIT.8 monitor: frame skipped")
            if item:
                self._last_ts_ns = max(self._last_ts_ns, item[-1].ts_ns)
                self._last_host_s = time.monotonic()


def rig_dit8(rig: Any, keyring: Any = None, han: Any = None,
             time_scale: float = 1.0) -> Dit8Sink | None:
    """The DIT.8 sink of a rig with a sub-GHz sniffer, else ``None``.

    Args:
        rig: the :class:`~hanlab.config.models.RigConfig` (its CHF and GPF are the CH).
        keyring: the rig's keys (reads Mgmt_NWK_Update_req), or ``None``.
        han: an emulated rig's :class:`~hanlab.emulator.han.settings.HanSettings`: its
            duty-cycle window and thresholds are the monitor's (else the defaults of
            :class:`~hanlab.correlate.dutycycle.DutyCycleThresholds`).
        time_scale: the rig clock's rate (emulated rigs).
    """
    from hanlab.correlate.dutycycle import DutyCycleThresholds
    from hanlab.frames import Band

    if not any(s.band is Band.SUB_GHZ for s in rig.sniffers):
        return None
    thresholds = DutyCycleThresholds()
    ch = [d.eui64 for d in rig.devices if d.role.value in ("CHF", "GPF")]
    if han is not None:
        cfg = han.duty_cycle
        thresholds = DutyCycleThresholds(cfg.window_s, cfg.limited_pct, cfg.critical_pct,
                                         cfg.regulated_pct)
    return Dit8Sink(Dit8Monitor(thresholds, ch_eui64s=ch, keyring=keyring),
                    time_scale=time_scale)


#: newest duty-cycle samples per transmitter in the API view
VIEW_SAMPLES = 600


def dutycycle_view(sink: Dit8Sink | None) -> dict[str, Any]:
    """The API view of a rig's DIT.8 monitor (:meth:`Dit8Monitor.snapshot` with the newest
    :data:`VIEW_SAMPLES` samples); a rig without one (no sub-GHz sniffer) has no
    transmitters."""
    monitor = sink.monitor if sink is not None else Dit8Monitor()
    return monitor.snapshot(samples=VIEW_SAMPLES)
