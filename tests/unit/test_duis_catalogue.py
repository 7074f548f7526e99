"""The SR catalogue shipped in the package (no corpus needed)."""

from __future__ import annotations

import pytest

from hanlab.duis import (
    ServiceRequestMappingError,
    UnknownServiceRequestError,
    all_variants,
    message_code_for,
    sr,
)


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
