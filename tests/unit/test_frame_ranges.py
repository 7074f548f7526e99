"""One out-of-range value never stops a capture writer (issue 14 item 8).

Fields are range-checked at the source (:func:`hanlab.frames.checked_frames`, used by
every driver through ``FrameSource.checked``), and the pcapng writer and the capture sink
skip and count what they still cannot write.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from hanlab.capture.pcapng import PcapngWriter, section_header_block
from hanlab.capture.reader import read_frames
from hanlab.capture.sink import CaptureSink
from hanlab.events.bus import EventBus
from hanlab.fcs import fcs16_bytes
from hanlab.frames import TS_NS_LIMIT, Band, Frame, TsSource, checked_frames
from hanlab.sources.base import SourceSpec
from hanlab.sources.pcap_replay import PcapReplaySettings, PcapReplaySource

ACK = bytes.fromhex("0200d7")
T0 = 1_700_000_000 * 10**9


def good(ts_ns: int = T0, **kw: object) -> Frame:
    base: dict[str, object] = dict(ts_ns=ts_ns, sniffer_id="s1", band=Band.GHZ_2_4, page=0,
                                   channel=15, psdu=ACK, fcs_ok=True, rssi_dbm=-40.0, lqi=200)
    base.update(kw)
    return Frame(**base)  # type: ignore[arg-type]


def test_checked_frames_keeps_a_good_batch_as_is() -> None:
    counters: dict[str, int] = {}
    batch = [good(T0 + i) for i in range(5)]
    assert checked_frames(batch, counters) is batch
    assert counters == {}


@pytest.mark.parametrize("bad", [
    {"ts_ns": 2**64}, {"ts_ns": TS_NS_LIMIT}, {"ts_ns": -1},
    {"page": 5}, {"channel": 27}, {"page": 28, "channel": 3},  # band disagrees with page
    {"channel": 70_000}, {"psdu": bytes(126), "ts_source": TsSource.SNIFFER},
    {"psdu": bytes(128), "fcs_ok": None, "ts_source": TsSource.HOST},
    {"psdu": bytes(70_000)},
])
def test_checked_frames_drops_and_counts(bad: dict[str, object]) -> None:
    counters: dict[str, int] = {}
    out = checked_frames([good(T0), good(**{"ts_ns": T0 + 1, **bad}), good(T0 + 2)], counters)
    assert [f.ts_ns for f in out] == [T0, T0 + 2]
    assert counters["out_of_range"] == 1


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("rssi_dbm", 1e39, 127.0), ("rssi_dbm", -1e39, -128.0), ("rssi_dbm", float("inf"), 127.0),
    ("rssi_dbm", float("nan"), None), ("rssi_dbm", 10**400, None),
    ("lqi", 300, 255), ("lqi", -4, 0),
])
def test_checked_frames_clamps_and_counts(field: str, value: object, expected: object) -> None:
    counters: dict[str, int] = {}
    (out,) = checked_frames([good(**{field: value})], counters)
    assert getattr(out, field) == expected
    assert counters["out_of_range"] == 1


def test_writer_skips_a_frame_it_cannot_write(tmp_path: Path) -> None:
    writer = PcapngWriter(tmp_path / "x.pcapng")
    if_id = writer.interface("s1", "2.4GHz page 0 channel 15")
    writer.write(if_id, good(T0))
    writer.write(if_id, good(2**64))        # struct.error: ts beyond 64 bits
    writer.write(if_id, good(T0 + 1, rssi_dbm=1e39))  # OverflowError: float32
    writer.write(if_id, good(T0 + 2, channel=70_000))  # struct.error: u16 channel
    writer.write(if_id, good(T0 + 3))
    writer.close()
    assert (writer.frames, writer.skipped) == (2, 3)
    assert [f.ts_ns for f in read_frames(tmp_path / "x.pcapng")] == [T0, T0 + 3]


def _pcapng_us(stamps_raw: list[int]) -> bytes:
    """A pcapng file, DLT 195, default timestamp resolution (µs), one EPB per stamp."""
    def block(btype: int, body: bytes) -> bytes:
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack(
            "<I", 12 + len(body))
    out = section_header_block()
    out += block(1, struct.pack("<HHI", 195, 0, 0xFFFF))
    data = ACK + fcs16_bytes(ACK)
    pad = b"\0" * (-len(data) % 4)
    for raw in stamps_raw:
        out += block(6, struct.pack("<IIIII", 0, raw >> 32, raw & 0xFFFFFFFF, len(data),
                                    len(data)) + data + pad)
    return out


async def test_replayed_timestamp_beyond_2_64_ns_is_dropped_and_the_rest_written(
        tmp_path: Path) -> None:
    t0_us = T0 // 1000
    path = tmp_path / "bad-ts.pcapng"
    path.write_bytes(_pcapng_us([t0_us, 2**62, t0_us + 1, t0_us + 2]))  # 2^62 µs ≥ 2^64 ns
    assert max(f.ts_ns for f in read_frames(path)) >= 2**64  # the reader passes it on
    spec = SourceSpec("s1", Band.GHZ_2_4, 0, 15, PcapReplaySettings(file=path, pace="fast"))
    source = PcapReplaySource(spec)
    bus = EventBus()
    sink = CaptureSink(bus.subscribe("capture", maxsize=64), tmp_path / "out", "rig",
                       {"s1": "2.4GHz"})
    task = asyncio.create_task(sink.run())
    async with source:
        async for batch in source.batches():
            await bus.publish(batch)
    await bus.close()
    await task
    assert source.counters["out_of_range"] == 1
    assert not sink.failed and sink.error is None
    (written,) = sink.files
    assert [f.ts_ns for f in read_frames(written)] == [T0, T0 + 1000, T0 + 2000]


async def test_sink_survives_a_batch_that_fails_and_reports_it(tmp_path: Path) -> None:
    bus = EventBus()
    sink = CaptureSink(bus.subscribe("capture", maxsize=64), tmp_path / "out", "rig",
                       {"s1": "2.4GHz"})
    task = asyncio.create_task(sink.run())
    await bus.publish([good(T0)])
    await bus.publish([good(2**64)])  # skipped by the writer
    await bus.publish(["not a frame"])  # type: ignore[list-item]
    await bus.publish([good(T0 + 5)])
    await bus.close()
    await task
    assert sink.failed and sink.frames_lost == 1 and sink.frames_skipped == 1
    assert [f.ts_ns for f in read_frames(sink.files[0])] == [T0, T0 + 5]


def test_an_oversized_frame_recorded_in_a_capture_is_kept() -> None:
    """A capture is evidence (e.g. PHY tests with 126-octet PSDUs): kept as recorded."""
    counters: dict[str, int] = {}
    batch = [good(psdu=bytes(126), fcs_ok=False)]
    assert checked_frames(batch, counters) is batch and counters == {}
