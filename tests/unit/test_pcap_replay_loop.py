"""A looped replay continues the time line; looped and live sources never finish
(issue 14 item 4)."""

from __future__ import annotations

import itertools
from pathlib import Path

from hanlab.capture.reader import read_frames
from hanlab.capture.rotation import BandCaptureFiles
from hanlab.fcs import fcs16_bytes
from hanlab.frames import Band, Frame
from hanlab.sources.base import SourceSpec
from hanlab.sources.emulated import EmulatedSnifferSettings
from hanlab.sources.nrf802154 import Nrf802154Settings
from hanlab.sources.pcap_replay import PcapReplaySettings, PcapReplaySource
from tests.unit.test_capture_io import ACK, pcap

T0 = 1_700_000_000 * 10**9
#: four frames over 3 s: span 3 s, mean gap 1 s
STAMPS = [T0, T0 + 1 * 10**9, T0 + 2 * 10**9, T0 + 3 * 10**9]


async def _looped(path: Path, passes: int, pace: str = "fast") -> list[Frame]:
    settings = PcapReplaySettings(file=path, pace=pace, scale=1000.0, loop=True,
                                  batch_frames=3)
    source = PcapReplaySource(SourceSpec("s1", Band.GHZ_2_4, 0, 15, settings))
    frames: list[Frame] = []
    async with source:
        async for batch in source.batches():
            frames.extend(batch)
            if len(frames) >= passes * len(STAMPS):
                break
    return frames


async def test_each_loop_continues_the_time_line(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap([(t, ACK + fcs16_bytes(ACK)) for t in STAMPS], nanos=True))
    for pace in ("fast", "recorded"):
        frames = await _looped(path, 3, pace)
        step = 3 * 10**9 + 10**9  # span + one inter-frame gap
        assert [f.ts_ns for f in frames] == [t + k * step for k in range(3) for t in STAMPS]
        assert all(b.ts_ns > a.ts_ns for a, b in itertools.pairwise(frames))


async def test_looped_frames_in_one_pcapng_never_go_back(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap([(t, ACK + fcs16_bytes(ACK)) for t in STAMPS], nanos=True))
    files = BandCaptureFiles(tmp_path / "out", "rig", Band.GHZ_2_4, {"s1": "2.4GHz"})
    frames = await _looped(path, 5)
    files.write(frames)
    files.close()
    (written,) = files.files
    stamps = [f.ts_ns for f in read_frames(written)]
    assert len(stamps) == 20 and stamps == sorted(stamps)


def test_never_finishes() -> None:
    assert PcapReplaySettings(file=Path("x"), loop=True).never_finishes
    assert not PcapReplaySettings(file=Path("x")).never_finishes
    assert Nrf802154Settings(port="/dev/x").never_finishes
    assert EmulatedSnifferSettings().never_finishes
