"""IEEE 802.15.4 MAC frames (2003, 2006 and 2015 frame versions): decode and encode.

The MAC header (MHR, IEEE 802.15.4-2015 §7.2.1) is frame control (2 octets), sequence
number (1, absent when suppressed in 2015 frames), addressing fields (PAN IDs and short or
extended addresses, §7.2.1.5-§7.2.1.8, PAN ID compression per §7.2.2.4 Table 7-2 for
2015 frames), the auxiliary security header (§9.4) and header/payload IEs (§7.4). The
PSDU handed to :func:`decode_mac` excludes the FCS.

Addresses are integers: short addresses and PAN IDs 16-bit, extended addresses the 64-bit
value read little-endian off the air (print with :func:`hanlab.zigbee.common.eui64_str`).
"""

from __future__ import annotations

import struct
from typing import Final

from hanlab.zigbee.common import LayerError, need

_U16: Final = struct.Struct("<H")
_U64: Final = struct.Struct("<Q")
_U32: Final = struct.Struct("<I")
_FAST: Final = struct.Struct("<BHHH")

#: Frame types (IEEE 802.15.4-2015 §7.2.1.1, Table 7-1).
FRAME_TYPE_BEACON: Final = 0
FRAME_TYPE_DATA: Final = 1
FRAME_TYPE_ACK: Final = 2
FRAME_TYPE_COMMAND: Final = 3
FRAME_TYPE_NAMES: Final[dict[int, str]] = {
    0: "beacon",
    1: "data",
    2: "ack",
    3: "command",
    4: "reserved",
    5: "multipurpose",
    6: "fragment",
    7: "extended",
}

#: Addressing modes (§7.2.1.9): 0 none, 2 short (16-bit), 3 extended (64-bit).
ADDR_NONE: Final = 0
ADDR_SHORT: Final = 2
ADDR_EXT: Final = 3
_ADDR_LEN: Final = (0, -1, 2, 8)

#: MAC command identifiers (§7.5, Table 7-49).
MAC_COMMAND_NAMES: Final[dict[int, str]] = {
    0x01: "association_request",
    0x02: "association_response",
    0x03: "disassociation_notification",
    0x04: "data_request",
    0x05: "pan_id_conflict_notification",
    0x06: "orphan_notification",
    0x07: "beacon_request",
    0x08: "coordinator_realignment",
    0x09: "gts_request",
    0x0A: "trle_management_request",
    0x0B: "trle_management_response",
    0x13: "dsme_association_request",
    0x14: "dsme_association_response",
    0x1B: "low_latency_network_info_request",
    0x1D: "enhanced_beacon_request",
    0x22: "dsme_information_request",
    0x2F: "enhanced_beacon_request_2015",
}

#: MIC length in octets by security level (§9.4.2.2, Table 9-6); levels 4-7 encrypt.
MIC_OCTETS: Final = (0, 4, 8, 16, 0, 4, 8, 16)
#: Key identifier field length by key identifier mode (§9.4.4, Table 9-7).
_KEY_ID_OCTETS: Final = (0, 1, 5, 9)

# PAN ID presence for 2015 frames (Table 7-2): (dst kind, src kind, compression)
# -> (dst PAN present, src PAN present); kind 0 none, 2 short, 3 extended.
_PAN_2015: Final[dict[tuple[int, int, int], tuple[bool, bool]]] = {}
for _d in (0, 2, 3):
    for _s in (0, 2, 3):
        for _c in (0, 1):
            if _d == 0 and _s == 0:
                _v = (bool(_c), False)
            elif _s == 0:
                _v = (not _c, False)
            elif _d == 0:
                _v = (False, not _c)
            elif _d == 3 and _s == 3:
                _v = (not _c, False)
            else:
                _v = (True, not _c)
            _PAN_2015[(_d, _s, _c)] = _v


class MacSecurity:
    """MAC auxiliary security header (§9.4): level, key identifier mode, counter, key id.

    Attributes:
        control: the security control octet as sent.
        level: security level 0-7 (bits 0-2).
        key_id_mode: key identifier mode 0-3 (bits 3-4).
        frame_counter: 32-bit frame counter, or ``None`` when suppressed (2015).
        key_id: key source and index octets as sent (0, 1, 5 or 9 octets).
    """

    __slots__ = ("control", "frame_counter", "key_id", "key_id_mode", "level")

    def __init__(self, control: int, frame_counter: int | None, key_id: bytes) -> None:
        self.control = control
        self.level = control & 7
        self.key_id_mode = (control >> 3) & 3
        self.frame_counter = frame_counter
        self.key_id = key_id

    def encode(self) -> bytes:
        """The auxiliary security header octets (§9.4)."""
        out = bytes((self.control,))
        if self.frame_counter is not None:
            out += _U32.pack(self.frame_counter)
        return out + self.key_id


class MacFrame:
    """One decoded (or to-be-encoded) IEEE 802.15.4 MAC frame, FCS excluded.

    Attributes:
        frame_type: 0 beacon, 1 data, 2 ACK, 3 command, 4-7 as Table 7-1.
        security: security enabled bit.
        frame_pending, ack_request, pan_id_compression: frame control bits.
        seq_suppressed: sequence number suppression (2015 frames only).
        ie_present: IE present bit (2015 frames only).
        version: frame version 0 (2003), 1 (2006), 2 (2015).
        dst_mode, src_mode: addressing modes 0, 2 or 3.
        seq: sequence number 0-255, or ``None`` when suppressed.
        dst_pan, src_pan: PAN IDs present in the frame, else ``None``.
        dst_addr, src_addr: addresses (16-bit or 64-bit int) or ``None``.
        aux: the auxiliary security header, or ``None``.
        ies: header and payload IE octets as sent (2015), else ``b""``.
        payload: MAC payload (beacon fields, command id + content, or data), MIC included.
        payload_offset: offset of ``payload`` in the PSDU.
        reserved_bits: reserved frame control bits as sent (kept for round trip).
        unknown_layout: a reserved frame version, frame type or addressing mode made the
            rest of the frame unreadable; it is all in ``payload``.
    """

    __slots__ = (
        "ack_request",
        "aux",
        "dst_addr",
        "dst_mode",
        "dst_pan",
        "frame_pending",
        "frame_type",
        "ie_present",
        "ies",
        "pan_id_compression",
        "payload",
        "payload_offset",
        "reserved_bits",
        "security",
        "seq",
        "seq_suppressed",
        "src_addr",
        "src_mode",
        "src_pan",
        "unknown_layout",
        "version",
    )

    def __init__(
        self,
        frame_type: int = FRAME_TYPE_DATA,
        seq: int | None = 0,
        *,
        dst_pan: int | None = None,
        dst_addr: int | None = None,
        dst_mode: int = ADDR_NONE,
        src_pan: int | None = None,
        src_addr: int | None = None,
        src_mode: int = ADDR_NONE,
        pan_id_compression: bool = False,
        security: bool = False,
        frame_pending: bool = False,
        ack_request: bool = False,
        version: int = 0,
        aux: MacSecurity | None = None,
        ies: bytes = b"",
        ie_present: bool = False,
        payload: bytes = b"",
        payload_offset: int = 0,
        reserved_bits: int = 0,
    ) -> None:
        self.frame_type = frame_type
        self.seq = seq
        self.seq_suppressed = seq is None
        self.dst_pan = dst_pan
        self.dst_addr = dst_addr
        self.dst_mode = dst_mode
        self.src_pan = src_pan
        self.src_addr = src_addr
        self.src_mode = src_mode
        self.pan_id_compression = pan_id_compression
        self.security = security
        self.frame_pending = frame_pending
        self.ack_request = ack_request
        self.version = version
        self.aux = aux
        self.ies = ies
        self.ie_present = ie_present
        self.payload = payload
        self.payload_offset = payload_offset
        self.reserved_bits = reserved_bits
        #: a reserved frame version, frame type or addressing mode left the rest unknown
        self.unknown_layout = False

    @property
    def frame_type_name(self) -> str:
        """``beacon``, ``data``, ``ack``, ``command`` … (Table 7-1)."""
        return FRAME_TYPE_NAMES[self.frame_type]

    @property
    def command_id(self) -> int | None:
        """MAC command identifier of a command frame (§7.5), else ``None``."""
        if self.frame_type == FRAME_TYPE_COMMAND and self.payload and not self.security:
            return self.payload[0]
        return None

    @property
    def mic_octets(self) -> int:
        """Octets of MAC MIC at the end of ``payload`` (0 without MAC security)."""
        return MIC_OCTETS[self.aux.level] if self.aux is not None else 0

    @property
    def frame_control(self) -> int:
        """The 16-bit frame control field computed from the fields (§7.2.1)."""
        return (
            self.frame_type
            | self.security << 3
            | self.frame_pending << 4
            | self.ack_request << 5
            | self.pan_id_compression << 6
            | self.seq_suppressed << 8
            | self.ie_present << 9
            | self.dst_mode << 10
            | self.version << 12
            | self.src_mode << 14
            | self.reserved_bits
        )

    def encode(self) -> bytes:
        """The PSDU (FCS excluded) for this frame; inverse of :func:`decode_mac`.

        Raises:
            ValueError: an address or PAN ID required by the modes is ``None``.
        """
        out = bytearray(_U16.pack(self.frame_control))
        if self.seq is not None:
            out.append(self.seq)
        if self.dst_pan is not None:
            out += _U16.pack(self.dst_pan)
        if self.dst_mode:
            out += _pack_addr(self.dst_mode, self.dst_addr, "dst_addr")
        if self.src_pan is not None:
            out += _U16.pack(self.src_pan)
        if self.src_mode:
            out += _pack_addr(self.src_mode, self.src_addr, "src_addr")
        if self.aux is not None:
            out += self.aux.encode()
        out += self.ies
        out += self.payload
        return bytes(out)


def _pack_addr(mode: int, addr: int | None, name: str) -> bytes:
    if addr is None:
        raise ValueError(f"{name} is required by addressing mode {mode}")
    return _U16.pack(addr) if mode == ADDR_SHORT else _U64.pack(addr)


def pan_ids_present(version: int, dst_mode: int, src_mode: int, compression: bool) -> tuple[
    bool, bool
]:
    """Whether the destination and source PAN ID fields are present.

    2003/2006 frames (§7.2.1.5 of 802.15.4-2006): destination PAN with a destination
    address; source PAN with a source address unless PAN ID compression. 2015 frames:
    Table 7-2 of IEEE 802.15.4-2015.
    """
    if version < 2:
        return dst_mode != 0, src_mode != 0 and not compression
    return _PAN_2015[(dst_mode, src_mode, int(compression))]


def imm_ack_seq(psdu: bytes) -> int:
    """The sequence number of ``psdu`` if it is a plain 2003/2006 Imm-Ack (IEEE
    802.15.4-2015 §7.3.3: frame control with frame type 2, no security, no addresses, no
    IEs, frame version 0 or 1, then the sequence number; FCS excluded), else -1.

    Exactly the frames :func:`decode_mac` reads as an acknowledgement with a sequence
    number and nothing else, found without building the frame: half the frames of a
    busy HAN are these (issue 15).
    """
    if len(psdu) != 3:
        return -1
    fc = psdu[0] | psdu[1] << 8
    if fc & 0xEFCF != 0x0002:  # bits 4-5 (pending, AR) and 12 (version 1) may be set
        return -1
    return psdu[2]


def decode_mac(psdu: bytes) -> MacFrame:
    """Decode the MHR of ``psdu`` (FCS excluded) and locate the MAC payload.

    Returns:
        The :class:`MacFrame`; ``payload`` is the rest of the PSDU (MIC included).

    Raises:
        LayerError: truncated header, reserved addressing mode or frame version, with
            the byte offset of the offending field.
    """
    n = len(psdu)
    if n < 2:
        raise LayerError(0, f"truncated: frame control needs 2 octets, {n} left")
    fc = psdu[0] | psdu[1] << 8
    if fc & 0xEC4F == 0x8841 and n >= 9:
        # fast path, most ZigBee traffic: 2003/2006 unsecured data frame, short addresses,
        # PAN ID compression (same fields as the general path below)
        fast = _FAST.unpack_from(psdu, 2)
        frame = MacFrame()  # compiled: a native call (defaults), then native stores
        frame.frame_type = 1
        frame.seq = fast[0]
        frame.seq_suppressed = False
        frame.dst_pan = fast[1]
        frame.dst_addr = fast[2]
        frame.dst_mode = 2
        frame.src_pan = None
        frame.src_addr = fast[3]
        frame.src_mode = 2
        frame.pan_id_compression = True
        frame.security = False
        frame.frame_pending = bool(fc & 0x10)
        frame.ack_request = bool(fc & 0x20)
        frame.version = (fc >> 12) & 3
        frame.aux = None
        frame.ies = b""
        frame.ie_present = bool(fc & 0x200)
        frame.payload = psdu[9:]
        frame.payload_offset = 9
        frame.reserved_bits = fc & 0x0380
        frame.unknown_layout = False
        return frame
    frame_type = fc & 7
    version = (fc >> 12) & 3
    dst_mode = (fc >> 10) & 3
    src_mode = fc >> 14
    compression = (fc >> 6) & 1
    if version == 3 or frame_type == 4 or dst_mode == 1 or src_mode == 1:
        # reserved frame version, frame type or addressing mode: the rest is unknown
        return _unknown_layout(psdu, fc)
    off = 2
    seq: int | None
    if version == 2 and fc & 0x100:
        seq = None
    else:
        if n < 3:
            raise LayerError(2, "truncated: sequence number needs 1 octet, 0 left")
        seq = psdu[2]
        off = 3
    if version < 2:
        dst_pan_present = dst_mode != 0
        src_pan_present = src_mode != 0 and not compression
    else:
        dst_pan_present, src_pan_present = _PAN_2015[(dst_mode, src_mode, compression)]
    dst_pan = dst_addr = src_pan = src_addr = None
    if dst_pan_present:
        if off + 2 > n:
            raise LayerError(off, f"truncated: destination PAN ID needs 2 octets, {n - off} left")
        dst_pan = psdu[off] | psdu[off + 1] << 8
        off += 2
    if dst_mode == 2:
        if off + 2 > n:
            raise LayerError(off, f"truncated: destination address needs 2 octets, {n - off} left")
        dst_addr = psdu[off] | psdu[off + 1] << 8
        off += 2
    elif dst_mode == 3:
        need(psdu, off, 8, "destination address")
        dst_addr = _U64.unpack_from(psdu, off)[0]
        off += 8
    if src_pan_present:
        if off + 2 > n:
            raise LayerError(off, f"truncated: source PAN ID needs 2 octets, {n - off} left")
        src_pan = psdu[off] | psdu[off + 1] << 8
        off += 2
    if src_mode == 2:
        if off + 2 > n:
            raise LayerError(off, f"truncated: source address needs 2 octets, {n - off} left")
        src_addr = psdu[off] | psdu[off + 1] << 8
        off += 2
    elif src_mode == 3:
        need(psdu, off, 8, "source address")
        src_addr = _U64.unpack_from(psdu, off)[0]
        off += 8
    aux = None
    security = fc & 8
    if security and version >= 1:
        aux, off = _decode_aux(psdu, off, version)
    ies = b""
    ie_present = bool(fc & 0x200)
    if ie_present and version == 2:
        ie_end = _skip_ies(psdu, off, encrypted=bool(security))
        ies = psdu[off:ie_end]
        off = ie_end
    frame = MacFrame(
        frame_type,
        seq,
        dst_pan=dst_pan,
        dst_addr=dst_addr,
        dst_mode=dst_mode,
        src_pan=src_pan,
        src_addr=src_addr,
        src_mode=src_mode,
        pan_id_compression=bool(compression),
        security=bool(security),
        frame_pending=bool(fc & 0x10),
        ack_request=bool(fc & 0x20),
        version=version,
        aux=aux,
        ies=ies,
        ie_present=ie_present,
        payload=psdu[off:],
        payload_offset=off,
        reserved_bits=fc & 0x0080 | (fc & 0x0300 if version < 2 else 0),
    )
    if aux is not None and len(frame.payload) < MIC_OCTETS[aux.level]:
        raise LayerError(off, f"truncated: MAC MIC needs {MIC_OCTETS[aux.level]} octets")
    return frame


def _unknown_layout(psdu: bytes, fc: int) -> MacFrame:
    """A frame whose layout a reserved value leaves unknown: frame control, raw rest."""
    frame = MacFrame(fc & 7, None, payload=psdu[2:], payload_offset=2, reserved_bits=fc,
                     version=(fc >> 12) & 3)
    frame.seq_suppressed = False
    frame.unknown_layout = True
    return frame


def _decode_aux(psdu: bytes, off: int, version: int) -> tuple[MacSecurity, int]:
    need(psdu, off, 1, "MAC security control")
    control = psdu[off]
    off += 1
    counter: int | None = None
    if not (version == 2 and control & 0x20):
        need(psdu, off, 4, "MAC frame counter")
        counter = _U32.unpack_from(psdu, off)[0]
        off += 4
    key_len = _KEY_ID_OCTETS[(control >> 3) & 3]
    need(psdu, off, key_len, "MAC key identifier")
    key_id = psdu[off : off + key_len]
    off += key_len
    return MacSecurity(control, counter, key_id), off


def _skip_ies(psdu: bytes, off: int, *, encrypted: bool) -> int:
    """Offset just past the header IEs (and plaintext payload IEs) starting at ``off``."""
    n = len(psdu)
    payload_ies = False
    while off < n:
        need(psdu, off, 2, "header IE descriptor")
        desc = psdu[off] | psdu[off + 1] << 8
        length = desc & 0x7F
        element_id = (desc >> 7) & 0xFF
        need(psdu, off + 2, length, f"header IE 0x{element_id:02x}")
        off += 2 + length
        if element_id == 0x7E:
            payload_ies = True
            break
        if element_id == 0x7F:
            break
    if payload_ies and not encrypted:
        while off < n:
            need(psdu, off, 2, "payload IE descriptor")
            desc = psdu[off] | psdu[off + 1] << 8
            length = desc & 0x7FF
            group = (desc >> 11) & 0xF
            need(psdu, off + 2, length, f"payload IE group 0x{group:x}")
            off += 2 + length
            if group == 0xF:
                break
    return off


class Beacon:
    """Beacon frame payload fields (§7.3.1): superframe spec, GTS, pending addresses.

    Attributes:
        superframe_spec: the 16-bit superframe specification.
        gts_fields: GTS specification, directions and list octets as sent.
        pending_fields: pending address specification and address list octets as sent.
        payload: the beacon payload (for ZigBee, the NWK beacon payload).
        payload_offset: offset of ``payload`` in the MAC payload.
    """

    __slots__ = ("gts_fields", "payload", "payload_offset", "pending_fields", "superframe_spec")

    def __init__(
        self, superframe_spec: int, gts_fields: bytes, pending_fields: bytes, payload: bytes,
        payload_offset: int,
    ) -> None:
        self.superframe_spec = superframe_spec
        self.gts_fields = gts_fields
        self.pending_fields = pending_fields
        self.payload = payload
        self.payload_offset = payload_offset

    @property
    def pan_coordinator(self) -> bool:
        """PAN coordinator bit of the superframe specification."""
        return bool(self.superframe_spec & 0x4000)

    @property
    def association_permit(self) -> bool:
        """Association permit bit of the superframe specification."""
        return bool(self.superframe_spec & 0x8000)

    def encode(self) -> bytes:
        """The MAC payload of the beacon; inverse of :func:`decode_beacon`."""
        return _U16.pack(self.superframe_spec) + self.gts_fields + self.pending_fields + (
            self.payload
        )


def decode_beacon(mac_payload: bytes) -> Beacon:
    """Decode a beacon's MAC payload (§7.3.1.2-§7.3.1.6).

    Raises:
        LayerError: truncated fields, offsets relative to ``mac_payload``.
    """
    need(mac_payload, 0, 4, "beacon superframe, GTS and pending fields")
    spec = _U16.unpack_from(mac_payload, 0)[0]
    off = 2
    gts = mac_payload[off]
    gts_count = gts & 7
    gts_len = 1
    if gts_count:
        gts_len += 1 + 3 * gts_count
    need(mac_payload, off, gts_len, "GTS fields")
    gts_fields = mac_payload[off : off + gts_len]
    off += gts_len
    need(mac_payload, off, 1, "pending address specification")
    pend = mac_payload[off]
    pend_len = 1 + 2 * (pend & 7) + 8 * ((pend >> 4) & 7)
    need(mac_payload, off, pend_len, "pending address list")
    pending_fields = mac_payload[off : off + pend_len]
    off += pend_len
    return Beacon(spec, gts_fields, pending_fields, mac_payload[off:], off)
