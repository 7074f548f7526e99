"""pcap/pcapng reading and TAP pcapng writing: formats, link types, damage, rotation."""

from __future__ import annotations

import binascii
import mmap
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
T0_NS = 1_714_564_800_000_000_000


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


def _pcapng_block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _tap_pcapng(packets: list[tuple[int, bytes, int]], linktype: int = 283) -> bytes:
    """A pcapng file of one interface (TAP unless ``linktype`` says; µs timestamps) with
    these (ts_us, packet bytes, original length) EPBs, the packets as given, malformed
    ones included, and no filler blocks."""
    return b"".join([
        _pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
        _pcapng_block(1, struct.pack("<HHI", linktype, 0, 0)),
        *(_pcapng_block(6, struct.pack("<IIIII", 0, ts_us >> 32, ts_us & 0xFFFFFFFF,
                                       len(data), orig) + data)
          for ts_us, data, orig in packets)])


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("<HH", tlv_type, len(value)) + value + bytes(-len(value) % 4)


@st.composite
def _tap_packet(draw: st.DrawFn) -> tuple[int, bytes, int]:
    """A TAP packet as a sniffer or a damaged file may hold it: TLVs from a few values
    (so headers repeat), a good or bad FCS of the announced type, or a broken header."""
    fcs_type = draw(st.sampled_from([None, 0, 1, 2]))
    tlvs = b"" if fcs_type is None else _tlv(0, bytes([fcs_type]))
    if draw(st.booleans()):
        page, channel = draw(st.sampled_from([(0, 11), (0, 26), (28, 12), (29, 30), (31, 5)]))
        tlvs += _tlv(3, struct.pack("<HB", channel, page))
    if draw(st.booleans()):
        tlvs += _tlv(1, struct.pack("<f", draw(st.sampled_from([-71.5, -90.0, 3.25]))))
    if draw(st.booleans()):
        tlvs += _tlv(10, bytes([draw(st.sampled_from([0, 200, 255]))]))
    psdu = draw(st.binary(max_size=12))
    fcs = {None: b"", 0: b"", 1: fcs16_bytes(psdu),
           2: struct.pack("<I", binascii.crc32(psdu))}[fcs_type]
    if fcs and draw(st.booleans()):
        fcs = bytes([fcs[0] ^ 0xFF]) + fcs[1:]  # a bad FCS
    header = struct.pack("<BBH", 0, 0, 4 + len(tlvs)) + tlvs
    damage = draw(st.sampled_from(["none"] * 6 + ["version", "length", "overrun", "short",
                                                   "tiny", "snaplen"]))
    packet, extra = header + psdu + fcs, 0
    if damage == "version":
        packet = b"\x01" + packet[1:]
    elif damage == "length":
        packet = packet[:2] + struct.pack("<H", len(packet) + 4) + packet[4:]
    elif damage == "overrun":
        packet = struct.pack("<BBH", 0, 0, 8) + struct.pack("<HH", 1, 40) + psdu
    elif damage == "short":
        packet = header + fcs[: len(fcs) // 2] if fcs else header
    elif damage == "tiny":
        packet = packet[: draw(st.integers(0, 3))]
    elif damage == "snaplen":
        extra = draw(st.integers(1, 4))
    return draw(st.integers(0, 2**40)), packet, len(packet) + extra


def _tap_reference(packets: list[tuple[int, bytes, int]]) -> tuple[list[Frame], int]:
    """What reading these packets means, one :func:`decap_tap` each: the frames (the
    reader's default page 0, channel 11 where no TLV says) and the bad-packet count."""
    frames: list[Frame] = []
    bad = 0
    for ts_us, data, _orig in packets:
        try:
            result = decap_tap(data)
        except ValueError:
            bad += 1
            continue
        assert result is not None
        psdu, ok, page, channel, rssi, lqi = result
        page = 0 if page is None else page
        frames.append(Frame(ts_us * 1000, "file", Band.GHZ_2_4 if page == 0 else Band.SUB_GHZ,
                            page, 11 if channel is None else channel, psdu, ok, rssi, lqi,
                            TsSource.CAPTURE))
    return frames, bad


@settings(max_examples=300, deadline=None)
@given(packets=st.lists(_tap_packet(), min_size=1, max_size=40), data=st.data())
def test_tap_hot_path_reads_what_decap_tap_reads(tmp_path_factory: pytest.TempPathFactory,
                                                 packets: list[tuple[int, bytes, int]],
                                                 data: st.DataObject) -> None:
    """The reader's TAP path (a header seen before is not parsed again) gives, packet
    for packet, what the general path through :func:`decap_tap` gives: the same frames,
    the same bad packets, and with ``skip_frames`` the frames after the skipped ones."""
    path = tmp_path_factory.mktemp("tap") / "tap.pcapng"
    path.write_bytes(_tap_pcapng(packets))
    expected, bad = _tap_reference(packets)
    if not expected:
        with pytest.raises(CaptureFormatError, match=r"holds no IEEE 802\.15\.4 frames"):
            list(read_frames(path))
        return
    reader = CaptureReader(path)
    assert list(reader) == expected
    assert (reader.records, reader.frames, reader.bad_packets) == (len(packets),
                                                                   len(expected), bad)
    skip = data.draw(st.integers(0, len(expected)))
    assert list(read_frames(path, skip_frames=skip)) == expected[skip:]


def _resident_octets() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * mmap.PAGESIZE


def test_big_captures_are_read_whole_without_keeping_them_resident(tmp_path: Path) -> None:
    """Captures of PSDUs of every length, DLT 195 (69 MB) and TAP (8 MB), without the
    filler blocks hanlab writes, are read frame for frame as written: their blocks end at
    every offset of the reader's copy windows. And the reader gives back the pages it
    has read (``madvise``): resident memory grows by a fraction of a file, not all of it."""
    body = bytes(range(256)) * 2

    def psdu(index: int) -> bytes:
        return DATA[:3] + body[index % 97 : index % 97 + index % 120]

    def fcs(index: int, data: bytes) -> bytes:
        good = fcs16_bytes(data)
        return good if index % 7 else bytes([good[0] ^ 1, good[1]])

    count = 0
    blocks = [_tap_pcapng([], 195)]
    while count < 700_000:
        blocks += [_pcapng_block(6, struct.pack("<IIIII", 0, 0, index, len(packet),
                                                len(packet)) + packet)
                   for index in range(count, count + 10_000)
                   for packet in [psdu(index) + fcs(index, psdu(index))]]
        count += 10_000
    path = tmp_path / "big.pcapng"
    path.write_bytes(b"".join(blocks))
    del blocks
    size = path.stat().st_size
    before = _resident_octets()
    grown = 0
    read = -1
    for read, got in enumerate(read_frames(path)):
        if (got.ts_ns, got.psdu, got.fcs_ok) != (read * 1000, psdu(read), read % 7 != 0):
            raise AssertionError(f"frame {read}: {got}")
        if read % 20_000 == 0:
            grown = max(grown, _resident_octets() - before)
    assert read + 1 == count
    assert size > 64 * 1024 * 1024 and grown < size // 4, (grown, size)

    tap = [(index, struct.pack("<BBH", 0, 0, 12) + _tlv(0, b"\x01") + packet, 12 + len(packet))
           for index in range(80_000) for packet in [psdu(index) + fcs(index, psdu(index))]]
    path = tmp_path / "tap.pcapng"
    path.write_bytes(_tap_pcapng(tap))
    assert path.stat().st_size > 8 * 1024 * 1024
    assert list(read_frames(path)) == _tap_reference(tap)[0]
