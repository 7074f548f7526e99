"""Shared pieces of the ZigBee codec: decode errors, address formatting, name lookup.

A decoder never raises out of :mod:`hanlab.zigbee`: a layer that cannot be parsed yields a
:class:`DecodeError` naming the layer, the byte offset (into the PSDU, or into the
reassembled APS payload for layers above a reassembled frame) and the reason. Internally
the layer parsers raise :class:`LayerError`, which the lazy frame catches at the layer
boundary.
"""

from __future__ import annotations

from typing import NamedTuple


class DecodeError(NamedTuple):
    """Why a layer of a frame could not be decoded.

    Attributes:
        layer: ``"mac"``, ``"nwk"``, ``"nwk-security"``, ``"aps"``, ``"aps-security"``,
            ``"zcl"`` or ``"gbcs"``.
        offset: byte offset of the offending field in the PSDU (or in the reassembled
            APS payload for layers decoded from a reassembled frame).
        reason: what was wrong, e.g. ``"truncated: NWK header needs 8 octets, 5 left"``.
    """

    layer: str
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.layer} at byte {self.offset}: {self.reason}"


class LayerError(Exception):
    """Internal: a layer parser found bad input at ``offset``; never escapes the package.

    Args:
        offset: byte offset of the offending field.
        reason: what was wrong.
    """

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason


def need(buf: bytes, offset: int, count: int, what: str) -> None:
    """Raise :class:`LayerError` unless ``buf`` holds ``count`` octets at ``offset``."""
    left = len(buf) - offset
    if left < count:
        raise LayerError(offset, f"truncated: {what} needs {count} octets, {max(left, 0)} left")


def eui64_str(eui64: int) -> str:
    """EUI-64 (as the integer read little-endian off the air) in DUIS form ``00-DB-12-…``."""
    return eui64.to_bytes(8, "big").hex("-").upper()


def eui64_colon(eui64: int) -> str:
    """EUI-64 in the lower-case colon form tshark prints (``00:db:12:…``)."""
    return eui64.to_bytes(8, "big").hex(":")


def parse_eui64(text: str) -> int:
    """Parse an EUI-64 written with ``-``, ``:`` or no separators, most significant first.

    Raises:
        ValueError: not 16 hex digits.
    """
    digits = text.replace("-", "").replace(":", "").strip()
    if len(digits) != 16:
        raise ValueError(f"EUI-64 {text!r} must have 16 hex digits")
    return int(digits, 16)


def short_str(addr: int) -> str:
    """A 16-bit short address or PAN ID as ``0x1a2b``."""
    return f"0x{addr:04x}"


def name_of(table: dict[int, str], value: int) -> str:
    """The name of ``value`` in a protocol table, or ``unknown_0x..`` when absent."""
    name = table.get(value)
    return name if name is not None else f"unknown_0x{value:02x}"
