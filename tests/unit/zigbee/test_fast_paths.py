"""The shortcuts the hot paths take (issue 15) give what the general decoder gives.

``imm_ack_seq`` must accept exactly the frames ``decode_mac`` reads as a plain
acknowledgement with a sequence number, and ``Decoder.learn_addresses`` (the ``--jobs``
scan) must build the address map that decoding every frame builds. ``skip_frames``
(where a ``--jobs`` run starts) must leave what the reader yields after it unchanged.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hanlab.capture.reader import CaptureReader, read_frames
from hanlab.errors import CaptureFormatError
from hanlab.zigbee.common import LayerError
from hanlab.zigbee.frame import Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import decode_mac, imm_ack_seq


def _plain_ack_seq(psdu: bytes) -> int:
    """What the general decoder says: the seq of a frame that is an ACK and nothing else."""
    try:
        mac = decode_mac(psdu)
    except LayerError:
        return -1
    if (mac.frame_type != 2 or mac.seq is None or mac.security or mac.unknown_layout
            or mac.dst_mode or mac.src_mode or mac.payload or mac.ies or mac.ie_present
            or mac.version >= 2 or mac.pan_id_compression or mac.reserved_bits):
        return -1
    return mac.seq


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=0, max_size=5))
def test_imm_ack_seq_is_the_decoders_plain_ack(psdu: bytes) -> None:
    assert imm_ack_seq(psdu) == _plain_ack_seq(psdu)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 255))
def test_imm_ack_seq_over_every_frame_control(fc: int, seq: int) -> None:
    psdu = bytes((fc & 0xFF, fc >> 8, seq))
    assert imm_ack_seq(psdu) == _plain_ack_seq(psdu)


def test_imm_ack_seq_reads_real_acks() -> None:
    assert imm_ack_seq(bytes.fromhex("020042")) == 0x42
    assert imm_ack_seq(bytes.fromhex("120042")) == 0x42  # frame pending
    assert imm_ack_seq(bytes.fromhex("021042")) == 0x42  # frame version 1 (2006)
    assert imm_ack_seq(bytes.fromhex("022042")) == -1  # 2015 Enh-Ack: the decoder's job
    assert imm_ack_seq(bytes.fromhex("0200")) == -1


def test_learn_addresses_builds_the_decoders_map(captures_dir: Path) -> None:
    mapped = 0
    for name in sorted(p.name for p in captures_dir.glob("*.pcap*")):
        try:
            frames = list(read_frames(captures_dir / name))
        except CaptureFormatError:  # a capture hanlab rejects has no map to compare
            continue
        scanned = Decoder(Keyring(well_known_tc_link_key=False))
        decoded = Decoder(Keyring(well_known_tc_link_key=False))
        for index, frame in enumerate(frames):
            scanned.learn_addresses(frame.psdu, frame.fcs_ok)
            decoded.decode(frame.psdu, frame.ts_ns, index, frame.fcs_ok).nwk  # noqa: B018
        assert scanned.address_map == decoded.address_map, name
        mapped += len(decoded.address_map)
    assert mapped >= 26  # the Sinope capture alone maps 26 short addresses


def _read(path: Path, skip: int = 0) -> tuple[list[object], str | None, tuple[int, ...]]:
    reader = CaptureReader(path, skip_frames=skip)
    frames: list[object] = []
    error = None
    try:
        frames.extend(reader)
    except CaptureFormatError as exc:
        error = str(exc)
    return frames, error, (reader.records, reader.frames, reader.out_of_order,
                           reader.bad_packets, reader.not_802154)


def test_skip_frames_yields_what_follows_and_counts_the_same(captures_dir: Path) -> None:
    """A run of ``hanlab decode --jobs`` starts with ``skip_frames``: the frames after the
    skipped ones, the same errors at the same offsets and the same counters, on every
    corpus capture (pcap and pcapng, damaged ones, other link types)."""
    checked = 0
    for path in sorted(captures_dir.glob("*.pcap*")):
        frames, error, counts = _read(path)
        for skip in sorted({1, len(frames) // 3, len(frames) - 1, len(frames), len(frames) + 7}):
            assert _read(path, max(skip, 0)) == (frames[max(skip, 0):], error, counts), \
                (path.name, skip)
        checked += len(frames)
    assert checked > 38_350  # the Sinope capture and the others
