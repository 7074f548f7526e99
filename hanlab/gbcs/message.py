"""GBCS message headers: parse and build (GBCS v5.x sections 4.3 and 8.2; no crypto).

A GBCS message as it travels in a ZCL Tunneling TransferData or over the WAN is one of:

* **General Ciphering** (MAC'd, tag ``0xDD`` then ``0x00``): the *MAC header*
  ``DD 00 00 00 00 00 00 | len | security control (1) | invocation counter (4, BE)``,
  then a General Signing APDU, then a 12-octet MAC. ``len`` (BER) covers the security
  header, the General Signing APDU and the MAC (GBCS v5.x section 4.3.1.4).
* **General Signing** (tag ``0xDF``): the *grouping header*
  ``DF | 09 CRA flag, Originator Counter (8, BE) | 08 originator system title |
  08 recipient system title | date-time (00, or 0C + 12-octet DLMS date-time) |
  other-information (BER len: Message Code (2) [Supplementary Remote Party ID (8)
  [Supplementary Remote Party Counter (8) [Supplementary Originator Counter (8) |
  Supplementary Remote Party Key Agreement certificate]]]) | content (BER len)``,
  then the signature (BER len, 0 or 64 octets) (GBCS v5.x section 4.3.1.3).
* **GBT block** (General Block Transfer, ``DD 09 ...``): a *routing header* (a General
  Ciphering header whose transaction-id, system titles and Message Code are filled in)
  followed by a GBT header ``E0 | block control | block number (2) | block number ack (2) |
  block data (BER len)``. The block data of blocks 1..n, concatenated, are a complete
  General Ciphering or General Signing message (GBCS v5.x section 8.2).

Nothing here verifies signatures or MACs. Parsing never raises: bad input gives a
:class:`GbcsParseError` with the byte offset where reading stopped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from hanlab.errors import BadInputError
from hanlab.gbcs.codes import (
    alert_code_name,
    cra_flag_name,
    message_code_name,
    message_code_use_case,
)
from hanlab.gbcs.eui64 import Eui64

GENERAL_CIPHERING_TAG: Final = 0xDD
GENERAL_SIGNING_TAG: Final = 0xDF
GENERAL_BLOCK_TRANSFER_TAG: Final = 0xE0
TRANSACTION_ID_LENGTH: Final = 9
SYSTEM_TITLE_LENGTH: Final = 8
DLMS_DATE_TIME_LENGTH: Final = 12
MAC_LENGTH: Final = 12
SECURITY_HEADER_LENGTH: Final = 5
DEFAULT_SECURITY_CONTROL: Final = 0x11
"""Security control octet of RTDS MAC headers (authentication only, key set 1)."""

_GBT_LAST_BLOCK: Final = 0x80
_GBT_STREAMING: Final = 0x40
_GBT_WINDOW: Final = 0x3F
_GBZ_PROFILE_PREFIX: Final = b"\x01\x09"
_DLMS_DATA_NOTIFICATION: Final = 0x0F
_DLMS_STRUCTURE: Final = 0x02
_DLMS_LONG_UNSIGNED: Final = 0x12
_ASN1_SEQUENCE: Final = 0x30
_ASN1_INTEGER: Final = 0x02


@dataclass(frozen=True, slots=True)
class GbcsParseError:
    """Why and where a GBCS message (or tunnel payload) could not be read.

    Attributes:
        offset: byte offset, from the start of the parsed buffer, where reading stopped.
        reason: what was wrong there.
    """

    offset: int
    reason: str

    def shifted(self, by_bytes: int) -> GbcsParseError:
        """The same error with ``offset`` moved by ``by_bytes`` (for an enclosing buffer)."""
        return GbcsParseError(self.offset + by_bytes, self.reason)

    def __str__(self) -> str:
        return f"at byte {self.offset}: {self.reason}"


@dataclass(slots=True)
class MacHeader:
    """The General Ciphering MAC header's security header (GBCS v5.x section 4.3.1.4).

    Attributes:
        security_control: the security control octet (0x11 in RTDS messages).
        invocation_counter: the 4-octet invocation counter.
        ciphered_content_length: the BER length, in octets, of security header, General
            Signing APDU and MAC together.

    Treat it as immutable; ``__init__`` is written out so that the compiled build
    constructs it natively (issue 15).
    """

    security_control: int
    invocation_counter: int
    ciphered_content_length: int

    def __init__(self, security_control: int, invocation_counter: int,
                 ciphered_content_length: int) -> None:
        self.security_control = security_control
        self.invocation_counter = invocation_counter
        self.ciphered_content_length = ciphered_content_length


@dataclass(slots=True)
class GbcsMessage:
    """A GBCS message header and its undecoded content (GBCS v5.x section 4.3).

    Attributes:
        cra_flag: CRA flag octet (1 command, 2 response, 3 alert; other values kept raw).
        originator_counter: the 8-octet Originator Counter as an int.
        originator_system_title: business originator (EUI-64).
        recipient_system_title: business target (EUI-64).
        date_time: the grouping header date-time in UTC, or ``None`` when absent or not a
            plain calendar value (see ``date_time_raw``).
        date_time_raw: the 12 DLMS date-time octets, or ``b""`` when absent.
        message_code: the 2-octet Message Code.
        supplementary_remote_party_id: where the other-information carries it.
        supplementary_remote_party_counter: where the other-information carries it.
        supplementary_originator_counter: where the other-information carries it.
        supplementary_remote_party_ka_certificate: DER certificate, where carried.
        content: the GBCS payload (DLMS, GBZ or ASN.1), not decoded here.
        content_offset: byte offset of ``content`` in the parsed buffer.
        signature: the signature octets (``b""`` when the signature length is 0); ``None``
            when the message ends after its content without a signature length octet, the
            form of an unsigned Pre-Command (DUIS 5.4 section 3.2.4, GBCS v5.x 4.3.1.3).
        mac_header: the MAC header when the message is General Ciphering, else ``None``.
        mac: the 12 MAC octets when General Ciphering, else ``None``.

    Treat it as immutable; ``__init__`` is written out so that the compiled build
    constructs it natively (issue 15).
    """

    cra_flag: int
    originator_counter: int
    originator_system_title: Eui64
    recipient_system_title: Eui64
    message_code: int
    content: bytes
    date_time: dt.datetime | None = None
    date_time_raw: bytes = b""
    supplementary_remote_party_id: Eui64 | None = None
    supplementary_remote_party_counter: int | None = None
    supplementary_originator_counter: int | None = None
    supplementary_remote_party_ka_certificate: bytes | None = None
    content_offset: int = 0
    signature: bytes | None = b""
    mac_header: MacHeader | None = None
    mac: bytes | None = field(default=None)

    def __init__(self, cra_flag: int, originator_counter: int, originator_system_title: Eui64,
                 recipient_system_title: Eui64, message_code: int, content: bytes,
                 date_time: dt.datetime | None = None, date_time_raw: bytes = b"",
                 supplementary_remote_party_id: Eui64 | None = None,
                 supplementary_remote_party_counter: int | None = None,
                 supplementary_originator_counter: int | None = None,
                 supplementary_remote_party_ka_certificate: bytes | None = None,
                 content_offset: int = 0, signature: bytes | None = b"",
                 mac_header: MacHeader | None = None, mac: bytes | None = None) -> None:
        self.cra_flag = cra_flag
        self.originator_counter = originator_counter
        self.originator_system_title = originator_system_title
        self.recipient_system_title = recipient_system_title
        self.message_code = message_code
        self.content = content
        self.date_time = date_time
        self.date_time_raw = date_time_raw
        self.supplementary_remote_party_id = supplementary_remote_party_id
        self.supplementary_remote_party_counter = supplementary_remote_party_counter
        self.supplementary_originator_counter = supplementary_originator_counter
        self.supplementary_remote_party_ka_certificate = supplementary_remote_party_ka_certificate
        self.content_offset = content_offset
        self.signature = signature
        self.mac_header = mac_header
        self.mac = mac

    @property
    def cra_flag_name(self) -> str:
        """``"command"``, ``"response"``, ``"alert"`` or ``"unknown"``."""
        return cra_flag_name(self.cra_flag)

    @property
    def message_code_name(self) -> str:
        """``"ECS17b Read ESME Energy Registers (Import Energy)"`` or ``"unknown"``."""
        return message_code_name(self.message_code)

    @property
    def use_case(self) -> str:
        """GBCS use case id of the Message Code (``"ECS17b"``) or ``"unknown"``."""
        return message_code_use_case(self.message_code)

    @property
    def alert_code(self) -> int | None:
        """The Alert Code of an alert whose content is GBZ or a DLMS Data-Notification.

        GBZ alert payload (GBCS v5.x section 7.2.8): ``01 09 | components (1) | alert code
        (2)``; DLMS Data-Notification (section 7.2.9): ``0F | invoke id (4) | date-time (0 or
        12, length-prefixed) | 02 nn | 12 alert code (2)``; ASN.1 alert (section 7.2.10):
        ``30 len | 02 len alertCode``. ``None`` for other messages.
        """
        if self.cra_flag != 3:
            return None
        return _alert_code_of(self.content)

    @property
    def alert_code_name(self) -> str | None:
        """Name of :attr:`alert_code`, ``"unknown"``, or ``None`` when there is none."""
        code = self.alert_code
        return None if code is None else alert_code_name(code)


@dataclass(slots=True)
class GbtBlock:
    """One General Block Transfer block with its routing header (GBCS v5.x section 8.2).

    Attributes:
        cra_flag, originator_counter, originator_system_title, recipient_system_title,
        message_code: the routing header's copy of the whole message's header fields.
        security_control, invocation_counter: the routing header's security header.
        last_block: block control bit 7.
        streaming: block control bit 6.
        window: block control bits 0..5.
        block_number: 1 for the first block.
        block_number_ack: the block number acknowledged.
        block_data: this block's slice of the whole message (``b""`` for an ack).

    Treat it as immutable; ``__init__`` is written out so that the compiled build
    constructs it natively (issue 15).
    """

    cra_flag: int
    originator_counter: int
    originator_system_title: Eui64
    recipient_system_title: Eui64
    message_code: int
    security_control: int
    invocation_counter: int
    last_block: bool
    streaming: bool
    window: int
    block_number: int
    block_number_ack: int
    block_data: bytes

    def __init__(self, cra_flag: int, originator_counter: int, originator_system_title: Eui64,
                 recipient_system_title: Eui64, message_code: int, security_control: int,
                 invocation_counter: int, last_block: bool, streaming: bool, window: int,
                 block_number: int, block_number_ack: int, block_data: bytes) -> None:
        self.cra_flag = cra_flag
        self.originator_counter = originator_counter
        self.originator_system_title = originator_system_title
        self.recipient_system_title = recipient_system_title
        self.message_code = message_code
        self.security_control = security_control
        self.invocation_counter = invocation_counter
        self.last_block = last_block
        self.streaming = streaming
        self.window = window
        self.block_number = block_number
        self.block_number_ack = block_number_ack
        self.block_data = block_data

    @property
    def transaction_key(self) -> tuple[Eui64, int]:
        """(originator system title, Originator Counter): the blocks of one message share it."""
        return (self.originator_system_title, self.originator_counter)


class _Stop(Exception):
    """Internal: reading stopped at ``offset``; never leaves this module."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class _Reader:
    """Bounded cursor over a buffer; every read checks the bound it was given."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining():
            raise _Stop(
                self.pos, f"{what}: needs {count} bytes, only {self.remaining()} remain"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def uint(self, count: int, what: str) -> int:
        return int.from_bytes(self.take(count, what), "big")

    def expect(self, value: int, what: str) -> None:
        at = self.pos
        got = self.u8(what)
        if got != value:
            raise _Stop(at, f"{what}: expected 0x{value:02X}, got 0x{got:02X}")

    def ber_length(self, what: str) -> int:
        """A BER definite length: 1 octet < 0x80, or 0x81..0x83 and 1..3 octets."""
        at = self.pos
        first = self.u8(what)
        if first < 0x80:
            return first
        size = first & 0x7F
        if size == 0 or size > 3:
            raise _Stop(at, f"{what}: unsupported BER length form 0x{first:02X}")
        return self.uint(size, what)

    def bounded(self, length: int, what: str) -> int:
        """End offset of a ``length``-octet element starting here, checked against the bound."""
        if length > self.remaining():
            raise _Stop(
                self.pos, f"{what} says {length} bytes, only {self.remaining()} remain"
            )
        return self.pos + length


def encode_ber_length(length: int) -> bytes:
    """BER definite length octets for ``length`` (0..2**24-1).

    Raises:
        BadInputError: ``length`` is negative or too large.
    """
    if length < 0 or length >= 1 << 24:
        raise BadInputError(f"BER length {length} outside 0..2**24-1")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def _dlms_date_time(raw: bytes) -> dt.datetime | None:
    """DLMS date-time (12 octets, DLMS Blue Book 4.1.6.1) in UTC, or ``None`` if not plain."""
    year = int.from_bytes(raw[0:2], "big")
    month, day, _dow, hour, minute, second, hundredths = raw[2:9]
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    try:
        value = dt.datetime(
            year, month, day, hour, minute, second,
            0 if hundredths == 0xFF else hundredths * 10_000,
            tzinfo=dt.UTC,
        )
    except ValueError:
        return None
    if deviation != -0x8000:  # 0x8000: deviation not specified
        value += dt.timedelta(minutes=deviation)  # local = UTC - deviation (DLMS)
    return value


def _encode_dlms_date_time(value: dt.datetime) -> bytes:
    """12-octet DLMS date-time in UTC with deviation 0 and clock status 0x00."""
    utc = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return (
        utc.year.to_bytes(2, "big")
        + bytes([utc.month, utc.day, utc.isoweekday(), utc.hour, utc.minute, utc.second,
                 utc.microsecond // 10_000])
        + (0).to_bytes(2, "big")
        + b"\x00"
    )


def _asn1_alert_code(content: bytes) -> int | None:
    """alertCode INTEGER, first in the alert's SEQUENCE (GBCS v5.x section 7.2.10)."""
    r = _Reader(content, 1)
    try:
        r.ber_length("SEQUENCE length")
        r.expect(_ASN1_INTEGER, "INTEGER tag")
        size = r.u8("INTEGER length")
        if not 1 <= size <= 3:
            return None
        return r.uint(size, "alertCode")
    except _Stop:
        return None


def _alert_code_of(content: bytes) -> int | None:
    if content[:1] == bytes([_ASN1_SEQUENCE]):
        return _asn1_alert_code(content)
    if content[:2] == _GBZ_PROFILE_PREFIX and len(content) >= 5:
        return int.from_bytes(content[3:5], "big")
    if content[:1] == bytes([_DLMS_DATA_NOTIFICATION]) and len(content) >= 6:
        at = 5
        date_length = content[at]
        at += 1 + date_length
        if (
            len(content) >= at + 5
            and content[at] == _DLMS_STRUCTURE
            and content[at + 2] == _DLMS_LONG_UNSIGNED
        ):
            return int.from_bytes(content[at + 3 : at + 5], "big")
    return None


def _read_transaction_id(r: _Reader) -> tuple[int, int]:
    at = r.pos
    length = r.u8("transaction-id length")
    if length != TRANSACTION_ID_LENGTH:
        raise _Stop(at, f"transaction-id length {length}, expected {TRANSACTION_ID_LENGTH}")
    return r.u8("CRA flag"), r.uint(8, "Originator Counter")


def _read_system_title(r: _Reader, what: str) -> Eui64:
    at = r.pos
    length = r.u8(f"{what} length")
    if length != SYSTEM_TITLE_LENGTH:
        raise _Stop(at, f"{what} length {length}, expected {SYSTEM_TITLE_LENGTH}")
    return Eui64.from_bytes(r.take(SYSTEM_TITLE_LENGTH, what))


def _read_date_time(r: _Reader) -> bytes:
    at = r.pos
    length = r.u8("date-time length")
    if length not in (0, DLMS_DATE_TIME_LENGTH):
        raise _Stop(at, f"date-time length {length}, expected 0 or {DLMS_DATE_TIME_LENGTH}")
    return r.take(length, "date-time")


class _Addressing:
    """Transaction-id, system titles and date-time of a grouping or routing header."""

    __slots__ = ("cra_flag", "date_time_raw", "originator", "originator_counter",
                 "recipient")

    def __init__(self, cra_flag: int, originator_counter: int, originator: Eui64,
                 recipient: Eui64, date_time_raw: bytes) -> None:
        self.cra_flag = cra_flag
        self.originator_counter = originator_counter
        self.originator = originator
        self.recipient = recipient
        self.date_time_raw = date_time_raw


def _read_addressing(r: _Reader, tag: int, tag_name: str) -> _Addressing:
    """Tag, transaction-id, system titles and date-time: common to grouping and routing headers."""
    r.expect(tag, tag_name)
    cra_flag, originator_counter = _read_transaction_id(r)
    return _Addressing(
        cra_flag,
        originator_counter,
        _read_system_title(r, "originator system title"),
        _read_system_title(r, "recipient system title"),
        _read_date_time(r),
    )


def _read_general_signing(r: _Reader, mac_header: MacHeader | None = None,
                          mac: bytes | None = None) -> GbcsMessage:
    """General Signing APDU from ``r.pos`` up to ``r.end`` exactly (GBCS v5.x 4.3.1.3);
    ``mac_header`` and ``mac`` of the General Ciphering around it, if any."""
    grouping = _read_addressing(r, GENERAL_SIGNING_TAG, "General Signing tag")
    cra_flag, originator_counter = grouping.cra_flag, grouping.originator_counter
    originator, recipient = grouping.originator, grouping.recipient
    date_time_raw = grouping.date_time_raw
    other_length = r.ber_length("other-information length")
    other_start = r.pos
    other_end = r.bounded(other_length, "other-information length")
    if other_length < 2 or 3 <= other_length < 10 or 11 <= other_length < 18 or (
        19 <= other_length < 26
    ):
        raise _Stop(other_start, f"other-information length {other_length} is not 2, 10, 18 "
                    "or 26 and more")
    message_code = r.uint(2, "Message Code")
    remote_party_id = remote_party_counter = originator_counter_2 = None
    certificate = None
    if other_length >= 10:
        remote_party_id = Eui64.from_bytes(r.take(8, "Supplementary Remote Party ID"))
    if other_length >= 18:
        remote_party_counter = r.uint(8, "Supplementary Remote Party Counter")
    if other_length == 26:
        originator_counter_2 = r.uint(8, "Supplementary Originator Counter")
    elif other_length > 26:
        certificate = r.take(other_end - r.pos, "Supplementary Remote Party KA certificate")
    content_length = r.ber_length("content length")
    content_offset = r.pos
    r.bounded(content_length, "content length")
    content = r.take(content_length, "content")
    signature: bytes | None = None
    if r.remaining():  # no signature length octet at all: an unsigned Pre-Command
        signature_length = r.ber_length("signature length")
        r.bounded(signature_length, "signature length")
        signature = r.take(signature_length, "signature")
    if r.remaining():
        raise _Stop(r.pos, f"{r.remaining()} bytes after the signature")
    return GbcsMessage(
        cra_flag=cra_flag,
        originator_counter=originator_counter,
        originator_system_title=originator,
        recipient_system_title=recipient,
        message_code=message_code,
        content=content,
        date_time=_dlms_date_time(date_time_raw) if date_time_raw else None,
        date_time_raw=date_time_raw,
        supplementary_remote_party_id=remote_party_id,
        supplementary_remote_party_counter=remote_party_counter,
        supplementary_originator_counter=originator_counter_2,
        supplementary_remote_party_ka_certificate=certificate,
        content_offset=content_offset,
        signature=signature,
        mac_header=mac_header,
        mac=mac,
    )


#: the six zero length octets of a General Ciphering MAC header (GBCS v5.x 4.3.1.4)
_MAC_HEADER_LENGTHS: Final = tuple(
    f"MAC header {element} length" for element in (
        "transaction-id", "originator system title", "recipient system title", "date-time",
        "other-information", "key-info"))


def _read_general_ciphering(r: _Reader) -> GbcsMessage:
    """General Ciphering MAC header, General Signing APDU and MAC (GBCS v5.x 4.3.1.4)."""
    r.expect(GENERAL_CIPHERING_TAG, "General Ciphering tag")
    for what in _MAC_HEADER_LENGTHS:
        r.expect(0x00, what)
    length = r.ber_length("ciphered content length")
    end = r.bounded(length, "ciphered content length")
    if end != r.end:
        raise _Stop(end, f"{r.end - end} bytes after the MAC")
    if length < SECURITY_HEADER_LENGTH + MAC_LENGTH:
        raise _Stop(r.pos, f"ciphered content length {length} leaves no room for a message")
    security_control = r.u8("security control")
    invocation_counter = r.uint(4, "invocation counter")
    inner = _Reader(r.data, r.pos, end - MAC_LENGTH)
    message = _read_general_signing(  # built once, with its MAC (no dataclasses.replace)
        inner, MacHeader(security_control, invocation_counter, length),
        r.data[end - MAC_LENGTH : end])
    r.pos = end
    return message


def _read_gbt_block(r: _Reader) -> GbtBlock:
    """Routing header and GBT header and block data (GBCS v5.x section 8.2)."""
    routing = _read_addressing(r, GENERAL_CIPHERING_TAG, "General Ciphering tag")
    at = r.pos
    other_length = r.ber_length("other-information length")
    if other_length != 2:
        raise _Stop(at, f"routing header other-information length {other_length}, expected 2")
    message_code = r.uint(2, "Message Code")
    r.expect(0x00, "routing header key-info length")
    length = r.ber_length("ciphered content length")
    end = r.bounded(length, "ciphered content length")
    security_control = r.u8("security control")
    invocation_counter = r.uint(4, "invocation counter")
    r.expect(GENERAL_BLOCK_TRANSFER_TAG, "General Block Transfer tag")
    block_control = r.u8("block control")
    block_number = r.uint(2, "block number")
    block_number_ack = r.uint(2, "block number ack")
    data_length = r.ber_length("block data length")
    data_end = r.bounded(data_length, "block data length")
    if data_end != end or end != r.end:
        raise _Stop(data_end, "GBT block data does not end where the ciphered content ends")
    block_data = r.take(data_length, "block data")
    return GbtBlock(
        cra_flag=routing.cra_flag,
        originator_counter=routing.originator_counter,
        originator_system_title=routing.originator,
        recipient_system_title=routing.recipient,
        message_code=message_code,
        security_control=security_control,
        invocation_counter=invocation_counter,
        last_block=bool(block_control & _GBT_LAST_BLOCK),
        streaming=bool(block_control & _GBT_STREAMING),
        window=block_control & _GBT_WINDOW,
        block_number=block_number,
        block_number_ack=block_number_ack,
        block_data=block_data,
    )


def parse_gbcs_message(data: bytes) -> GbcsMessage | GbtBlock | GbcsParseError:
    """Read one GBCS APDU: a whole message, or one GBT block (GBCS v5.x 4.3, 8.2).

    Args:
        data: exactly one APDU, e.g. what follows the GBCS tunnel command octet(s).

    Returns:
        :class:`GbcsMessage` for General Ciphering / General Signing; :class:`GbtBlock` for
        a GBT block (reassemble with :class:`GbtReassembler`); :class:`GbcsParseError`
        (offset into ``data``) when a length lies, the input is truncated or has trailing
        bytes, or the first octet is no GBCS tag. Never raises.
    """
    r = _Reader(data if type(data) is bytes else bytes(data))
    try:
        if not r.data:
            return GbcsParseError(0, "empty GBCS message")
        first = r.data[0]
        if first == GENERAL_SIGNING_TAG:
            return _read_general_signing(r)
        if first == GENERAL_CIPHERING_TAG:
            if len(r.data) > 1 and r.data[1] == TRANSACTION_ID_LENGTH:
                return _read_gbt_block(r)
            return _read_general_ciphering(r)
        return GbcsParseError(0, f"unknown GBCS APDU tag 0x{first:02X}")
    except _Stop as stop:
        return GbcsParseError(stop.offset, stop.reason)


def _check_eui(value: Eui64 | bytes, what: str) -> bytes:
    raw = value.to_bytes() if isinstance(value, Eui64) else bytes(value)
    if len(raw) != SYSTEM_TITLE_LENGTH:
        raise BadInputError(f"{what} must be 8 octets, got {len(raw)}")
    return raw


def _check_uint(value: int, octets: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * octets):
        raise BadInputError(f"{what} {value} outside 0..2**{8 * octets}-1")
    return value.to_bytes(octets, "big")


def build_gbcs_message(
    *,
    cra_flag: int,
    originator_counter: int,
    originator_system_title: Eui64 | bytes,
    recipient_system_title: Eui64 | bytes,
    message_code: int,
    content: bytes,
    date_time: dt.datetime | bytes | None = None,
    supplementary_remote_party_id: Eui64 | bytes | None = None,
    supplementary_remote_party_counter: int | None = None,
    supplementary_originator_counter: int | None = None,
    supplementary_remote_party_ka_certificate: bytes | None = None,
    signature: bytes | None = b"",
    mac: bytes | None = None,
    security_control: int = DEFAULT_SECURITY_CONTROL,
    invocation_counter: int = 0,
) -> bytes:
    """Write a GBCS message that :func:`parse_gbcs_message` reads back (GBCS v5.x 4.3).

    Args:
        cra_flag: 1 command, 2 response, 3 alert (any octet is written as given).
        originator_counter: 0..2**64-1.
        originator_system_title, recipient_system_title: EUI-64s.
        message_code: 0..0xFFFF.
        content: the payload octets, written as they are.
        date_time: a datetime (written as DLMS date-time in UTC), 12 raw octets, or None.
        supplementary_*: other-information fields; each needs the ones before it, and the
            originator counter and the certificate exclude each other.
        signature: signature octets (empty: signature length 0; ``None``: no signature
            length octet, an unsigned Pre-Command).
        mac: 12 MAC octets to wrap the message in a General Ciphering MAC header; ``None``
            for a bare General Signing message. Not computed here.
        security_control, invocation_counter: security header of the MAC header.

    Returns:
        The message octets.

    Raises:
        BadInputError: a field is out of range or the supplementary fields are inconsistent.
    """
    other = _check_uint(message_code, 2, "Message Code")
    if supplementary_remote_party_id is not None:
        other += _check_eui(supplementary_remote_party_id, "Supplementary Remote Party ID")
    if supplementary_remote_party_counter is not None:
        if supplementary_remote_party_id is None:
            raise BadInputError("Supplementary Remote Party Counter needs its Remote Party ID")
        other += _check_uint(
            supplementary_remote_party_counter, 8, "Supplementary Remote Party Counter"
        )
    extra = (supplementary_originator_counter, supplementary_remote_party_ka_certificate)
    if any(value is not None for value in extra) and supplementary_remote_party_counter is None:
        raise BadInputError("Supplementary Originator Counter / certificate need the "
                            "Supplementary Remote Party Counter")
    if all(value is not None for value in extra):
        raise BadInputError("Supplementary Originator Counter and certificate exclude each other")
    if supplementary_originator_counter is not None:
        other += _check_uint(
            supplementary_originator_counter, 8, "Supplementary Originator Counter"
        )
    if supplementary_remote_party_ka_certificate is not None:
        if len(supplementary_remote_party_ka_certificate) <= 8:
            raise BadInputError("a Supplementary Remote Party certificate must exceed 8 octets")
        other += supplementary_remote_party_ka_certificate
    if date_time is None:
        date_octets = b""
    elif isinstance(date_time, dt.datetime):
        date_octets = _encode_dlms_date_time(date_time)
    else:
        date_octets = bytes(date_time)
        if len(date_octets) != DLMS_DATE_TIME_LENGTH:
            raise BadInputError(f"date-time must be {DLMS_DATE_TIME_LENGTH} octets")
    signing = (
        bytes([GENERAL_SIGNING_TAG, TRANSACTION_ID_LENGTH])
        + _check_uint(cra_flag, 1, "CRA flag")
        + _check_uint(originator_counter, 8, "Originator Counter")
        + bytes([SYSTEM_TITLE_LENGTH]) + _check_eui(originator_system_title, "originator")
        + bytes([SYSTEM_TITLE_LENGTH]) + _check_eui(recipient_system_title, "recipient")
        + bytes([len(date_octets)]) + date_octets
        + encode_ber_length(len(other)) + other
        + encode_ber_length(len(content)) + bytes(content)
        + (b"" if signature is None else encode_ber_length(len(signature)) + bytes(signature))
    )
    if mac is None:
        return signing
    if len(mac) != MAC_LENGTH:
        raise BadInputError(f"MAC must be {MAC_LENGTH} octets, got {len(mac)}")
    ciphered = (
        _check_uint(security_control, 1, "security control")
        + _check_uint(invocation_counter, 4, "invocation counter")
        + signing
        + bytes(mac)
    )
    return bytes([GENERAL_CIPHERING_TAG]) + bytes(6) + encode_ber_length(len(ciphered)) + ciphered


def build_gbt_blocks(
    message: bytes,
    *,
    block_data_size: int,
    window: int = 1,
    security_control: int = 0x00,
    invocation_counter: int = 0,
) -> list[bytes]:
    """Split a whole GBCS message into GBT blocks (GBCS v5.x section 8.2).

    The routing header of each block copies the CRA flag, Originator Counter, system titles
    and Message Code from ``message``'s own header.

    Args:
        message: a complete General Ciphering or General Signing message.
        block_data_size: octets of ``message`` per block (1..65535).
        window: GBT window size written in block control (0..63).
        security_control, invocation_counter: the routing header's security header.

    Returns:
        The blocks, numbered from 1; the last has the last-block bit set.

    Raises:
        BadInputError: ``message`` does not parse as a whole message, or a size is out of range.
    """
    parsed = parse_gbcs_message(message)
    if not isinstance(parsed, GbcsMessage):
        raise BadInputError(f"cannot split into GBT blocks: {parsed}")
    if not 1 <= block_data_size <= 0xFFFF or not 0 <= window <= _GBT_WINDOW:
        raise BadInputError("GBT block_data_size must be 1..65535 and window 0..63")
    chunks = [message[i : i + block_data_size] for i in range(0, len(message), block_data_size)]
    routing = (
        bytes([GENERAL_CIPHERING_TAG, TRANSACTION_ID_LENGTH, parsed.cra_flag])
        + parsed.originator_counter.to_bytes(8, "big")
        + bytes([SYSTEM_TITLE_LENGTH]) + parsed.originator_system_title.to_bytes()
        + bytes([SYSTEM_TITLE_LENGTH]) + parsed.recipient_system_title.to_bytes()
        + b"\x00"
        + b"\x02" + parsed.message_code.to_bytes(2, "big")
        + b"\x00"
    )
    blocks = []
    for number, chunk in enumerate(chunks, start=1):
        last = number == len(chunks)
        gbt = (
            bytes([GENERAL_BLOCK_TRANSFER_TAG, (_GBT_LAST_BLOCK if last else 0) | window])
            + number.to_bytes(2, "big")
            + (0).to_bytes(2, "big")
            + encode_ber_length(len(chunk))
            + chunk
        )
        ciphered = (
            _check_uint(security_control, 1, "security control")
            + _check_uint(invocation_counter, 4, "invocation counter")
            + gbt
        )
        blocks.append(routing + encode_ber_length(len(ciphered)) + ciphered)
    return blocks


def reassemble_gbt_blocks(blocks: Iterable[GbtBlock]) -> bytes | GbcsParseError:
    """Concatenate the block data of one message's GBT blocks (GBCS v5.x section 8.2).

    Args:
        blocks: the blocks of one transaction in any order; duplicates with equal data are
            accepted once.

    Returns:
        The whole message octets, or a :class:`GbcsParseError` (offset 0) naming the gap,
        conflict or missing last block. Never raises.
    """
    by_number: dict[int, GbtBlock] = {}
    keys = set()
    for block in blocks:
        keys.add(block.transaction_key)
        known = by_number.get(block.block_number)
        if known is not None and known.block_data != block.block_data:
            return GbcsParseError(0, f"GBT block {block.block_number} seen with different data")
        by_number[block.block_number] = block
    if len(keys) > 1:
        return GbcsParseError(0, "GBT blocks of different transactions")
    if not by_number:
        return GbcsParseError(0, "no GBT blocks")
    last = [number for number, block in by_number.items() if block.last_block]
    if len(last) != 1:
        return GbcsParseError(0, f"{len(last)} GBT blocks marked last, expected 1")
    wanted = range(1, last[0] + 1)
    missing = [number for number in wanted if number not in by_number]
    if missing or max(by_number) != last[0]:
        problem = f"missing {missing}" if missing else f"block {max(by_number)} after the last"
        return GbcsParseError(0, f"GBT blocks out of order: {problem}")
    return b"".join(by_number[number].block_data for number in wanted)


class GbtReassembler:
    """Collects GBT blocks per transaction and hands back each message once complete.

    Keyed by (originator system title, Originator Counter). Holds at most
    ``max_transactions`` incomplete messages, dropping the oldest beyond that.
    """

    def __init__(self, max_transactions: int = 64) -> None:
        self._pending: dict[tuple[Eui64, int], list[GbtBlock]] = {}
        self._max_transactions = max_transactions

    def add(self, block: GbtBlock) -> GbcsMessage | GbcsParseError | None:
        """Add one block.

        Returns:
            ``None`` while the message is incomplete; the parsed whole message when the
            blocks 1..last are all in; a :class:`GbcsParseError` when they are complete
            but inconsistent or the reassembled octets do not parse (offset into them).
        """
        blocks = self._pending.setdefault(block.transaction_key, [])
        blocks.append(block)
        numbers = {b.block_number for b in blocks}
        last = [b.block_number for b in blocks if b.last_block]
        if not last or any(n not in numbers for n in range(1, max(last) + 1)):
            while len(self._pending) > self._max_transactions:
                del self._pending[next(iter(self._pending))]
            return None
        del self._pending[block.transaction_key]
        whole = reassemble_gbt_blocks(blocks)
        if isinstance(whole, GbcsParseError):
            return whole
        parsed = parse_gbcs_message(whole)
        if isinstance(parsed, GbtBlock):
            return GbcsParseError(0, "a reassembled GBT message is itself a GBT block")
        return parsed
