"""ZigBee OTA Upgrade image files: parse, build and check (ZCL 07-5123 chapter 11, §11.4).

File layout (all integers little-endian), §11.4.2 OTA Header, Table 11-2:

====== ====== ======================================================================
offset octets field
====== ====== ======================================================================
0      4      OTA Upgrade File Identifier, 0x0BEEF11E (§11.4.2.1)
4      2      OTA Header Version, 0x0100 (§11.4.2.2)
6      2      OTA Header Length, octets of the whole header (§11.4.2.3)
8      2      OTA Header Field Control (§11.4.2.4): bit 0 Security Credential Version
              present, bit 1 Device Specific File (Upgrade File Destination present),
              bit 2 Hardware Versions present
10     2      Manufacturer Code (§11.4.2.5)
12     2      Image Type (§11.4.2.6; 0xFFC0-0xFFFF reserved / specific)
14     4      File Version (§11.4.2.7)
18     2      ZigBee Stack Version (§11.4.2.8; 0x0002 ZigBee PRO)
20     32     OTA Header String (§11.4.2.9), human readable, NUL padded
52     4      Total Image Size, header included (§11.4.2.10)
56     (1)    Security Credential Version (§11.4.2.11), when bit 0
..     (8)    Upgrade File Destination, IEEE address (§11.4.2.12), when bit 1
..     (2+2)  Minimum / Maximum Hardware Version (§11.4.2.13/14), when bit 2
====== ====== ======================================================================

Then sub-elements to the end of the file (§11.4.3): Tag ID (2), Length (4), Data. Tags
(§11.4.4, Table 11-5): 0x0000 Upgrade Image, 0x0001 ECDSA Signature (Crypto Suite 1),
0x0002 ECDSA Signing Certificate (Crypto Suite 1), 0x0003 Image Integrity Code, 0x0004
Picture Data, 0x0005 ECDSA Signature (Crypto Suite 2), 0x0006 ECDSA Signing Certificate
(Crypto Suite 2); 0xF000-0xFFFF manufacturer specific; the rest reserved (reported as
unknown). Fixed sizes: signature CS1 50 octets (signer IEEE address 8 + r,s 42, §11.4.5),
certificate CS1 48 (§11.4.6), integrity code 16 (AES-MMO hash of the file without that
sub-element, §11.4.8), signature CS2 72 (8 + 64), certificate CS2 74.

Seed 000 (Firmware Management prerequisites): "The maximum firmware image size is 750 KB"
(:data:`MAX_IMAGE_SIZE_OCTETS`, read as 750 × 1024 octets of the whole OTA file) and
"all the devices in the device list should have the same digital signature certificates"
(:func:`same_signing_certificate`).

Emulated images (:func:`build_ota_file` with ``sign=True``) carry a Crypto Suite 2
signature sub-element: signer IEEE address, then ECDSA P-256 r and s over SHA-256 of every
octet before the signature sub-element, and a 74-octet certificate sub-element holding the
signer IEEE address and the compressed public key (hanlab's emulated layout, *not* an
ECQV implicit certificate: real images are checked for presence and size only).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hanlab.errors import FirmwareImageError

OTA_FILE_IDENTIFIER: Final = 0x0BEEF11E
"""OTA Upgrade File Identifier (§11.4.2.1)."""
OTA_HEADER_VERSION: Final = 0x0100
"""The OTA Header Version this module writes (§11.4.2.2)."""
OTA_BASE_HEADER_OCTETS: Final = 56
"""Header octets without the optional fields."""
ZIGBEE_PRO_STACK: Final = 0x0002
MAX_IMAGE_SIZE_OCTETS: Final = 750 * 1024
"""Seed 000: "The maximum firmware image size is 750 KB" (KB read as 1024 octets)."""

FC_SECURITY_CREDENTIAL: Final = 0x0001
FC_DEVICE_SPECIFIC: Final = 0x0002
FC_HARDWARE_VERSIONS: Final = 0x0004

TAG_UPGRADE_IMAGE: Final = 0x0000
TAG_ECDSA_SIGNATURE_CS1: Final = 0x0001
TAG_ECDSA_CERTIFICATE_CS1: Final = 0x0002
TAG_IMAGE_INTEGRITY_CODE: Final = 0x0003
TAG_PICTURE_DATA: Final = 0x0004
TAG_ECDSA_SIGNATURE_CS2: Final = 0x0005
TAG_ECDSA_CERTIFICATE_CS2: Final = 0x0006

#: Sub-element tag names (§11.4.4, Table 11-5).
TAG_NAMES: Final[dict[int, str]] = {
    TAG_UPGRADE_IMAGE: "upgrade_image",
    TAG_ECDSA_SIGNATURE_CS1: "ecdsa_signature_cs1",
    TAG_ECDSA_CERTIFICATE_CS1: "ecdsa_signing_certificate_cs1",
    TAG_IMAGE_INTEGRITY_CODE: "image_integrity_code",
    TAG_PICTURE_DATA: "picture_data",
    TAG_ECDSA_SIGNATURE_CS2: "ecdsa_signature_cs2",
    TAG_ECDSA_CERTIFICATE_CS2: "ecdsa_signing_certificate_cs2",
}
#: Fixed data lengths of the security sub-elements (§11.4.5-§11.4.8).
TAG_LENGTHS: Final[dict[int, int]] = {
    TAG_ECDSA_SIGNATURE_CS1: 50, TAG_ECDSA_CERTIFICATE_CS1: 48,
    TAG_IMAGE_INTEGRITY_CODE: 16, TAG_ECDSA_SIGNATURE_CS2: 72,
    TAG_ECDSA_CERTIFICATE_CS2: 74,
}
SIGNATURE_TAGS: Final = frozenset({TAG_ECDSA_SIGNATURE_CS1, TAG_ECDSA_SIGNATURE_CS2})
CERTIFICATE_TAGS: Final = frozenset({TAG_ECDSA_CERTIFICATE_CS1, TAG_ECDSA_CERTIFICATE_CS2})
SUB_ELEMENT_HEADER_OCTETS: Final = 6

_BASE = struct.Struct("<IHHHHHIH32sI")


def tag_name(tag: int) -> str:
    """Name of sub-element ``tag``: the table's, ``manufacturer_0x....`` (0xF000-0xFFFF),
    else ``unknown_0x....``."""
    name = TAG_NAMES.get(tag)
    if name is not None:
        return name
    return f"manufacturer_0x{tag:04x}" if tag >= 0xF000 else f"unknown_0x{tag:04x}"


def tag_known(tag: int) -> bool:
    """Whether ``tag`` is defined by §11.4.4 or manufacturer specific."""
    return tag in TAG_NAMES or tag >= 0xF000


@dataclass(frozen=True, slots=True)
class OtaHeader:
    """The OTA header (§11.4.2), as in the file.

    Attributes:
        header_version, header_length_octets, field_control: as in the file.
        manufacturer_code, image_type, file_version: what the image is for and is.
        zigbee_stack_version: 0x0002 ZigBee PRO.
        header_string: the 32-octet header string, NULs stripped (latin-1).
        total_image_size_octets: the whole file's size the header states.
        security_credential_version, upgrade_file_destination, minimum_hardware_version,
            maximum_hardware_version: the optional fields, ``None`` when absent.
    """

    manufacturer_code: int
    image_type: int
    file_version: int
    total_image_size_octets: int
    header_version: int = OTA_HEADER_VERSION
    header_length_octets: int = OTA_BASE_HEADER_OCTETS
    field_control: int = 0
    zigbee_stack_version: int = ZIGBEE_PRO_STACK
    header_string: str = ""
    security_credential_version: int | None = None
    upgrade_file_destination: int | None = None
    minimum_hardware_version: int | None = None
    maximum_hardware_version: int | None = None


@dataclass(frozen=True, slots=True)
class SubElement:
    """One sub-element (§11.4.3).

    Attributes:
        tag: Tag ID.
        offset: byte offset of its Tag ID in the file.
        data: its data octets.
    """

    tag: int
    offset: int
    data: bytes

    @property
    def name(self) -> str:
        """The tag's name (:func:`tag_name`)."""
        return tag_name(self.tag)

    @property
    def end(self) -> int:
        """Byte offset just after this sub-element."""
        return self.offset + SUB_ELEMENT_HEADER_OCTETS + len(self.data)


@dataclass(frozen=True, slots=True)
class OtaImage:
    """A parsed OTA Upgrade file.

    Attributes:
        header: the OTA header.
        elements: the sub-elements in file order.
        raw: the file's octets.
        source: where it was read from (for messages).
    """

    header: OtaHeader
    elements: tuple[SubElement, ...]
    raw: bytes = field(repr=False)
    source: str = "<bytes>"

    def element(self, tag: int) -> SubElement | None:
        """The first sub-element with ``tag``, or ``None``."""
        return next((e for e in self.elements if e.tag == tag), None)

    @property
    def upgrade_image(self) -> bytes:
        """The Upgrade Image sub-element's data (empty when absent)."""
        found = self.element(TAG_UPGRADE_IMAGE)
        return b"" if found is None else found.data

    @property
    def signed(self) -> bool:
        """Whether an ECDSA signature sub-element (CS1 or CS2) is present."""
        return any(e.tag in SIGNATURE_TAGS for e in self.elements)

    @property
    def signing_certificate(self) -> bytes | None:
        """The signing certificate sub-element's data, or ``None``."""
        found = next((e for e in self.elements if e.tag in CERTIFICATE_TAGS), None)
        return None if found is None else found.data

    @property
    def sha256(self) -> str:
        """SHA-256 of the whole file, hex."""
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True)
class OtaTarget:
    """What a device accepts (the OTA client's attributes, §11.10; GBCS device checks).

    Attributes:
        manufacturer_code, image_type: must equal the header's.
        current_file_version: the device's running version; the image must be newer
            (``None``: not checked).
        requires_signature: the device needs a signature sub-element.
        eui64: the device (checked against a device-specific file's destination).
        hardware_version: checked against the header's hardware version range.
        name: for messages (e.g. ``ESME 00-DB-...``).
    """

    manufacturer_code: int
    image_type: int
    current_file_version: int | None = None
    requires_signature: bool = True
    eui64: int | None = None
    hardware_version: int | None = None
    name: str = "the target device"


@dataclass(frozen=True, slots=True)
class OtaProblem:
    """One problem found by :func:`check_ota_image`: byte ``offset`` and ``reason``."""

    offset: int
    reason: str

    def error(self, source: str) -> FirmwareImageError:
        """As the error the CLI prints."""
        return FirmwareImageError(source, self.offset, self.reason)


def parse_ota_file(data: bytes, source: Path | str = "<bytes>") -> OtaImage:
    """Parse an OTA Upgrade file (§11.4): header, then sub-elements to its end.

    Structural checks only (what makes the file unreadable); :func:`check_ota_image` adds
    the rest (tags, sizes, the target device, the 750 KB limit).

    Raises:
        FirmwareImageError: naming ``source`` and the byte offset: shorter than the header,
            bad file identifier (magic), header length not matching the field control,
            Total Image Size not the file's size, a sub-element running past the end.
    """
    src = str(source)
    n = len(data)
    if n < OTA_BASE_HEADER_OCTETS:
        raise FirmwareImageError(src, n, f"truncated: the OTA header needs "
                                 f"{OTA_BASE_HEADER_OCTETS} octets, the file has {n}")
    (magic, version, header_len, fc, mfr, image_type, file_version, stack, text,
     total) = _BASE.unpack_from(data, 0)
    if magic != OTA_FILE_IDENTIFIER:
        raise FirmwareImageError(src, 0, f"bad magic 0x{magic:08X}, expected "
                                 f"0x{OTA_FILE_IDENTIFIER:08X} (not an OTA Upgrade file)")
    expected_len = (OTA_BASE_HEADER_OCTETS + (1 if fc & FC_SECURITY_CREDENTIAL else 0)
                    + (8 if fc & FC_DEVICE_SPECIFIC else 0)
                    + (4 if fc & FC_HARDWARE_VERSIONS else 0))
    if header_len < expected_len:
        raise FirmwareImageError(src, 6, f"OTA Header Length {header_len} is shorter than "
                                 f"the {expected_len} octets field control 0x{fc:04x} needs")
    if header_len > n:
        raise FirmwareImageError(src, 6, f"truncated: OTA Header Length {header_len} but "
                                 f"the file has {n} octets")
    if total != n:
        what = "truncated" if total > n else "wrong size"
        raise FirmwareImageError(src, 52, f"{what}: Total Image Size {total} but the file "
                                 f"has {n} octets")
    pos = OTA_BASE_HEADER_OCTETS
    cred = dest = hw_min = hw_max = None
    if fc & FC_SECURITY_CREDENTIAL:
        cred = data[pos]
        pos += 1
    if fc & FC_DEVICE_SPECIFIC:
        dest = int.from_bytes(data[pos:pos + 8], "little")
        pos += 8
    if fc & FC_HARDWARE_VERSIONS:
        hw_min, hw_max = struct.unpack_from("<HH", data, pos)
    header = OtaHeader(
        header_version=version, header_length_octets=header_len, field_control=fc,
        manufacturer_code=mfr, image_type=image_type, file_version=file_version,
        zigbee_stack_version=stack, header_string=text.rstrip(b"\x00").decode("latin-1"),
        total_image_size_octets=total, security_credential_version=cred,
        upgrade_file_destination=dest, minimum_hardware_version=hw_min,
        maximum_hardware_version=hw_max)
    elements: list[SubElement] = []
    pos = header_len
    while pos < n:
        if n - pos < SUB_ELEMENT_HEADER_OCTETS:
            raise FirmwareImageError(src, pos, f"truncated: a sub-element header needs 6 "
                                     f"octets, {n - pos} left")
        tag, length = struct.unpack_from("<HI", data, pos)
        start = pos + SUB_ELEMENT_HEADER_OCTETS
        if start + length > n:
            raise FirmwareImageError(src, pos, f"truncated: sub-element {tag_name(tag)} "
                                     f"(tag 0x{tag:04x}) length {length} runs past the end "
                                     f"of the file ({n - start} octets left)")
        elements.append(SubElement(tag, pos, data[start:start + length]))
        pos = start + length
    return OtaImage(header, tuple(elements), bytes(data), src)


def read_ota_file(path: Path | str) -> OtaImage:
    """Read and parse ``path`` (:func:`parse_ota_file`).

    Raises:
        FirmwareImageError: unreadable or malformed (offset 0 when it cannot be read).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FirmwareImageError(path, 0, f"cannot read: {error.strerror or error}") from None
    return parse_ota_file(data, path)


def check_ota_image(image: OtaImage, target: OtaTarget | None = None, *,
                    max_size_octets: int = MAX_IMAGE_SIZE_OCTETS,
                    verify_signature: bool = True) -> list[OtaProblem]:
    """Every problem of a parsed image, in file order (empty: good).

    Checks: header version; the 750 KB limit (seed 000); an Upgrade Image sub-element;
    unknown (reserved) tags; the fixed sizes of security sub-elements; the integrity code
    (§11.4.8) and the emulated signature where present; against ``target``: manufacturer
    code, image type, a newer file version, the destination of a device-specific file,
    the hardware version range, and a signature where the device requires one.
    """
    h = image.header
    out: list[OtaProblem] = []
    if h.header_version != OTA_HEADER_VERSION:
        out.append(OtaProblem(4, f"OTA Header Version 0x{h.header_version:04x}, expected "
                              f"0x{OTA_HEADER_VERSION:04x}"))
    if h.total_image_size_octets > max_size_octets:
        out.append(OtaProblem(52, f"too large: {h.total_image_size_octets} octets, the "
                              f"maximum firmware image size is {max_size_octets} octets "
                              f"(750 KB, seed 000)"))
    if image.element(TAG_UPGRADE_IMAGE) is None:
        out.append(OtaProblem(h.header_length_octets, "no Upgrade Image sub-element "
                              "(tag 0x0000)"))
    for element in image.elements:
        if not tag_known(element.tag):
            out.append(OtaProblem(element.offset, f"unknown sub-element tag "
                                  f"0x{element.tag:04x} ({len(element.data)} octets)"))
        size = TAG_LENGTHS.get(element.tag)
        if size is not None and len(element.data) != size:
            out.append(OtaProblem(element.offset, f"{element.name} has {len(element.data)} "
                                  f"octets, §11.4 fixes {size}"))
    integrity = image.element(TAG_IMAGE_INTEGRITY_CODE)
    if integrity is not None and len(integrity.data) == 16:
        covered = image.raw[:integrity.offset] + image.raw[integrity.end:]
        if mmo_hash_long(covered) != integrity.data:
            out.append(OtaProblem(integrity.offset, "image integrity code does not match "
                                  "the file (corrupt image)"))
    if verify_signature:
        out.extend(_check_emulated_signature(image))
    if target is not None:
        out.extend(_check_target(image, target))
    return out


def _check_target(image: OtaImage, t: OtaTarget) -> list[OtaProblem]:
    h = image.header
    out: list[OtaProblem] = []
    if h.manufacturer_code != t.manufacturer_code:
        out.append(OtaProblem(10, f"manufacturer code 0x{h.manufacturer_code:04x}, "
                              f"{t.name} has 0x{t.manufacturer_code:04x}"))
    if h.image_type != t.image_type:
        out.append(OtaProblem(12, f"image type 0x{h.image_type:04x}, {t.name} takes "
                              f"0x{t.image_type:04x}"))
    if t.current_file_version is not None and h.file_version <= t.current_file_version:
        out.append(OtaProblem(14, f"file version 0x{h.file_version:08x} is not newer than "
                              f"the 0x{t.current_file_version:08x} {t.name} runs"))
    if (h.upgrade_file_destination is not None and t.eui64 is not None
            and h.upgrade_file_destination != t.eui64):
        out.append(OtaProblem(OTA_BASE_HEADER_OCTETS + (1 if h.security_credential_version
                                                        is not None else 0),
                              f"device specific file for {h.upgrade_file_destination:016X}, "
                              f"not {t.name}"))
    if (t.hardware_version is not None and h.minimum_hardware_version is not None
            and h.maximum_hardware_version is not None
            and not h.minimum_hardware_version <= t.hardware_version
            <= h.maximum_hardware_version):
        out.append(OtaProblem(h.header_length_octets - 4,
                              f"hardware versions 0x{h.minimum_hardware_version:04x}-"
                              f"0x{h.maximum_hardware_version:04x} exclude {t.name}'s "
                              f"0x{t.hardware_version:04x}"))
    if t.requires_signature and not image.signed:
        out.append(OtaProblem(len(image.raw), f"no ECDSA signature sub-element, "
                              f"{t.name} requires a signed image"))
    return out


def check_ota_file(data: bytes, source: Path | str = "<bytes>",
                   target: OtaTarget | None = None, *,
                   max_size_octets: int = MAX_IMAGE_SIZE_OCTETS) -> OtaImage:
    """Parse and check; the first problem raised.

    Raises:
        FirmwareImageError: the first structural problem or check failure, with offset.
    """
    image = parse_ota_file(data, source)
    problems = check_ota_image(image, target, max_size_octets=max_size_octets)
    if problems:
        raise problems[0].error(image.source)
    return image


def same_signing_certificate(images: Iterable[OtaImage]) -> bool:
    """Seed 000: all the devices of one Update Firmware device list have the same digital
    signature certificates: whether every image carries the same certificate."""
    certificates = {image.signing_certificate for image in images}
    return len(certificates) <= 1


# -- building ---------------------------------------------------------------------------------


def emulated_signing_key(label: str = "hanlab-emulated-manufacturer") -> ec.EllipticCurvePrivateKey:
    """A deterministic ECDSA P-256 key for emulated manufacturers (never a real secret)."""
    digest = hashlib.sha256(label.encode()).digest()
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(int.from_bytes(digest, "big") % (order - 1) + 1,
                                 ec.SECP256R1())


def emulated_payload(size_octets: int, seed: str) -> bytes:
    """Deterministic filler standing for firmware code (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    base = seed.encode()
    while len(out) < size_octets:
        out += hashlib.sha256(base + counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:size_octets])


def _sub_element(tag: int, data: bytes) -> bytes:
    return struct.pack("<HI", tag, len(data)) + data


def build_ota_file(
    *, manufacturer_code: int, image_type: int, file_version: int, payload: bytes,
    header_string: str = "", zigbee_stack_version: int = ZIGBEE_PRO_STACK,
    security_credential_version: int | None = None, destination: int | None = None,
    hardware_versions: tuple[int, int] | None = None, sign: bool = True,
    signer_eui64: int = 0x00DB_1200_0000_EEEE,
    signing_key: ec.EllipticCurvePrivateKey | None = None, integrity_code: bool = False,
    extra_elements: Iterable[tuple[int, bytes]] = (),
) -> bytes:
    """An OTA Upgrade file (§11.4) around ``payload`` (the Upgrade Image sub-element).

    Args:
        manufacturer_code, image_type, file_version: header fields (16, 16, 32 bits).
        payload: the upgrade image octets.
        header_string: up to 32 latin-1 characters.
        security_credential_version, destination, hardware_versions: optional header
            fields (field control bits 0, 1, 2).
        sign: append an emulated Crypto Suite 2 certificate and signature (module
            docstring), the signature last.
        integrity_code: append an Image Integrity Code (AES-MMO, §11.4.8) instead.
        extra_elements: ``(tag, data)`` sub-elements placed after the upgrade image.

    Raises:
        ValueError: a field out of range or a header string over 32 octets.
    """
    text = header_string.encode("latin-1")
    if len(text) > 32:
        raise ValueError(f"header string of {len(text)} octets, at most 32")
    for name, value, bits in (("manufacturer code", manufacturer_code, 16),
                              ("image type", image_type, 16),
                              ("file version", file_version, 32)):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"{name} {value} outside 0..2^{bits}-1")
    fc = 0
    optional = b""
    if security_credential_version is not None:
        fc |= FC_SECURITY_CREDENTIAL
        optional += bytes((security_credential_version,))
    if destination is not None:
        fc |= FC_DEVICE_SPECIFIC
        optional += destination.to_bytes(8, "little")
    if hardware_versions is not None:
        fc |= FC_HARDWARE_VERSIONS
        optional += struct.pack("<HH", *hardware_versions)
    header_len = OTA_BASE_HEADER_OCTETS + len(optional)
    body = _sub_element(TAG_UPGRADE_IMAGE, payload) + b"".join(
        _sub_element(tag, data) for tag, data in extra_elements)
    key = signing_key or emulated_signing_key()
    certificate = b""
    signature_len = 0
    if sign:
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
        cert = (signer_eui64.to_bytes(8, "little") + public).ljust(74, b"\x00")
        certificate = _sub_element(TAG_ECDSA_CERTIFICATE_CS2, cert)
        signature_len = SUB_ELEMENT_HEADER_OCTETS + 72
    integrity_len = SUB_ELEMENT_HEADER_OCTETS + 16 if integrity_code else 0
    total = header_len + len(body) + len(certificate) + signature_len + integrity_len

    def header() -> bytes:
        return _BASE.pack(OTA_FILE_IDENTIFIER, OTA_HEADER_VERSION, header_len, fc,
                          manufacturer_code, image_type, file_version, zigbee_stack_version,
                          text.ljust(32, b"\x00"), total) + optional

    out = header() + body + certificate
    if sign:
        der = key.sign(out, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        out += _sub_element(TAG_ECDSA_SIGNATURE_CS2, signer_eui64.to_bytes(8, "little")
                            + r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    if integrity_code:
        out += _sub_element(TAG_IMAGE_INTEGRITY_CODE, mmo_hash_long(out))
    return out


def _check_emulated_signature(image: OtaImage) -> list[OtaProblem]:
    """Verify a CS2 signature against the emulated certificate layout (module docstring);
    a certificate that is not in that layout is not verified (presence only)."""
    signature = image.element(TAG_ECDSA_SIGNATURE_CS2)
    certificate = image.element(TAG_ECDSA_CERTIFICATE_CS2)
    if signature is None or certificate is None or len(signature.data) != 72 \
            or len(certificate.data) != 74:
        return []
    point = certificate.data[8:41]
    if point[0] not in (2, 3) or any(certificate.data[41:]):
        return []  # not hanlab's emulated layout: a real (ECQV) certificate
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return []
    r = int.from_bytes(signature.data[8:40], "big")
    s = int.from_bytes(signature.data[40:72], "big")
    try:
        public.verify(encode_dss_signature(r, s), image.raw[:signature.offset],
                      ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return [OtaProblem(signature.offset, "ECDSA signature does not verify (corrupt or "
                           "tampered image)")]
    return []


def mmo_hash_long(data: bytes) -> bytes:
    """AES-128 Matyas-Meyer-Oseas hash (ZigBee 05-3474 Annex B.6) of any length below
    2^32 bits, 16 octets: padding ``1``, zeros, then the bit length in 16 bits (below
    2^16 bits) or in 32 bits followed by 16 zero bits.

    Raises:
        ValueError: ``data`` of 2^32 bits or more.
    """
    bits = len(data) * 8
    if bits >= 1 << 32:
        raise ValueError("MMO hash input must be shorter than 2^32 bits")
    if bits < 1 << 16:
        tail_octets, tail = 2, bits.to_bytes(2, "big")
    else:
        tail_octets, tail = 6, bits.to_bytes(4, "big") + b"\x00\x00"
    padded = bytearray(data)
    padded.append(0x80)
    padded.extend(bytes((-len(padded) - tail_octets) % 16))
    padded.extend(tail)
    digest = bytes(16)
    for i in range(0, len(padded), 16):
        block = bytes(padded[i:i + 16])
        enc = Cipher(algorithms.AES(digest), modes.ECB()).encryptor()
        out = enc.update(block)
        digest = (int.from_bytes(out, "big") ^ int.from_bytes(block, "big")).to_bytes(16, "big")
    return digest

