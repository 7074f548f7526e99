"""The in-process event bus of one rig: sources publish, sinks consume from bounded queues.

Items on the bus are a :data:`~hanlab.frames.FrameBatch` (a list of frames from one source),
a :class:`~hanlab.sources.base.SourceEvent`, or a :class:`BusEvent` (stats, status and
later kinds such as exchanges). Data flows one way: sources → bus → sinks.

A slow sink never blocks a live source: :meth:`EventBus.publish_nowait` drops what a full
queue cannot take and counts it per sink and per sniffer. Replay from a file may instead
use :meth:`EventBus.publish`, which waits for room (no frame of a file is ever dropped).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hanlab.frames import FrameBatch
from hanlab.sources.base import SourceEvent


@dataclass(frozen=True, slots=True)
class BusEvent:
    """A non-frame event for the sinks, published on MQTT as ``kind``.

    Attributes:
        kind: MQTT topic kind (``stats``, ``status``, ``energy`` …).
        payload: JSON-serialisable body (without the envelope fields).
        retain: publish as a retained message.
    """

    kind: str
    payload: dict[str, Any]
    retain: bool = False


BusItem = FrameBatch | SourceEvent | BusEvent


class _Closed:
    """Sentinel that ends a subscription."""


CLOSED = _Closed()


@dataclass(eq=False)
class Subscription:
    """One sink's bounded queue and what it dropped.

    Attributes:
        name: the sink's name (for reports).
        frames: whether the sink receives frame batches.
        events: whether the sink receives source and bus events.
        dropped_frames: frames dropped per sniffer id because the queue was full.
        dropped_events: events dropped because the queue was full.
    """

    name: str
    maxsize: int = 1024
    frames: bool = True
    events: bool = True
    dropped_frames: Counter[str] = field(default_factory=Counter)
    dropped_events: int = 0

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[BusItem | _Closed] = asyncio.Queue(self.maxsize)

    async def get(self) -> BusItem | _Closed:
        """The next item, or :data:`CLOSED` once the bus is closed and drained."""
        return await self.queue.get()


class EventBus:
    """Fan-out of bus items to every subscription (one bus per rig)."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.closed = False

    @property
    def subscriptions(self) -> list[Subscription]:
        """The current subscriptions, in order of subscription."""
        return list(self._subs)

    def subscribe(
        self, name: str, *, maxsize: int = 1024, frames: bool = True, events: bool = True
    ) -> Subscription:
        """Add a sink's queue of at most ``maxsize`` items."""
        sub = Subscription(name, maxsize, frames, events)
        self._subs.append(sub)
        return sub

    def publish_nowait(self, item: BusItem) -> None:
        """Offer ``item`` to every interested sink; a full queue drops and counts it."""
        is_frames = isinstance(item, list)
        for sub in self._subs:
            if not (sub.frames if is_frames else sub.events):
                continue
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                if is_frames:
                    batch: FrameBatch = item  # type: ignore[assignment]
                    sub.dropped_frames[batch[0].sniffer_id] += len(batch)
                else:
                    sub.dropped_events += 1

    async def publish(self, item: BusItem) -> None:
        """Give ``item`` to every interested sink, waiting for room (backpressure)."""
        is_frames = isinstance(item, list)
        for sub in self._subs:
            if sub.frames if is_frames else sub.events:
                await sub.queue.put(item)

    async def close(self) -> None:
        """End every subscription after the items already queued (waits for room)."""
        if self.closed:
            return
        self.closed = True
        for sub in self._subs:
            await sub.queue.put(CLOSED)

    def dropped_frames(self) -> Counter[str]:
        """Frames dropped per sniffer id, summed over all sinks."""
        total: Counter[str] = Counter()
        for sub in self._subs:
            total.update(sub.dropped_frames)
        return total
