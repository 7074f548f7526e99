"""The firmware version in the GBCS response of SR 11.2 Read Firmware Version.

SR 11.2 is GBCS use case ECS52 (ESME, Message Code 0x0059), GCS38 (GSME, 0x0084) or
CS08 (CHF, 0x0129) (DUIS 5.4 SR catalogue). Its response carries the device's running
firmware version; in ECS52 it is a DLMS Get-Response-Normal whose Data is an
octet-string (IEC 62056-5-3 §9.3, A-XDR: ``C4 01 <invoke-id> 00 09 <length> <octets>``).

hanlab writes the version as the 4-octet OTA file version, most significant octet first
(the ``file_version`` of the image's OTA header, ZCL 07-5123 §11.4.2.6), so the version
read compares with the image distributed. The emulated HAN answers all three use cases in
this DLMS form; on real GSMEs (GBZ) and CHFs (ASN.1) the encoding differs and
:func:`read_firmware_version` says it cannot read them rather than guess.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MESSAGE_CODES_READ_FIRMWARE_VERSION", "FirmwareVersionError",
           "firmware_version_content", "read_firmware_version"]

MESSAGE_CODES_READ_FIRMWARE_VERSION: Final = frozenset({0x0059, 0x0084, 0x0129})
"""Message Codes of SR 11.2: ECS52 (ESME), GCS38 (GSME), CS08 (CHF)."""

_GET_RESPONSE_NORMAL: Final = b"\xc4\x01"
_INVOKE_ID: Final = 0x81  # invoke-id 1, priority high
_DATA: Final = 0x00  # Get-Data-Result: data
_OCTET_STRING: Final = 0x09


class FirmwareVersionError(ValueError):
    """The GBCS content holds no firmware version hanlab can read (``offset``: where)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


def firmware_version_content(file_version: int) -> bytes:
    """The GBCS content of an SR 11.2 response reporting ``file_version`` (uint32)."""
    if not 0 <= file_version <= 0xFFFF_FFFF:
        raise ValueError(f"file version {file_version} is not a uint32")
    return (_GET_RESPONSE_NORMAL + bytes([_INVOKE_ID, _DATA, _OCTET_STRING, 4])
            + file_version.to_bytes(4, "big"))


def read_firmware_version(content: bytes) -> int:
    """The file version in an SR 11.2 response's GBCS content (see the module docstring).

    Args:
        content: :attr:`hanlab.gbcs.message.GbcsMessage.content` of the response.

    Raises:
        FirmwareVersionError: not a DLMS Get-Response-Normal octet-string of 4 octets
            (the offset and what was found there are named).
    """
    if content[:2] != _GET_RESPONSE_NORMAL:
        raise FirmwareVersionError(0, f"not a DLMS Get-Response-Normal (C4 01): "
                                      f"{content[:2].hex(' ') or 'empty'}")
    if len(content) < 6:
        raise FirmwareVersionError(len(content), "the Get-Response ends before its data")
    if content[3] != _DATA:
        raise FirmwareVersionError(3, f"Get-Data-Result is data-access-result "
                                      f"{content[4] if len(content) > 4 else '?'}, not data")
    if content[4] != _OCTET_STRING:
        raise FirmwareVersionError(4, f"data type 0x{content[4]:02x}, not octet-string")
    if content[5] != 4 or len(content) < 10:
        raise FirmwareVersionError(5, f"octet-string of {content[5]} octets "
                                      f"({len(content) - 6} present), not a 4-octet version")
    return int.from_bytes(content[6:10], "big")
