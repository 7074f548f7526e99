"""Key learning is bounded: no traffic can make decoding slow (issue 14 item 11).

30,000 unsecured Transport Key frames, each with a new key, teach at most
``MAX_LEARNED_KEYS`` network and as many link keys; an undecryptable frame then tries at
most the configured keys plus those. Counted in decrypt attempts, not in time.
"""

from __future__ import annotations

from collections.abc import Iterator

from hanlab.zigbee.aps import ApsFrame
from hanlab.zigbee.encode import build_psdu
from hanlab.zigbee.frame import Decoder
from hanlab.zigbee.keyring import MAX_LEARNED_KEYS, Keyring
from hanlab.zigbee.mac import MacFrame
from hanlab.zigbee.nwk import NwkFrame
from hanlab.zigbee.security import AuxHeader

CHF = 0x0011223344556677
ESME = 0x8899AABBCCDDEEFF
UNKNOWN_KEY = bytes.fromhex("5a" * 16)


def _mac() -> MacFrame:
    return MacFrame(1, 7, dst_pan=0x1A2B, dst_addr=0x0000, dst_mode=2, src_addr=0x1234,
                    src_mode=2, pan_id_compression=True, version=0)


def _transport_key(i: int, key: bytes, network: bool) -> bytes:
    """An unsecured NWK frame with an unsecured APS Transport Key command."""
    body = (b"\x05\x01" + key + bytes([i % 256]) if network else b"\x05\x04" + key)
    body += ESME.to_bytes(8, "little") + CHF.to_bytes(8, "little")
    aps = ApsFrame(1, counter=i % 256, payload=body)
    return build_psdu(_mac(), NwkFrame(0, dst=0x1A2B, src=0, radius=1, seq=i % 256), aps)


def _keys(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield i.to_bytes(16, "big")


def _secured_nwk_frame() -> bytes:
    nwk = NwkFrame(0, dst=0x1A2B, src=0, radius=1, seq=9, security=True,
                   aux=AuxHeader(0x2D, 77, CHF, key_seq=0), payload=b"\x40" + bytes(12))
    return build_psdu(_mac(), nwk, nwk_key=UNKNOWN_KEY)


def test_30000_transport_keys_teach_at_most_16_of_each_kind() -> None:
    ring = Keyring.from_dict({"network_keys": [{"key": "11" * 16, "label": "file"}]})
    decoder = Decoder(ring)
    keys = list(_keys(30_000))
    for i, key in enumerate(keys):
        decoder.decode(_transport_key(i, key, network=i % 2 == 0), index=i).decode_all()
    learned_nwk = [e for e in ring.network_keys if e.origin == "transport-key"]
    learned_link = [e for e in ring.link_keys if e.origin == "transport-key"]
    assert len(learned_nwk) == len(learned_link) == MAX_LEARNED_KEYS
    assert ring.learned_keys == 2 * MAX_LEARNED_KEYS
    # the file's keys stay; the newest learned keys are kept and tried first
    assert ring.network_keys[0].label == "file"
    assert learned_nwk[0].key == keys[-2] and learned_link[0].key == keys[-1]
    assert ring.network_candidates()[0][1].key == keys[-2]
    assert len(ring.network_candidates()) == 1 + MAX_LEARNED_KEYS
    before = ring.ccm_trials()
    decoded = decoder.decode(_secured_nwk_frame(), index=30_000).decode_all()
    assert decoded.nwk_decrypted is False
    tried = ring.ccm_trials() - before
    assert 1 <= tried <= 1 + MAX_LEARNED_KEYS  # the file's key and the learned ones


def test_the_same_key_taught_again_is_learned_once() -> None:
    ring = Keyring()
    decoder = Decoder(ring)
    key = bytes.fromhex("ab" * 16)
    for i in range(30_000 // 10):
        decoder.decode(_transport_key(i, key, network=True), index=i).decode_all()
    assert len(ring.network_keys) == 1 and ring.network_keys[0].learned_from == 0


def test_a_key_taught_again_becomes_the_most_recent() -> None:
    ring = Keyring()
    first, *others = list(_keys(MAX_LEARNED_KEYS))
    for i, key in enumerate([first, *others, first]):
        ring.add_network_key(key, label=f"k{i}", learned_from=i, origin="transport-key")
    assert ring.network_keys[0].key == first and len(ring.network_keys) == MAX_LEARNED_KEYS
    ring.add_network_key(UNKNOWN_KEY, label="new", origin="transport-key")
    assert [e.key for e in ring.network_keys][:2] == [UNKNOWN_KEY, first]
    assert others[0] not in [e.key for e in ring.network_keys]  # the oldest went


def test_the_link_key_that_worked_is_tried_first_for_its_pair() -> None:
    """Issue 15: with many link keys, a device pair's frames cost one CCM* trial each once
    one of them decrypted; a key added later empties that order (and still decrypts)."""
    from hanlab.zigbee.zcl import tunnel_transfer_data

    nwk_key, link_key = bytes.fromhex("11" * 16), bytes.fromhex("22" * 16)
    ring = Keyring.from_dict({"network_keys": [{"key": nwk_key.hex(), "label": "nwk"}]})
    for i, key in enumerate(_keys(8)):
        ring.add_link_key(key, label=f"other{i}")  # unbound: tried before the right one
    ring.add_link_key(link_key, label="right")
    decoder = Decoder(ring)

    def frame(counter: int) -> bytes:
        aps = ApsFrame(0, dst_endpoint=1, cluster=0x0704, profile=0x0109, src_endpoint=1,
                       counter=counter, security=True, aux=AuxHeader(0x00, counter))
        nwk = NwkFrame(0, dst=0x0000, src=0x1234, radius=30, seq=counter, src64=ESME,
                       security=True, aux=AuxHeader(0x28, 100 + counter, ESME, 0))
        return build_psdu(_mac(), nwk, aps, tunnel_transfer_data(5, 1, b"\x03\xdd" + bytes(9)),
                          nwk_key=nwk_key, link_key=link_key, aps_src64=ESME)

    def trials(counter: int) -> int:
        before = ring.ccm_trials()
        decoded = decoder.decode(frame(counter), index=counter).decode_all()
        assert decoded.aps_decrypted is True and decoded.aps is not None
        assert decoded.aps.key_label == "right"
        return ring.ccm_trials() - before - 1  # less the NWK decryption

    assert trials(1) == 10  # ZigBeeAlliance09, eight others, then the right one
    assert [trials(n) for n in range(2, 6)] == [1, 1, 1, 1]
    ring.add_link_key(bytes.fromhex("33" * 16), label="late")
    assert trials(6) == 10 and trials(7) == 1  # "late" goes after the right one


def test_a_key_bound_to_both_devices_comes_before_keys_bound_to_one() -> None:
    """Rig files name link keys by role (two ESMEs each have an ``ESME-01-00-CHF``): the key
    of the exact pair is tried first, whatever the labels."""
    ring = Keyring(well_known_tc_link_key=False)
    other_esme = 0x00DB120000010100
    ring.add_link_key(bytes.fromhex("44" * 16), devices=(other_esme, CHF), label="ESME-CHF")
    ring.add_link_key(bytes.fromhex("55" * 16), devices=(ESME, 0x1111), label="ESME-GPF")
    ring.add_link_key(bytes.fromhex("66" * 16), devices=(ESME, CHF), label="ESME-CHF")
    first = ring.link_candidates(0, ESME, CHF)[0][1]
    assert first.key == bytes.fromhex("66" * 16)
    assert ring.link_candidates(0, CHF, ESME)[0][1] is first  # either direction
