"""GBCS commands and responses the emulated DCC and the fake HAN write (GBCS v5.x 4.3).

Which Message Code an SR becomes, who originates the command (the User, or the DCC's Access
Control Broker with the User's counter as Supplementary Remote Party Counter), and a body of
plausible length: the RTDS message of the same SR and use case when an RTDS folder is given,
else deterministic filler of a typical length.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from lxml import etree

from hanlab.duis.catalogue import ServiceRequestMappingError, message_code_for, sr
from hanlab.gbcs.codes import message_code_use_case
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, build_gbcs_message, parse_gbcs_message

DCC_ACCESS_CONTROL_BROKER: Final = Eui64.parse("90-B3-D5-1F-30-00-00-02")
"""The DCC Access Control Broker's EUI-64 in the RTDS / ZAZ1 test PKI."""

DCC_ORIGINATED_USE_CASES: Final = frozenset({
    "CS08", "GCS31", "ECS21b", "GCS16b", "GCS15d", "ECS21c", "ECS35c", "ECS35d", "ECS26i",
    "ECS39b", "DBCH01", "DBCH02", "ECS61d", "CCS01", "CCS02", "CS03B", "CS04AC", "CCS05",
    "CCS04", "CS07", "ECS50", "GCS36",
})
"""GBCS use cases whose command the DCC's Access Control Broker originates, carrying the
User's RequestID counter as Supplementary Remote Party Counter (read from RTDS 4.5.0: every
command of these use cases is originated by 90-B3-D5-1F-30-00-00-02)."""

_GPF_FALLBACK: Final = "GSME"
_TYPICAL_CONTENT_OCTETS: Final = 40
_MAC: Final = bytes(12)


class CommandMappingError(ServiceRequestMappingError):
    """The SR has no GBCS Message Code for the target's device type (out of scope)."""


@dataclass(frozen=True, slots=True)
class CommandPlan:
    """How one SR becomes one GBCS command.

    Attributes:
        message_code: the GBCS Message Code.
        use_case: its GBCS use case, e.g. ``ECS17b``.
        dcc_originated: the DCC's Access Control Broker originates the command.
        ambiguous: the SR has several Message Codes for the device type (chosen by body
            content in a real DCC); the first, most precise one was taken.
    """

    message_code: int
    use_case: str
    dcc_originated: bool
    ambiguous: bool


def plan_command(
    variant: str, device_type: str, body: etree._Element | None = None
) -> CommandPlan:
    """The GBCS command SR ``variant`` becomes for a device of ``device_type``.

    Uses :func:`hanlab.duis.catalogue.message_code_for` (with the request ``body``, which
    chooses among several use cases as a DCC does); where it finds several codes the
    first of the most precise source is taken (``ambiguous``); a GPF target with no GPF
    mapping takes the GSME one (the GPF answers for the GSME); a device type with no mapping
    at all takes the SR's first one (RTDS 4.5.0 sends ECS26n to the CH).

    Raises:
        UnknownServiceRequestError: unknown variant.
        CommandMappingError: the SR has no GBCS Message Code at all.
    """
    ambiguous = False
    try:
        code = message_code_for(variant, device_type, body)
    except ServiceRequestMappingError:
        entry = sr(variant)
        codes = entry.message_codes(device_type, body)
        if not codes and device_type.upper() == "GPF":
            codes = entry.message_codes(_GPF_FALLBACK, body)
        if not codes:
            # RTDS sends e.g. ECS26n to the CH: take any mapping the SR has.
            codes = tuple(dict.fromkeys(
                m.message_code for m in entry.gbcs if m.message_code is not None
            ))
        if not codes:
            raise CommandMappingError(
                f"SR {variant} has no GBCS command for a {device_type.upper()}",
                hint="target a device type the SR applies to",
            ) from None
        code, ambiguous = codes[0], len(codes) > 1
    use_case = message_code_use_case(code)
    return CommandPlan(code, use_case, use_case in DCC_ORIGINATED_USE_CASES, ambiguous)


@cache
def _rtds_content(folder: Path, variant: str, use_case: str, kind: str) -> bytes | None:
    case_folder = folder / f"{variant}_{use_case}"
    if not case_folder.is_dir():
        return None
    for path in sorted(case_folder.glob(f"*_{kind}_GBCS.HEX")):
        try:
            message = parse_gbcs_message(bytes.fromhex(path.read_text().strip()))
        except (OSError, ValueError):
            continue
        if isinstance(message, GbcsMessage):
            return message.content
    return None


def plausible_content(
    variant: str, use_case: str, kind: str, *, seed: int, rtds_folder: Path | None = None
) -> bytes:
    """A body for a GBCS ``kind`` (``COMMAND`` or ``RESPONSE``) of ``use_case``.

    The RTDS message's content when ``rtds_folder`` holds ``<variant>_<use case>``; else
    :data:`_TYPICAL_CONTENT_OCTETS` octets derived from the arguments (deterministic).
    """
    if rtds_folder is not None:
        content = _rtds_content(Path(rtds_folder), variant, use_case, kind)
        if content is not None:
            return content
    digest = hashlib.sha256(f"{variant}:{use_case}:{kind}:{seed}".encode()).digest()
    return (digest * 2)[:_TYPICAL_CONTENT_OCTETS]


def build_command(
    *,
    plan: CommandPlan,
    variant: str,
    user: Eui64,
    target: Eui64,
    user_counter: int,
    dcc_counter: int,
    rtds_folder: Path | None = None,
    pre_command: bool = False,
) -> tuple[bytes, int, Eui64]:
    """The GBCS command (CRA flag 1) for one SR, with its Originator Counter and originator.

    User-originated: Originator Counter = the RequestID counter, originator = the User.
    DCC-originated (:data:`DCC_ORIGINATED_USE_CASES`): Originator Counter = ``dcc_counter``,
    originator = the Access Control Broker, the User and its counter as Supplementary Remote
    Party ID / Counter (DESIGN.md, GBCS v5.x section 4.3.1.6).

    Args:
        pre_command: write an unsigned Pre-Command (no signature length octet, no MAC) for
            the Transform Service (DUIS 5.4 section 3.2.4).

    Returns:
        ``(octets, originator_counter, originator)``.
    """
    content = plausible_content(variant, plan.use_case, "COMMAND", seed=user_counter,
                                rtds_folder=rtds_folder)
    signature: bytes | None = None if pre_command else b""
    mac = None if pre_command else _MAC
    if plan.dcc_originated:
        octets = build_gbcs_message(
            cra_flag=1, originator_counter=dcc_counter,
            originator_system_title=DCC_ACCESS_CONTROL_BROKER, recipient_system_title=target,
            message_code=plan.message_code, content=content,
            supplementary_remote_party_id=user,
            supplementary_remote_party_counter=user_counter,
            signature=signature, mac=mac,
        )
        return octets, dcc_counter, DCC_ACCESS_CONTROL_BROKER
    octets = build_gbcs_message(
        cra_flag=1, originator_counter=user_counter, originator_system_title=user,
        recipient_system_title=target, message_code=plan.message_code, content=content,
        signature=signature, mac=mac,
    )
    return octets, user_counter, user


def build_response_to(
    command: GbcsMessage, *, responder: Eui64, rtds_folder: Path | None = None,
    variant: str = "",
) -> bytes:
    """A device's GBCS response (CRA flag 2) to ``command``: same Originator Counter and
    Message Code, originator ``responder``, recipient the command's originator (GBCS 4.3)."""
    content = plausible_content(
        variant, command.use_case, "RESPONSE", seed=command.originator_counter,
        rtds_folder=rtds_folder,
    )
    return build_gbcs_message(
        cra_flag=2, originator_counter=command.originator_counter,
        originator_system_title=responder,
        recipient_system_title=command.originator_system_title,
        message_code=command.message_code, content=content, mac=_MAC,
    )


def build_alert(
    *, device: Eui64, recipient: Eui64, alert_code: int, counter: int, message_code: int = 0x1001
) -> bytes:
    """A device's GBZ alert (CRA flag 3), by default a Generic Non Critical Alert (0x1001):
    content ``01 09 | 01 | alert code (2)`` (GBCS v5.x 7.2.8)."""
    content = b"\x01\x09\x01" + alert_code.to_bytes(2, "big")
    return build_gbcs_message(
        cra_flag=3, originator_counter=counter, originator_system_title=device,
        recipient_system_title=recipient, message_code=message_code, content=content,
    )
