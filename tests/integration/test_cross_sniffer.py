"""Cross-sniffer clock check in the rig runner (issue 6, item 3).

Two emulated dongles on pseudo-terminals (two nRF on 2.4 GHz, or two TI SmartRF Packet
Sniffer 2 on GB sub-GHz) hear the same frames (``SharedAir``), each stamping them with
its own clock (different offsets, drifts, timer widths) and sending them after its own
delivery delay. hanlab aligns each clock by its minimum delay, so the
aligned times of a frame differ by the difference of the two uncalibrated minimum
delays, unless ``min_delay_us`` calibrates it away. The rig runner reports that
difference in ``clock`` events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hanlab.config import RigConfig, SnifferConfig
from hanlab.daemon.clockcheck import ClockCheck
from hanlab.events.bus import CLOSED, BusEvent, EventBus
from hanlab.runtime.rig import RigOptions, RigRuntime
from hanlab.sources.nrf802154 import Nrf802154Settings
from hanlab.sources.serial_sniffer import SerialSnifferSettings
from hanlab.sources.ti_sniffer import TiSnifferSettings
from tests.tools import ti_dongle
from tests.tools.nrf_dongle import DongleConfig, EmulatedNrfDongle, SharedAir
from tests.tools.ti_dongle import EmulatedTiDongle, TiDongleConfig


@dataclass(frozen=True)
class Pair:
    """Two dongles of one kind on one channel."""

    name: str
    driver: str
    page: int
    channel: int
    settings: type[SerialSnifferSettings]
    dongle: Any
    configs: tuple[Any, Any]
    air: dict[str, Any]


NRF_PAIR = Pair("nrf", "nrf802154", 0, 15, Nrf802154Settings, EmulatedNrfDongle, (
    DongleConfig(offset_ns=200_000_000, drift_ppm=30.0, timer_bits=32, delay_ns=100_000,
                 jitter_ns=50_000, own_traffic=False, seed=1),
    DongleConfig(offset_ns=7_000_000_000, drift_ppm=-20.0, timer_bits=64, delay_ns=500_000,
                 jitter_ns=50_000, own_traffic=False, seed=2)), {"rate_hz": 200})
# sub-GHz frames are 2.5x longer on air: a lower rate, the FSK PHY's timing
TI_PAIR = Pair("ti", "ti-smartrf-sniffer2", 28, 11, TiSnifferSettings, EmulatedTiDongle, (
    TiDongleConfig(offset_ns=200_000_000, drift_ppm=30.0, delay_ns=100_000, jitter_ns=50_000,
                   own_traffic=False, seed=1),
    TiDongleConfig(offset_ns=7_000_000_000, drift_ppm=-20.0, delay_ns=500_000,
                   jitter_ns=50_000, wrap_after_ns=2_000_000_000, own_traffic=False,
                   seed=2)), {
    "rate_hz": 120, "tuned": lambda d: d.receiving, "octet_ns": ti_dongle.OCTET_NS,
    "overhead_octets": ti_dongle.SHR_OCTETS + ti_dongle.PHR_OCTETS,
    "turnaround_ns": ti_dongle.TURNAROUND_NS})
DELAY_A_US, DELAY_B_US = 100, 500
TOLERANCE_US = 100
CLOCK_EVENTS = 10  # 1 s each: the last one is judged (its drift over a 10 s span)


def rig_config(channels: dict[str, int], ports: dict[str, Path],
               driver: str = "nrf802154", page: int = 0) -> RigConfig:
    return RigConfig(
        name="rigX",
        sniffers=[
            SnifferConfig(id=sid, driver=driver, page=page, channel=ch,
                          settings={"port": str(ports[sid])})
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


@pytest.mark.parametrize("kind", [NRF_PAIR, TI_PAIR], ids=["nrf", "ti"])
@pytest.mark.parametrize(
    ("min_delay_b_us", "expected_diff_us"),
    [(0, DELAY_A_US - DELAY_B_US), (DELAY_B_US - DELAY_A_US, 0)],
    ids=["uncalibrated", "calibrated"],
)
async def test_two_dongles_one_frame_difference_reported(
    tmp_path: Path, min_delay_b_us: int, expected_diff_us: int, kind: Pair
) -> None:
    ports = {"nrf0": tmp_path / "nrf0", "nrf1": tmp_path / "nrf1"}
    rig = rig_config({"nrf0": kind.channel, "nrf1": kind.channel}, ports, kind.driver,
                     kind.page)
    settings = {
        "nrf0": kind.settings(port=str(ports["nrf0"])),
        "nrf1": kind.settings(port=str(ports["nrf1"]), min_delay_us=min_delay_b_us),
    }
    config_a, config_b = kind.configs
    runner = RigRuntime(rig, settings, RigOptions(capture_folder=tmp_path, stats_interval_s=1.0))
    watch = runner.bus.subscribe("watch", maxsize=10_000, frames=False)
    async with (
        kind.dongle(ports["nrf0"], config_a) as a,
        kind.dongle(ports["nrf1"], config_b) as b,
    ):
        run = asyncio.create_task(runner.run())
        await until(lambda: a.receiving and b.receiving)
        events: list[BusEvent] = []
        async with SharedAir([a, b], channel=kind.channel, seed=3, **kind.air) as air:
            while len(events) < CLOCK_EVENTS:
                item = await asyncio.wait_for(watch.queue.get(), 10)
                if isinstance(item, BusEvent) and item.kind == "clock":
                    events.append(item)
        runner.stop()
        await asyncio.wait_for(run, 10)
    while watch.queue.get_nowait() is not CLOSED:
        pass
    assert len(air.sent) > kind.air["rate_hz"]
    last = events[-1].payload
    (pair,) = last["pairs"]
    print(f"clock event: {last}")
    assert (pair["sniffer_a"], pair["sniffer_b"], pair["page"], pair["channel"]) == (
        "nrf0", "nrf1", kind.page, kind.channel)
    # about rate_hz frames per 1 s interval, nearly all heard by both
    assert pair["matched"] > kind.air["rate_hz"] / 2, last
    assert last["matched"] == pair["matched"]
    assert abs(pair["mean_diff_us"] - expected_diff_us) < TOLERANCE_US, last
    assert pair["abs_diff_p99_us"] < abs(expected_diff_us) + 2 * TOLERANCE_US, last
    models = last["sniffers"]
    assert set(models) == {"nrf0", "nrf1"}
    # drift_ppm is host rate minus sniffer rate: a fast sniffer (+30 ppm) shows -30
    assert abs(models["nrf0"]["drift_ppm"] + 30) < 25, last
    assert abs(models["nrf1"]["drift_ppm"] - 20) < 25, last
    assert {"offset_ns", "uncertainty_ns"} <= set(models["nrf0"])
