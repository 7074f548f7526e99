"""The Correlate check of a Pre-Command before the User signs it (CommandVariant 4).

Seed 001, glossary, "Correlate" / "Parse and Correlate Software": "The Correlate function
will check whether the Pre-Command issued by the DSP for signing corresponds to the
original Critical Service Request issued by the User" (SEC H1.2: "substantively
identical"). hanlab checks what the GBCS header of the Pre-Command (GBCS v5.x 4.3) must
carry for the request, before the client signs it (DUIS 5.4 3.2.4):

* it is an unsigned GBCS command: CRA flag 1, no signature length octet;
* its Business Target (recipient) is the request's target;
* it comes from the User (Business Originator = the User, Originator Counter = the
  RequestID counter), or, for a DCC-originated use case, from the DCC's Access Control
  Broker carrying the User and the RequestID counter as Supplementary Remote Party ID and
  Counter (GBCS v5.x 4.3.1.6);
* its Message Code is one the SR maps to (DUIS / GBCS Message Mapping Catalogue, as
  :mod:`hanlab.duis.catalogue` holds it; not checked for an SR with no mapping there).

The body (the DLMS / GBZ content) is not compared: that needs the SR's XML-to-GBCS
transform, which is the DCC's (hanlab's reading: the header is what a DSP could swap).
"""

from __future__ import annotations

from hanlab.duis.catalogue import sr
from hanlab.duis.xml import RequestId
from hanlab.errors import HanlabError
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message

__all__ = ["PreCommandMismatchError", "check_pre_command"]


class PreCommandMismatchError(HanlabError):
    """The Pre-Command the DCC returned does not correspond to the request (not signed).

    Attributes:
        field: the GBCS header field that differs, e.g. ``recipient``.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, hint="the DCC's Transform did not match the request: "
                         "do not sign it; report it to the DCC")
        self.field = field


def check_pre_command(pre_command: bytes, request_id: RequestId, variant: str) -> GbcsMessage:
    """Check ``pre_command`` against the request it answers (see the module docstring).

    Args:
        pre_command: the PreCommand GBCSPayload octets of the Transform response.
        request_id: the request's RequestID (User, target, counter).
        variant: its ServiceReferenceVariant, e.g. ``1.1.1``.

    Returns:
        The parsed Pre-Command.

    Raises:
        PreCommandMismatchError: naming the field that does not correspond (``message``,
            ``cra_flag``, ``signature``, ``recipient``, ``originator``,
            ``originator_counter``, ``message_code``).
    """
    where = f"Pre-Command for {request_id} (SR {variant})"
    message = parse_gbcs_message(pre_command)
    if not isinstance(message, GbcsMessage):
        raise PreCommandMismatchError(f"{where} is not a GBCS message", field="message")
    if message.cra_flag != 1:
        raise PreCommandMismatchError(
            f"{where}: CRA flag {message.cra_flag}, expected 1 (command)", field="cra_flag")
    if message.signature is not None:
        raise PreCommandMismatchError(f"{where} is already signed", field="signature")
    if message.recipient_system_title != request_id.target:
        raise PreCommandMismatchError(
            f"{where}: Business Target {message.recipient_system_title}, expected "
            f"{request_id.target}", field="recipient")
    counter: int | None
    if message.originator_system_title == request_id.originator:
        counter, what = message.originator_counter, "Originator Counter"
    elif message.supplementary_remote_party_id == request_id.originator:
        counter, what = message.supplementary_remote_party_counter, "Supplementary Remote " \
            "Party Counter"
    else:
        raise PreCommandMismatchError(
            f"{where}: Business Originator {message.originator_system_title} is neither the "
            f"User nor carries it as Supplementary Remote Party", field="originator")
    if counter != request_id.counter:
        raise PreCommandMismatchError(
            f"{where}: {what} {counter}, expected the RequestID counter {request_id.counter}",
            field="originator_counter")
    codes = {m.message_code for m in sr(variant).gbcs if m.message_code is not None}
    if codes and message.message_code not in codes:
        raise PreCommandMismatchError(
            f"{where}: Message Code 0x{message.message_code:04X} is not one SR {variant} "
            f"maps to ({', '.join(f'0x{c:04X}' for c in sorted(codes))})",
            field="message_code")
    return message
