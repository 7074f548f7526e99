"""OTA identities of the emulated device models, and their emulated images.

The emulated rigs (``rigs/emulated-*.yaml``) name device models ``emu-esme-a`` …; each
model's OTA client has a manufacturer code, an image type and a running file version
(ZCL 07-5123 §11.10 client attributes ManufacturerID, ImageTypeID, CurrentFileVersion).
A model not in :data:`EMULATED_MODELS` gets an identity derived from its name.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

from hanlab.firmware.ota_file import OtaTarget, build_ota_file, emulated_payload

#: hanlab's emulated manufacturer code (not a ZigBee-allocated one).
EMULATED_MANUFACTURER: Final = 0x1DB1


@dataclass(frozen=True, slots=True)
class OtaIdentity:
    """A device model's OTA client identity (§11.10).

    Attributes:
        manufacturer_code, image_type: what images it takes.
        file_version: the version it runs out of the box.
        requires_signature: it takes signed images only (GBCS: every ESME/GSME image is
            signed by its manufacturer).
    """

    manufacturer_code: int
    image_type: int
    file_version: int
    requires_signature: bool = True

    def target(self, current_file_version: int | None = None, *, eui64: int | None = None,
               name: str = "the target device") -> OtaTarget:
        """As an :class:`OtaTarget` running ``current_file_version`` (default: its own)."""
        return OtaTarget(self.manufacturer_code, self.image_type,
                         self.file_version if current_file_version is None
                         else current_file_version,
                         requires_signature=self.requires_signature, eui64=eui64, name=name)


EMULATED_MODELS: Final[dict[str, OtaIdentity]] = {
    "emu-esme-a": OtaIdentity(EMULATED_MANUFACTURER, 0x0101, 0x01000000),
    "emu-esme-b": OtaIdentity(EMULATED_MANUFACTURER, 0x0102, 0x01000000),
    "emu-gsme-a": OtaIdentity(EMULATED_MANUFACTURER, 0x0201, 0x01000000),
    "emu-gsme-b": OtaIdentity(EMULATED_MANUFACTURER, 0x0202, 0x01000000),
    "emu-ppmid": OtaIdentity(EMULATED_MANUFACTURER, 0x0401, 0x01000000),
    "emu-hcalcs": OtaIdentity(EMULATED_MANUFACTURER, 0x0501, 0x01000000),
    "emu-ihd": OtaIdentity(EMULATED_MANUFACTURER, 0x0301, 0x01000000),
}


def identity_of(model: str) -> OtaIdentity:
    """The OTA identity of device ``model`` (derived from the name when not listed)."""
    known = EMULATED_MODELS.get(model)
    if known is not None:
        return known
    return OtaIdentity(EMULATED_MANUFACTURER, 0x1000 | (zlib.crc32(model.encode()) & 0x0FFF),
                       0x01000000)


def emulated_image(model: str, *, file_version: int | None = None,
                   size_octets: int = 2048) -> bytes:
    """A signed emulated OTA file for ``model`` of about ``size_octets`` octets (header and
    security sub-elements included), one version above the model's own by default."""
    ident = identity_of(model)
    version = ident.file_version + 0x00010000 if file_version is None else file_version
    overhead = 56 + 6 + 80 + 78
    payload = emulated_payload(max(size_octets - overhead, 1), f"{model}:{version:08x}")
    return build_ota_file(manufacturer_code=ident.manufacturer_code,
                          image_type=ident.image_type, file_version=version,
                          payload=payload, header_string=f"hanlab {model} {version:08X}",
                          sign=ident.requires_signature)
