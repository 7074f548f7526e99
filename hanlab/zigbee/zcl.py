"""ZCL frames (ZCL 07-5123 §2.4): header decode/encode, names, Tunneling TransferData.

ZCL header (§2.4.1): frame control (frame type bits 0-1: 0 profile-wide, 1 cluster
specific; manufacturer specific bit 2; direction bit 3: 0 client to server, 1 server to
client; disable default response bit 4), manufacturer code (2 octets, when manufacturer
specific), transaction sequence number (TSN), command identifier, payload.

A Smart Energy Tunneling (cluster 0x0704) TransferData payload is the tunnel id (2
octets, little-endian) then the tunnelled data (SE 1.4 D.6.2.4.3); for GBCS that data is
the GBCS tunnel command and message (GBCS §10.2.2).
"""

from __future__ import annotations

import struct
from typing import Final

from hanlab.zigbee.common import LayerError, name_of
from hanlab.zigbee.zcl_tables import (
    CLUSTER_COMMAND_NAMES,
    CLUSTER_NAMES,
    CLUSTER_TUNNELING,
    GENERAL_COMMAND_NAMES,
    TUNNEL_TRANSFER_DATA,
)

_U16: Final = struct.Struct("<H")

ZCL_FRAME_TYPE_NAMES: Final[dict[int, str]] = {0: "profile-wide", 1: "cluster-specific"}
DIRECTION_NAMES: Final[dict[int, str]] = {0: "to-server", 1: "to-client"}


class ZclFrame:
    """One ZCL frame.

    Attributes:
        frame_type: 0 profile-wide (general), 1 cluster-specific.
        manufacturer_specific, disable_default_response: frame control bits.
        direction: 0 client to server, 1 server to client.
        reserved_bits: frame control bits 5-7 as sent.
        manufacturer_code: present when manufacturer specific, else ``None``.
        tsn: transaction sequence number.
        command_id: command identifier.
        payload: command payload.
        cluster: the APS cluster identifier (for names), or ``None``.
    """

    __slots__ = (
        "cluster",
        "command_id",
        "direction",
        "disable_default_response",
        "frame_type",
        "manufacturer_code",
        "manufacturer_specific",
        "payload",
        "reserved_bits",
        "tsn",
    )

    def __init__(
        self,
        frame_type: int = 0,
        tsn: int = 0,
        command_id: int = 0,
        payload: bytes = b"",
        *,
        direction: int = 0,
        disable_default_response: bool = False,
        manufacturer_code: int | None = None,
        cluster: int | None = None,
        reserved_bits: int = 0,
    ) -> None:
        self.frame_type = frame_type
        self.tsn = tsn
        self.command_id = command_id
        self.payload = payload
        self.direction = direction
        self.disable_default_response = disable_default_response
        self.manufacturer_specific = manufacturer_code is not None
        self.manufacturer_code = manufacturer_code
        self.cluster = cluster
        self.reserved_bits = reserved_bits

    @property
    def frame_control(self) -> int:
        """The ZCL frame control octet (§2.4.1.1)."""
        return (
            self.frame_type
            | self.manufacturer_specific << 2
            | self.direction << 3
            | self.disable_default_response << 4
            | self.reserved_bits
        )

    @property
    def cluster_name(self) -> str:
        """Cluster name, ``unknown_0x....`` when not in the table."""
        if self.cluster is None:
            return "unknown"
        return name_of(CLUSTER_NAMES, self.cluster)

    @property
    def command_name(self) -> str:
        """Command name: general command, or cluster-specific for the frame's direction."""
        if self.frame_type == 0:
            return name_of(GENERAL_COMMAND_NAMES, self.command_id)
        name = CLUSTER_COMMAND_NAMES.get((self.cluster or -1, self.direction, self.command_id))
        return name if name is not None else f"unknown_0x{self.command_id:02x}"

    @property
    def is_tunnel_transfer_data(self) -> bool:
        """Whether this is a Tunneling cluster TransferData command (SE 1.4 D.6)."""
        return (
            self.frame_type == 1
            and self.cluster == CLUSTER_TUNNELING
            and self.manufacturer_code is None
            and self.command_id == TUNNEL_TRANSFER_DATA[self.direction]
        )

    @property
    def tunnel_id(self) -> int | None:
        """Tunnel id of a TransferData command, else ``None``."""
        if self.is_tunnel_transfer_data and len(self.payload) >= 2:
            return int(_U16.unpack_from(self.payload, 0)[0])
        return None

    @property
    def tunnel_data(self) -> bytes | None:
        """Tunnelled data (after the tunnel id) of a TransferData command, else ``None``."""
        if self.is_tunnel_transfer_data and len(self.payload) >= 2:
            return self.payload[2:]
        return None

    def encode(self) -> bytes:
        """The ZCL frame octets; inverse of :func:`decode_zcl`."""
        head = bytes((self.frame_control,))
        if self.manufacturer_code is not None:
            head += _U16.pack(self.manufacturer_code)
        return head + bytes((self.tsn, self.command_id)) + self.payload


def decode_zcl(buf: bytes, cluster: int | None = None) -> ZclFrame:
    """Decode a ZCL frame (the APS payload).

    Raises:
        LayerError: truncated header, offset into ``buf``.
    """
    n = len(buf)
    if n < 1:
        raise LayerError(0, "truncated: ZCL frame control needs 1 octet, 0 left")
    fc = buf[0]
    pos = 1
    mfr = None
    if fc & 4:
        if n < 3:
            raise LayerError(1, f"truncated: ZCL manufacturer code needs 2 octets, {n - 1} left")
        mfr = buf[1] | buf[2] << 8
        pos = 3
    if n < pos + 2:
        raise LayerError(pos, f"truncated: ZCL TSN and command id need 2 octets, {n - pos} left")
    frame = ZclFrame()
    frame.frame_type = fc & 3
    frame.manufacturer_specific = mfr is not None
    frame.manufacturer_code = mfr
    frame.direction = (fc >> 3) & 1
    frame.disable_default_response = bool(fc & 0x10)
    frame.reserved_bits = fc & 0xE0
    frame.tsn = buf[pos]
    frame.command_id = buf[pos + 1]
    frame.payload = buf[pos + 2 :]
    frame.cluster = cluster
    return frame


def tunnel_transfer_data(tsn: int, tunnel_id: int, data: bytes, *, direction: int = 0,
                         disable_default_response: bool = True) -> ZclFrame:
    """A Tunneling TransferData command (SE 1.4 D.6.2.4.3 / D.6.2.5.2) carrying ``data``.

    Args:
        tsn: ZCL transaction sequence number.
        tunnel_id: the tunnel id from RequestTunnelResponse.
        data: the tunnelled octets (for GBCS: tunnel command byte then the GBCS message).
        direction: 0 client to server, 1 server to client.
    """
    return ZclFrame(1, tsn, TUNNEL_TRANSFER_DATA[direction], _U16.pack(tunnel_id) + data,
                    direction=direction, disable_default_response=disable_default_response,
                    cluster=CLUSTER_TUNNELING)
