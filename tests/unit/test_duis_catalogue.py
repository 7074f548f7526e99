"""The SR catalogue shipped in the package (no corpus needed)."""

from __future__ import annotations

import pytest
from lxml import etree

from hanlab.duis import (
    ServiceRequestMappingError,
    UnknownServiceRequestError,
    all_variants,
    message_code_for,
    sr,
)
from hanlab.duis.xml import SR_NS


def test_129_variants_with_flags() -> None:
    variants = all_variants()
    assert len(variants) == 129
    assert len({v.service_reference_variant for v in variants}) == 129
    read = sr("4.1.1")
    assert read.name == "Read Instantaneous Import Registers"
    assert read.service_reference == "4.1" and read.on_demand and not read.critical
    assert sr("1.1.1").critical and "IS" in sr("1.1.1").eligible_user_roles
    assert all(not v.gbcs for v in variants if v.non_device)


@pytest.mark.parametrize(
    ("variant", "device_type", "message_code"),
    [("4.1.1", "ESME", 0x0027), ("4.1.1", "gsme", 0x0074), ("11.2", "ESME", 0x0059),
     ("11.2", "GSME", 0x0084), ("6.28", "CHF", 0x010D)],
)
def test_message_code_for(variant: str, device_type: str, message_code: int) -> None:
    assert message_code_for(variant, device_type) == message_code


def test_unknown_and_ambiguous() -> None:
    with pytest.raises(UnknownServiceRequestError):
        sr("99.9")
    with pytest.raises(ServiceRequestMappingError):
        message_code_for("8.11", "CHF")  # CCS01 or CCS02, by RequestType
    with pytest.raises(ServiceRequestMappingError):
        message_code_for("4.1.1", "CHF")


def _body(xml: str) -> etree._Element:
    return etree.fromstring(f'<sr:Body xmlns:sr="{SR_NS}">{xml}</sr:Body>')


@pytest.mark.parametrize(
    ("variant", "device_type", "body", "message_code"),
    [
        ("8.11", "CHF", "<sr:UpdateHANDeviceLog><sr:RequestType>Remove</sr:RequestType>"
         "</sr:UpdateHANDeviceLog>", 0x0002),  # CCS02
        ("8.11", "CHF", "<sr:UpdateHANDeviceLog><sr:RequestType>Add</sr:RequestType>"
         "<sr:AddDeviceToCHFWhitelist/></sr:UpdateHANDeviceLog>", 0x0001),  # CCS01
        ("6.13", "ESME", "<sr:ReadEventOrSecurityLog><sr:LogToRead>Security</sr:LogToRead>"
         "</sr:ReadEventOrSecurityLog>", 0x0049),  # ECS35b
        ("1.5", "GSME", "<sr:UpdateMeterBalance><sr:CreditMode><sr:ResetMeterBalance/>"
         "</sr:CreditMode></sr:UpdateMeterBalance>", 0x00C2),  # GCS40d: two features
        ("7.5", "ESME", "<sr:ActivateAuxiliaryLoad/>", 0x0055),  # ECS47 (GBCS reading)
    ],
)
def test_the_body_chooses_among_use_cases(
    variant: str, device_type: str, body: str, message_code: int
) -> None:
    assert message_code_for(variant, device_type, _body(body)) == message_code


def test_without_body_or_selector_the_most_precise_source_wins() -> None:
    assert sr("8.11").message_codes("CHF") == (0x0001, 0x0002)
    assert sr("8.11").message_codes("CHF", _body("<sr:Other/>")) == (0x0001, 0x0002)
    assert {m.source for m in sr("7.5").gbcs} == {"gbcs"}
    assert any(m.use_case == "CCS06" for m in sr("8.9").gbcs)  # mapping table, 8.9
