"""Sub-GHz duty-cycle monitoring per transmitter (seed 000 DIT.8; GBCS v2.0 §10.6.2.2
"Duty Cycle Monitoring").

A transmitter's duty cycle is its time on air over a rolling window, in % of the window.
Time on air per frame is the PPDU's: SHR + PHR + PSDU + FCS at the sub-GHz rate
(:meth:`hanlab.phy.PhyTiming.airtime_ns`, IEEE 802.15.4-2015 §20). A frame is in the
window ending at ``now_ns`` while its start is at or after ``now_ns - window_ns``; it
counts whole from the instant it ends (so a crossing upwards happens when a frame ends,
and one downwards when the oldest frame leaves the window, 1 ns after its start + window).

The state follows the three GBCS thresholds named by the duty-cycle Alert Codes
(GBCS Table 16.2, :data:`hanlab.gbcs.codes.ALERT_CODES` 0x8F20-0x8F25): *Normal* below the
Normal-Limited threshold, *Limited* from it, *Critical* from the Limited-Critical
threshold, *Regulated* from the Critical-Regulated threshold. DUIS SR 6.28 "Set CHF Sub
GHz Configuration" sets the first two (DUIS 5.4 schema, ``SubGHzConfiguration``:
``NormalLimitedDutyCycleThreshold`` 0.5-2.0 %, ``LimitedCriticalDutyCycleThreshold``
above 1.5 and below 2.5 %; :meth:`DutyCycleThresholds.from_sr628`); the Critical-Regulated
threshold is not settable by an SR. Defaults are the emulated HAN's
(:class:`hanlab.emulator.han.settings.DutyCycleSettings`: 1.3 %, 2.2 %, 10 % over 3600 s);
the GBCS text giving the window length and the regulated limit is not in this project's
sources, so both are settings, not facts (docs/dit8.md).

:class:`RollingDutyCycle` is one transmitter's window (amortised O(1) per frame).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from hanlab.errors import BadInputError

__all__ = [
    "ALERT_DOWN",
    "ALERT_UP",
    "DutyCycleState",
    "DutyCycleThresholds",
    "RollingDutyCycle",
    "StateChange",
]


class DutyCycleState(IntEnum):
    """GBCS duty-cycle states, in order of severity."""

    NORMAL = 0
    LIMITED = 1
    CRITICAL = 2
    REGULATED = 3

    @property
    def label(self) -> str:
        """``Normal``, ``Limited``, ``Critical`` or ``Regulated``."""
        return self.name.capitalize()


#: Alert Code a CH raises on entering Limited, Critical, Regulated (GBCS Table 16.2:
#: 0x8F20 "Limited Duty Cycle Action Taken", 0x8F22 Critical, 0x8F24 Regulated).
ALERT_UP: dict[DutyCycleState, int] = {
    DutyCycleState.LIMITED: 0x8F20, DutyCycleState.CRITICAL: 0x8F22,
    DutyCycleState.REGULATED: 0x8F24}
#: Alert Code on falling below the threshold of the state left (0x8F21 "Duty Cycle fallen
#: below Normal-Limited Duty Cycle Threshold", 0x8F23 Limited-Critical, 0x8F25
#: Critical-Regulated), keyed by the state left.
ALERT_DOWN: dict[DutyCycleState, int] = {
    DutyCycleState.LIMITED: 0x8F21, DutyCycleState.CRITICAL: 0x8F23,
    DutyCycleState.REGULATED: 0x8F25}


@dataclass(frozen=True, slots=True)
class DutyCycleThresholds:
    """The rolling window and the three thresholds, in % of the window.

    Attributes:
        window_s: rolling window length in seconds (default 3600, see the module docstring).
        normal_limited_pct: Normal-Limited threshold (SR 6.28), default 1.3 %.
        limited_critical_pct: Limited-Critical threshold (SR 6.28), default 2.2 %.
        critical_regulated_pct: Critical-Regulated threshold, default 10 %.

    Raises:
        BadInputError: a non-positive window, or thresholds not strictly increasing.
    """

    window_s: float = 3600.0
    normal_limited_pct: float = 1.3
    limited_critical_pct: float = 2.2
    critical_regulated_pct: float = 10.0

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise BadInputError(f"duty-cycle window_s must be > 0, not {self.window_s}")
        t = self.pcts
        if not 0 < t[0] < t[1] < t[2] <= 100:
            raise BadInputError(
                "duty-cycle thresholds must rise strictly within (0, 100] %: "
                f"normal_limited_pct {t[0]}, limited_critical_pct {t[1]}, "
                f"critical_regulated_pct {t[2]}")

    @property
    def pcts(self) -> tuple[float, float, float]:
        """(Normal-Limited, Limited-Critical, Critical-Regulated) in %."""
        return (self.normal_limited_pct, self.limited_critical_pct,
                self.critical_regulated_pct)

    @property
    def window_ns(self) -> int:
        """The window in ns."""
        return int(self.window_s * 1e9)

    def state_of(self, pct: float) -> DutyCycleState:
        """The state for a duty cycle of ``pct`` % (a threshold reached enters its state)."""
        t = self.pcts
        return DutyCycleState(sum(1 for x in t if pct >= x))

    def to_dict(self) -> dict[str, float]:
        """JSON shape (the four fields)."""
        return {"window_s": self.window_s, "normal_limited_pct": self.normal_limited_pct,
                "limited_critical_pct": self.limited_critical_pct,
                "critical_regulated_pct": self.critical_regulated_pct}

    def from_sr628(self, xml: bytes | str, *, where: str = "SR 6.28") -> DutyCycleThresholds:
        """These thresholds with the two SR 6.28 sets, read from a DUIS request document (or
        its ``SetCHFSubGHzConfiguration`` element).

        Ranges (DUIS 5.4 schema ``SubGHzConfiguration``): ``NormalLimitedDutyCycleThreshold``
        0.5..2.0, ``LimitedCriticalDutyCycleThreshold`` in (1.5, 2.5).

        Raises:
            BadInputError: not XML, an element missing, or a value out of its range
                (named with ``where``).
        """
        from lxml import etree

        try:
            root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
        except etree.XMLSyntaxError as exc:
            raise BadInputError(f"{where}: not XML: {exc}") from None
        values: dict[str, float] = {}
        for name in ("NormalLimitedDutyCycleThreshold", "LimitedCriticalDutyCycleThreshold"):
            found = root.xpath(f"//*[local-name()='{name}']")
            if not found or not isinstance(found, list):
                raise BadInputError(f"{where}: no {name} element")
            text = str(getattr(found[0], "text", "") or "").strip()
            try:
                values[name] = float(text)
            except ValueError:
                raise BadInputError(f"{where}: {name} {text!r} is not a decimal") from None
        low = values["NormalLimitedDutyCycleThreshold"]
        high = values["LimitedCriticalDutyCycleThreshold"]
        if not 0.5 <= low <= 2.0:
            raise BadInputError(f"{where}: NormalLimitedDutyCycleThreshold {low} outside "
                                "0.5..2.0 (DUIS 5.4)")
        if not 1.5 < high < 2.5:
            raise BadInputError(f"{where}: LimitedCriticalDutyCycleThreshold {high} outside "
                                "(1.5, 2.5) (DUIS 5.4)")
        return DutyCycleThresholds(self.window_s, low, high, self.critical_regulated_pct)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change of a transmitter's duty-cycle state.

    Attributes:
        ts_ns: when it changed (ns since the UNIX epoch).
        old, new: the states.
        duty_cycle_pct: the duty cycle just after the change, in % of the window.
        alert_code: the GBCS Alert Code a CH raises for it (:data:`ALERT_UP`,
            :data:`ALERT_DOWN`).
    """

    ts_ns: int
    old: DutyCycleState
    new: DutyCycleState
    duty_cycle_pct: float
    alert_code: int

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``ts_ns``, ``old``, ``new`` (labels), ``duty_cycle_pct``,
        ``alert_code`` (``0x8F20``)."""
        return {"ts_ns": self.ts_ns, "old": self.old.label, "new": self.new.label,
                "duty_cycle_pct": round(self.duty_cycle_pct, 4),
                "alert_code": f"0x{self.alert_code:04X}"}


@dataclass(slots=True)
class RollingDutyCycle:
    """One transmitter's rolling window, state and history.

    Feed frames in order of their end (:meth:`add`), and call :meth:`advance` to let time
    pass without frames (falls below a threshold are dated exactly either way).

    Attributes:
        thresholds: window and thresholds.
        state: the current state.
        changes: every state change, in time order.
        samples: ``(ts_ns, duty_cycle_pct)`` at most one per ``sample_ns`` (the peak since
            the previous sample), the newest ``max_samples`` kept (plots).
        frames, airtime_ns: totals since the start.
    """

    thresholds: DutyCycleThresholds
    sample_ns: int = 0
    max_samples: int = 20_000
    state: DutyCycleState = DutyCycleState.NORMAL
    changes: list[StateChange] = field(default_factory=list)
    samples: deque[tuple[int, float]] = field(default_factory=deque)
    frames: int = 0
    airtime_ns: int = 0
    first_ns: int | None = None
    last_ns: int = 0
    peak_pct: float = 0.0
    _log: deque[tuple[int, int]] = field(default_factory=deque)
    _sum_ns: int = 0
    _window_ns: int = 0
    _sample_peak: float = 0.0
    _sample_at_ns: int = 0

    def __post_init__(self) -> None:
        self._window_ns = self.thresholds.window_ns
        if self.sample_ns <= 0:
            self.sample_ns = max(1, self._window_ns // 60)
        self.samples = deque(maxlen=self.max_samples)

    @property
    def window_airtime_ns(self) -> int:
        """Airtime in the window ending at the last time seen, ns."""
        return self._sum_ns

    def pct(self) -> float:
        """The duty cycle at the last time seen, in % of the window."""
        return 100.0 * self._sum_ns / self._window_ns

    def add(self, start_ns: int, airtime_ns: int) -> list[StateChange]:
        """One frame of ``airtime_ns`` that started at ``start_ns``: expire, add, evaluate
        at its end. Returns the state changes it caused (downward ones first)."""
        end_ns = start_ns + airtime_ns
        out = self.advance(end_ns)
        self._log.append((start_ns, airtime_ns))
        self._sum_ns += airtime_ns
        self.frames += 1
        self.airtime_ns += airtime_ns
        if self.first_ns is None:
            self.first_ns = start_ns
        out.extend(self._evaluate(end_ns))
        self._sample(end_ns)
        return out

    def advance(self, now_ns: int) -> list[StateChange]:
        """Let time pass to ``now_ns``: frames leave the window; each fall below a
        threshold is dated when the frame that caused it left (1 ns after its start + window)."""
        out: list[StateChange] = []
        if now_ns > self.last_ns:
            self.last_ns = now_ns
        cutoff = now_ns - self._window_ns
        log = self._log
        expired = False
        while log and log[0][0] < cutoff:
            start_ns, airtime_ns = log.popleft()
            self._sum_ns -= airtime_ns
            expired = True
            if self.state:
                out.extend(self._evaluate(start_ns + self._window_ns + 1))
        if expired:
            self._sample(now_ns)
        return out

    def absorb(self, other: RollingDutyCycle) -> list[StateChange]:
        """Take ``other``'s frames into this window (the same transmitter, known late, e.g.
        a GPF's frames heard before its address was learned); returns the state changes
        this causes, dated at the last time seen."""
        entries = sorted([*self._log, *other._log])
        self._log.clear()
        self._log.extend(entries)
        self._sum_ns += other._sum_ns
        self.frames += other.frames
        self.airtime_ns += other.airtime_ns
        if other.first_ns is not None and (self.first_ns is None
                                           or other.first_ns < self.first_ns):
            self.first_ns = other.first_ns
        return self._evaluate(max(self.last_ns, other.last_ns))

    def _evaluate(self, ts_ns: int) -> list[StateChange]:
        pct = self.pct()
        if pct > self.peak_pct:
            self.peak_pct = pct
        if pct > self._sample_peak:
            self._sample_peak = pct
        new = self.thresholds.state_of(pct)
        out: list[StateChange] = []
        while new > self.state:
            old, self.state = self.state, DutyCycleState(self.state + 1)
            out.append(StateChange(ts_ns, old, self.state, pct, ALERT_UP[self.state]))
        while new < self.state:
            old, self.state = self.state, DutyCycleState(self.state - 1)
            out.append(StateChange(ts_ns, old, self.state, pct, ALERT_DOWN[old]))
        self.changes.extend(out)
        return out

    def _sample(self, ts_ns: int) -> None:
        if ts_ns - self._sample_at_ns >= self.sample_ns:
            self.samples.append((ts_ns, round(max(self._sample_peak, self.pct()), 4)))
            self._sample_at_ns = ts_ns
            self._sample_peak = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``state``, ``duty_cycle_pct``, ``peak_pct``, ``frames``,
        ``airtime_s``, ``window_airtime_s``, ``first_ts_ns``, ``last_ts_ns``, ``changes``."""
        return {"state": self.state.label, "duty_cycle_pct": round(self.pct(), 4),
                "peak_pct": round(self.peak_pct, 4), "frames": self.frames,
                "airtime_s": self.airtime_ns / 1e9,
                "window_airtime_s": self._sum_ns / 1e9,
                "first_ts_ns": self.first_ns, "last_ts_ns": self.last_ns,
                "changes": [c.to_dict() for c in self.changes]}
