"""OTA Upgrade files (ZCL 07-5123 §11.4): build, parse, check; the catalogue."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hanlab.errors import FirmwareImageError
from hanlab.firmware.catalogue import Catalogue
from hanlab.firmware.emulated import emulated_image, identity_of
from hanlab.firmware.ota_file import (
    MAX_IMAGE_SIZE_OCTETS,
    OTA_FILE_IDENTIFIER,
    TAG_IMAGE_INTEGRITY_CODE,
    build_ota_file,
    check_ota_file,
    check_ota_image,
    emulated_payload,
    mmo_hash_long,
    parse_ota_file,
    same_signing_certificate,
)
from hanlab.zigbee.security import mmo_hash

REPO = Path(__file__).resolve().parents[2]


def _image(**kw: object) -> bytes:
    args: dict[str, object] = {"manufacturer_code": 0x1DB1, "image_type": 0x0101,
                               "file_version": 0x01010000,
                               "payload": emulated_payload(1000, "t")}
    args.update(kw)
    return build_ota_file(**args)  # type: ignore[arg-type]


def test_header_round_trip_with_every_optional_field() -> None:
    data = _image(security_credential_version=2, destination=0x00DB120000000101,
                  hardware_versions=(1, 3), header_string="hello")
    image = parse_ota_file(data)
    h = image.header
    assert struct.unpack_from("<I", data)[0] == OTA_FILE_IDENTIFIER == 0x0BEEF11E
    assert (h.manufacturer_code, h.image_type, h.file_version) == (0x1DB1, 0x0101, 0x01010000)
    assert h.header_length_octets == 56 + 1 + 8 + 4 and h.field_control == 0x0007
    assert h.security_credential_version == 2
    assert h.upgrade_file_destination == 0x00DB120000000101
    assert (h.minimum_hardware_version, h.maximum_hardware_version) == (1, 3)
    assert h.header_string == "hello" and h.total_image_size_octets == len(data)
    assert [e.name for e in image.elements] == [
        "upgrade_image", "ecdsa_signing_certificate_cs2", "ecdsa_signature_cs2"]
    assert image.upgrade_image == emulated_payload(1000, "t") and image.signed
    assert check_ota_image(image) == []


def test_mmo_hash_long_agrees_with_the_short_one_and_the_integrity_code_detects_damage() -> None:
    data = bytes(range(256)) * 40
    for n in (0, 1, 14, 15, 16, 17, 8191):
        assert mmo_hash_long(data[:n]) == mmo_hash(data[:n])
    good = _image(sign=False, integrity_code=True)
    image = parse_ota_file(good)
    assert image.elements[-1].tag == TAG_IMAGE_INTEGRITY_CODE and check_ota_image(image) == []
    bad = bytearray(good)
    bad[200] ^= 0x01
    problems = check_ota_image(parse_ota_file(bytes(bad)))
    assert [p.reason for p in problems] == [
        "image integrity code does not match the file (corrupt image)"]


def test_corrupt_signed_image_fails_its_signature() -> None:
    bad = bytearray(_image())
    bad[300] ^= 0x80
    problems = check_ota_image(parse_ota_file(bytes(bad)))
    assert len(problems) == 1 and "signature does not verify" in problems[0].reason


@pytest.mark.parametrize(("mangle", "offset", "words"), [
    (lambda d: d[:40], 40, "truncated: the OTA header needs 56"),
    (lambda d: b"\x00\x00\x00\x00" + d[4:], 0, "bad magic 0x00000000"),
    (lambda d: d[:-10], 52, "truncated: Total Image Size"),
    (lambda d: d + b"\x00" * 3, 52, "wrong size: Total Image Size"),
    (lambda d: d[:6] + struct.pack("<H", 40) + d[8:], 6, "OTA Header Length 40"),
])
def test_malformed_files_name_the_offset(mangle: object, offset: int, words: str) -> None:
    data = mangle(_image())  # type: ignore[operator]
    with pytest.raises(FirmwareImageError) as caught:
        parse_ota_file(data, "x.ota")
    assert caught.value.offset == offset and words in str(caught.value)
    assert str(caught.value).startswith(f"x.ota: at byte {offset}: ")


def test_sub_element_past_the_end_and_unknown_tags() -> None:
    data = bytearray(_image(sign=False))
    struct.pack_into("<I", data, 58, 5000)  # the upgrade image's length
    with pytest.raises(FirmwareImageError, match="at byte 56: truncated: sub-element "
                                                 "upgrade_image"):
        parse_ota_file(bytes(data))
    odd = _image(sign=False, extra_elements=[(0x0042, b"abc"), (0xF001, b"mfr")])
    problems = check_ota_image(parse_ota_file(odd))
    assert [p.reason for p in problems] == ["unknown sub-element tag 0x0042 (3 octets)"]
    assert problems[0].offset == 56 + 6 + 1000


def test_size_limit_of_seed_000_and_the_target_device() -> None:
    big = _image(payload=emulated_payload(MAX_IMAGE_SIZE_OCTETS, "big"), sign=False)
    with pytest.raises(FirmwareImageError, match=r"too large: .* \(750 KB, seed 000\)"):
        check_ota_file(big, "big.ota")
    target = identity_of("emu-gsme-a").target(name="GSME 00-DB")
    problems = check_ota_image(parse_ota_file(_image(sign=False, file_version=0x01000000)),
                               target)
    assert [p.offset for p in problems] == [12, 14, len(_image(sign=False))]
    assert "image type 0x0101, GSME 00-DB takes 0x0201" in problems[0].reason
    assert "not newer" in problems[1].reason and "requires a signed image" in problems[2].reason


def test_same_signing_certificates_of_one_device_list() -> None:
    a = parse_ota_file(emulated_image("emu-esme-a"))
    b = parse_ota_file(emulated_image("emu-esme-b"))
    assert same_signing_certificate([a, b])
    from hanlab.firmware.ota_file import emulated_signing_key
    other = parse_ota_file(_image(signing_key=emulated_signing_key("other")))
    assert not same_signing_certificate([a, other])


def test_the_shipped_catalogue_verifies(tmp_path: Path) -> None:
    cat = Catalogue(REPO / "firmware_images")
    assert {e.device_model for e in cat.entries} >= {"emu-esme-a", "emu-gsme-a"}
    for entry in cat.entries:
        assert cat.verify_entry(entry) == []
        assert entry.size_octets <= 200 * 1024
    mine = Catalogue(tmp_path)
    src = tmp_path / "in" / "e.ota"
    src.parent.mkdir()
    src.write_bytes(emulated_image("emu-esme-a", size_octets=4096))
    entry = mine.add(src, device_model="emu-esme-a", cpl_reference="CPL-1", release_note="n")
    again = Catalogue(tmp_path)
    assert again.entries == [entry] and again.latest_for("emu-esme-a") == entry
    assert again.find(entry.sha256[:10]) == entry
    assert again.load_image(entry).sha256 == entry.sha256
