"""The cross-sniffer clock check of a rig (issue 6, item 3).

"Where two sniffers hear the same frame, the difference of their aligned times is
reported as a check." A rig with two or more sniffers on the same channel page and
channel gets a :class:`ClockCheck`: the rig runner hands it every batch of those sniffers
(after counting, before publishing), it pairs the identical PSDUs
(:class:`~hanlab.sources.clock.CrossSnifferCheck`) and, once per interval, publishes a
``clock`` :class:`~hanlab.events.bus.BusEvent` (MQTT ``hanlab/v1/<lab>/<rig>/clock``)::

    {"interval_s": 1.0, "window_us": 800.0, "matched": 182,
     "pairs": [{"sniffer_a": "nrf0", "sniffer_b": "nrf1", "page": 0, "channel": 15,
                "matched": 182, "matched_total": 1630, "mean_diff_us": -3.1,
                "abs_diff_p99_us": 9.8, "abs_diff_max_us": 12.0}],
     "sniffers": {"nrf0": {"offset_ns": ..., "drift_ppm": ..., "uncertainty_ns": ...,
                           "ref_sniffer_ns": ..., "pairs": ..., "buckets": ...},
                  "nrf1": {...}}}

``mean_diff_us`` is ``ts_ns(sniffer_a) - ts_ns(sniffer_b)`` averaged over the interval's
matched frames (``None`` when none matched): the difference of the two sniffers'
alignment errors, e.g. of their uncalibrated minimum delays (docs/clock-alignment.md).
``sniffers`` holds each sniffer's clock model where its driver exposes one (a
``ClockAligner`` as ``source.aligner``: the nRF 802.15.4 driver), else ``None``.

Cost: rigs whose sniffers are all on different channels get no check at all (the
runner's hot path gains one ``is None`` test per batch); with a check, a dictionary
look-up per frame and a clock reading per batch. An event is published when a batch
arrives after the interval has elapsed, so a rig with no traffic publishes none.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hanlab.config.models import RigConfig
from hanlab.events.bus import BusEvent, EventBus
from hanlab.frames import FrameBatch
from hanlab.sources.base import FrameSource
from hanlab.sources.clock import ClockAligner, CrossSnifferCheck


class ClockCheck:
    """Pairs the frames of a rig's sniffers that share a channel and publishes ``clock``
    events with the differences of their aligned times (see the module docstring).

    Args:
        bus: the rig's bus, where ``clock`` events go.
        sniffer_ids: the sniffers that share a channel page and channel with another.
        interval_s: seconds between two ``clock`` events.
        check: the pairing (default: 800 µs window, 2 s horizon).
        monotonic_s: clock for the interval, in seconds (injected by tests).
    """

    def __init__(
        self,
        bus: EventBus,
        sniffer_ids: set[str],
        interval_s: float = 1.0,
        *,
        check: CrossSnifferCheck | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.sniffer_ids = sniffer_ids
        self.interval_s = interval_s
        self.check = check or CrossSnifferCheck()
        self._monotonic_s = monotonic_s
        self._sources: dict[str, FrameSource[Any]] = {}
        self._last_s = monotonic_s()
        self.published = 0

    @classmethod
    def for_rig(cls, rig: RigConfig, bus: EventBus, interval_s: float = 1.0) -> ClockCheck | None:
        """The check for ``rig``, or ``None`` when no two of its sniffers share a channel
        page and channel (nothing to compare)."""
        by_channel: defaultdict[tuple[int, int], list[str]] = defaultdict(list)
        for sniffer in rig.sniffers:
            by_channel[sniffer.page, sniffer.channel].append(sniffer.id)
        shared = {sid for ids in by_channel.values() if len(ids) >= 2 for sid in ids}
        return cls(bus, shared, interval_s) if shared else None

    def observer(self, sniffer_id: str, source: FrameSource[Any]
                 ) -> Callable[[FrameBatch], None] | None:
        """What the runner calls with each batch of ``source`` (a new one after every
        restart), or ``None`` if ``sniffer_id`` shares its channel with no other."""
        if sniffer_id not in self.sniffer_ids:
            return None
        self._sources[sniffer_id] = source
        return self.observe

    def observe(self, batch: FrameBatch) -> None:
        """Pair the frames of ``batch``; publish a ``clock`` event once per interval."""
        self.check.observe(batch)
        now_s = self._monotonic_s()
        if now_s - self._last_s >= self.interval_s:
            self.publish(now_s - self._last_s)
            self._last_s = now_s

    def payload(self, interval_s: float) -> dict[str, Any]:
        """The ``clock`` event's body for the interval just ended (resets its figures)."""
        pairs = self.check.take()
        sniffers: dict[str, dict[str, int | float] | None] = {}
        for sid in sorted(self.sniffer_ids):
            aligner = getattr(self._sources.get(sid), "aligner", None)
            if isinstance(aligner, ClockAligner) and aligner.ready:
                sniffers[sid] = aligner.model().as_dict()
            else:
                sniffers[sid] = None
        return {
            "interval_s": round(interval_s, 3),
            "window_us": self.check.window_ns / 1000,
            "matched": sum(int(p["matched"] or 0) for p in pairs),
            "pairs": pairs,
            "sniffers": sniffers,
        }

    def publish(self, interval_s: float) -> None:
        """Put one ``clock`` event on the bus (never blocks)."""
        self.bus.publish_nowait(BusEvent("clock", self.payload(interval_s)))
        self.published += 1
