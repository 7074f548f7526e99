"""Link-layer decapsulation: from a captured packet to an 802.15.4 PSDU and its metadata.

Supported link types (tcpdump.org LINKTYPE_ values):

* 195 ``IEEE802_15_4_WITHFCS``: PSDU followed by a 2-octet FCS (checked here).
* 230 ``IEEE802_15_4_NOFCS``: PSDU only; FCS status unknown.
* 283 ``IEEE802_15_4_TAP``: TAP header (version, reserved, length, TLVs) then the PSDU and
  the FCS its FCS-type TLV announces; channel, page, RSS and LQI taken from TLVs
  (IEEE 802.15.4 TAP specification, github.com/jkcko/ieee802.15.4-tap).
* 1 ``ETHERNET`` and 113 ``LINUX_SLL``: IPv4/IPv6 UDP to port 17754 carrying ZEP v1/v2
  (ZigBee Encapsulation Protocol), or, for SLL, protocol 0x00F6 (ETH_P_IEEE802154) with FCS.

Each decapsulator takes the packet bytes and returns a :data:`Decap` tuple, or ``None`` for
a packet that carries no 802.15.4 frame (a ZEP ACK, ARP …). Malformed input raises
:class:`ValueError` with the offset; the reader turns that into a counted bad packet.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from hanlab.fcs import fcs16

#: (psdu without FCS, fcs_ok or None, page or None, channel or None, rssi_dbm, lqi)
Decap = tuple[bytes, bool | None, int | None, int | None, float | None, int | None]
Decapsulator = Callable[[bytes], Decap | None]

LINKTYPE_ETHERNET: Final = 1
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IEEE802_15_4_WITHFCS: Final = 195
LINKTYPE_IEEE802_15_4_NOFCS: Final = 230
LINKTYPE_IEEE802_15_4_TAP: Final = 283

LINKTYPE_NAMES: Final[dict[int, str]] = {
    LINKTYPE_ETHERNET: "Ethernet (ZEP over UDP)",
    LINKTYPE_LINUX_SLL: "Linux cooked capture",
    LINKTYPE_IEEE802_15_4_WITHFCS: "IEEE 802.15.4 with FCS",
    LINKTYPE_IEEE802_15_4_NOFCS: "IEEE 802.15.4 without FCS",
    LINKTYPE_IEEE802_15_4_TAP: "IEEE 802.15.4 TAP",
}

ZEP_UDP_PORT: Final = 17754
ETH_P_IEEE802154: Final = 0x00F6

# TAP TLV types (IEEE 802.15.4 TAP §TLVs).
TAP_FCS_TYPE: Final = 0
TAP_RSS: Final = 1
TAP_CHANNEL_ASSIGNMENT: Final = 3
TAP_LQI: Final = 10
#: FCS type TLV value -> FCS length in octets.
TAP_FCS_LENGTHS: Final = {0: 0, 1: 2, 2: 4}

_u16le = struct.Struct("<H").unpack_from
_u16be = struct.Struct(">H").unpack_from
_f32le = struct.Struct("<f").unpack_from


def decap_withfcs(data: bytes) -> Decap | None:
    """LINKTYPE 195: split off and check the 2-octet FCS (IEEE 802.15.4-2015 §7.2.10).

    A packet too short to hold an FCS is kept whole with FCS status ``None``.
    """
    if len(data) < 2:
        return data, None, None, None, None, None
    psdu = data[:-2]
    return psdu, fcs16(psdu) == _u16le(data, len(data) - 2)[0], None, None, None, None


def decap_nofcs(data: bytes) -> Decap | None:
    """LINKTYPE 230: the PSDU as captured, FCS status unknown."""
    return data, None, None, None, None, None


def _crc32_fcs_ok(psdu: bytes, fcs: bytes) -> bool:
    import binascii

    return binascii.crc32(psdu) == int.from_bytes(fcs, "little")


#: what a TAP header says: (header length, FCS length in octets, page or None, channel or
#: None, rssi_dbm or None, lqi or None)
TapFields = tuple[int, int, int | None, int | None, float | None, int | None]


def tap_fields(data: bytes) -> TapFields:
    """The TAP header at the start of ``data`` (IEEE 802.15.4 TAP: version 0, reserved,
    2-octet length, then TLVs padded to 4 octets): its length and what its TLVs say.

    Raises:
        ValueError: truncated, another version, a length outside 4..``len(data)``, or a
            TLV that overruns the header (with the packet byte offset).
    """
    n = len(data)
    if n < 4:
        raise ValueError("at packet byte 0: TAP header truncated")
    # octets read by index: compiled, each is a native integer (no struct call, no tuple)
    hdr_len = data[2] | (data[3] << 8)
    if data[0] != 0:
        raise ValueError(f"at packet byte 0: TAP version {data[0]} not supported")
    if hdr_len < 4 or hdr_len > n:
        raise ValueError(f"at packet byte 2: TAP length {hdr_len} outside 4..{n}")
    fcs_len = 0
    page: int | None = None
    channel: int | None = None
    rssi: float | None = None
    lqi: int | None = None
    off = 4
    while off + 4 <= hdr_len:
        tlv_type = data[off] | (data[off + 1] << 8)
        tlv_len = data[off + 2] | (data[off + 3] << 8)
        value = off + 4
        if value + tlv_len > hdr_len:
            raise ValueError(f"at packet byte {off}: TAP TLV {tlv_type} overruns the header")
        if tlv_type == TAP_FCS_TYPE and tlv_len >= 1:
            fcs_len = TAP_FCS_LENGTHS.get(data[value], 0)
        elif tlv_type == TAP_CHANNEL_ASSIGNMENT and tlv_len >= 3:
            channel = data[value] | (data[value + 1] << 8)
            page = data[value + 2]
        elif tlv_type == TAP_RSS and tlv_len >= 4:
            rssi = _f32le(data, value)[0]
        elif tlv_type == TAP_LQI and tlv_len >= 1:
            lqi = data[value]
        off = value + ((tlv_len + 3) & ~3)
    return hdr_len, fcs_len, page, channel, rssi, lqi


def tap_fcs_ok(psdu: bytes, fcs: bytes) -> bool:
    """Whether ``fcs`` (2 or 4 octets, as sent: least significant first) is the FCS of
    ``psdu``: CRC-16 (IEEE 802.15.4-2015 §7.2.10) or, for 4 octets, CRC-32 (§7.2.10.2)."""
    if len(fcs) == 2:
        return fcs16(psdu) == fcs[0] | (fcs[1] << 8)
    return _crc32_fcs_ok(psdu, fcs)


def decap_tap(data: bytes) -> Decap | None:
    """LINKTYPE 283: parse the TAP header and TLVs (:func:`tap_fields`); FCS per the
    FCS-type TLV.

    A TAP header without an FCS-type TLV means no FCS follows the PSDU.
    """
    n = len(data)
    hdr_len, fcs_len, page, channel, rssi, lqi = tap_fields(data)
    if fcs_len == 0:
        return data[hdr_len:], None, page, channel, rssi, lqi
    if n - hdr_len < fcs_len:
        raise ValueError(f"at packet byte {hdr_len}: shorter than its {fcs_len}-octet FCS")
    psdu = data[hdr_len:n - fcs_len]
    return psdu, tap_fcs_ok(psdu, data[n - fcs_len:]), page, channel, rssi, lqi


def decap_zep(udp_payload: bytes, base: int = 0) -> Decap | None:
    """ZEP v1/v2 (ZigBee Encapsulation Protocol, Exegin/Wireshark packet-zep.c).

    v1 header: ``"EX" ver channel devid(2) lqi_mode lqi reserved(7) length`` (16 octets);
    v2 data (type 1): ``"EX" ver type channel devid(2) lqi_mode lqi ntp_ts(8) seq(4)
    reserved(10) length`` (32 octets); v2 ACK (type 2) carries no PSDU (returns ``None``).
    The ZEP length counts the PSDU and 2 trailing octets, which are the FCS in CRC mode
    (lqi_mode 1) or TI CC24xx metadata (RSSI, then FCS-OK bit 7 and correlation) in LQI
    mode (lqi_mode 0).
    """
    d = udp_payload
    if len(d) < 4 or d[0:2] != b"EX":
        raise ValueError(f"at packet byte {base}: not a ZEP header")
    version = d[2]
    if version == 1:
        hdr = 16
        channel, lqi_mode, lqi = d[3], d[6], d[7]
    elif version == 2:
        if d[3] == 2:
            return None
        hdr = 32
        if len(d) < hdr:
            raise ValueError(f"at packet byte {base}: ZEP v2 header truncated")
        channel, lqi_mode, lqi = d[4], d[7], d[8]
    else:
        raise ValueError(f"at packet byte {base + 2}: ZEP version {version} unknown")
    if len(d) < hdr:
        raise ValueError(f"at packet byte {base}: ZEP header truncated")
    length = d[hdr - 1] & 0x7F
    body = d[hdr : hdr + length]
    if len(body) != length or length < 2:
        raise ValueError(f"at packet byte {base + hdr - 1}: ZEP length {length} wrong")
    psdu = body[:-2]
    rssi: float | None = None
    if lqi_mode:
        ok = fcs16(psdu) == _u16le(body, length - 2)[0]
    else:
        rssi = float(body[-2] - 256 if body[-2] > 127 else body[-2])
        ok = bool(body[-1] & 0x80)
    page = 0 if 11 <= channel <= 26 else None
    return psdu, ok, page, channel, rssi, lqi


def _udp_zep(data: bytes, off: int, ethertype: int) -> Decap | None:
    """IPv4/IPv6 at ``off`` -> ZEP if it is UDP to or from port 17754, else ``None``."""
    if ethertype == 0x0800:
        if len(data) < off + 20:
            return None
        ihl = (data[off] & 0x0F) * 4
        if data[off + 9] != 17:
            return None
        udp = off + ihl
    elif ethertype == 0x86DD:
        if len(data) < off + 40 or data[off + 6] != 17:
            return None
        udp = off + 40
    else:
        return None
    if len(data) < udp + 8:
        return None
    sport, dport = _u16be(data, udp)[0], _u16be(data, udp + 2)[0]
    if ZEP_UDP_PORT not in (sport, dport):
        return None
    return decap_zep(data[udp + 8 :], udp + 8)


def decap_ethernet(data: bytes) -> Decap | None:
    """LINKTYPE 1: Ethernet II (with optional 802.1Q tag) carrying ZEP over UDP."""
    if len(data) < 14:
        return None
    off = 12
    ethertype = _u16be(data, off)[0]
    if ethertype == 0x8100 and len(data) >= 18:
        off += 4
        ethertype = _u16be(data, off)[0]
    return _udp_zep(data, off + 2, ethertype)


def decap_sll(data: bytes) -> Decap | None:
    """LINKTYPE 113: Linux cooked header (16 octets); 0x00F6 is 802.15.4 with FCS."""
    if len(data) < 16:
        raise ValueError("at packet byte 0: Linux cooked header truncated")
    protocol = _u16be(data, 14)[0]
    if protocol == ETH_P_IEEE802154:
        return decap_withfcs(data[16:])
    return _udp_zep(data, 16, protocol)


#: link type -> decapsulator.
DECAPSULATORS: Final[dict[int, Decapsulator]] = {
    LINKTYPE_ETHERNET: decap_ethernet,
    LINKTYPE_LINUX_SLL: decap_sll,
    LINKTYPE_IEEE802_15_4_WITHFCS: decap_withfcs,
    LINKTYPE_IEEE802_15_4_NOFCS: decap_nofcs,
    LINKTYPE_IEEE802_15_4_TAP: decap_tap,
}
