"""Response checks of an SR step: what the response must report (``expect_response``).

An ``sr`` step's ``expect`` checks the final ResponseCode; ``expect_response`` checks what
the response reports, field by field. A field is read from the DUIS Response's
GBCSPayload by a reader of its own; fields and the SRs they belong to:

* ``firmware_version`` (SR 11.2 Read Firmware Version; issue 11 item 2 "SR 11.2 reading
  the new version afterwards"): the device's running firmware version, read by
  :func:`hanlab.gbcs.firmware_version.read_firmware_version`. Expected value: an OTA file
  version (``"0x01020000"``, 8 hex digits), or ``catalogue``: the file version of the
  newest image of the device's model in the rig's firmware catalogue, the image SR 11.1
  distributes when its request carries none (:mod:`hanlab.emulator.dcc.firmware`).

Example (``firmware-management.yaml``)::

    - {sr: "11.3", target: METER}
    - {sr: "11.2", target: METER, expect_response: {firmware_version: catalogue}}

A mismatch, an unreadable response or an unknown catalogue version fails the step with a
detail naming the field, the value read and the value expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.firmware_version import FirmwareVersionError, read_firmware_version
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message

__all__ = ["CATALOGUE", "RESPONSE_FIELDS", "CatalogueVersions", "catalogue_versions",
           "check_response", "validate_expect_response"]

CATALOGUE: Final = "catalogue"
"""Expected value: the version of the catalogue image of the target device's model."""

CatalogueVersions = Callable[[Eui64], int | None]
"""Device EUI-64 -> the file version SR 11.1 distributes to it (``None``: not known)."""

_FILE_VERSION = re.compile(r"^0x[0-9A-Fa-f]{8}$")


@dataclass(frozen=True, slots=True)
class _Field:
    srs: frozenset[str]
    read: Callable[[bytes], int]


RESPONSE_FIELDS: Final[Mapping[str, _Field]] = {
    "firmware_version": _Field(frozenset({"11.2"}), read_firmware_version),
}
"""The fields ``expect_response`` may name, with the SRs whose response reports them."""


def validate_expect_response(sr_variant: str, expected: Mapping[str, str]) -> None:
    """Check an ``expect_response`` mapping of an SR step (the scenario loader's check).

    Raises:
        ValueError: an unknown field, a field the SR's response does not report, or a
            value neither ``catalogue`` nor an 8-hex-digit file version (names which).
    """
    for name, value in expected.items():
        spec = RESPONSE_FIELDS.get(name)
        if spec is None:
            raise ValueError(f"expect_response: unknown field {name!r} (known: "
                             f"{', '.join(sorted(RESPONSE_FIELDS))})")
        if sr_variant not in spec.srs:
            raise ValueError(f"expect_response: SR {sr_variant}'s response does not report "
                             f"{name} (SR {', '.join(sorted(spec.srs))} does)")
        if value != CATALOGUE and not _FILE_VERSION.match(value):
            raise ValueError(f"expect_response: {name} must be {CATALOGUE!r} or a file "
                             f"version such as '0x01020000', not {value!r}")


def check_response(expected: Mapping[str, str], gbcs_payload: bytes | None, target: Eui64,
                   *, catalogue: CatalogueVersions | None = None) -> str | None:
    """Why the response does not report what ``expected`` says; ``None`` when it does.

    Args:
        expected: a validated ``expect_response`` (field -> value).
        gbcs_payload: the DUIS Response's GBCSPayload (a GBCS response message).
        target: the device the SR went to (for ``catalogue`` values).
        catalogue: the catalogue versions of the rig's devices, or ``None``.
    """
    if not expected:
        return None
    if gbcs_payload is None:
        return "expect_response: the response carries no GBCSPayload"
    message = parse_gbcs_message(gbcs_payload)
    if not isinstance(message, GbcsMessage):
        where = getattr(message, "offset", "?")
        reason = getattr(message, "reason", "a GBT block, not a whole message")
        return f"expect_response: GBCSPayload unreadable at byte {where}: {reason}"
    problems = []
    for name, value in expected.items():
        try:
            got = RESPONSE_FIELDS[name].read(message.content)
        except FirmwareVersionError as error:
            offset = message.content_offset + error.offset
            problems.append(f"{name} unreadable at GBCSPayload byte {offset}: {error.reason}")
            continue
        if value == CATALOGUE:
            want = None if catalogue is None else catalogue(target)
            if want is None:
                problems.append(f"{name} read 0x{got:08X}; the catalogue has no image for "
                                f"device {target.duis}")
                continue
            source = "the catalogue image (the one SR 11.1 distributes)"
        else:
            want, source = int(value, 16), "expected"
        if got != want:
            problems.append(f"{name} read 0x{got:08X}, {source} is 0x{want:08X}")
    return "; ".join(problems) or None


def catalogue_versions(models: Mapping[Eui64, str],
                       folder: Path | None = None) -> CatalogueVersions:
    """The file version of the newest catalogue image of each device's model.

    Args:
        models: device EUI-64 -> model (rig file ``model``, else the role in lower case,
            as the emulated HAN names them).
        folder: the firmware catalogue; default the shipped one
            (:func:`hanlab.emulator.han.ota.shipped_catalogue`); none: every lookup is
            ``None``.
    """
    from hanlab.emulator.han.ota import shipped_catalogue
    from hanlab.firmware.catalogue import Catalogue

    folder = folder or shipped_catalogue()
    cat = None if folder is None else Catalogue(folder)

    def version(device: Eui64) -> int | None:
        model = models.get(device)
        entry = None if cat is None or model is None else cat.latest_for(model)
        return None if entry is None else entry.file_version

    return version
