"""The GBCS tunnel command carried in ZCL Tunneling TransferData (GBCS v5.x section 7.2.4).

On the HAN a GBCS message travels in the ZigBee SE Tunneling cluster (0x0704): the ZCL
TransferData command payload is ``tunnel ID (2 octets, little-endian) | tunnel data``. The
tunnel ID belongs to ZCL (SE 1.4 section D.6) and is handled by :mod:`hanlab.zigbee`; this
module reads the *tunnel data*, whose first octet is the GBCS tunnel command:

* ``0x01`` GET: a device asks the CHF/GPF for a waiting message; nothing follows.
* ``0x02`` GET-RESPONSE: the CHF answers with a remaining-messages octet (messages still
  waiting after this one), then the GBCS message.
* ``0x03`` PUT: the GBCS message follows directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from hanlab.errors import BadInputError
from hanlab.gbcs.codes import UNKNOWN
from hanlab.gbcs.message import GbcsMessage, GbcsParseError, GbtBlock, parse_gbcs_message


class TunnelCommand(IntEnum):
    """GBCS tunnel command octet (GBCS v5.x section 7.2.4)."""

    GET = 0x01
    GET_RESPONSE = 0x02
    PUT = 0x03


TUNNEL_COMMAND_NAMES: Final[MappingProxyType[int, str]] = MappingProxyType(
    {
        TunnelCommand.GET: "GET",
        TunnelCommand.GET_RESPONSE: "GET-RESPONSE",
        TunnelCommand.PUT: "PUT",
    }
)
"""Tunnel command octet -> name as GBCS writes it."""

# Octets of tunnel header before the message, per command (command octet included).
_HEADER_LENGTH: Final[MappingProxyType[int, int]] = MappingProxyType(
    {TunnelCommand.GET: 1, TunnelCommand.GET_RESPONSE: 2, TunnelCommand.PUT: 1}
)


@dataclass(slots=True)
class TunnelPayload:
    """GBCS tunnel data as read from one TransferData payload (after the tunnel ID).

    Attributes:
        command: the tunnel command octet (raw; see :attr:`command_name`).
        remaining_messages: GET-RESPONSE only: messages still waiting at the CHF/GPF.
        message_bytes: the GBCS message octets (``b""`` for GET or on error).
        message_offset: offset of ``message_bytes`` in the tunnel data.
        error: why the tunnel header could not be read, or ``None``.

    Treat it as immutable; ``__init__`` is written out so that the compiled build
    constructs it natively (issue 15).
    """

    command: int | None
    remaining_messages: int | None
    message_bytes: bytes
    message_offset: int
    error: GbcsParseError | None = None
    _message: GbcsMessage | GbtBlock | GbcsParseError | None = field(
        default=None, init=False, repr=False, compare=False)
    _parsed: bool = field(default=False, init=False, repr=False, compare=False)

    def __init__(self, command: int | None, remaining_messages: int | None,
                 message_bytes: bytes, message_offset: int,
                 error: GbcsParseError | None = None) -> None:
        self.command = command
        self.remaining_messages = remaining_messages
        self.message_bytes = message_bytes
        self.message_offset = message_offset
        self.error = error
        self._message = None
        self._parsed = False

    @property
    def command_name(self) -> str:
        """``"GET"``, ``"GET-RESPONSE"``, ``"PUT"`` or ``"unknown"``."""
        if self.command is None:
            return UNKNOWN
        return TUNNEL_COMMAND_NAMES.get(self.command, UNKNOWN)

    @property
    def message(self) -> GbcsMessage | GbtBlock | GbcsParseError | None:
        """The GBCS message header, parsed on first access; ``None`` if no message is carried.

        A :class:`GbcsParseError` has its offset counted from the start of the tunnel data.
        """
        if not self._parsed:
            self._parsed = True
            if self.message_bytes:
                parsed = parse_gbcs_message(self.message_bytes)
                self._message = (parsed.shifted(self.message_offset)
                                 if isinstance(parsed, GbcsParseError) else parsed)
        return self._message


def parse_tunnel_payload(data: bytes) -> TunnelPayload:
    """Read GBCS tunnel data (GBCS v5.x section 7.2.4). Never raises.

    Args:
        data: the TransferData payload *after* the 2-octet ZCL tunnel ID.

    Returns:
        A :class:`TunnelPayload`; its ``error`` is set (with the byte offset) when ``data``
        is empty, the command is unknown, a GET-RESPONSE lacks its remaining-messages octet,
        a GET carries octets or a PUT carries none. The message is parsed lazily.
    """
    data = bytes(data)
    if not data:
        return TunnelPayload(None, None, b"", 0, GbcsParseError(0, "empty tunnel data"))
    command = data[0]
    header_length = _HEADER_LENGTH.get(command)
    if header_length is None:
        return TunnelPayload(
            command, None, b"", 1,
            GbcsParseError(0, f"unknown GBCS tunnel command 0x{command:02X}"),
        )
    if len(data) < header_length:
        return TunnelPayload(
            command, None, b"", len(data),
            GbcsParseError(len(data), "GET-RESPONSE without its remaining-messages octet"),
        )
    remaining = data[1] if command == TunnelCommand.GET_RESPONSE else None
    message = data[header_length:]
    error = None
    if command == TunnelCommand.GET and message:
        error = GbcsParseError(1, f"GET carries {len(message)} unexpected bytes")
        message = b""
    elif command == TunnelCommand.PUT and not message:
        error = GbcsParseError(1, "PUT without a GBCS message")
    return TunnelPayload(command, remaining, message, header_length, error)


def build_tunnel_payload(
    command: TunnelCommand | int,
    message: bytes = b"",
    *,
    remaining_messages: int | None = None,
) -> bytes:
    """Write GBCS tunnel data (GBCS v5.x section 7.2.4); prepend the ZCL tunnel ID yourself.

    Args:
        command: GET, GET-RESPONSE or PUT.
        message: the GBCS message octets (none for GET).
        remaining_messages: GET-RESPONSE only, 0..255.

    Raises:
        BadInputError: unknown command, a GET with a message, a PUT without one, or
            ``remaining_messages`` missing, out of range or given for another command.
    """
    try:
        kind = TunnelCommand(command)
    except ValueError:
        raise BadInputError(f"unknown GBCS tunnel command {command!r}") from None
    if kind == TunnelCommand.GET_RESPONSE:
        if remaining_messages is None or not 0 <= remaining_messages <= 0xFF:
            raise BadInputError("GET-RESPONSE needs remaining_messages in 0..255")
        return bytes([kind, remaining_messages]) + bytes(message)
    if remaining_messages is not None:
        raise BadInputError(f"remaining_messages is for GET-RESPONSE, not {kind.name}")
    if kind == TunnelCommand.GET and message:
        raise BadInputError("a GET carries no GBCS message")
    if kind == TunnelCommand.PUT and not message:
        raise BadInputError("a PUT needs a GBCS message")
    return bytes([kind]) + bytes(message)
