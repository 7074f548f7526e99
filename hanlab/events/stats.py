"""Live statistics of one rig: per sniffer frames, bytes, FCS errors and drops.

Every ``interval_s`` (1 s by default) it publishes one ``stats`` :class:`BusEvent` per
sniffer (MQTT kind ``stats``) with cumulative counts and the rate over the last interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hanlab.events.bus import BusEvent, EventBus
from hanlab.frames import Frame, batch_counts


@dataclass(slots=True)
class SnifferCounts:
    """Cumulative counts of one sniffer."""

    frames: int = 0
    bytes: int = 0
    fcs_errors: int = 0
    last_ts_ns: int = 0
    frames_at_last_report: int = 0


class LiveStats:
    """Counts a rig's frames as they are published and reports them once per ``interval_s``.

    The rig's publisher calls :meth:`add` for every batch it puts on the bus (counting is
    a few operations per batch, cheaper than a queue hop); :meth:`run` publishes ``stats``
    events on the bus, and the owner calls :meth:`report` once more at stop.

    Args:
        bus: where ``stats`` events are published.
        sniffer_ids: sniffers to report even before their first frame.
        interval_s: reporting period in seconds.
        on_report: optional callback per report (e.g. the console display).
    """

    def __init__(
        self,
        bus: EventBus,
        sniffer_ids: list[str],
        interval_s: float = 1.0,
        on_report: Callable[[dict[str, SnifferCounts]], None] | None = None,
    ) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self.counts: dict[str, SnifferCounts] = {sid: SnifferCounts() for sid in sniffer_ids}
        self.on_report = on_report
        #: frames/s of each sniffer over the last reporting period
        self.rates: dict[str, float] = {}
        self._last_report = time.monotonic()

    def add(self, batch: list[Frame]) -> None:
        """Count one batch (all frames of one sniffer)."""
        sid = batch[0].sniffer_id
        c = self.counts.get(sid)
        if c is None:
            c = self.counts[sid] = SnifferCounts()
        octets, fcs_errors = batch_counts(batch)  # compiled: a native loop
        c.frames += len(batch)
        c.bytes += octets
        c.fcs_errors += fcs_errors
        c.last_ts_ns = batch[-1].ts_ns

    def snapshot(self, sniffer_id: str, elapsed_s: float) -> dict[str, Any]:
        """The ``stats`` payload of one sniffer."""
        c = self.counts[sniffer_id]
        drops = self.bus.dropped_frames()
        rate = (c.frames - c.frames_at_last_report) / elapsed_s if elapsed_s > 0 else 0.0
        return {
            "sniffer": sniffer_id,
            "frames": c.frames,
            "bytes": c.bytes,
            "fcs_errors": c.fcs_errors,
            "drops": drops.get(sniffer_id, 0),
            "frames_per_s": round(rate, 1),
            "last_frame_ts_ns": c.last_ts_ns,
        }

    def report(self, elapsed_s: float | None = None) -> None:
        """Publish one ``stats`` event per sniffer (rate over ``elapsed_s``, default: since
        the previous report)."""
        now = time.monotonic()
        if elapsed_s is None:
            elapsed_s = now - self._last_report
        self._last_report = now
        for sid in self.counts:
            payload = self.snapshot(sid, elapsed_s)
            self.rates[sid] = payload["frames_per_s"]
            self.bus.publish_nowait(BusEvent("stats", payload))
            self.counts[sid].frames_at_last_report = self.counts[sid].frames
        if self.on_report is not None:
            self.on_report(self.counts)

    async def run(self) -> None:
        """Report every ``interval_s`` until cancelled (the owner reports once more at stop)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - last)))
            now = time.monotonic()
            self.report(now - last)
            last = now
