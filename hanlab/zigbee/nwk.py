"""ZigBee NWK frames (ZigBee spec 05-3474 §3.3): header decode/encode, security, commands.

NWK header (§3.3.1): frame control (2 octets: frame type bits 0-1, protocol version bits
2-5, discover route 6-7, multicast 8, security 9, source route 10, destination IEEE 11,
source IEEE 12, end device initiator 13), destination and source short address, radius,
sequence number, optional destination and source IEEE addresses, multicast control
(§3.3.1.8) and source route subframe (§3.3.1.9: relay count, relay index, relay list).
Inter-PAN frames (frame type 3, SE 1.4 Annex B.4) carry only the frame control.

When the security bit is set the auxiliary header (§4.5.1) follows and the payload is
secured with the network key (§4.3.1); :func:`decrypt_nwk` verifies and decrypts it.
"""

from __future__ import annotations

import struct
from typing import Final

from hanlab.zigbee.common import LayerError, need
from hanlab.zigbee.security import (
    MIC_OCTETS,
    ZIGBEE_SECURITY_LEVEL,
    AuxHeader,
    CcmKey,
    decode_aux,
    seal,
    unseal,
)

_HDR: Final = struct.Struct("<HHHBB")
_ADDR: Final = struct.Struct("<HHBB")
_U16: Final = struct.Struct("<H")
_U64: Final = struct.Struct("<Q")
_AUX_NWK: Final = struct.Struct("<BIQB")

#: NWK frame types (§3.3.1.1.1, Table 3.46).
NWK_FRAME_TYPE_NAMES: Final[dict[int, str]] = {
    0: "data", 1: "command", 2: "reserved", 3: "inter-pan"}
NWK_FRAME_DATA: Final = 0
NWK_FRAME_COMMAND: Final = 1
NWK_FRAME_INTERPAN: Final = 3

#: NWK command identifiers (§3.4, Table 3.40).
NWK_COMMAND_NAMES: Final[dict[int, str]] = {
    0x01: "route_request",
    0x02: "route_reply",
    0x03: "network_status",
    0x04: "leave",
    0x05: "route_record",
    0x06: "rejoin_request",
    0x07: "rejoin_response",
    0x08: "link_status",
    0x09: "network_report",
    0x0A: "network_update",
    0x0B: "end_device_timeout_request",
    0x0C: "end_device_timeout_response",
    0x0D: "link_power_delta",
    0x0E: "network_commissioning_request",
    0x0F: "network_commissioning_response",
}


class NwkFrame:
    """One ZigBee NWK frame.

    Attributes:
        frame_type: 0 data, 1 command, 3 inter-PAN.
        version: protocol version (2 for ZigBee PRO).
        discover_route: discover route field (0-3).
        multicast, security, source_route, end_device_initiator: frame control bits.
        reserved_bits: reserved frame control bits as sent.
        dst, src: 16-bit destination and source addresses (``None`` for inter-PAN).
        radius, seq: radius and sequence number (``None`` for inter-PAN).
        dst64, src64: destination and source IEEE addresses when present.
        multicast_control: the multicast control octet when present.
        relay_index, relays: source route subframe when present (relays as 16-bit ints).
        aux: the auxiliary security header, or ``None``.
        offset: offset of the NWK header in the buffer (PSDU) it was decoded from.
        payload_offset: offset of the payload (after the aux header) in that buffer.
        secured: the payload octets as sent (ciphertext and MIC when secured).
        payload: the plaintext payload, or ``None`` while secured and not decrypted.
        key_label: label of the key that decrypted the frame, else ``None``.
    """

    __slots__ = (
        "aux",
        "discover_route",
        "dst",
        "dst64",
        "end_device_initiator",
        "frame_type",
        "key_label",
        "multicast",
        "multicast_control",
        "offset",
        "payload",
        "payload_offset",
        "radius",
        "relay_index",
        "relays",
        "reserved_bits",
        "secured",
        "security",
        "seq",
        "source_route",
        "src",
        "src64",
        "version",
    )

    def __init__(
        self,
        frame_type: int = NWK_FRAME_DATA,
        *,
        dst: int | None = None,
        src: int | None = None,
        radius: int | None = None,
        seq: int | None = None,
        version: int = 2,
        discover_route: int = 0,
        dst64: int | None = None,
        src64: int | None = None,
        multicast_control: int | None = None,
        relay_index: int | None = None,
        relays: tuple[int, ...] | None = None,
        security: bool = False,
        end_device_initiator: bool = False,
        aux: AuxHeader | None = None,
        payload: bytes | None = b"",
        secured: bytes = b"",
        offset: int = 0,
        payload_offset: int = 0,
        reserved_bits: int = 0,
    ) -> None:
        self.frame_type = frame_type
        self.version = version
        self.discover_route = discover_route
        self.multicast = multicast_control is not None
        self.security = security
        self.source_route = relays is not None
        self.end_device_initiator = end_device_initiator
        self.reserved_bits = reserved_bits
        self.dst = dst
        self.src = src
        self.radius = radius
        self.seq = seq
        self.dst64 = dst64
        self.src64 = src64
        self.multicast_control = multicast_control
        self.relay_index = relay_index
        self.relays = relays
        self.aux = aux
        self.offset = offset
        self.payload_offset = payload_offset
        self.secured = secured
        self.payload = payload
        self.key_label: str | None = None

    @property
    def frame_type_name(self) -> str:
        """``data``, ``command``, ``reserved`` or ``inter-pan``."""
        return NWK_FRAME_TYPE_NAMES[self.frame_type]

    @property
    def command_id(self) -> int | None:
        """NWK command identifier (§3.4) of a readable command frame, else ``None``."""
        if self.frame_type == NWK_FRAME_COMMAND and self.payload:
            return self.payload[0]
        return None

    @property
    def frame_control(self) -> int:
        """The 16-bit NWK frame control computed from the fields (§3.3.1.1)."""
        return (
            self.frame_type
            | self.version << 2
            | self.discover_route << 6
            | self.multicast << 8
            | self.security << 9
            | self.source_route << 10
            | (self.dst64 is not None) << 11
            | (self.src64 is not None) << 12
            | self.end_device_initiator << 13
            | self.reserved_bits
        )

    def header(self) -> bytes:
        """The NWK header octets, auxiliary header excluded (§3.3.1).

        Raises:
            ValueError: a required address, radius or sequence number is ``None``.
        """
        fc = _U16.pack(self.frame_control)
        if self.frame_type == NWK_FRAME_INTERPAN:
            return fc
        if self.dst is None or self.src is None or self.radius is None or self.seq is None:
            raise ValueError("NWK dst, src, radius and seq are required")
        out = bytearray(fc + _ADDR.pack(self.dst, self.src, self.radius, self.seq))
        if self.dst64 is not None:
            out += _U64.pack(self.dst64)
        if self.src64 is not None:
            out += _U64.pack(self.src64)
        if self.multicast_control is not None:
            out.append(self.multicast_control)
        if self.relays is not None:
            out += bytes((len(self.relays), self.relay_index or 0))
            for relay in self.relays:
                out += _U16.pack(relay)
        return bytes(out)

    def encode(self, key: CcmKey | None = None, level: int = ZIGBEE_SECURITY_LEVEL) -> bytes:
        """The NWK frame octets; inverse of :func:`decode_nwk` (+ :func:`decrypt_nwk`).

        Args:
            key: network key to secure ``payload`` with when ``security`` is set; without
                it the stored ``secured`` octets are sent as they are.
            level: the CCM* security level used for the nonce and MIC (ZigBee: 5).

        Raises:
            ValueError: security set without an auxiliary header, or missing fields.
        """
        head = self.header()
        if not self.security:
            return head + (self.payload or b"")
        if self.aux is None:
            raise ValueError("a secured NWK frame needs its auxiliary header")
        aux = self.aux.encode()
        if key is None or self.payload is None:
            return head + aux + self.secured
        if self.aux.src64 is None:
            raise ValueError("NWK security needs the extended source in the aux header")
        return seal(head, aux, self.aux.src64, self.aux.frame_counter, key, self.payload,
                    level)


def decode_nwk(buf: bytes, off: int) -> NwkFrame:
    """Decode the NWK header at ``buf[off:]`` (the MAC payload of a data frame).

    The payload stays secured when the security bit is set: ``payload`` is ``None`` until
    :func:`decrypt_nwk` succeeds.

    Raises:
        LayerError: truncated fields or bogus lengths, offset into ``buf``.
    """
    n = len(buf)
    if off + 2 > n:
        raise LayerError(off, f"truncated: NWK frame control needs 2 octets, {n - off} left")
    fc = buf[off] | buf[off + 1] << 8
    frame_type = fc & 3
    security = bool(fc & 0x200)
    frame = NwkFrame()
    frame.frame_type = frame_type
    frame.version = (fc >> 2) & 0xF
    frame.discover_route = (fc >> 6) & 3
    frame.multicast = bool(fc & 0x100)
    frame.security = security
    frame.source_route = bool(fc & 0x400)
    frame.end_device_initiator = bool(fc & 0x2000)
    frame.reserved_bits = fc & 0xC000
    frame.offset = off
    frame.key_label = None
    frame.dst64 = frame.src64 = frame.multicast_control = frame.relay_index = None
    frame.relays = None
    frame.aux = None
    if frame_type == NWK_FRAME_INTERPAN:
        frame.dst = frame.src = frame.radius = frame.seq = None
        pos = off + 2
        frame.reserved_bits = fc & 0xFF00
        frame.multicast = frame.security = frame.source_route = False
        frame.end_device_initiator = False
        frame.discover_route = 0
        frame.payload_offset = pos
        frame.secured = frame.payload = buf[pos:]
        return frame
    if off + 8 > n:
        raise LayerError(off + 2, f"truncated: NWK addresses, radius and sequence number need 6"
                                  f" octets, {max(n - off - 2, 0)} left")
    _, frame.dst, frame.src, frame.radius, frame.seq = _HDR.unpack_from(buf, off)
    pos = off + 8
    if fc & 0x800:
        if pos + 8 > n:
            need(buf, pos, 8, "NWK destination IEEE address")
        frame.dst64 = _U64.unpack_from(buf, pos)[0]
        pos += 8
    if fc & 0x1000:
        if pos + 8 > n:
            need(buf, pos, 8, "NWK source IEEE address")
        frame.src64 = _U64.unpack_from(buf, pos)[0]
        pos += 8
    if fc & 0x100:
        need(buf, pos, 1, "NWK multicast control")
        frame.multicast_control = buf[pos]
        pos += 1
    if fc & 0x400:
        need(buf, pos, 2, "NWK source route subframe")
        count = buf[pos]
        frame.relay_index = buf[pos + 1]
        need(buf, pos + 2, 2 * count, f"NWK relay list of {count} relays")
        frame.relays = struct.unpack_from(f"<{count}H", buf, pos + 2)
        pos += 2 + 2 * count
    if security:
        if pos + 14 <= n and buf[pos] & 0x38 == 0x28:
            # fast path: network key with extended nonce, as every ZigBee PRO NWK frame
            control, counter, src64, key_seq = _AUX_NWK.unpack_from(buf, pos)
            aux = AuxHeader(control, counter, src64, key_seq, pos)
        else:
            aux = decode_aux(buf, pos)
        frame.aux = aux
        pos += aux.length
        frame.payload_offset = pos
        mic = MIC_OCTETS[ZIGBEE_SECURITY_LEVEL]
        if n - pos < mic:
            raise LayerError(pos, f"truncated: secured NWK payload shorter than its "
                                  f"{mic}-octet MIC")
        frame.secured = buf[pos:]
        frame.payload = None
    else:
        frame.payload_offset = pos
        frame.secured = frame.payload = buf[pos:]
    return frame


def decrypt_nwk(
    buf: bytes,
    frame: NwkFrame,
    keys: list[tuple[str, CcmKey]],
    level: int = ZIGBEE_SECURITY_LEVEL,
) -> bool:
    """Verify and decrypt a secured NWK frame in place, trying ``keys`` in order (§4.3.1.2).

    Args:
        buf: the buffer ``frame`` was decoded from (the PSDU).
        frame: a secured frame from :func:`decode_nwk`.
        keys: ``(label, key)`` pairs of network keys to try.
        level: the security level to use (ZigBee forces 5).

    Returns:
        Whether a key verified the MIC; on success ``frame.payload`` and
        ``frame.key_label`` are set.
    """
    aux = frame.aux
    if aux is None or aux.src64 is None:
        return False
    opened = unseal(buf, frame.offset, aux.offset, frame.payload_offset, aux.src64,
                    aux.frame_counter, frame.secured, keys, level)
    if opened is None:
        return False
    frame.payload, frame.key_label = opened
    return True
