"""``expect_response`` of SR steps (:mod:`hanlab.scenarios.checks`): the firmware version
of an SR 11.2 response (the emulated device's GBCS response, read back) against a literal
version or the rig's firmware catalogue."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hanlab.emulator.han.content import response_message
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.firmware_version import (
    FirmwareVersionError,
    firmware_version_content,
    read_firmware_version,
)
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message
from hanlab.scenarios.checks import catalogue_versions, check_response

ESME = Eui64.parse("00-DB-12-00-00-00-D1-01")
CATALOGUE = Path(__file__).resolve().parents[2] / "firmware_images"


def _response(content: bytes | None) -> bytes:
    """A device's GBCS response to an ECS52 Read Firmware Version command."""
    command = GbcsMessage(cra_flag=1, originator_counter=0x1234,
                          originator_system_title=Eui64.parse("90-B3-D5-1F-30-01-00-00"),
                          recipient_system_title=ESME, message_code=0x0059, content=b"")
    return response_message(command, rng=random.Random(1), content=content)


def test_the_version_round_trips_through_a_gbcs_response() -> None:
    payload = _response(firmware_version_content(0x01020304))
    message = parse_gbcs_message(payload)
    assert isinstance(message, GbcsMessage)
    assert read_firmware_version(message.content) == 0x01020304
    assert check_response({"firmware_version": "0x01020304"}, payload, ESME) is None


def test_a_mismatch_and_an_unreadable_body_name_what_was_read() -> None:
    payload = _response(firmware_version_content(0x01010000))
    detail = check_response({"firmware_version": "0x01020000"}, payload, ESME)
    assert detail == "firmware_version read 0x01010000, expected is 0x01020000"
    random_body = _response(None)  # an emulated body of the Message Code's size
    detail = check_response({"firmware_version": "0x01020000"}, random_body, ESME)
    assert detail is not None and "unreadable at GBCSPayload byte" in detail
    assert "not a DLMS Get-Response-Normal" in detail
    assert "no GBCSPayload" in str(check_response({"firmware_version": "0x01020000"},
                                                  None, ESME))
    with pytest.raises(FirmwareVersionError, match="byte 4: data type 0x06"):
        read_firmware_version(bytes.fromhex("c4 01 81 00 06 00 00 00 01"))


def test_catalogue_versions_come_from_the_device_model() -> None:
    """``catalogue``: the newest catalogue image of the device's model (what SR 11.1
    distributes without an image); a model the catalogue lacks fails with a reason."""
    versions = catalogue_versions({ESME: "emu-esme-a"}, CATALOGUE)
    assert versions(ESME) == 0x01010000
    payload = _response(firmware_version_content(0x01010000))
    assert check_response({"firmware_version": "catalogue"}, payload, ESME,
                          catalogue=versions) is None
    old = _response(firmware_version_content(0x01000000))
    assert check_response({"firmware_version": "catalogue"}, old, ESME, catalogue=versions) \
        == ("firmware_version read 0x01000000, the catalogue image (the one SR 11.1 "
            "distributes) is 0x01010000")
    unknown = catalogue_versions({ESME: "no-such-model"}, CATALOGUE)
    assert "the catalogue has no image for device" in str(check_response(
        {"firmware_version": "catalogue"}, payload, ESME, catalogue=unknown))
