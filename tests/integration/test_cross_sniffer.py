"""Cross-sniffer clock check in the rig runner (issue 6, item 3).

Two emulated nRF dongles on pseudo-terminals hear the same frames (``SharedAir``), each
stamping them with its own clock (different offsets, drifts, timer widths) and printing
them after its own delivery delay. hanlab aligns each clock by its minimum delay, so the
aligned times of a frame differ by the difference of the two uncalibrated minimum
delays, unless ``min_delay_us`` calibrates it away. The rig runner reports that
difference in ``clock`` events.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from hanlab.config import RigConfig, SnifferConfig
from hanlab.daemon.clockcheck import ClockCheck
from hanlab.events.bus import CLOSED, BusEvent, EventBus
from hanlab.runtime.rig import RigOptions, RigRuntime
from hanlab.sources.nrf802154 import Nrf802154Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from nrf_dongle import DongleConfig, EmulatedNrfDongle, SharedAir

CHANNEL = 15
DELAY_A_US, DELAY_B_US, JITTER_US = 100, 500, 50
TOLERANCE_US = 100
CLOCK_EVENTS = 6  # 1 s each: the last one is judged


def rig_config(channels: dict[str, int], ports: dict[str, Path]) -> RigConfig:
    return RigConfig(
        name="rigX",
        sniffers=[
            SnifferConfig(
                id=sid, driver="nrf802154", channel=ch, settings={"port": str(ports[sid])}
            )
            for sid, ch in channels.items()
        ],
    )


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling a test condition
            await asyncio.sleep(0.01)


def test_no_check_without_a_shared_channel(tmp_path: Path) -> None:
    ports = {"a": tmp_path / "a", "b": tmp_path / "b"}
    assert ClockCheck.for_rig(rig_config({"a": 15, "b": 20}, ports), EventBus()) is None
    check = ClockCheck.for_rig(rig_config({"a": 15, "b": 15}, ports), EventBus())
    assert check is not None and check.sniffer_ids == {"a", "b"}


@pytest.mark.parametrize(
    ("min_delay_b_us", "expected_diff_us"),
    [(0, DELAY_A_US - DELAY_B_US), (DELAY_B_US - DELAY_A_US, 0)],
    ids=["uncalibrated", "calibrated"],
)
async def test_two_dongles_one_frame_difference_reported(
    tmp_path: Path, min_delay_b_us: int, expected_diff_us: int
) -> None:
    ports = {"nrf0": tmp_path / "nrf0", "nrf1": tmp_path / "nrf1"}
    rig = rig_config({"nrf0": CHANNEL, "nrf1": CHANNEL}, ports)
    settings = {
        "nrf0": Nrf802154Settings(port=str(ports["nrf0"])),
        "nrf1": Nrf802154Settings(port=str(ports["nrf1"]), min_delay_us=min_delay_b_us),
    }
    config_a = DongleConfig(
        offset_ns=200_000_000,
        drift_ppm=30.0,
        timer_bits=32,
        delay_ns=DELAY_A_US * 1000,
        jitter_ns=JITTER_US * 1000,
        own_traffic=False,
        seed=1,
    )
    config_b = DongleConfig(
        offset_ns=7_000_000_000,
        drift_ppm=-20.0,
        timer_bits=64,
        delay_ns=DELAY_B_US * 1000,
        jitter_ns=JITTER_US * 1000,
        own_traffic=False,
        seed=2,
    )
    runner = RigRuntime(rig, settings, RigOptions(capture_folder=tmp_path, stats_interval_s=1.0))
    watch = runner.bus.subscribe("watch", maxsize=10_000, frames=False)
    async with (
        EmulatedNrfDongle(ports["nrf0"], config_a) as a,
        EmulatedNrfDongle(ports["nrf1"], config_b) as b,
    ):
        run = asyncio.create_task(runner.run())
        await until(lambda: a.receiving and b.receiving)
        events: list[BusEvent] = []
        async with SharedAir([a, b], channel=CHANNEL, rate_hz=200, seed=3) as air:
            while len(events) < CLOCK_EVENTS:
                item = await asyncio.wait_for(watch.queue.get(), 10)
                if isinstance(item, BusEvent) and item.kind == "clock":
                    events.append(item)
        runner.stop()
        await asyncio.wait_for(run, 10)
    while watch.queue.get_nowait() is not CLOSED:
        pass
    assert len(air.sent) > 200
    last = events[-1].payload
    (pair,) = last["pairs"]
    print(f"clock event: {last}")
    assert (pair["sniffer_a"], pair["sniffer_b"], pair["page"], pair["channel"]) == (
        "nrf0",
        "nrf1",
        0,
        CHANNEL,
    )
    # about 200 frames per 1 s interval, nearly all heard by both
    assert pair["matched"] > 100, last
    assert last["matched"] == pair["matched"]
    assert abs(pair["mean_diff_us"] - expected_diff_us) < TOLERANCE_US, last
    assert pair["abs_diff_p99_us"] < abs(expected_diff_us) + 2 * TOLERANCE_US, last
    models = last["sniffers"]
    assert set(models) == {"nrf0", "nrf1"}
    # drift_ppm is host rate minus sniffer rate: a fast sniffer (+30 ppm) shows -30
    assert abs(models["nrf0"]["drift_ppm"] + 30) < 25, last
    assert abs(models["nrf1"]["drift_ppm"] - 20) < 25, last
    assert {"offset_ns", "uncertainty_ns"} <= set(models["nrf0"])
