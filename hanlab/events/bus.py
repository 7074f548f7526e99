"""The in-process event bus of one rig: sources publish, sinks consume from bounded queues.

Items on the bus are a :data:`~hanlab.frames.FrameBatch` (a list of frames from one source),
a :class:`~hanlab.sources.base.SourceEvent`, or a :class:`BusEvent` (stats, status and
later kinds such as exchanges). Data flows one way: sources → bus → sinks.

A slow sink never blocks a live source: :meth:`EventBus.publish_nowait` drops what a full
queue cannot take and counts it per sink and per sniffer. Replay from a file may instead
use :meth:`EventBus.publish`, which waits for room (no frame of a file is ever dropped).
Room for that wait is counted in frames as well as items: a file replayed at full speed
keeps at most :data:`LOSSLESS_FRAMES` frames queued per sink, not ``maxsize`` batches of
hundreds of frames each (issue 15: a capture's memory, and the cyclic garbage
collector's work on frames that would otherwise live long enough to reach its oldest
generation).
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

#: frames a sink's queue holds before :meth:`EventBus.publish` waits (a lossless source:
#: file replay). Eight batches of a file source's 512 frames: enough for the source and
#: the sink to take turns without waiting on each other.
LOSSLESS_FRAMES = 4096


class _Closed:
    """Sentinel that ends a subscription."""


CLOSED = _Closed()


class _FrameQueue(asyncio.Queue["BusItem | _Closed"]):
    """An :class:`asyncio.Queue` that also counts the frames of the batches it holds.

    ``_put``/``_get`` are the hooks :class:`asyncio.Queue` subclasses override
    (``PriorityQueue``, ``LifoQueue``): every way in and out goes through them, so the
    sinks keep calling ``get()``/``get_nowait()`` unchanged.
    """

    def __init__(self, maxsize: int, room_frames: int) -> None:
        super().__init__(maxsize)
        #: frames in the batches now queued
        self.frames_queued = 0
        self.room_frames = room_frames
        self._room = asyncio.Event()
        self._room.set()

    def _put(self, item: BusItem | _Closed) -> None:
        super()._put(item)
        if isinstance(item, list):
            self.frames_queued += len(item)
            if self.frames_queued >= self.room_frames:
                self._room.clear()

    def _get(self) -> BusItem | _Closed:
        item = super()._get()
        if isinstance(item, list):
            self.frames_queued -= len(item)
            if self.frames_queued < self.room_frames:
                self._room.set()
        return item

    async def frames_room(self) -> None:
        """Return once fewer than ``room_frames`` frames are queued."""
        while self.frames_queued >= self.room_frames:
            await self._room.wait()


@dataclass(eq=False)
class Subscription:
    """One sink's bounded queue and what it dropped.

    Attributes:
        name: the sink's name (for reports).
        maxsize: most items queued (batches and events).
        frames: whether the sink receives frame batches.
        events: whether the sink receives source and bus events.
        dropped_frames: frames dropped per sniffer id because the queue was full.
        dropped_events: events dropped because the queue was full.
        lossless_frames: frames queued before :meth:`EventBus.publish` waits for the
            sink to take some (never a cause to drop: :meth:`EventBus.publish_nowait`
            only drops on ``maxsize``).
    """

    name: str
    maxsize: int = 1024
    frames: bool = True
    events: bool = True
    dropped_frames: Counter[str] = field(default_factory=Counter)
    dropped_events: int = 0
    lossless_frames: int = LOSSLESS_FRAMES

    def __post_init__(self) -> None:
        self.queue: _FrameQueue = _FrameQueue(self.maxsize, self.lossless_frames)

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
        """Give ``item`` to every interested sink, waiting for room (backpressure): a
        free item slot and, for a batch, fewer than the sink's ``lossless_frames`` frames
        queued."""
        is_frames = isinstance(item, list)
        for sub in self._subs:
            if sub.frames if is_frames else sub.events:
                if is_frames:
                    await sub.queue.frames_room()
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
