"""The live correlator: a sink of a rig's bus plus a DUIS-event input (issue 5, "each SR
correlated"; DESIGN.md "One pipeline, live and offline").

:class:`LiveCorrelator` feeds the same :class:`~hanlab.correlate.correlator.Correlator`
that ``hanlab analyse`` feeds, in the same order, so the live exchanges are the offline
ones byte for byte:

* frames come from the rig's bus, one stream per sniffer (rank = the sniffer's position in
  the rig file, which is the order ``hanlab analyse`` is given the per-band captures);
* DUIS events come as the DUIS log lines written (:meth:`duis_line`, the dict
  :class:`hanlab.duis.log.DuisLog` writes), rank 0, ordered by ``ts_ns`` then by writing
  order (what :func:`hanlab.correlate.offline.read_duis_events` does with the file);
* a reorder buffer holds every item until the *watermark* (the lab clock, or the newest
  ``ts_ns`` seen, less ``reorder_ns``) passes it, and then releases the heads of the
  streams smallest ``(ts_ns, rank, position)`` first: exactly ``heapq.merge`` of
  :func:`~hanlab.correlate.events.time_ordered` over the same streams. An item that comes
  after the watermark passed it is fed anyway and counted in ``late_items`` (the output
  may then differ from the offline one: raise ``reorder_ns``).

Exchanges go to ``on_exchange`` callbacks, to :class:`~hanlab.correlate.stats.TimingStats`,
to waiters (:meth:`wait_for`, the scenario runner) and, with a bus, as ``exchange`` events
plus a retained ``timings`` summary every ``timings_interval_s`` and at the end
(:mod:`hanlab.correlate.bus`). OTA Upgrade frames feed :attr:`LiveCorrelator.ota`
(:class:`~hanlab.firmware.live.LiveTransfers`), whose ``ota`` progress events go on the
bus too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hanlab.correlate.bus import exchange_event, timings_event
from hanlab.correlate.correlator import Correlator, CorrelatorSettings
from hanlab.correlate.events import DuisEvent, StreamItem
from hanlab.correlate.exchange import Exchange
from hanlab.correlate.stats import TimingStats
from hanlab.events.bus import CLOSED, EventBus, Subscription
from hanlab.firmware.live import LiveTransfers
from hanlab.frames import Frame
from hanlab.zigbee.frame import DecodedFrame
from hanlab.zigbee.keyring import Keyring

__all__ = ["LiveCorrelator"]

#: reorder window when none is given: 2 s of lab time (a real sniffer's USB and serial
#: latency is tens of ms; the emulated lab's host latency scaled by its time_scale)
DEFAULT_REORDER_NS = 2_000_000_000


class LiveCorrelator:
    """Live correlation of one rig (see the module docstring).

    Args:
        keyring: the rig's keys (``None``: address-and-time level only).
        sniffer_ids: the rig's sniffers in rig-file order (their stream ranks 1, 2, …).
        device_roles: EUI-64 (DUIS form) -> role, from the rig file.
        settings: the correlator's thresholds.
        reorder_ns: how far behind the watermark items are held (ns of lab time).
        clock_ns: the lab clock now (ns since the epoch, the clock frames and DUIS events
            are stamped with), or ``None``: the watermark follows the newest item only.
        flush_interval_s: host seconds between releases while running.
        timings_interval_s: host seconds between ``timings`` events while running.
        targets: target response times for :class:`TimingStats`.

    Use: :meth:`attach` to a bus before its sources start, ``run()`` as a sink task, and
    :meth:`drain` after the sources stopped and before the bus closes (it releases every
    held item, closes the correlator and publishes the last exchanges and timings).
    """

    def __init__(self, keyring: Keyring | None, sniffer_ids: Iterable[str], *,
                 device_roles: Mapping[str, str] | None = None,
                 settings: CorrelatorSettings | None = None,
                 reorder_ns: int = DEFAULT_REORDER_NS,
                 clock_ns: Callable[[], int] | None = None,
                 flush_interval_s: float = 0.02, timings_interval_s: float = 5.0,
                 targets: Mapping[str, float] | None = None) -> None:
        self.ota = LiveTransfers()
        self.correlator = Correlator(keyring, settings=settings, device_roles=device_roles,
                                     on_exchange=self._emitted, keep=False,
                                     on_ota=self._ota_frame)
        self.stats = TimingStats(targets)
        self.exchanges: list[Exchange] = []
        self.reorder_ns = reorder_ns
        self.clock_ns = clock_ns
        self.flush_interval_s = flush_interval_s
        self.timings_interval_s = timings_interval_s
        self.late_items = 0
        self.on_exchange: list[Callable[[Exchange], None]] = []
        self._ranks = {sid: rank for rank, sid in enumerate(sniffer_ids, start=1)}
        self._streams: dict[int, deque[tuple[int, int, int, Frame]]] = {
            rank: deque() for rank in self._ranks.values()}
        self._seq: dict[int, int] = dict.fromkeys(self._ranks.values(), 0)
        self._duis: list[tuple[int, int, DuisEvent]] = []
        self._duis_seq = 0
        self._newest_ns = 0
        self._released_ns = 0
        self._bus: EventBus | None = None
        self._sub: Subscription | None = None
        self._waiters: dict[str, asyncio.Future[Exchange]] = {}
        self._by_request: dict[str, Exchange] = {}
        self._closed = False

    # -- inputs -------------------------------------------------------------------------

    def attach(self, bus: EventBus, *, maxsize: int = 100_000) -> Subscription:
        """Subscribe to ``bus``'s frames (the sink's queue) and publish events on it."""
        self._bus = bus
        self._sub = bus.subscribe("correlate", maxsize=maxsize, events=False)
        return self._sub

    def frames(self, batch: list[Frame]) -> None:
        """Hold one batch of one or more sniffers' frames (in each sniffer's order)."""
        for frame in batch:
            rank = self._ranks.get(frame.sniffer_id)
            if rank is None:  # a sniffer not in the rig file: after the known ones
                rank = self._ranks[frame.sniffer_id] = len(self._ranks) + 1
                self._streams[rank] = deque()
                self._seq[rank] = 0
            seq = self._seq[rank]
            self._seq[rank] = seq + 1
            ts = frame.ts_ns
            if ts < self._released_ns:
                self.late_items += 1
            if ts > self._newest_ns:
                self._newest_ns = ts
            self._streams[rank].append((ts, rank, seq, frame))

    def duis_line(self, line: dict[str, Any]) -> None:
        """Hold one DUIS log line as written (:meth:`DuisEvent.from_log_line`)."""
        event = DuisEvent.from_log_line(line, where="DUIS log (live)")
        if event.ts_ns < self._released_ns:
            self.late_items += 1
        if event.ts_ns > self._newest_ns:
            self._newest_ns = event.ts_ns
        heapq.heappush(self._duis, (event.ts_ns, self._duis_seq, event))
        self._duis_seq += 1

    # -- releasing ----------------------------------------------------------------------

    def watermark_ns(self) -> int:
        """Items at or before this are released (lab clock or newest item, less the
        reorder window)."""
        now = self._newest_ns
        if self.clock_ns is not None:
            now = max(now, self.clock_ns())
        return now - self.reorder_ns

    def release(self, until_ns: int | None = None) -> int:
        """Feed the correlator every held item up to ``until_ns`` (default: the
        watermark; ``-1``: all) in ``time_ordered`` order; how many were fed."""
        limit = self.watermark_ns() if until_ns is None else until_ns
        feed = self.correlator.feed
        fed = 0
        while True:
            best: tuple[int, int, int] | None = None
            item: StreamItem | None = None
            if self._duis:
                ts, seq, event = self._duis[0]
                best, item = (ts, 0, seq), event
            for queue in self._streams.values():
                if queue:
                    head = queue[0]
                    key = (head[0], head[1], head[2])
                    if best is None or key < best:
                        best, item = key, head[3]
            if best is None or item is None or (until_ns != -1 and best[0] > limit):
                break
            if best[1] == 0:
                heapq.heappop(self._duis)
            else:
                self._streams[best[1]].popleft()
            self._released_ns = max(self._released_ns, best[0])
            feed(item)
            fed += 1
        return fed

    # -- outputs ------------------------------------------------------------------------

    def _emitted(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        self.stats.add(exchange)
        if exchange.kind == "sr" and exchange.request_id is not None:
            self._by_request[exchange.request_id] = exchange
            waiter = self._waiters.pop(exchange.request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(exchange)
        if self._bus is not None:
            self._bus.publish_nowait(exchange_event(exchange))
        for callback in self.on_exchange:
            callback(exchange)

    def _ota_frame(self, frame: Frame, decoded: DecodedFrame) -> None:
        event = self.ota.feed(frame, decoded)
        if event is not None and self._bus is not None:
            self._bus.publish_nowait(event)

    def exchange_of(self, request_id: str) -> Exchange | None:
        """The SR exchange of ``request_id`` if it was emitted."""
        return self._by_request.get(request_id)

    async def wait_for(self, request_ids: Iterable[str],
                       timeout_s: float) -> dict[str, Exchange]:
        """The SR exchanges of ``request_ids`` emitted within ``timeout_s`` host seconds
        (those still missing then are left out)."""
        wanted = list(dict.fromkeys(request_ids))
        loop = asyncio.get_running_loop()
        futures = []
        for rid in wanted:
            if rid not in self._by_request and not self._closed:
                future = self._waiters.get(rid)
                if future is None:
                    future = self._waiters[rid] = loop.create_future()
                futures.append(future)
        if futures:
            await asyncio.wait(futures, timeout=timeout_s)
        return {rid: self._by_request[rid] for rid in wanted if rid in self._by_request}

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume the attached subscription and release on a timer until cancelled or
        the bus closes (then :meth:`drain` is still to be called)."""
        sub = self._sub
        if sub is None:
            raise RuntimeError("LiveCorrelator.run before attach")
        timer = asyncio.create_task(self._release_loop(), name="correlate-release")
        try:
            while True:
                item = await sub.get()
                if item is CLOSED:
                    return
                if isinstance(item, list):
                    self.frames(item)
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _release_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_timings = loop.time() + self.timings_interval_s
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self.release()
            if self._bus is not None and loop.time() >= next_timings:
                next_timings = loop.time() + self.timings_interval_s
                self._bus.publish_nowait(timings_event(self.stats))

    def drain(self) -> list[Exchange]:
        """End of stream: take what is still queued, release everything, close the
        correlator (open SRs become ``no_response``), publish the final ``timings``;
        the exchanges of the whole run. Safe to call twice."""
        if not self._closed:
            sub = self._sub
            if sub is not None:
                while not sub.queue.empty():
                    item = sub.queue.get_nowait()
                    if isinstance(item, list):
                        self.frames(item)
            self.release(-1)
            self.correlator.close()
            self._closed = True
            for future in self._waiters.values():
                if not future.done():
                    future.cancel()
            self._waiters.clear()
            if self._bus is not None and not self._bus.closed:
                self._bus.publish_nowait(timings_event(self.stats))
        return self.exchanges
