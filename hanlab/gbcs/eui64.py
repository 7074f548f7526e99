"""EUI-64 values as GBCS system titles and DUIS identifiers (GBCS v5.x section 4.3.1.5,
DUIS 5.4 section 3.4.1: ``90-B3-D5-1F-30-01-00-00``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hanlab.errors import BadInputError

_DUIS_FORM: Final = re.compile(r"^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){7}$")
_PLAIN_HEX: Final = re.compile(r"^[0-9A-Fa-f]{16}$")


@dataclass(slots=True, order=True, unsafe_hash=True)
class Eui64:
    """An IEEE EUI-64 (8 octets, big-endian as GBCS and DUIS write it).

    Attributes:
        value: the EUI-64 as an unsigned 64-bit integer.

    Raises:
        BadInputError: ``value`` is outside 0..2**64-1.

    A value: hashable, ordered, never changed after construction. ``__init__`` is
    written out (not a frozen dataclass's) so that the compiled build constructs it
    natively, twice per GBCS message read (issue 15).
    """

    value: int

    def __init__(self, value: int) -> None:
        if not 0 <= value < 1 << 64:
            raise BadInputError(f"EUI-64 value {value} is outside 0..2**64-1")
        self.value = value

    @classmethod
    def from_bytes(cls, data: bytes) -> Eui64:
        """From exactly 8 octets, most significant first (a GBCS system title).

        Raises:
            BadInputError: ``data`` is not 8 octets long.
        """
        if len(data) != 8:
            raise BadInputError(f"EUI-64 needs 8 octets, got {len(data)}")
        return Eui64(int.from_bytes(data, "big"))

    @classmethod
    def parse(cls, text: str) -> Eui64:
        """From DUIS form ``00-DB-12-34-56-78-90-A0`` or 16 hex digits ``00DB1234567890A0``.

        Raises:
            BadInputError: ``text`` is in neither form.
        """
        stripped = text.strip()
        if _DUIS_FORM.match(stripped):
            return Eui64(int(stripped.replace("-", ""), 16))
        if _PLAIN_HEX.match(stripped):
            return Eui64(int(stripped, 16))
        raise BadInputError(
            f"not an EUI-64: {text!r}",
            hint="write it as 8 hex octets, e.g. 90-B3-D5-1F-30-01-00-00",
        )

    def to_bytes(self) -> bytes:
        """The 8 octets, most significant first."""
        return self.value.to_bytes(8, "big")

    @property
    def duis(self) -> str:
        """DUIS form, upper case: ``90-B3-D5-1F-30-01-00-00``."""
        return "-".join(f"{octet:02X}" for octet in self.to_bytes())

    def __str__(self) -> str:
        return self.duis
