"""Event bus drops and backpressure; rig supervision: restart with backoff, gap events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from hanlab.capture.reader import read_frames
from hanlab.config import RigConfig, SnifferConfig
from hanlab.errors import SourceError
from hanlab.events.bus import CLOSED, LOSSLESS_FRAMES, BusEvent, EventBus
from hanlab.frames import Band, Frame, FrameBatch
from hanlab.runtime.rig import RigOptions, RigRuntime
from hanlab.sources import DRIVERS
from hanlab.sources.base import DriverSettings, FrameSource, SourceEvent


def frames(n: int, sniffer: str = "s", start_ns: int = 0) -> list[Frame]:
    return [Frame(start_ns + i, sniffer, Band.GHZ_2_4, 0, 11, b"\x02\x00" + bytes([i % 256]),
                  True) for i in range(n)]


async def test_full_queue_drops_and_counts_without_blocking() -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=2)
    fast = bus.subscribe("fast", maxsize=100)
    events_only = bus.subscribe("mqtt", maxsize=100, frames=False)
    for _ in range(5):
        bus.publish_nowait(frames(3))
    bus.publish_nowait(BusEvent("stats", {"x": 1}))
    assert slow.queue.qsize() == 2 and slow.dropped_frames["s"] == 9
    assert slow.dropped_events == 1
    assert fast.queue.qsize() == 6 and not fast.dropped_frames
    assert events_only.queue.qsize() == 1
    assert bus.dropped_frames() == {"s": 9}


async def test_publish_waits_for_room_and_close_ends_after_queued() -> None:
    bus = EventBus()
    sub = bus.subscribe("sink", maxsize=1)
    got: list[object] = []

    async def consume() -> None:
        while (item := await sub.get()) is not CLOSED:
            got.append(item)

    task = asyncio.create_task(consume())
    for i in range(5):
        await bus.publish(frames(1, start_ns=i))
    await bus.close()
    await task
    assert len(got) == 5 and not sub.dropped_frames


async def test_publish_holds_at_most_lossless_frames_queued() -> None:
    """A lossless source (a file at full speed) waits once the sink holds
    ``lossless_frames`` frames, whatever room ``maxsize`` still leaves; a live source's
    ``publish_nowait`` is bounded by ``maxsize`` only. Every frame arrives, in order."""
    bus = EventBus()
    sub = bus.subscribe("capture", maxsize=512)
    assert sub.lossless_frames == LOSSLESS_FRAMES
    batch = 512
    most = 0
    got: list[int] = []

    async def produce() -> None:
        for i in range(40):
            await bus.publish(frames(batch, start_ns=i * batch))
        await bus.close()

    async def consume() -> None:
        nonlocal most
        while True:
            await asyncio.sleep(0)  # a sink slower than the source
            most = max(most, sum(len(item) for item in sub.queue._queue  # type: ignore[attr-defined]
                                 if isinstance(item, list)))
            item = await sub.get()
            if item is CLOSED:
                return
            assert isinstance(item, list)
            got.extend(f.ts_ns for f in item)

    await asyncio.gather(produce(), consume())
    assert got == list(range(40 * batch)) and not sub.dropped_frames
    assert LOSSLESS_FRAMES <= most < LOSSLESS_FRAMES + batch
    assert sub.queue.frames_queued == 0
    for _ in range(LOSSLESS_FRAMES // batch + 8):  # live: no frame bound, only maxsize
        bus.publish_nowait(frames(batch))
    assert sub.queue.frames_queued == (LOSSLESS_FRAMES // batch + 8) * batch


class FlakySettings(DriverSettings):
    fail_times: int = 2
    frames: int = 10


class FlakySource(FrameSource):
    """Fails ``fail_times`` times at start, then yields its frames and ends."""

    Settings: ClassVar[type[DriverSettings]] = FlakySettings
    starts = 0

    async def start(self) -> None:
        type(self).starts += 1
        settings = self.spec.settings
        assert isinstance(settings, FlakySettings)
        if type(self).starts <= settings.fail_times:
            raise SourceError("device vanished (ENODEV)")

    async def batches(self) -> AsyncIterator[FrameBatch]:
        settings = self.spec.settings
        assert isinstance(settings, FlakySettings)
        yield frames(settings.frames, self.sniffer_id, 1_700_000_000 * 10**9)


class CrashingSource(FrameSource):
    """A driver with a bug: it raises a plain exception every time."""

    async def batches(self) -> AsyncIterator[FrameBatch]:
        raise ZeroDivisionError("driver bug")
        yield []  # pragma: no cover


@pytest.fixture
def test_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DRIVERS, "flaky", f"{__name__}:FlakySource")
    monkeypatch.setitem(DRIVERS, "crashing", f"{__name__}:CrashingSource")
    FlakySource.starts = 0


async def test_failed_source_restarts_with_backoff_and_reports_the_gap(
    test_drivers: None, tmp_path: Path
) -> None:
    rig = RigConfig(name="r", sniffers=[
        SnifferConfig(id="flaky", driver="flaky"), SnifferConfig(id="bug", driver="crashing")])
    seen: list[SourceEvent] = []
    runner = RigRuntime(rig, {"flaky": FlakySettings(), "bug": DriverSettings()},
                       RigOptions(capture_folder=tmp_path, backoff_start_s=0.01,
                                  backoff_max_s=0.02))
    report = runner.report
    runner.report = lambda e: (seen.append(e), report(e))[1]  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run())
    for _ in range(200):
        if any(e.kind == "finished" for e in seen):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    runner.stop()
    await task
    flaky = [e for e in seen if e.sniffer_id == "flaky"]
    assert [e.kind for e in flaky] == ["failed", "failed", "started", "gap", "finished"]
    assert flaky[0].detail["reason"] == "device vanished (ENODEV)"
    assert flaky[1].detail["retry_in_s"] == 0.02
    gap = flaky[3].detail
    assert gap["gap_start_ns"] < gap["gap_end_ns"]
    assert gap["reason"] == "device vanished (ENODEV)"
    bug = [e for e in seen if e.sniffer_id == "bug"]
    failed = [e for e in bug if e.kind == "failed"]
    assert len(failed) >= 2 and {e.kind for e in bug} <= {"started", "failed", "stopped"}
    assert failed[0].detail["reason"] == "ZeroDivisionError: driver bug"
    (path,) = runner.capture.files
    assert len(list(read_frames(path))) == 10
    assert runner.stats.counts["flaky"].frames == 10


async def test_stop_is_prompt_and_closes_files(test_drivers: None, tmp_path: Path) -> None:
    rig = RigConfig(name="r", sniffers=[SnifferConfig(id="flaky", driver="flaky")])
    runner = RigRuntime(rig, {"flaky": FlakySettings(fail_times=1000)},
                       RigOptions(capture_folder=tmp_path, backoff_start_s=0.01))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    runner.stop()
    await asyncio.wait_for(task, 2)
    assert runner.capture.files == []
