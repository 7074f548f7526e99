"""ZigBee codec: round trips, built frames, bad input, keyring, reassembly, fuzzing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hanlab.capture.reader import read_frames
from hanlab.errors import BadInputError
from hanlab.zigbee.aps import ApsFrame, Reassembler, decode_aps
from hanlab.zigbee.encode import build_psdu, fragment_aps
from hanlab.zigbee.frame import DecodedFrame, Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import MacFrame, decode_mac
from hanlab.zigbee.nwk import NwkFrame
from hanlab.zigbee.security import AuxHeader, CcmKey, install_code_link_key
from hanlab.zigbee.zcl import ZclFrame, decode_zcl, tunnel_transfer_data

SINOPE = "sinope-zha__TH1123ZB-G2-partie_00005.pcapng"
SINOPE_KEY = bytes.fromhex("60ccee07009651c60e1f8c1b05562f2c")
NWK_KEY = bytes(range(16))
LINK_KEY = bytes.fromhex("33" * 16)
CHF = 0x0011223344556677
ESME = 0x8899AABBCCDDEEFF


def _mac(payload: bytes = b"") -> MacFrame:
    return MacFrame(1, 7, dst_pan=0x1A2B, dst_addr=0x0000, dst_mode=2, src_addr=0x1234,
                    src_mode=2, pan_id_compression=True, version=0, payload=payload)


def _nwk(seq: int = 1, counter: int = 100) -> NwkFrame:
    return NwkFrame(0, dst=0x0000, src=0x1234, radius=30, seq=seq, src64=ESME, security=True,
                    aux=AuxHeader(0x28, counter, ESME, 0))


def _decoder() -> Decoder:
    ring = Keyring()
    ring.add_network_key(NWK_KEY, label="nwk")
    ring.add_link_key(LINK_KEY, devices=(ESME, CHF), label="esme-chf")
    return Decoder(ring)


# -- round trips on real frames ------------------------------------------------------------


def _check_round_trip(d: DecodedFrame, keys: dict[str, CcmKey]) -> int:
    mac = d.mac
    assert mac is not None
    assert mac.encode() == d.psdu
    nwk = d.nwk
    if nwk is None:
        return 1
    assert nwk.encode(keys.get(nwk.key_label or "")) == d.psdu[nwk.offset :]
    aps = d.aps
    if aps is not None and nwk.payload is not None:
        assert aps.encode(keys.get(aps.key_label or "")) == nwk.payload or aps.security
    zcl = d.zcl
    if zcl is not None and aps is not None and not d.reassembled:
        assert zcl.encode() == aps.payload
    return 4


def test_round_trip_every_sinope_frame(captures_dir: Path) -> None:
    """encode(decode(x)) == x for each layer of each Sinope frame it fully decodes."""
    ring = Keyring()
    ring.add_network_key(SINOPE_KEY, label="sinope")
    decoder = Decoder(ring)
    keys = {"sinope": ring.network_keys[0].ccm}
    checked = 0
    for frame in read_frames(captures_dir / SINOPE):
        checked += _check_round_trip(decoder.decode(frame.psdu, frame.ts_ns).decode_all(), keys)
    assert checked > 38_350


def test_sinope_hot_path_fields(captures_dir: Path) -> None:
    """Addresses and sequence numbers come without decrypting anything."""
    decoder = Decoder(Keyring())
    frame = next(f for f in read_frames(captures_dir / SINOPE) if len(f.psdu) > 30)
    d = decoder.decode(frame.psdu)
    assert d.mac is not None and d.mac.seq is not None
    assert d._done == 1  # only the MAC layer is decoded yet: lazy (bit 1 of _done)


# -- building frames -----------------------------------------------------------------------


def test_built_tunnel_frame_decodes_with_keys() -> None:
    """MAC ∘ NWK(encrypted) ∘ APS(encrypted) ∘ ZCL TransferData round trip."""
    gbcs = bytes.fromhex("03dd0000000000") + bytes(range(20))
    zcl = tunnel_transfer_data(5, 0x0001, gbcs)
    aps = ApsFrame(0, dst_endpoint=1, cluster=0x0704, profile=0x0109, src_endpoint=1,
                   counter=9, security=True, aux=AuxHeader(0x00, 7))
    psdu = build_psdu(_mac(), _nwk(), aps, zcl, nwk_key=NWK_KEY, link_key=LINK_KEY,
                      aps_src64=ESME)
    d = _decoder().decode(psdu)
    assert d.nwk_decrypted is True and d.aps_decrypted is True
    assert d.zcl is not None and d.zcl.is_tunnel_transfer_data
    assert d.zcl.tunnel_data == gbcs and d.zcl.command_name == "TransferData"
    assert d.error is None


def test_wrong_key_is_reported_not_raised() -> None:
    psdu = build_psdu(_mac(), _nwk(), ApsFrame(0, dst_endpoint=1, cluster=6, profile=0x104,
                      src_endpoint=1, counter=1), nwk_key=bytes(16))
    d = _decoder().decode(psdu).decode_all()
    assert d.nwk_decrypted is False and d.aps is None and d.zcl is None


def test_fragmented_aps_reassembles() -> None:
    """An APS payload over three fragments reassembles on the last one (§2.2.8.4.5)."""
    data = bytes(range(200))
    head = ApsFrame(0, dst_endpoint=1, cluster=0x0704, profile=0x0109, src_endpoint=1,
                    counter=42)
    decoder = _decoder()
    results = []
    for i, frag in enumerate(fragment_aps(head, data, 70)):
        psdu = build_psdu(_mac(), _nwk(seq=i, counter=200 + i), frag, nwk_key=NWK_KEY)
        results.append(decoder.decode(psdu, ts_ns=i).aps_payload)
    assert results[:2] == [None, None] and results[2] == data
    assert decoder.reassembler.pending == 0 and decoder.reassembler.held_octets == 0


def test_reassembly_is_bounded_and_timed_out() -> None:
    r = Reassembler(max_messages=4, max_octets=1000, timeout_ns=10)
    for counter in range(20):
        assert r.add(1, counter, 1, 3, b"x" * 100, ts_ns=0) is None
    assert r.pending <= 4 and r.held_octets <= 1000
    r.add(2, 0, 1, 2, b"y", ts_ns=100)
    assert r.pending == 1  # the old ones timed out


class _ModelReassembler:
    """The reassembly rules written plainly (a sweep of time-outs on every fragment):
    the model :class:`Reassembler` must agree with."""

    def __init__(self, max_messages: int, max_octets: int, timeout_ns: int) -> None:
        self.max_messages, self.max_octets, self.timeout_ns = max_messages, max_octets, timeout_ns
        self.pending: dict[tuple[int, int], tuple[int, int | None, dict[int, bytes]]] = {}
        self.dropped = 0

    def octets(self) -> int:
        return sum(len(b) for _, _, blocks in self.pending.values() for b in blocks.values())

    def add(self, src: int, counter: int, fragmentation: int, block: int, payload: bytes,
            ts_ns: int) -> bytes | None:
        for key in [k for k, v in self.pending.items() if ts_ns - v[0] > self.timeout_ns]:
            del self.pending[key]
            self.dropped += 1
        first_ts, total, blocks = self.pending.setdefault((src, counter), (ts_ns, None, {}))
        total, index = (max(block, 1), 0) if fragmentation == 1 else (total, block)
        blocks[index] = payload
        self.pending[(src, counter)] = (first_ts, total, blocks)
        if total is not None and all(i in blocks for i in range(total)):
            del self.pending[(src, counter)]
            return b"".join(blocks[i] for i in range(total))
        while self.pending and (len(self.pending) > self.max_messages
                                or self.octets() > self.max_octets):
            del self.pending[next(iter(self.pending))]
            self.dropped += 1
        return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.sampled_from([1, 2]),
                          st.integers(0, 4), st.binary(max_size=40), st.integers(0, 60)),
                max_size=60))
def test_reassembly_agrees_with_the_plain_rules(
        fragments: list[tuple[int, int, int, int, bytes, int]]) -> None:
    """Whole messages, drops, held octets and the state digest, fragment by fragment, with
    out-of-order times, repeated blocks, bogus block numbers and every bound reached."""
    fast = Reassembler(max_messages=3, max_octets=100, timeout_ns=20)
    model = _ModelReassembler(3, 100, 20)
    ts_ns = 1_000
    for src, counter, fragmentation, block, payload, step in fragments:
        ts_ns += step - 10  # now and then older than the fragment before
        assert fast.add(src, counter, fragmentation, block, payload, ts_ns) == model.add(
            src, counter, fragmentation, block, payload, ts_ns)
        assert (fast.pending, fast.held_octets, fast.dropped) == (
            len(model.pending), model.octets(), model.dropped)
        state = [(key, first_ts, total, sorted(blocks.items()))
                 for key, (first_ts, total, blocks) in model.pending.items()]
        assert fast.state_digest() == hashlib.blake2b(repr(state).encode(),
                                                      digest_size=16).digest()


def test_psdu_too_long_for_the_phy() -> None:
    with pytest.raises(ValueError, match="exceeds 125"):
        build_psdu(_mac(bytes(130)))


# -- bad input -----------------------------------------------------------------------------


def test_truncated_frames_give_offsets_and_the_next_frame_decodes() -> None:
    good = build_psdu(_mac(), _nwk(), ApsFrame(0, dst_endpoint=1, cluster=6, profile=0x104,
                      src_endpoint=1, counter=1), ZclFrame(1, 3, 2, cluster=6),
                      nwk_key=NWK_KEY)
    decoder = _decoder()
    for cut in range(len(good)):
        d = decoder.decode(good[:cut]).decode_all()
        if d.error is not None:
            assert 0 <= d.error.offset <= cut
    d = decoder.decode(good).decode_all()
    assert d.error is None and d.zcl is not None and d.zcl.command_id == 2


def test_bogus_relay_count_reports_offset() -> None:
    psdu = _mac(bytes.fromhex("0804" "0000" "3412" "1e" "01" "ff" "00")).encode()
    d = Decoder().decode(psdu)
    assert d.nwk is None and d.error is not None
    assert d.error.layer == "nwk" and d.error.offset == 9 + 10
    assert "relay list" in d.error.reason


def test_decoders_of_each_layer_report_offsets() -> None:
    assert decode_mac(_mac().encode()).seq == 7
    for bad, fn in ((b"\x00", decode_aps), (b"\x04\x00", decode_zcl)):
        with pytest.raises(Exception, match="truncated"):
            fn(bad)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=127))
def test_fuzz_random_psdus_never_raise(data: bytes) -> None:
    d = _decoder().decode(data).decode_all()
    assert d.error is None or "internal" not in d.error.reason


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 60), st.integers(0, 255), st.binary(max_size=4))
def test_fuzz_mutated_frames_never_raise(pos: int, value: int, tail: bytes) -> None:
    good = bytearray(build_psdu(_mac(), _nwk(), ApsFrame(0, dst_endpoint=1, cluster=6,
                                profile=0x104, src_endpoint=1, counter=1),
                                ZclFrame(1, 3, 2, cluster=6), nwk_key=NWK_KEY))
    good[pos % len(good)] = value
    d = _decoder().decode(bytes(good) + tail).decode_all()
    assert d.error is None or "internal" not in d.error.reason


# -- keyring -------------------------------------------------------------------------------


def test_install_code_key_and_crc() -> None:
    code = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")
    assert install_code_link_key(code).hex() == "66b6900981e1ee3ca4206b6b861c02bb"
    with pytest.raises(ValueError, match="CRC"):
        install_code_link_key(code[:-1] + b"\x00")


def test_keys_file_round_trip_and_wireshark_export(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "network_keys:\n  - {key: 60ccee07009651c60e1f8c1b05562f2c, seq: 0, label: sinope}\n"
        "install_codes:\n  - {code: 83FED3407A939723A5C639B26916D505C3B5,"
        " device: 00-0D-6F-00-0B-12-34-56, label: gsme}\n"
    )
    ring = Keyring.load(path)
    lines = ring.wireshark_uat_lines()
    assert lines[0] == '"60ccee07009651c60e1f8c1b05562f2c","Normal","sinope"'
    assert '"66b6900981e1ee3ca4206b6b861c02bb","Normal","gsme"' in lines
    assert '"5a6967426565416c6c69616e63653039","Normal","ZigBeeAlliance09"' in lines
    again = tmp_path / "again.yaml"
    again.write_text(ring.dump_yaml())
    assert Keyring.load(again).wireshark_uat_lines() == lines
    assert "60cc" not in repr(ring.network_keys[0])


@pytest.mark.parametrize("text,field", [
    ("network_keys: [{key: 1234}]", "network_keys[0].key"),
    ("install_codes: [{code: 83FED3407A939723A5C639B26916D505C3B4}]", "install_codes[0].code"),
    ("bogus: 1", "unknown field"),
])
def test_bad_keys_file_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Keyring.load(path)


def test_transport_key_teaches_the_network_key() -> None:
    """A Transport Key under the well-known TC link key teaches the network key (§4.4.10.1)."""
    new_key = bytes.fromhex("aa" * 16)
    payload = b"\x05\x01" + new_key + b"\x00" + ESME.to_bytes(8, "little") + CHF.to_bytes(
        8, "little")
    aps = ApsFrame(1, counter=3, security=True, aux=AuxHeader(0x30, 1, CHF))
    from hanlab.zigbee.security import key_transport_key
    psdu = build_psdu(_mac(), NwkFrame(0, dst=0x1234, src=0, radius=1, seq=1), aps,
                      link_key=key_transport_key(b"ZigBeeAlliance09"))
    decoder = Decoder(Keyring())
    aps_frame = decoder.decode(psdu, index=151)
    aps.payload = payload
    psdu = build_psdu(_mac(), NwkFrame(0, dst=0x1234, src=0, radius=1, seq=1), aps,
                      link_key=key_transport_key(b"ZigBeeAlliance09"))
    aps_frame = decoder.decode(psdu, index=151).decode_all()
    assert aps_frame.aps_decrypted is True
    learned = decoder.keyring.network_keys[0]
    assert learned.key == new_key and learned.learned_from == 151
