"""Sniffer clock alignment: from a sniffer's own clock to host UTC (issue 6, item 3).

A sniffer with its own clock (the µs timer of an nRF 802.15.4 or TI sniffer) stamps each frame
precisely but in its own time base: counted from its boot, running a few tens of ppm
fast or slow against the host, and (older firmware) wrapping every 2^32 µs. The host
sees each frame later, by a delivery delay (firmware print, USB CDC ACM, kernel, event
loop) that is never smaller than some minimum and often much larger.

The model here is linear, ``host_ns = sniffer_ns + y0 + a + b·(sniffer_ns − s0)``:
an offset and a drift ``b`` (``drift_ppm = b·1e6``). It is estimated from
(sniffer time, host receive time) pairs with a minimum-delay (lower envelope)
estimator: every pair lies *above* the true line by its delivery delay, so the line
sought is the one below every pair and as close to them as possible, the linear program
of Moon, Skelly and Towsley ("Estimation and removal of clock skew from network delay
measurements", IEEE INFOCOM 1999). Its optimum is an edge of the lower convex hull of
the pairs, the one spanning their mean sniffer time. Queueing, coalesced reads and
scheduling only add delay, so they cannot pull the estimate off; only the smallest
delays matter. The constant minimum delay itself cannot be seen from the pairs and is a
calibration setting (``min_delay_ns``); see ``docs/clock-alignment.md`` for the
figures and what they mean for HAN segment timings.

To keep the cost flat at full 2.4 GHz frame rates, pairs are first reduced to one per
``bucket_ns`` of sniffer time (the one lowest against the current line) and the hull is
refitted when a bucket closes, over the buckets of the last ``window_ns``.

Also here: :class:`TimerUnwrapper` for wrapping (32- or 48-bit) µs counters, and
:class:`CrossSnifferCheck`, which reports the difference of aligned times where two
sniffers heard the same frame.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from hanlab.frames import Frame

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ClockModel:
    """A snapshot of one sniffer's clock model, for events and the run store.

    Attributes:
        offset_ns: host UTC ns minus sniffer ns at ``ref_sniffer_ns`` (minimum delay
            removed).
        drift_ppm: how much faster the host clock runs than the sniffer's, in ppm
            (positive: the sniffer runs slow).
        uncertainty_ns: the estimate's scale of error now (see
            :meth:`ClockAligner.uncertainty_ns`); an estimate, not a bound.
        ref_sniffer_ns: the sniffer time the offset refers to.
        pairs: pairs observed since the last restart of the sniffer's clock.
        buckets: pairs kept in the window after the per-bucket reduction.
    """

    offset_ns: int
    drift_ppm: float
    uncertainty_ns: int
    ref_sniffer_ns: int
    pairs: int
    buckets: int

    def as_dict(self) -> dict[str, int | float]:
        """JSON-ready form (MQTT ``clock`` detail, run store)."""
        return {
            "offset_ns": self.offset_ns,
            "drift_ppm": round(self.drift_ppm, 4),
            "uncertainty_ns": self.uncertainty_ns,
            "ref_sniffer_ns": self.ref_sniffer_ns,
            "pairs": self.pairs,
            "buckets": self.buckets,
        }


class ClockAligner:
    """Minimum-delay (lower envelope) estimator of one sniffer clock against host UTC.

    Feed it with :meth:`observe` (sniffer time of an event, host time it was received)
    and map sniffer times with :meth:`to_host_ns`. All times are int ns; sniffer times
    must already be unwrapped (see :class:`TimerUnwrapper`).

    Args:
        window_ns: span of sniffer time the fit looks back over (default 60 s). Longer
            averages more pairs but follows temperature-driven drift changes more slowly.
        bucket_ns: span reduced to one pair before fitting (default 250 ms).
        min_delay_ns: the calibrated minimum delivery delay subtracted from the
            envelope (0 if not calibrated: aligned times are then late by it).
        drift_prior_ppm: drift assumed until two buckets exist (e.g. the value from the
            sniffer's previous session: a crystal keeps its drift across a replug).
        max_drift_ppm: drift estimates are clamped to ±this (crystals are within ±50 ppm;
            more is a fault in the pairs, not the clock).
        bucket_phase_ns: shift of the bucket boundaries (ns, modulo ``bucket_ns``)
            against the first pair's sniffer time. Sniffers opened together should
            differ here, so that their refits (≈0.2 ms each for a full window) do not all
            fall into the same event-loop iteration.
    """

    def __init__(
        self,
        *,
        window_ns: int = 60 * _NS_PER_S,
        bucket_ns: int = _NS_PER_S // 4,
        min_delay_ns: int = 0,
        drift_prior_ppm: float = 0.0,
        max_drift_ppm: float = 500.0,
        bucket_phase_ns: int = 0,
    ) -> None:
        self.window_ns = window_ns
        self.bucket_ns = bucket_ns
        self.bucket_phase_ns = bucket_phase_ns % bucket_ns
        self.min_delay_ns = min_delay_ns
        self.max_drift_ppm = max_drift_ppm
        self._max_buckets = max(2, window_ns // bucket_ns)
        self._drift_prior = drift_prior_ppm * 1e-6
        self._b: float = self._drift_prior
        self._pairs = 0
        self.restart()

    def restart(self, *, keep_drift: bool = True) -> None:
        """Forget the offset after the sniffer's clock restarted (reboot, replug).

        Args:
            keep_drift: start from the last drift estimate (the crystal is the same).
        """
        if keep_drift and self._pairs >= 2:
            self._drift_prior = self._b
        self._s0: int | None = None
        self._y0 = 0
        self._a = 0.0
        self._b = self._drift_prior
        self._x_ref = 0.0
        self._pairs = 0
        # closed buckets: (bucket index, x, u) with x = s - s0 (ns), u = (h - s) - y0 (ns)
        self._buckets: deque[tuple[int, float, float]] = deque()
        self._open: tuple[int, float, float] | None = None
        self._residual_ns = 0.0
        self._slope_error = 0.0

    @property
    def ready(self) -> bool:
        """Whether at least one pair has been observed since the last restart."""
        return self._s0 is not None

    @property
    def drift_ppm(self) -> float:
        """Current drift estimate in ppm (host rate minus sniffer rate)."""
        return self._b * 1e6

    def observe(self, sniffer_ns: int, host_rx_ns: int) -> None:
        """Add one pair: an event at ``sniffer_ns`` (sniffer clock) received at
        ``host_rx_ns`` (host UTC). Pairs must come in sniffer-time order."""
        if self._s0 is None:
            self._s0 = sniffer_ns
            self._y0 = host_rx_ns - sniffer_ns
            self._a = 0.0
        self._pairs += 1
        x = float(sniffer_ns - self._s0)
        u = float(host_rx_ns - sniffer_ns - self._y0)
        k = int((x + self.bucket_phase_ns) // self.bucket_ns)
        open_ = self._open
        if open_ is None or k != open_[0]:
            if open_ is not None:
                self._buckets.append(open_)
                while len(self._buckets) > self._max_buckets:
                    self._buckets.popleft()
                self._open = (k, x, u)
                self._refit()
            else:
                self._open = (k, x, u)
                self._a = u - self._b * x
        elif u - self._b * x < open_[2] - self._b * open_[1]:
            self._open = (k, x, u)
        # the line must stay below every pair: a lower pair is a fact, take it at once
        below = u - (self._a + self._b * x)
        if below < 0:
            self._a += below

    def _refit(self) -> None:
        # Runs on the event loop whenever a bucket closes (every ``bucket_ns`` of sniffer
        # time, per sniffer), over up to window/bucket points: kept to plain loops over
        # local lists (≈4x cheaper than tuples and generators for a full 60 s window).
        xs = [b[1] for b in self._buckets]
        us = [b[2] for b in self._buckets]
        if self._open is not None:
            xs.append(self._open[1])
            us.append(self._open[2])
        n = len(xs)
        # lower convex hull (Andrew's monotone chain), x ascending
        hx: list[float] = []
        hu: list[float] = []
        for x, u in zip(xs, us, strict=True):
            while (
                len(hx) >= 2
                and (hx[-1] - hx[-2]) * (u - hu[-2]) - (hu[-1] - hu[-2]) * (x - hx[-2]) <= 0
            ):
                hx.pop()
                hu.pop()
            hx.append(x)
            hu.append(u)
        x_ref = math.fsum(xs) / n
        self._x_ref = x_ref
        limit = self.max_drift_ppm * 1e-6
        b = self._b
        if len(hx) >= 2:
            # the hull edge spanning the mean x minimises the sum of vertical distances
            last = len(hx) - 1
            for i in range(1, last + 1):
                if hx[i] >= x_ref or i == last:
                    b = (hu[i] - hu[i - 1]) / (hx[i] - hx[i - 1])
                    break
        b = min(max(b, -limit), limit)
        self._b = b
        residuals = [u - b * x for x, u in zip(xs, us, strict=True)]
        residuals.sort()
        a = residuals[0]
        self._a = a
        self._residual_ns = residuals[n // 2] - a
        span = xs[-1] - xs[0]
        self._slope_error = 2.0 * self._residual_ns / span if span > 0 else limit

    def to_host_ns(self, sniffer_ns: int) -> int:
        """Host UTC ns of sniffer time ``sniffer_ns`` under the current model.

        Raises:
            ValueError: no pair observed yet (check :attr:`ready`).
        """
        if self._s0 is None:
            raise ValueError("clock model has no pairs yet")
        x = sniffer_ns - self._s0
        return sniffer_ns + self._y0 + round(self._a + self._b * x) - self.min_delay_ns

    def uncertainty_ns(self, sniffer_ns: int | None = None) -> int:
        """Scale of the model's error at ``sniffer_ns`` (default: the newest pair).

        The median distance of the kept bucket minima above the line (how closely the
        smallest delays approach the envelope), plus the drift's uncertainty times the
        distance from the window's mean. An estimate of scale, not a bound; it does not
        include the error of the ``min_delay_ns`` calibration.
        """
        if self._s0 is None:
            return 0
        if sniffer_ns is None:
            x = self._open[1] if self._open is not None else 0.0
        else:
            x = float(sniffer_ns - self._s0)
        return round(self._residual_ns + self._slope_error * abs(x - self._x_ref))

    def model(self) -> ClockModel:
        """A snapshot of the current model (for ``clock`` events and the run store)."""
        ref = (self._s0 or 0) + round(self._open[1] if self._open is not None else 0.0)
        return ClockModel(
            offset_ns=self.to_host_ns(ref) - ref if self._s0 is not None else 0,
            drift_ppm=self.drift_ppm,
            uncertainty_ns=self.uncertainty_ns(),
            ref_sniffer_ns=ref,
            pairs=self._pairs,
            buckets=len(self._buckets) + (self._open is not None),
        )


class TimerUnwrapper:
    """Extends a sniffer's wrapping µs timer readings to a monotonic count.

    Older nRF 802.15.4 sniffer firmware prints a 32-bit µs timer, which wraps every
    2^32 µs (71 min 35 s); newer firmware prints a 64-bit count; TI's SmartRF Packet
    Sniffer 2 firmware sends a 48-bit one (wraps every 2^48 µs). In ``auto`` mode
    (``bits=None``) a reading at or above 2^32 switches to 64-bit for good; below it
    a 64-bit count behaves exactly like a 32-bit one that has not wrapped yet. 64 bits
    are taken as never wrapping.

    A wrapping reading is placed in the wrap period closest to where the host clock says
    it should be (last unwrapped value plus host time elapsed), so quiet channels of
    any length are unwrapped correctly. A reading more than ``restart_ns`` behind the
    previous one means the sniffer's clock restarted (reboot): :attr:`restarted` is set.

    Args:
        bits: the timer's width (e.g. 32, 48, 64), or ``None`` for auto 32/64.
        restart_ns: backwards jump taken as a clock restart (default 1 s).
    """

    def __init__(self, bits: int | None = None, *, restart_ns: int = _NS_PER_S) -> None:
        self.bits = bits
        self.restart_ns = restart_ns
        self.restarted = False
        self.wraps = 0
        self._last_us: int | None = None
        self._last_host_ns = 0

    def reset(self) -> None:
        """Forget the history (the sniffer's clock restarted)."""
        self._last_us = None
        self.restarted = False

    def unwrap_us(self, raw_us: int, host_rx_ns: int) -> int:
        """The unwrapped µs count of reading ``raw_us`` received at ``host_rx_ns``."""
        self.restarted = False
        if self.bits is None and raw_us >= 1 << 32:
            self.bits = 64
        if self.bits == 64:
            full = raw_us
        else:
            width = self.bits or 32
            period = 1 << width
            raw_us &= period - 1
            if self._last_us is None:
                full = raw_us
            else:
                predicted = self._last_us + (host_rx_ns - self._last_host_ns) // 1000
                periods = round((predicted - raw_us) / period)
                full = raw_us + periods * period
                if full >> width > self._last_us >> width:
                    self.wraps += 1
        if self._last_us is not None and (self._last_us - full) * 1000 > self.restart_ns:
            self.restarted = True
        self._last_us = full
        self._last_host_ns = host_rx_ns
        return full


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """One frame heard by two sniffers: the difference of their aligned times.

    Attributes:
        sniffer_a, sniffer_b: the two sniffer ids, ``sniffer_a`` < ``sniffer_b``.
        diff_ns: ``ts_ns`` of ``sniffer_a`` minus ``ts_ns`` of ``sniffer_b``.
        ts_ns: ``ts_ns`` of ``sniffer_a``.
    """

    sniffer_a: str
    sniffer_b: str
    diff_ns: int
    ts_ns: int


@dataclass(slots=True)
class PairStats:
    """Running figures of one pair of sniffers (``sniffer_a`` < ``sniffer_b``) on one
    channel: differences ``ts_ns(a) - ts_ns(b)`` of the frames both heard.

    Attributes:
        matched: frames heard by both, since the last :meth:`CrossSnifferCheck.take`.
        matched_total: frames heard by both since the check started.
        sum_diff_ns: sum of the differences since the last take (for the mean).
        diffs_ns: the differences since the last take, at most ``keep`` of them.
    """

    matched: int = 0
    matched_total: int = 0
    sum_diff_ns: int = 0
    diffs_ns: list[int] = field(default_factory=list)


class CrossSnifferCheck:
    """Pairs identical PSDUs heard by different sniffers on the same channel and reports
    the difference of their aligned ``ts_ns`` (issue 6, item 3: the alignment's check).

    Two sniffers in the same rig hear a frame within nanoseconds of each other (radio
    propagation over a bench), so the difference is the sum of both alignment errors.
    Retransmissions repeat a PSDU only after a MAC ACK wait (≥ 864 µs on 2.4 GHz,
    IEEE 802.15.4-2015 §11.3 macAckWaitDuration), so a window below that pairs the same
    transmission; the default is 800 µs.

    Frames may come in any order across sniffers (each source delivers its own batches,
    one may lag another by its delivery delay and batching): a reception is kept until the
    newest ``ts_ns`` seen is ``horizon_ns`` past it.

    Args:
        window_ns: largest |difference| that still pairs two receptions.
        horizon_ns: how long (in ``ts_ns``) a reception waits for its twin.
        keep: how many differences to keep, overall (:meth:`summary`) and per pair
            between two :meth:`take` calls.
    """

    def __init__(
        self, *, window_ns: int = 800_000, horizon_ns: int = 2 * _NS_PER_S, keep: int = 10_000
    ) -> None:
        self.window_ns = window_ns
        self.horizon_ns = horizon_ns
        self.keep = keep
        self._recent: deque[tuple[int, tuple[int, int, bytes]]] = deque()
        self._by_key: dict[tuple[int, int, bytes], list[tuple[int, str]]] = {}
        self._newest_ns = 0
        self.diffs_ns: deque[int] = deque(maxlen=keep)
        #: (sniffer_a, sniffer_b, page, channel) -> figures
        self.pairs: dict[tuple[str, str, int, int], PairStats] = {}

    def observe(self, frames: Iterable[Frame]) -> list[CrossCheck]:
        """Add ``frames`` (any sniffers, any order within ``horizon_ns``); return new
        pairings."""
        found: list[CrossCheck] = []
        recent, by_key, window_ns = self._recent, self._by_key, self.window_ns
        for f in frames:
            ts_ns = f.ts_ns
            if ts_ns > self._newest_ns:
                self._newest_ns = ts_ns
                limit_ns = ts_ns - self.horizon_ns
                while recent and recent[0][0] < limit_ns:
                    _, old_key = recent.popleft()
                    old = by_key[old_key]
                    old.pop(0)
                    if not old:
                        del by_key[old_key]
            key = (f.page, f.channel, f.psdu)
            seen = by_key.get(key)
            if seen is None:
                by_key[key] = [(ts_ns, f.sniffer_id)]
            else:
                for other_ns, other_id in seen:
                    if other_id != f.sniffer_id and abs(ts_ns - other_ns) <= window_ns:
                        found.append(self._pair(f, other_ns, other_id))
                seen.append((ts_ns, f.sniffer_id))
            recent.append((ts_ns, key))
        return found

    def _pair(self, f: Frame, other_ns: int, other_id: str) -> CrossCheck:
        if f.sniffer_id < other_id:
            check = CrossCheck(f.sniffer_id, other_id, f.ts_ns - other_ns, f.ts_ns)
        else:
            check = CrossCheck(other_id, f.sniffer_id, other_ns - f.ts_ns, other_ns)
        self.diffs_ns.append(check.diff_ns)
        key = (check.sniffer_a, check.sniffer_b, f.page, f.channel)
        stats = self.pairs.get(key)
        if stats is None:
            stats = self.pairs[key] = PairStats()
        stats.matched += 1
        stats.matched_total += 1
        stats.sum_diff_ns += check.diff_ns
        if len(stats.diffs_ns) < self.keep:
            stats.diffs_ns.append(check.diff_ns)
        return check

    def take(self) -> list[dict[str, str | int | float | None]]:
        """Per pair of sniffers and channel, the figures since the last call (then reset):
        ``matched`` frames (and ``matched_total`` since the start), the mean difference
        ``ts_ns(a) - ts_ns(b)`` and the p99 and max of its absolute value, in µs
        (``None`` when nothing matched)."""
        out: list[dict[str, str | int | float | None]] = []
        for (a, b, page, channel), stats in sorted(self.pairs.items()):
            diffs = sorted(abs(d) for d in stats.diffs_ns)
            n = stats.matched
            out.append(
                {
                    "sniffer_a": a,
                    "sniffer_b": b,
                    "page": page,
                    "channel": channel,
                    "matched": n,
                    "matched_total": stats.matched_total,
                    "mean_diff_us": round(stats.sum_diff_ns / n / 1000, 1) if n else None,
                    "abs_diff_p99_us": (
                        round(diffs[min(len(diffs) - 1, len(diffs) * 99 // 100)] / 1000, 1)
                        if diffs
                        else None
                    ),
                    "abs_diff_max_us": round(diffs[-1] / 1000, 1) if diffs else None,
                }
            )
            stats.matched = stats.sum_diff_ns = 0
            stats.diffs_ns = []
        return out

    def summary(self) -> dict[str, int]:
        """Count and p50/p99/max of |difference| in ns over the kept pairings."""
        diffs = sorted(abs(d) for d in self.diffs_ns)
        if not diffs:
            return {"pairs": 0}
        return {
            "pairs": len(diffs),
            "abs_diff_p50_ns": diffs[len(diffs) // 2],
            "abs_diff_p99_ns": diffs[min(len(diffs) - 1, (len(diffs) * 99) // 100)],
            "abs_diff_max_ns": diffs[-1],
        }
