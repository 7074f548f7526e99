"""The emulator's clock: a discrete-event scheduler run in virtual or (scaled) real time.

Everything in the emulated HAN (CSMA backoffs, airtime, ACK turnaround, device processing,
GSME wake-ups) is an event at a true time ``ts_ns`` (ns since the UNIX epoch). The
scheduler pops events in time order. :meth:`Scheduler.run_until` advances virtual time as
fast as the CPU allows (tests); :class:`RealtimeDriver` paces the same events against the
host clock, optionally faster or slower by ``time_scale``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any


class Timer:
    """A scheduled call; :meth:`cancel` stops it from running."""

    __slots__ = ("args", "callback", "cancelled", "seq", "ts_ns")

    def __init__(self, ts_ns: int, seq: int, callback: Callable[..., None],
                 args: tuple[Any, ...]) -> None:
        self.ts_ns = ts_ns
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def __lt__(self, other: Timer) -> bool:
        return (self.ts_ns, self.seq) < (other.ts_ns, other.seq)

    def cancel(self) -> None:
        """Do not run this call."""
        self.cancelled = True


class Scheduler:
    """Events at true times; ``now_ns`` is the time of the event being run.

    Args:
        start_ns: the true time to start at (ns since the UNIX epoch).
    """

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        #: called when an event is scheduled earlier than every pending one (driver wake-up)
        self.on_earlier: Callable[[], None] | None = None

    def call_at(self, ts_ns: int, callback: Callable[..., None], *args: Any) -> Timer:
        """Run ``callback(*args)`` at ``ts_ns`` (never before ``now_ns``)."""
        timer = Timer(max(ts_ns, self.now_ns), next(self._seq), callback, args)
        earliest = self._heap[0].ts_ns if self._heap else None
        heapq.heappush(self._heap, timer)
        if self.on_earlier is not None and (earliest is None or timer.ts_ns < earliest):
            self.on_earlier()
        return timer

    def call_later(self, delay_ns: int, callback: Callable[..., None], *args: Any) -> Timer:
        """Run ``callback(*args)`` ``delay_ns`` after ``now_ns``."""
        return self.call_at(self.now_ns + delay_ns, callback, *args)

    def next_ts_ns(self) -> int | None:
        """True time of the next pending event, or ``None``."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].ts_ns if self._heap else None

    def run_until(self, ts_ns: int) -> int:
        """Run every event due at or before ``ts_ns``, then set ``now_ns`` to it.

        Returns:
            the number of events run.
        """
        count = 0
        heap = self._heap
        while heap and heap[0].ts_ns <= ts_ns:
            timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.now_ns = timer.ts_ns
            timer.callback(*timer.args)
            count += 1
        self.now_ns = max(self.now_ns, ts_ns)
        return count

    def run_for(self, duration_s: float) -> int:
        """Virtual time: run ``duration_s`` seconds of events as fast as possible."""
        return self.run_until(self.now_ns + int(duration_s * 1e9))


class RealtimeDriver:
    """Paces a :class:`Scheduler` against the host clock.

    True time advances ``time_scale`` times as fast as the host's monotonic clock
    (1.0: real time; 10.0: ten emulated seconds per host second).

    Args:
        scheduler: the scheduler to drive.
        time_scale: emulated seconds per host second (> 0).
        max_sleep_s: longest single sleep (bounds wake-up latency of external calls).
    """

    def __init__(self, scheduler: Scheduler, time_scale: float = 1.0,
                 max_sleep_s: float = 0.5) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.scheduler = scheduler
        self.time_scale = time_scale
        self.max_sleep_s = max_sleep_s
        self._mono0_ns = time.monotonic_ns()
        self._true0_ns = scheduler.now_ns
        self._wake: asyncio.Future[None] | None = None
        scheduler.on_earlier = self._poke

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def true_now_ns(self) -> int:
        """The true time now, from the host's monotonic clock."""
        elapsed = time.monotonic_ns() - self._mono0_ns
        return self._true0_ns + int(elapsed * self.time_scale)

    def catch_up(self) -> None:
        """Run every event due by now (call before scheduling from outside the loop)."""
        self.scheduler.run_until(self.true_now_ns())

    async def run(self) -> None:
        """Run events as their true time comes, until cancelled."""
        while True:
            self.catch_up()
            nxt = self.scheduler.next_ts_ns()
            wait_s = self.max_sleep_s
            if nxt is not None:
                wait_s = min(wait_s, max(0.0, (nxt - self.true_now_ns()) / 1e9 / self.time_scale))
            if wait_s <= 0:
                await asyncio.sleep(0)
                continue
            loop = asyncio.get_running_loop()
            self._wake = loop.create_future()
            handle = loop.call_later(wait_s, self._poke)
            try:
                await self._wake
            finally:
                handle.cancel()
                self._wake = None
