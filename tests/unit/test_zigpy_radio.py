"""zigpy radio source through zigpy's public API.

The radio is a :class:`zigpy.application.ControllerApplication` subclass whose
``_packet_capture``, ``_packet_capture_change_channel``, ``energy_scan`` and
``_watchdog_feed`` are served by a fake radio, as bellows' own tests drive its
application with a mocked EZSP: hanlab's internals are not patched.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zigpy.application
import zigpy.types as t

from hanlab.errors import BadInputError
from hanlab.frames import Band, Frame, TsSource
from hanlab.sources import driver_class
from hanlab.sources.base import SourceEvent, SourceSpec
from hanlab.sources.zigpy_radio import (
    ZigpyRadioSettings,
    ZigpyRadioSource,
    captured_ts_ns,
    radio_app_class,
)


class FakeRadio:
    """What the fake ControllerApplication talks to: a stick that can be pulled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.channel: int | None = None
        self.packets: asyncio.Queue[t.CapturedPacket | Exception] = asyncio.Queue()
        self.channel_changes: list[int] = []
        self.answering = True
        self.connects = 0
        self.scans: list[tuple[list[int], int, int]] = []
        self.capturing = False

    def send(self, data: bytes, channel: int | None = None) -> None:
        self.packets.put_nowait(
            t.CapturedPacket(
                timestamp=datetime.now(UTC),
                rssi=-50,
                lqi=t.uint8_t(200),
                channel=t.uint8_t(channel or self.channel or 0),
                data=data,
            )
        )


def fake_app_class(radio: FakeRadio) -> type[zigpy.application.ControllerApplication]:
    class FakeApp(zigpy.application.ControllerApplication):
        async def connect(self) -> None:
            if not radio.path.exists():
                raise ConnectionError(f"{radio.path}: no such device")
            radio.connects += 1

        async def disconnect(self) -> None:
            pass

        async def start_network(self) -> None:
            raise NotImplementedError

        async def force_remove(self, dev: Any) -> None:
            raise NotImplementedError

        async def add_endpoint(self, descriptor: Any) -> None:
            raise NotImplementedError

        async def send_packet(self, packet: Any) -> None:
            raise NotImplementedError

        async def permit_ncp(self, time_s: int = 60) -> None:
            raise NotImplementedError

        async def permit_with_link_key(self, node: Any, link_key: Any, time_s: int = 60) -> None:
            raise NotImplementedError

        async def write_network_info(self, *, network_info: Any, node_info: Any) -> None:
            raise NotImplementedError

        async def load_network_info(self, *, load_devices: bool = False) -> None:
            raise NotImplementedError

        async def reset_network_info(self) -> None:
            raise NotImplementedError

        async def _watchdog_feed(self) -> None:
            if not radio.answering:
                await asyncio.sleep(3600)

        async def _packet_capture(self, channel: int) -> AsyncGenerator[t.CapturedPacket, None]:
            await self._packet_capture_change_channel(channel)
            radio.capturing = True
            try:
                while True:
                    item = await radio.packets.get()
                    if isinstance(item, Exception):
                        raise item
                    yield item
            finally:
                radio.capturing = False

        async def _packet_capture_change_channel(self, channel: int) -> None:
            radio.channel = channel
            radio.channel_changes.append(channel)

        async def energy_scan(
            self, channels: t.Channels, duration_exp: int, count: int
        ) -> dict[int, float]:
            assert not radio.capturing
            radio.scans.append((list(channels), duration_exp, count))
            return {ch: float(ch * 10) for ch in channels}

    return FakeApp


def make(
    tmp_path: Path, events: list[SourceEvent], **settings: Any
) -> tuple[ZigpyRadioSource, FakeRadio]:
    device = tmp_path / "ttyUSB-radio"
    device.touch()
    radio = FakeRadio(device)
    spec = SourceSpec(
        "ezsp0",
        Band.GHZ_2_4,
        0,
        15,
        ZigpyRadioSettings(path=str(device), **settings),
        "rig1",
    )
    source = ZigpyRadioSource(spec, events.append, app_class=fake_app_class(radio))
    return source, radio


async def drain(source: ZigpyRadioSource, frames: list[Frame]) -> None:
    async for batch in source.batches():
        frames.extend(batch)


async def until(predicate: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling a test condition
            await asyncio.sleep(0.005)


class Running:
    def __init__(self, source: ZigpyRadioSource) -> None:
        self.source = source
        self.frames: list[Frame] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        await self.source.start()
        self.task = asyncio.create_task(drain(self.source, self.frames))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.source.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


def test_registered_and_radio_names() -> None:
    assert driver_class("zigpy") is ZigpyRadioSource
    assert radio_app_class("ezsp").__module__ == "bellows.zigbee.application"
    with pytest.raises(BadInputError):
        radio_app_class("nonesuch")
    assert captured_ts_ns(datetime(2024, 1, 1, 0, 0, 0, 7, tzinfo=UTC)) == (
        1_704_067_200_000_007_000
    )


async def test_frames_are_host_stamped_and_monotonic(tmp_path: Path) -> None:
    events: list[SourceEvent] = []
    source, radio = make(tmp_path, events, watchdog_interval_s=None)
    async with Running(source) as run:
        await until(lambda: radio.capturing)
        for i in range(50):
            radio.send(bytes([0x41, 0x88, i]) + b"\x00" * 10)
        await until(lambda: len(run.frames) == 50)
    frames = run.frames
    assert all(f.ts_source is TsSource.HOST and f.sniffer_ts_ns is None for f in frames)
    assert all(f.channel == 15 and f.fcs_ok is None and f.rssi_dbm == -50 for f in frames)
    assert all(b.ts_ns > a.ts_ns for a, b in itertools.pairwise(frames))
    assert [f.psdu[2] for f in frames] == list(range(50))
    assert radio.channel_changes == [15]


async def test_channel_hopping_on_dwell(tmp_path: Path) -> None:
    source, radio = make(
        tmp_path, [], channels=[11, 20, 25], dwell_s=0.02, watchdog_interval_s=None
    )
    async with Running(source):
        await until(lambda: len(radio.channel_changes) >= 5)
    assert radio.channel_changes[:5] == [11, 20, 25, 11, 20]


async def test_energy_scan_on_demand_and_scheduled(tmp_path: Path) -> None:
    events: list[SourceEvent] = []
    source, radio = make(
        tmp_path,
        events,
        energy_scan_interval_s=0.05,
        energy_scan_channels=[11, 15, 26],
        watchdog_interval_s=None,
    )
    async with Running(source) as run:
        energy = await source.energy_scan([11, 12])
        assert energy == {11: 110.0, 12: 120.0}
        await until(lambda: source.counters["energy_scans"] >= 3)
        await until(lambda: radio.capturing)
        radio.send(b"\x02\x00\x07")
        await until(lambda: len(run.frames) == 1)
    scans = [e for e in events if e.kind == "energy"]
    assert scans[0].detail["energy"] == {11: 110.0, 12: 120.0}
    assert scans[1].detail["energy"] == {11: 110.0, 15: 150.0, 26: 260.0}
    assert scans[0].detail["scan_start_ns"] <= scans[0].detail["scan_end_ns"]
    gaps = [e for e in events if e.kind == "gap"]
    assert gaps and all(g.detail["reason"] == "energy scan" for g in gaps)
    assert radio.scans[0] == ([11, 12], 2, 1)


async def test_unplugged_radio_restarts_when_path_returns(tmp_path: Path) -> None:
    events: list[SourceEvent] = []
    source, radio = make(tmp_path, events, watchdog_interval_s=None, path_poll_s=0.01)
    async with Running(source) as run:
        await until(lambda: radio.capturing)
        radio.send(b"\x01\x00\x01")
        await until(lambda: len(run.frames) == 1)
        radio.path.unlink()
        radio.packets.put_nowait(OSError(19, "No such device"))
        await until(lambda: any(e.detail.get("what") == "radio_lost" for e in events))
        await asyncio.sleep(0.05)
        assert radio.connects == 1
        radio.path.touch()
        await until(lambda: radio.capturing)
        radio.send(b"\x01\x00\x02")
        await until(lambda: len(run.frames) == 2)
    gaps = [e for e in events if e.kind == "gap"]
    assert len(gaps) == 1
    assert "No such device" in gaps[0].detail["reason"]
    assert gaps[0].detail["gap_start_ns"] < gaps[0].detail["gap_end_ns"]
    assert radio.connects == 2 and source.counters["restarts"] == 1


async def test_radio_that_stops_answering_is_restarted(tmp_path: Path) -> None:
    events: list[SourceEvent] = []
    source, radio = make(tmp_path, events, watchdog_interval_s=0.02, watchdog_timeout_s=0.05)
    async with Running(source):
        await until(lambda: radio.capturing)
        radio.answering = False
        await until(lambda: source.counters["watchdog_failures"] == 1)
        radio.answering = True
        await until(lambda: source.counters["restarts"] == 1)
    gap = next(e for e in events if e.kind == "gap")
    assert "stopped answering" in gap.detail["reason"]
    assert radio.connects == 2


def test_channels_must_be_on_the_page(tmp_path: Path) -> None:
    spec = SourceSpec("z", Band.GHZ_2_4, 0, 15, ZigpyRadioSettings(path="/x", channels=[5]))
    with pytest.raises(BadInputError):
        ZigpyRadioSource(spec)
