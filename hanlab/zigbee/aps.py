"""ZigBee APS frames (ZigBee spec 05-3474 §2.2.5): header, security, commands, fragments.

APS header (§2.2.5.1): frame control (frame type bits 0-1: data, command, ACK, inter-PAN;
delivery mode bits 2-3; ACK format bit 4; security bit 5; ACK request bit 6; extended
header bit 7), destination endpoint (unicast and broadcast), group address (group
delivery), cluster and profile identifiers, source endpoint, APS counter, and the extended
header (§2.2.5.1.8: fragmentation bits 0-1, block number, ACK bitfield). APS security
(§4.4) adds the auxiliary header and a MIC; the key is a link key or one derived from it.

Fragmented frames (§2.2.8.4.5) are reassembled per (NWK source, APS counter) with block
numbers: the first fragment's block number is the block count. :class:`Reassembler`
bounds the memory it holds and drops incomplete messages after a time-out.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from hanlab.zigbee.common import LayerError, need
from hanlab.zigbee.security import (
    ZIGBEE_SECURITY_LEVEL,
    AuxHeader,
    CcmKey,
    decode_aux,
    seal,
    unseal,
)

_U16: Final = struct.Struct("<H")
_U64: Final = struct.Struct("<Q")
_CLUSTER_PROFILE: Final = struct.Struct("<HH")

#: APS frame types (§2.2.5.1.1.1, Table 2.21).
APS_FRAME_TYPE_NAMES: Final[dict[int, str]] = {0: "data", 1: "command", 2: "ack", 3: "inter-pan"}
APS_DATA: Final = 0
APS_COMMAND: Final = 1
APS_ACK: Final = 2
APS_INTERPAN: Final = 3
#: Delivery modes (§2.2.5.1.1.2, Table 2.22).
DELIVERY_MODE_NAMES: Final[dict[int, str]] = {
    0: "unicast", 1: "indirect", 2: "broadcast", 3: "group"}
DELIVERY_GROUP: Final = 3
#: Extended header fragmentation values (§2.2.5.1.8.1, Table 2.24).
FRAGMENT_NONE: Final = 0
FRAGMENT_FIRST: Final = 1
FRAGMENT_NEXT: Final = 2

#: APS command identifiers (§4.4.10, Table 4.10; R22 additions).
APS_COMMAND_NAMES: Final[dict[int, str]] = {
    0x01: "skke_1",
    0x02: "skke_2",
    0x03: "skke_3",
    0x04: "skke_4",
    0x05: "transport_key",
    0x06: "update_device",
    0x07: "remove_device",
    0x08: "request_key",
    0x09: "switch_key",
    0x0A: "ea_init_challenge",
    0x0B: "ea_response_challenge",
    0x0C: "ea_init_mac_data",
    0x0D: "ea_response_mac_data",
    0x0E: "tunnel",
    0x0F: "verify_key",
    0x10: "confirm_key",
    0x11: "relay_message_downstream",
    0x12: "relay_message_upstream",
}
APS_CMD_TRANSPORT_KEY: Final = 0x05

#: Transport Key key types (§4.4.10.1.1, Table 4.13).
KEY_TYPE_NAMES: Final[dict[int, str]] = {
    0x00: "trust_centre_master_key",
    0x01: "standard_network_key",
    0x02: "application_master_key",
    0x03: "application_link_key",
    0x04: "trust_centre_link_key",
    0x05: "high_security_network_key",
}
_NETWORK_KEY_TYPES: Final = frozenset((0x01, 0x05))

#: ZigBee profile identifiers.
PROFILE_NAMES: Final[dict[int, str]] = {
    0x0000: "ZDP",
    0x0104: "HA",
    0x0109: "SE",
    0xA1E0: "GP",
    0xC05E: "ZLL",
}
PROFILE_ZDP: Final = 0x0000


class ApsFrame:
    """One ZigBee APS frame.

    Attributes:
        frame_type: 0 data, 1 command, 2 ACK, 3 inter-PAN.
        delivery_mode: 0 unicast, 1 indirect, 2 broadcast, 3 group.
        ack_format, security, ack_request, extended_header: frame control bits.
        dst_endpoint, src_endpoint: endpoints when present.
        group: group address (group delivery) when present.
        cluster, profile: cluster and profile identifiers when present.
        counter: APS counter when present.
        ext_fc: extended frame control when present; ``fragmentation`` is its bits 0-1.
        block: block number when fragmented; ack_bitfield for fragmented ACKs.
        aux: the auxiliary security header, or ``None``.
        payload_offset: offset of the payload in the buffer decoded from.
        secured: payload octets as sent (ciphertext and MIC when secured).
        payload: plaintext payload (this fragment's), or ``None`` while not decrypted.
        key_label: label of the link key that decrypted it, else ``None``.
    """

    __slots__ = (
        "ack_bitfield",
        "ack_format",
        "ack_request",
        "aux",
        "block",
        "cluster",
        "counter",
        "delivery_mode",
        "dst_endpoint",
        "ext_fc",
        "extended_header",
        "frame_type",
        "group",
        "key_label",
        "payload",
        "payload_offset",
        "profile",
        "reserved_bits",
        "secured",
        "security",
        "src_endpoint",
    )

    def __init__(
        self,
        frame_type: int = APS_DATA,
        *,
        delivery_mode: int = 0,
        ack_format: bool = False,
        security: bool = False,
        ack_request: bool = False,
        dst_endpoint: int | None = None,
        group: int | None = None,
        cluster: int | None = None,
        profile: int | None = None,
        src_endpoint: int | None = None,
        counter: int | None = None,
        ext_fc: int | None = None,
        block: int | None = None,
        ack_bitfield: int | None = None,
        aux: AuxHeader | None = None,
        payload: bytes | None = b"",
        secured: bytes = b"",
        payload_offset: int = 0,
    ) -> None:
        self.frame_type = frame_type
        self.delivery_mode = delivery_mode
        self.ack_format = ack_format
        self.security = security
        self.ack_request = ack_request
        self.extended_header = ext_fc is not None
        self.reserved_bits = 0
        self.dst_endpoint = dst_endpoint
        self.group = group
        self.cluster = cluster
        self.profile = profile
        self.src_endpoint = src_endpoint
        self.counter = counter
        self.ext_fc = ext_fc
        self.block = block
        self.ack_bitfield = ack_bitfield
        self.aux = aux
        self.payload = payload
        self.secured = secured
        self.payload_offset = payload_offset
        self.key_label: str | None = None

    @property
    def frame_type_name(self) -> str:
        """``data``, ``command``, ``ack`` or ``inter-pan``."""
        return APS_FRAME_TYPE_NAMES[self.frame_type]

    @property
    def fragmentation(self) -> int:
        """0 not fragmented, 1 first fragment, 2 subsequent fragment (Table 2.24)."""
        return (self.ext_fc or 0) & 3

    @property
    def command_id(self) -> int | None:
        """APS command identifier (§4.4.10) of a readable command frame, else ``None``."""
        if self.frame_type == APS_COMMAND and self.payload:
            return self.payload[0]
        return None

    @property
    def frame_control(self) -> int:
        """The APS frame control octet computed from the fields (§2.2.5.1.1)."""
        return (
            self.frame_type
            | self.delivery_mode << 2
            | self.ack_format << 4
            | self.security << 5
            | self.ack_request << 6
            | self.extended_header << 7
        )

    def header(self) -> bytes:
        """The APS header octets, auxiliary header excluded (§2.2.5.1)."""
        out = bytearray((self.frame_control,))
        ftype = self.frame_type
        addressed = ftype in (APS_DATA, APS_INTERPAN) or (ftype == APS_ACK and not self.ack_format)
        if addressed:
            if self.dst_endpoint is not None:
                out.append(self.dst_endpoint)
            if self.group is not None:
                out += _U16.pack(self.group)
            out += _CLUSTER_PROFILE.pack(self.cluster or 0, self.profile or 0)
            if self.src_endpoint is not None:
                out.append(self.src_endpoint)
        if self.counter is not None:
            out.append(self.counter)
        if self.ext_fc is not None:
            out.append(self.ext_fc)
            if self.block is not None:
                out.append(self.block)
            if self.ack_bitfield is not None:
                out.append(self.ack_bitfield)
        return bytes(out)

    def encode(self, key: CcmKey | None = None, src64: int | None = None,
               level: int = ZIGBEE_SECURITY_LEVEL) -> bytes:
        """The APS frame octets; inverse of :func:`decode_aps` (+ :func:`decrypt_aps`).

        Args:
            key: link key (already derived for the aux header's key identifier) to secure
                ``payload`` with; without it the stored ``secured`` octets are sent.
            src64: EUI-64 for the nonce when the aux header has no extended source.
            level: the CCM* security level (ZigBee: 5).

        Raises:
            ValueError: security without aux header, or no source EUI-64 for the nonce.
        """
        head = self.header()
        if not self.security:
            return head + (self.payload or b"")
        if self.aux is None:
            raise ValueError("a secured APS frame needs its auxiliary header")
        aux = self.aux.encode()
        if key is None or self.payload is None:
            return head + aux + self.secured
        nonce_src = self.aux.src64 if self.aux.src64 is not None else src64
        if nonce_src is None:
            raise ValueError("APS security needs a source EUI-64 for the nonce")
        return seal(head, aux, nonce_src, self.aux.frame_counter, key, self.payload, level)


def decode_aps(buf: bytes) -> ApsFrame:
    """Decode an APS frame: ``buf`` is the (plaintext) NWK payload.

    Raises:
        LayerError: truncated or bogus fields, offset into ``buf``.
    """
    n = len(buf)
    if n < 1:
        raise LayerError(0, "truncated: APS frame control needs 1 octet, 0 left")
    fc = buf[0]
    ftype = fc & 3
    mode = (fc >> 2) & 3
    frame = ApsFrame()
    frame.frame_type = ftype
    frame.delivery_mode = mode
    frame.ack_format = bool(fc & 0x10)
    frame.security = security = bool(fc & 0x20)
    frame.ack_request = bool(fc & 0x40)
    frame.extended_header = bool(fc & 0x80)
    frame.reserved_bits = 0
    frame.key_label = None
    frame.dst_endpoint = frame.group = frame.cluster = frame.profile = None
    frame.src_endpoint = frame.counter = frame.ext_fc = frame.block = None
    frame.ack_bitfield = None
    frame.aux = None
    pos = 1
    if mode == 1 and ftype != APS_COMMAND:
        # indirect delivery is reserved since ZigBee 2007 (Table 2.22): layout unknown
        frame.secured = frame.payload = buf[1:]
        frame.payload_offset = 1
        frame.security = False
        return frame
    if ftype in (APS_DATA, APS_INTERPAN) or (ftype == APS_ACK and not fc & 16):
        if mode == DELIVERY_GROUP:
            if n < pos + 2:
                need(buf, pos, 2, "APS group address")
            frame.group = buf[pos] | buf[pos + 1] << 8
            pos += 2
        elif ftype != APS_INTERPAN:
            if n < pos + 1:
                need(buf, pos, 1, "APS destination endpoint")
            frame.dst_endpoint = buf[pos]
            pos += 1
        if n < pos + 4:
            need(buf, pos, 4, "APS cluster and profile")
        frame.cluster, frame.profile = _CLUSTER_PROFILE.unpack_from(buf, pos)
        pos += 4
        if ftype != APS_INTERPAN:
            if n <= pos:
                need(buf, pos, 1, "APS source endpoint")
            frame.src_endpoint = buf[pos]
            pos += 1
    if ftype != APS_INTERPAN:
        if n <= pos:
            need(buf, pos, 1, "APS counter")
        frame.counter = buf[pos]
        pos += 1
        if fc & 0x80:
            need(buf, pos, 1, "APS extended frame control")
            ext = frame.ext_fc = buf[pos]
            pos += 1
            if ext & 3:
                need(buf, pos, 1, "APS block number")
                frame.block = buf[pos]
                pos += 1
                if ftype == APS_ACK:
                    need(buf, pos, 1, "APS ACK bitfield")
                    frame.ack_bitfield = buf[pos]
                    pos += 1
    if security:
        aux = decode_aux(buf, pos)
        frame.aux = aux
        pos += aux.length
        if n - pos < 4:
            raise LayerError(pos, "truncated: secured APS payload shorter than its 4-octet MIC")
        frame.secured = buf[pos:]
        frame.payload = None
    else:
        frame.secured = frame.payload = buf[pos:]
    frame.payload_offset = pos
    return frame


def decrypt_aps(
    buf: bytes,
    frame: ApsFrame,
    keys: list[tuple[str, CcmKey]],
    src64: int | None,
    level: int = ZIGBEE_SECURITY_LEVEL,
) -> bool:
    """Verify and decrypt a secured APS frame in place (§4.4.1.2).

    Args:
        buf: the buffer ``frame`` was decoded from (the plaintext NWK payload).
        frame: a secured frame from :func:`decode_aps`.
        keys: ``(label, key)`` pairs, already derived for the aux header's key identifier.
        src64: the sender's EUI-64 when the aux header has no extended source.
        level: the security level to use (ZigBee forces 5).

    Returns:
        Whether a key verified the MIC (then ``payload`` and ``key_label`` are set).
    """
    aux = frame.aux
    if aux is None:
        return False
    nonce_src = aux.src64 if aux.src64 is not None else src64
    if nonce_src is None:
        return False
    opened = unseal(buf, 0, aux.offset, frame.payload_offset, nonce_src, aux.frame_counter,
                    frame.secured, keys, level)
    if opened is None:
        return False
    frame.payload, frame.key_label = opened
    return True


class TransportKey:
    """An APS Transport Key command's content (§4.4.10.1).

    Attributes:
        key_type: :data:`KEY_TYPE_NAMES` value.
        key: the 16 key octets (a secret).
        key_seq: network key sequence number (network keys only).
        dst64, src64: destination and source EUI-64 (partner and ``None`` for
            application link keys).
        initiator: initiator flag (application link keys only).
    """

    __slots__ = ("dst64", "initiator", "key", "key_seq", "key_type", "src64")

    def __init__(self, key_type: int, key: bytes, key_seq: int | None, dst64: int | None,
                 src64: int | None, initiator: bool | None) -> None:
        self.key_type = key_type
        self.key = key
        self.key_seq = key_seq
        self.dst64 = dst64
        self.src64 = src64
        self.initiator = initiator

    def __repr__(self) -> str:
        return f"TransportKey({KEY_TYPE_NAMES.get(self.key_type, self.key_type)}, <secret>)"

    @property
    def is_network_key(self) -> bool:
        """Whether this carries a network key."""
        return self.key_type in _NETWORK_KEY_TYPES


def decode_transport_key(payload: bytes) -> TransportKey:
    """Decode a Transport Key command payload (command id octet first).

    Raises:
        LayerError: truncated fields, offset into ``payload``.
    """
    need(payload, 1, 17, "Transport Key type and key")
    key_type = payload[1]
    key = payload[2:18]
    pos = 18
    key_seq = dst64 = src64 = None
    initiator = None
    if key_type in _NETWORK_KEY_TYPES:
        need(payload, pos, 17, "Transport Key sequence number and addresses")
        key_seq = payload[pos]
        dst64, src64 = struct.unpack_from("<QQ", payload, pos + 1)
    elif key_type == 0x03:
        need(payload, pos, 9, "Transport Key partner address and initiator flag")
        dst64 = _U64.unpack_from(payload, pos)[0]
        initiator = bool(payload[pos + 8])
    elif key_type in (0x00, 0x04):
        need(payload, pos, 16, "Transport Key addresses")
        dst64, src64 = struct.unpack_from("<QQ", payload, pos)
    return TransportKey(key_type, key, key_seq, dst64, src64, initiator)


class _Message:
    """One incomplete APS message: its first fragment's time, block count (``None`` until
    the first fragment is seen), blocks by index and their octets."""

    __slots__ = ("blocks", "first_ts", "octets", "total")

    def __init__(self, first_ts: int) -> None:
        self.first_ts = first_ts
        self.total: int | None = None
        self.blocks: dict[int, bytes] = {}
        self.octets = 0


class Reassembler:
    """APS fragment reassembly with bounded memory and a time-out (§2.2.8.4.5).

    Messages are keyed by (NWK source address, APS counter). A message that does not
    complete within ``timeout_ns`` of its first fragment, or that is the oldest when more
    than ``max_messages`` or ``max_octets`` are held, is dropped.

    Args:
        max_messages: incomplete messages held at most.
        max_octets: payload octets held at most over all messages.
        timeout_ns: time-out in ns of frame time (``ts_ns``) since the first fragment.
    """

    def __init__(self, max_messages: int = 64, max_octets: int = 256 * 1024,
                 timeout_ns: int = 30_000_000_000) -> None:
        self.max_messages = max_messages
        self.max_octets = max_octets
        self.timeout_ns = timeout_ns
        #: incomplete messages, oldest first (a dict keeps the order of insertion)
        self._pending: dict[tuple[int, int], _Message] = {}
        self._octets = 0
        #: at most the earliest first-fragment time held (while any message is held)
        self._oldest_ns = 0
        self.dropped = 0

    @property
    def held_octets(self) -> int:
        """Payload octets currently held."""
        return self._octets

    @property
    def pending(self) -> int:
        """Incomplete messages currently held."""
        return len(self._pending)

    def state_digest(self) -> bytes:
        """A digest of everything that decides what later fragments reassemble to: the
        incomplete messages in order, their first fragment's time, block count and blocks
        (16 octets, the same for the same state in any process)."""
        state = [(key, m.first_ts, m.total, sorted(m.blocks.items()))
                 for key, m in self._pending.items()]
        return hashlib.blake2b(repr(state).encode(), digest_size=16).digest()

    def _drop(self, key: tuple[int, int]) -> None:
        self._octets -= self._pending.pop(key).octets
        self.dropped += 1

    def _time_out(self, ts_ns: int) -> None:
        """Drop every message whose first fragment is more than the time-out before
        ``ts_ns``, in the order they are held."""
        timeout_ns = self.timeout_ns
        for key in [k for k, m in self._pending.items() if ts_ns - m.first_ts > timeout_ns]:
            self._drop(key)
        self._oldest_ns = min((m.first_ts for m in self._pending.values()), default=0)

    def add(self, src: int, counter: int, fragmentation: int, block: int, payload: bytes,
            ts_ns: int) -> bytes | None:
        """Add one fragment; return the whole payload when the message is complete.

        Args:
            src: NWK source short address.
            counter: APS counter.
            fragmentation: 1 first fragment (``block`` = block count), 2 subsequent
                (``block`` = block index).
            block: the extended header block number.
            payload: this fragment's plaintext payload.
            ts_ns: the frame's time, ns since the epoch (for the time-out).
        """
        pending = self._pending
        if pending and ts_ns - self._oldest_ns > self.timeout_ns:
            self._time_out(ts_ns)  # only when some message may be due
        key = (src, counter)
        message = pending.get(key)
        if message is None:
            if not pending or ts_ns < self._oldest_ns:
                self._oldest_ns = ts_ns
            message = pending[key] = _Message(ts_ns)
        if fragmentation == FRAGMENT_FIRST:
            message.total = max(block, 1)
            index = 0
        else:
            index = block
        blocks = message.blocks
        old = blocks.get(index)
        if old is not None:
            message.octets -= len(old)
            self._octets -= len(old)
        blocks[index] = payload
        message.octets += len(payload)
        self._octets += len(payload)
        total = message.total
        if total is not None and len(blocks) >= total and all(
                i in blocks for i in range(total)):
            del pending[key]
            self._octets -= message.octets
            return b"".join([blocks[i] for i in range(total)])
        while pending and (len(pending) > self.max_messages or self._octets > self.max_octets):
            self._drop(next(iter(pending)))
        return None
