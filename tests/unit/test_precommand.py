"""The Correlate check of a CV4 Pre-Command against its request, before signing (seed 001
glossary, 'Correlate'): each GBCS header field that must correspond is named when it does
not."""

from __future__ import annotations

import pytest

from hanlab.duis.client import sign_pre_command
from hanlab.duis.precommand import PreCommandMismatchError, check_pre_command
from hanlab.duis.signing import ephemeral_identity
from hanlab.duis.xml import RequestId
from hanlab.emulator.dcc.commands import DCC_ACCESS_CONTROL_BROKER, build_command, plan_command
from hanlab.gbcs import Eui64
from hanlab.gbcs.message import build_gbcs_message

USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
ESME = Eui64.parse("00-DB-12-34-56-78-90-A0")
CHF = Eui64.parse("00-DB-12-34-56-78-90-A2")
RID = RequestId(USER, ESME, 4242)


def _pre(variant: str = "1.7", target: Eui64 = ESME, counter: int = 4242,
         user: Eui64 = USER, device: str = "ESME") -> bytes:
    octets, _, _ = build_command(plan=plan_command(variant, device), variant=variant,
                                 user=user, target=target, user_counter=counter,
                                 dcc_counter=1 << 40, pre_command=True)
    return octets


def test_a_matching_pre_command_passes() -> None:
    assert check_pre_command(_pre(), RID, "1.7").originator_counter == 4242
    # DCC-originated (8.11 CCS01): the ACB, with the User and its counter as SRP.
    rid = RequestId(USER, CHF, 77)
    message = check_pre_command(_pre("8.11", CHF, 77, device="CHF"), rid, "8.11")
    assert message.originator_system_title == DCC_ACCESS_CONTROL_BROKER
    assert message.supplementary_remote_party_counter == 77


@pytest.mark.parametrize(("octets", "variant", "field", "text"), [
    (_pre(target=CHF), "1.7", "recipient", "Business Target 00-DB-12-34-56-78-90-A2"),
    (_pre(counter=4241), "1.7", "originator_counter", "Originator Counter 4241"),
    (_pre(user=Eui64.parse("90-B3-D5-1F-30-02-00-00")), "1.7", "originator",
     "neither the User"),
    (_pre(variant="4.1.1"), "1.7", "message_code", "is not one SR 1.7 maps to"),
    (b"\x00\x01", "1.7", "message", "is not a GBCS message"),
])
def test_a_mismatch_names_its_field(octets: bytes, variant: str, field: str,
                                    text: str) -> None:
    with pytest.raises(PreCommandMismatchError) as caught:
        check_pre_command(octets, RID, variant)
    assert caught.value.field == field and text in caught.value.message
    assert str(RID) in caught.value.message


def test_signed_or_not_a_command_is_refused() -> None:
    key, _ = ephemeral_identity("test")
    with pytest.raises(PreCommandMismatchError, match="already signed"):
        check_pre_command(sign_pre_command(_pre(), key), RID, "1.7")
    response = build_gbcs_message(cra_flag=2, originator_counter=4242,
                                  originator_system_title=USER, recipient_system_title=ESME,
                                  message_code=0x0001, content=b"\x00", signature=None)
    with pytest.raises(PreCommandMismatchError, match="CRA flag 2"):
        check_pre_command(response, RID, "1.7")
