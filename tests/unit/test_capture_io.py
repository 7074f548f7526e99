"""pcap/pcapng reading and TAP pcapng writing: formats, link types, damage, rotation."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hanlab.capture.linktypes import decap_tap, decap_zep
from hanlab.capture.pcapng import PcapngWriter
from hanlab.capture.reader import CaptureReader, read_frames
from hanlab.capture.rotation import BandCaptureFiles
from hanlab.errors import CaptureFormatError
from hanlab.fcs import fcs16, fcs16_bytes
from hanlab.frames import Band, Frame, TsSource

ACK = bytes.fromhex("0200d7")
DATA = bytes.fromhex("6188a1341200000000") + b"payload"


def pcap(records: list[tuple[int, bytes]], linktype: int = 195, *, nanos: bool = False,
         big_endian: bool = False, orig_extra: int = 0) -> bytes:
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for ts_ns, data in records:
        frac = ts_ns % 10**9 if nanos else (ts_ns % 10**9) // 1000
        out += struct.pack(e + "IIII", ts_ns // 10**9, frac, len(data), len(data) + orig_extra)
        out += data
    return out


def frame(ts_ns: int, psdu: bytes, **kw: object) -> Frame:
    base: dict[str, object] = dict(ts_ns=ts_ns, sniffer_id="s1", band=Band.GHZ_2_4, page=0,
                                   channel=15, psdu=psdu, fcs_ok=True)
    base.update(kw)
    return Frame(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("nanos", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_variants_and_fcs(tmp_path: Path, nanos: bool, big_endian: bool) -> None:
    bad = DATA + b"\x00\x00"
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap([(1_700_000_000_123_456_000, ACK + fcs16_bytes(ACK)),
                           (1_700_000_001_000_000_000, bad)], nanos=nanos,
                          big_endian=big_endian))
    frames = list(read_frames(path, "s9", page=0, channel=20))
    assert [f.psdu for f in frames] == [ACK, DATA]
    assert [f.fcs_ok for f in frames] == [True, fcs16(DATA) == 0]
    assert frames[0].ts_ns == 1_700_000_000_123_456_000
    assert (frames[0].sniffer_id, frames[0].channel, frames[0].ts_source) == (
        "s9", 20, TsSource.CAPTURE)


def test_out_of_order_is_kept_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    stamps = [3_000_000_000, 1_000_000_000, 2_000_000_000, 4_000_000_000]
    path.write_bytes(pcap([(t, ACK + fcs16_bytes(ACK)) for t in stamps]))
    reader = CaptureReader(path)
    assert [f.ts_ns for f in reader] == stamps
    assert reader.out_of_order == 1


def test_snaplen_cut_fcs_keeps_the_psdu(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap([(0, ACK)], orig_extra=2))
    (f,) = read_frames(path)
    assert f.psdu == ACK and f.fcs_ok is None


def test_truncated_pcap_yields_good_frames_then_names_offset(tmp_path: Path) -> None:
    data = pcap([(i, ACK + fcs16_bytes(ACK)) for i in range(3)])
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-3])
    got: list[Frame] = []
    with pytest.raises(CaptureFormatError) as info:
        got.extend(read_frames(path))
    assert len(got) == 2
    assert info.value.offset == 24 + 2 * 21 and "truncated record" in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_link_type_and_garbage_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    path.write_bytes(pcap([(0, b"abc")], linktype=105))
    with pytest.raises(CaptureFormatError, match="link type 105 is not one hanlab reads"):
        list(read_frames(path))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng file"):
        list(read_frames(junk))
    with pytest.raises(CaptureFormatError, match=r"missing\.pcap: file not found$"):
        list(read_frames(tmp_path / "missing.pcap"))


def test_tap_tlvs() -> None:
    tlvs = (struct.pack("<HHB3x", 0, 1, 1) + struct.pack("<HHHB1x", 3, 3, 7, 29)
            + struct.pack("<HHf", 1, 4, -71.5) + struct.pack("<HHB3x", 10, 1, 200))
    packet = struct.pack("<BBH", 0, 0, 4 + len(tlvs)) + tlvs + DATA + fcs16_bytes(DATA)
    assert decap_tap(packet) == (DATA, True, 29, 7, -71.5, 200)
    with pytest.raises(ValueError, match="TAP length"):
        decap_tap(b"\x00\x00\xff\x00")


def test_zep_v1_v2_and_ack() -> None:
    body = DATA + fcs16_bytes(DATA)
    v2 = (b"EX\x02\x01" + bytes([19]) + b"\x00\x01" + b"\x01" + bytes([180]) + bytes(8)
          + bytes(4) + bytes(10) + bytes([len(body)]) + body)
    assert decap_zep(v2) == (DATA, True, 0, 19, None, 180)
    v1 = b"EX\x01" + bytes([25]) + b"\x00\x01" + b"\x00" + bytes([90]) + bytes(7) + bytes(
        [len(DATA) + 2]) + DATA + b"\xc4\x80"
    psdu, ok, page, channel, rssi, lqi = decap_zep(v1)  # type: ignore[misc]
    assert (psdu, ok, page, channel, rssi, lqi) == (DATA, True, 0, 25, -60.0, 90)
    assert decap_zep(b"EX\x02\x02" + bytes(4)) is None
    with pytest.raises(ValueError, match="ZEP length"):
        decap_zep(v2[:-5])


def test_writer_round_trip_through_our_reader(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    writer = PcapngWriter(path)
    a = writer.interface("s1", "2.4GHz page 0 channel 15")
    b = writer.interface("s2", "subGHz page 28 channel 3")
    frames = [
        frame(1_700_000_000_000_000_001, ACK),
        frame(1_700_000_000_000_000_002, DATA, fcs_ok=False, rssi_dbm=-80.0, lqi=99),
        frame(1_700_000_000_000_000_003, DATA, fcs_ok=None, sniffer_id="s2",
              band=Band.SUB_GHZ, page=28, channel=3),
    ]
    for f in frames[:2]:
        writer.write(a, f)
    writer.write(b, frames[2])
    writer.write_gap(a, 5, 9, "unplugged")
    writer.close()
    writer.close()
    back = list(read_frames(path))
    assert [(f.ts_ns, f.psdu, f.fcs_ok, f.page, f.channel, f.rssi_dbm, f.lqi) for f in back] == [
        (f.ts_ns, f.psdu, f.fcs_ok, f.page, f.channel, f.rssi_dbm, f.lqi) for f in frames]


def test_rotation_by_duration_and_size_with_predictable_names(tmp_path: Path) -> None:
    t0 = 1_700_000_000 * 10**9
    files = BandCaptureFiles(tmp_path, "rigA", Band.GHZ_2_4, {"s1": "d"},
                             rotate_duration_s=10.0)
    files.write([frame(t0, ACK)])
    files.write([frame(t0 + 5 * 10**9, ACK)])
    files.write([frame(t0 + 11 * 10**9, ACK)])
    files.write([frame(t0 + 11 * 10**9, ACK)])  # same second: still the second file
    files.close()
    assert [p.name for p in files.files] == [
        "rigA_2.4GHz_20231114T221320Z.pcapng", "rigA_2.4GHz_20231114T221331Z.pcapng"]
    assert [len(list(read_frames(p))) for p in files.files] == [2, 2]

    sized = BandCaptureFiles(tmp_path / "s", "rigA", Band.SUB_GHZ, {}, rotate_size_bytes=400)
    for _ in range(6):
        sized.write([frame(t0, DATA, band=Band.SUB_GHZ, page=28, channel=1)])
        sized.flush()
    sized.close()
    assert len(sized.files) > 1
    assert sized.files[1].name == "rigA_subGHz_20231114T221320Z-1.pcapng"
    assert sum(len(list(read_frames(p))) for p in sized.files) == 6
    assert all(p.stat().st_size < 400 + 200 for p in sized.files)


def test_our_pcapng_is_read_by_tshark_with_tap_fields(tmp_path: Path, tshark: str) -> None:
    from tests.tshark_util import read_with_tshark

    path = tmp_path / "t.pcapng"
    writer = PcapngWriter(path)
    sub = writer.interface("s868", "subGHz page 30 channel 40")
    writer.write(sub, frame(1_700_000_000_000_000_007, DATA, page=30, channel=40,
                            band=Band.SUB_GHZ, rssi_dbm=-55.0, lqi=201))
    writer.write_gap(sub, 1, 2, "test gap")
    writer.close()
    (got,) = read_with_tshark(tshark, path)
    assert (got.tap_page, got.tap_channel, got.tap_fcs_type, got.fcs_ok) == (30, 40, 1, True)
    assert got.wpan == DATA  # tshark's wpan bytes exclude the FCS
    assert got.epoch_s.endswith(".000000007")


def test_a_cut_at_any_page_boundary_leaves_whole_blocks(tmp_path: Path) -> None:
    """Issue 14 item 12: a kill -9 can cut a multi-page write at a page boundary; no block
    crosses one, so every such cut leaves a readable file with a prefix of the frames."""
    from hanlab.capture.pcapng import PAGE_OCTETS

    path = tmp_path / "x.pcapng"
    writer = PcapngWriter(path, [("s1", "2.4GHz page 0 channel 15")])
    assert path.stat().st_size > 0  # SHB and IDB on disk before any frame
    assert list(read_frames(path)) == []
    frames = [frame(1_700_000_000_000_000_000 + i, DATA[: 3 + i % 20] * (1 + i % 6),
                    rssi_dbm=-40.0 if i % 3 else None, lqi=i % 256 if i % 2 else None)
              for i in range(400)]
    for i, f in enumerate(frames):
        writer.write(0, f)
        if i == 200:
            writer.write_gap(0, 1, 2, "unplugged " * (i % 7))
    writer.close()
    data = path.read_bytes()
    assert len(data) > 10 * PAGE_OCTETS
    psdus = [f.psdu for f in frames]
    for cut in range(PAGE_OCTETS, len(data), PAGE_OCTETS):
        part = tmp_path / f"cut{cut}.pcapng"
        part.write_bytes(data[:cut])
        got = [f.psdu for f in read_frames(part)]  # no CaptureFormatError
        assert got == psdus[: len(got)]


_CHANNELS = [(0, 11), (0, 26), (28, 3), (29, 1)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_CHANNELS), st.sampled_from([True, False, None]),
                          st.sampled_from([None, -80.5]), st.sampled_from([None, 7]),
                          st.binary(min_size=0, max_size=9)), min_size=1, max_size=40))
def test_writer_headers_follow_each_frame(tmp_path_factory: pytest.TempPathFactory,
                                          specs: list[tuple[tuple[int, int], bool | None,
                                                            float | None, int | None, bytes]]
                                          ) -> None:
    """Runs of frames that change channel, FCS type, RSSI or LQI from one frame to the next
    (the writer reuses the header of the frame before only where all are the same)."""
    path = tmp_path_factory.mktemp("mix") / "w.pcapng"
    writer = PcapngWriter(path)
    if_id = writer.interface("s1", "mixed")
    frames = [frame(1_700_000_000_000_000_000 + i, DATA + tail, page=page, channel=channel,
                    fcs_ok=fcs_ok, rssi_dbm=rssi, lqi=lqi)
              for i, ((page, channel), fcs_ok, rssi, lqi, tail) in enumerate(specs)]
    for f in frames:
        writer.write(if_id, f)
    writer.close()
    fields = [(f.ts_ns, f.psdu, f.fcs_ok, f.page, f.channel, f.rssi_dbm, f.lqi) for f in frames]
    assert [(f.ts_ns, f.psdu, f.fcs_ok, f.page, f.channel, f.rssi_dbm, f.lqi)
            for f in read_frames(path)] == fields


def test_microsecond_pcapng_timestamps_across_the_32_bit_halves(tmp_path: Path) -> None:
    """``if_tsresol`` 6 (µs, the pcapng default): the ns time is the raw count × 1000 for
    low halves below and above 2^31 (the reader multiplies in pieces)."""
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 195, 0, 65535) + struct.pack("<I", 20)
    raws = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, (395_000 << 32) | 0xDEADBEEF,
            (0xFFFFFFFF << 32) | 0xFFFFFFFF]
    blocks = b""
    psdu = ACK + fcs16_bytes(ACK)
    for raw in raws:
        body = struct.pack("<IIIII", 0, raw >> 32, raw & 0xFFFFFFFF, len(psdu), len(psdu))
        body += psdu + bytes(-len(psdu) % 4)
        blocks += struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    path = tmp_path / "us.pcapng"
    path.write_bytes(shb + idb + blocks)
    assert [f.ts_ns for f in read_frames(path)] == [raw * 1000 for raw in raws]
