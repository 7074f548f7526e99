"""TI SmartRF Packet Sniffer 2 driver: the packet codec, and the driver against the
emulated CC1352 dongle on a pseudo-terminal (tests/tools/ti_dongle.py). Clock alignment,
garbage and hot-plug, shared with the nRF driver: tests/unit/test_serial_sniffers.py.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hanlab.errors import BadInputError, SourceError
from hanlab.fcs import fcs16_bytes
from hanlab.frames import Band
from hanlab.phy import centre_frequency_khz
from hanlab.sources.base import SourceEvent, SourceSpec
from hanlab.sources.ti_sniffer import (
    CFG_FREQUENCY,
    CFG_PHY,
    INFO_DATA,
    PING,
    START,
    STOP,
    Packet,
    PacketDecoder,
    TiSnifferSettings,
    TiSnifferSource,
    checksum,
    encode_packet,
    find_header_octets,
    frequency_payload,
    max_payload_from_dongle,
    parse_data,
)
from tests.tools.nrf_dongle import build_psdu
from tests.tools.sniffer_kinds import Running, wait_for
from tests.tools.ti_dongle import EmulatedTiDongle, TiDongleConfig

# -- codec ----------------------------------------------------------------------------


def test_encode_packet_layout_and_checksum() -> None:
    # CFG_PHY 0x0B: SOF, Info, Length 1 (LE), payload, FCS = 0x47 + 1 + 0 + 0x0B, EOF
    wire = encode_packet(CFG_PHY, b"\x0b")
    assert wire == b"\x40\x53\x47\x01\x00\x0b\x53\x40\x45"
    assert checksum(CFG_PHY, b"\x0b") == 0x53
    assert encode_packet(PING) == b"\x40\x53\x40\x00\x00\x40\x40\x45"
    assert encode_packet(INFO_DATA, b"\x01", with_fcs=False) == b"\x40\x53\xc0\x01\x00\x01\x40\x45"
    with pytest.raises(ValueError):
        encode_packet(0x40, bytes(2050))


def test_frequency_payload() -> None:
    # 865.45 MHz: 865 = 0x0361, 0.45 × 65536 = 29491 = 0x7333
    assert frequency_payload(865_450) == b"\x61\x03\x33\x73"
    assert frequency_payload(2_405_000) == b"\x65\x09\x00\x00"


def test_gb_channel_plan() -> None:
    assert centre_frequency_khz(28, 0) == 863_250
    assert centre_frequency_khz(28, 26) == 868_450
    assert centre_frequency_khz(29, 27) == 868_650
    assert centre_frequency_khz(30, 61) == 875_450
    assert centre_frequency_khz(31, 5) == 916_350
    assert centre_frequency_khz(0, 26) == 2_480_000
    with pytest.raises(BadInputError):
        centre_frequency_khz(29, 5)


def test_decoder_byte_by_byte_with_and_without_fcs() -> None:
    stream = (encode_packet(0x80, b"\x00") + encode_packet(INFO_DATA, b"\x40\x45\x40\x53",
                                                           with_fcs=False))
    decoder = PacketDecoder()
    got: list[Packet] = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i:i + 1])
    assert got == [Packet(0x80, b"\x00", True), Packet(INFO_DATA, b"\x40\x45\x40\x53", None)]
    assert decoder.bad_packets == decoder.resync_octets == decoder.buffered_octets == 0


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff\x12garbage",  # no SOF
        b"\x40\x53\xc0\x09\x00abc",  # truncated: Length 9, 3 octets, then the next packet
        encode_packet(0x80, b"\x00")[:-3] + b"\x99\x40\x45",  # wrong FCS
        encode_packet(0x80, b"\x00")[:-2] + b"\x41\x46",  # spoilt EOF
        b"\x40\x53\xc0\xff\xff",  # Length beyond 2049
        b"\x40",  # a lone SOF octet
    ],
)
def test_decoder_resyncs_and_keeps_the_next_packet(junk: bytes) -> None:
    good = encode_packet(0x80, b"\x00\x13\x53")
    decoder = PacketDecoder()
    assert decoder.feed(good + junk + good + good) == [Packet(0x80, b"\x00\x13\x53", True)] * 3
    assert decoder.resync_octets > 0


def test_false_sof_with_a_long_length_costs_no_wait() -> None:
    """Garbage holding SOF, a data Info and a plausible 2 KB Length: rejected at once by
    the longest payload the dongle sends, so the next frame is not held back."""
    good = encode_packet(INFO_DATA, data_payload(build_psdu(1, b"abc"), b"\x10"),
                         with_fcs=False)
    decoder = PacketDecoder(max_payload=max_payload_from_dongle)
    assert decoder.feed(b"\x40\x53\xc0\x00\x07" + good) == [
        Packet(INFO_DATA, good[5:-2], None)]
    assert max_payload_from_dongle(PING) == 0  # the dongle never sends commands
    assert max_payload_from_dongle(0x80) == max_payload_from_dongle(0xC1) == 32


def test_decoder_accept_rejects_false_frames() -> None:
    decoder = PacketDecoder(accept=lambda p: p.payload != b"no")
    wire = encode_packet(0x80, b"no") + encode_packet(0x80, b"ok")
    assert decoder.feed(wire) == [Packet(0x80, b"ok", True)]
    assert decoder.bad_packets == 1


def data_payload(psdu_fcs: bytes, header: bytes, *, ts_us: int = 0x605040302010,
                 rssi: int = -61, status: int = 0x80) -> bytes:
    return ts_us.to_bytes(6, "little") + header + psdu_fcs + struct.pack("<bB", rssi, status)


@pytest.mark.parametrize("header", [b"", b"\x1c", b"\x1c\x08"])
def test_parse_data_and_header_detection(header: bytes) -> None:
    psdu = build_psdu(5, b"0123456789abcdef")
    payload = data_payload(psdu, header)
    assert find_header_octets(payload) == len(header)
    parsed = parse_data(payload, len(header))
    assert parsed is not None
    assert (parsed.time_us, parsed.psdu_fcs, parsed.rssi_dbm, parsed.fcs_ok) == (
        0x605040302010, psdu, -61, True)
    # byte order: the timestamp's least significant octet first (TI-UG "Byte Ordering")
    assert payload[:6] == bytes([0x10, 0x20, 0x30, 0x40, 0x50, 0x60])


def test_parse_data_edges() -> None:
    psdu = build_psdu(5, b"x")
    parsed = parse_data(data_payload(psdu, b"\x0e", rssi=-128, status=0x00), 1)
    assert parsed is not None and parsed.rssi_dbm is None and not parsed.fcs_ok
    assert parse_data(data_payload(b"\x01\x02", b"\x02"), 1) is None
    assert parse_data(data_payload(bytes(128), b"\x80"), 1) is None
    assert find_header_octets(data_payload(b"\x00" * 20 + b"\x12\x34", b"\x16")) is None
    assert fcs16_bytes(psdu[:-2]) == psdu[-2:]


def test_settings() -> None:
    s = TiSnifferSettings(port="/dev/x")
    assert (s.usb_vid, s.usb_pid, s.usb_interface, s.baudrate) == (0x0451, 0xBEF3, 0, 3_000_000)
    assert s.never_finishes
    with pytest.raises(ValueError):
        TiSnifferSettings.model_validate({"port": "/dev/x", "bogus": 1})


async def test_unknown_page_refused(tmp_path: Path) -> None:
    spec = SourceSpec("ti0", Band.SUB_GHZ, 27, 5, TiSnifferSettings(port=str(tmp_path / "x")))
    with pytest.raises(BadInputError):
        await TiSnifferSource(spec).start()


# -- against the emulated dongle ----------------------------------------------------


@pytest.fixture
async def dongle(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[EmulatedTiDongle]:
    config = getattr(request, "param", None) or TiDongleConfig(rate_hz=150)
    async with EmulatedTiDongle(tmp_path / "ti0", config) as d:
        yield d


def make_source(link: Path, events: list[SourceEvent] | None = None, *, page: int = 28,
                channel: int = 11, **settings: Any) -> TiSnifferSource:
    spec = SourceSpec("ti0", Band.SUB_GHZ if page else Band.GHZ_2_4, page, channel,
                      TiSnifferSettings(port=str(link), **settings), rig="rig1")
    return TiSnifferSource(spec, events.append if events is not None else None)


async def test_configures_phy_and_frequency_then_retunes(dongle: EmulatedTiDongle) -> None:
    events: list[SourceEvent] = []
    async with Running(make_source(dongle.link, events)) as run:
        await wait_for(lambda: len(run.frames) >= 20)
        assert [c[0] for c in dongle.stats.commands] == [PING, STOP, CFG_PHY, CFG_FREQUENCY,
                                                         START]
        assert dongle.phy == 0x0B
        assert dongle.frequency_mhz == pytest.approx(865.45, abs=1e-4)
        await run.source.set_channel(5, page=31)
        assert dongle.frequency_mhz == pytest.approx(916.35, abs=1e-4)
        n = len(run.frames)
        await wait_for(lambda: len(run.frames) >= n + 10)
    assert {(f.page, f.channel) for f in run.frames[n + 2:]} == {(31, 5)}
    assert all(f.band is Band.SUB_GHZ for f in run.frames)
    info = [e.detail for e in events if e.kind == "info"]
    assert {"what": "firmware", "chip_id": 0x5313, "chip_rev": 0, "fw_id": 0x51,
            "fw_rev": 0x0110} in info
    assert {"what": "header_octets", "header_octets": 1} in info
    assert run.source.counters["unexpected_responses"] == 0


@pytest.mark.parametrize(
    "dongle",
    [TiDongleConfig(rate_hz=150, data_fcs=True, header_octets=2, bad_crc_ratio=0.2, seed=4)],
    indirect=True,
)
async def test_documented_layout_and_bad_crc_frames(dongle: EmulatedTiDongle) -> None:
    """Data packets with a packet FCS (as TI-UG draws them) and two header octets are
    found; frames the radio's CRC failed are kept with ``fcs_ok`` False and counted."""
    async with Running(make_source(dongle.link)) as run:
        await wait_for(lambda: dongle.stats.frames >= 150)
        dongle.receiving = False
        await wait_for(lambda: len(run.frames) == dongle.stats.frames)
    bad = [f for f in run.frames if f.fcs_ok is False]
    assert 10 < len(bad) == run.source.counters["fcs_errors"]
    assert [f.psdu for f in run.frames] == [s.psdu[:-2] for s in dongle.sent]
    assert run.source._header_octets == 2
    assert run.source.counters["bad_packets"] == 0


@pytest.mark.parametrize("dongle", [TiDongleConfig(answer=False)], indirect=True)
async def test_silent_dongle_is_source_error_naming_the_command(dongle: EmulatedTiDongle) -> None:
    with pytest.raises(SourceError, match="no answer to PING"):
        await make_source(dongle.link, command_timeout_s=0.2).start()


async def test_refused_configuration_is_source_error(dongle: EmulatedTiDongle) -> None:
    source = make_source(dongle.link)
    # a dongle that keeps running through STOP: CFG_PHY answers "invalid state"
    original = dongle._command

    def keep_running(info: int, payload: bytes, fcs: int) -> None:
        original(info, payload, fcs)
        if info in (START, STOP):
            dongle.started = True

    dongle._command = keep_running  # type: ignore[method-assign]
    with pytest.raises(SourceError, match="CFG_PHY refused: status 4"):
        await source.start()
