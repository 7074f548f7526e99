"""Clock alignment: the minimum-delay estimator against a simulated sniffer clock.

The issue's accuracy figure (issue 6, "Done when"): a sniffer 200 ms ahead of the host,
drifting 30 ppm, ±100 µs delivery jitter, a 2^32 µs wrap inside the run: after a 10 s
warm-up, aligned times within 50 µs of the true time at p99, and monotonic.
"""

from __future__ import annotations

import random

import pytest

from hanlab.frames import Band, Frame
from hanlab.sources.clock import ClockAligner, CrossSnifferCheck, TimerUnwrapper

NS = 1_000_000_000


def simulate(
    *,
    duration_s: float = 60.0,
    rate_hz: float = 50.0,
    offset_ns: int = 200_000_000,
    drift_ppm: float = 30.0,
    base_delay_ns: int = 100_000,
    jitter_ns: int = 100_000,
    min_delay_ns: int = 0,
    seed: int = 1,
) -> tuple[list[int], int]:
    """Errors (aligned − true, ns) of frames after a 10 s warm-up, and wraps seen."""
    rng = random.Random(seed)
    host0 = 1_700_000_000 * NS
    # the dongle's 32-bit µs timer wraps 20 s into the run
    boot_host = host0 - ((1 << 32) * 1000 - 20 * NS - offset_ns)
    aligner = ClockAligner(min_delay_ns=min_delay_ns)
    timer = TimerUnwrapper(bits=None)
    errors: list[int] = []
    t = host0
    last_ts = 0
    while t < host0 + duration_s * NS:
        t += int(rng.expovariate(rate_hz) * NS) + 1
        sniffer_ns = offset_ns + round((t - boot_host) * (1 + drift_ppm * 1e-6))
        raw_us = (sniffer_ns // 1000) & 0xFFFF_FFFF
        host_rx = t + base_delay_ns + rng.randint(-jitter_ns, jitter_ns)
        full_us = timer.unwrap_us(raw_us, host_rx)
        aligner.observe(full_us * 1000, host_rx)
        ts = aligner.to_host_ns(full_us * 1000)
        assert ts > last_ts
        last_ts = ts
        if t - host0 > 10 * NS:
            errors.append(ts - t)
    return errors, timer.wraps


def p99(values: list[int]) -> int:
    ordered = sorted(abs(v) for v in values)
    return ordered[(len(ordered) * 99) // 100]


def test_issue_figure_p99_within_50us_after_warmup() -> None:
    errors, wraps = simulate()
    assert wraps == 1
    # the µs truncation of the dongle's timer alone is up to 1 µs
    assert p99(errors) < 50_000, p99(errors)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_calibrated_minimum_delay_is_removed(seed: int) -> None:
    # a 1.5 ms USB path whose minimum (1.4 ms) was calibrated
    errors, _ = simulate(
        base_delay_ns=1_500_000, jitter_ns=100_000, min_delay_ns=1_400_000, seed=seed
    )
    assert p99(errors) < 50_000


def test_uncalibrated_minimum_delay_shows_as_late_times() -> None:
    errors, _ = simulate(base_delay_ns=1_500_000, jitter_ns=100_000)
    assert 1_350_000 < statistics_median(errors) < 1_450_000


def statistics_median(values: list[int]) -> int:
    return sorted(values)[len(values) // 2]


def test_drift_and_uncertainty_exported() -> None:
    rng = random.Random(5)
    aligner = ClockAligner()
    for i in range(3000):
        t = i * 10_000_000
        s = round(t * (1 + 30e-6))
        aligner.observe(s, t + rng.randint(0, 200_000))
    model = aligner.model()
    # host = sniffer·(1 − ~30 ppm): the host runs slow against this sniffer
    assert model.drift_ppm == pytest.approx(-30.0, abs=1.0)
    assert 0 <= model.uncertainty_ns < 50_000
    assert model.pairs == 3000
    assert set(model.as_dict()) >= {"offset_ns", "drift_ppm", "uncertainty_ns"}


def test_restart_keeps_drift_forgets_offset() -> None:
    aligner = ClockAligner()
    for i in range(2000):
        aligner.observe(round(i * 10_000_000 * (1 + 20e-6)), i * 10_000_000 + 5_000)
    drift = aligner.drift_ppm
    aligner.restart()
    assert not aligner.ready
    aligner.observe(1_000, 7 * NS)
    assert aligner.drift_ppm == pytest.approx(drift)
    assert aligner.to_host_ns(1_000) == 7 * NS


def test_unwrapper_32_and_64_bit() -> None:
    timer = TimerUnwrapper(bits=None)
    host = 0
    assert timer.unwrap_us((1 << 32) - 10, host) == (1 << 32) - 10
    assert timer.unwrap_us(5, host + 15_000) == (1 << 32) + 5
    assert timer.wraps == 1
    # a long quiet channel: three wrap periods later
    later = host + 15_000 + 3 * (1 << 32) * 1000 + 1_000_000
    assert timer.unwrap_us(1_005, later) == 4 * (1 << 32) + 1_005
    auto = TimerUnwrapper(bits=None)
    assert auto.unwrap_us(1 << 33, 0) == 1 << 33
    assert auto.bits == 64
    assert auto.unwrap_us(5, 1000).bit_length() <= 3
    assert auto.restarted


def frame(sniffer: str, ts_ns: int, psdu: bytes) -> Frame:
    return Frame(ts_ns, sniffer, Band.GHZ_2_4, 0, 15, psdu, True)


def test_cross_sniffer_check_pairs_same_transmission() -> None:
    check = CrossSnifferCheck()
    found = check.observe(
        [
            frame("a", 1_000_000, b"\x01\x02"),
            frame("b", 1_000_030, b"\x01\x02"),
            frame("b", 1_000_040, b"\x09"),
            frame("a", 50_000_000, b"\x01\x02"),  # a retransmission much later
        ]
    )
    assert [(c.sniffer_a, c.sniffer_b, c.diff_ns) for c in found] == [("a", "b", -30)]
    assert check.summary()["abs_diff_p50_ns"] == 30


def test_cross_sniffer_check_batches_out_of_order_and_per_pair_figures() -> None:
    # sniffer b delivers its batch 50 ms (of ts_ns) after a's: both still pair
    check = CrossSnifferCheck()
    a = [frame("a", 1_000_000 + i * 2_000_000, bytes([i, 1])) for i in range(30)]
    b = [frame("b", 1_000_020 + i * 2_000_000, bytes([i, 1])) for i in range(30)]
    assert check.observe(a) == []
    found = check.observe(b)
    assert len(found) == 30 and {c.diff_ns for c in found} == {-20}
    (pair,) = check.take()
    assert pair == {
        "sniffer_a": "a",
        "sniffer_b": "b",
        "page": 0,
        "channel": 15,
        "matched": 30,
        "matched_total": 30,
        "mean_diff_us": -0.0,
        "abs_diff_p99_us": 0.0,
        "abs_diff_max_us": 0.0,
    }
    assert check.take()[0]["matched"] == 0  # reset after each take
    # receptions older than the horizon are forgotten
    check.observe([frame("a", 10_000_000_000, b"\x07")])
    assert check.observe([frame("b", 1_000_020, b"\x00\x01")]) == []


def test_unwrapper_48_bit() -> None:
    """The TI sniffer's 48-bit µs timestamp: unwrapped across 2^48, also after a quiet
    hour; a reading far behind the last one is a restart, not a wrap."""
    period = 1 << 48
    timer = TimerUnwrapper(bits=48)
    assert timer.unwrap_us(period - 10, 0) == period - 10
    assert timer.unwrap_us(5, 15_000) == period + 5
    assert timer.wraps == 1
    assert timer.unwrap_us(5 + 3_600_000_000, 15_000 + 3_600 * NS) == period + 5 + 3_600_000_000
    timer.unwrap_us(10, 15_000 + 3_601 * NS)
    assert timer.restarted
