"""Local Command Delivery at the emulated DCC (DUIS 5.4 CommandVariants 2, 3, 6, 7; SR 8.13).

What the DUIS 5.4 XSD's ``CommandVariant`` table (and seed 000, "Command Variant for LCD")
defines, as the emulated DCC serves it:

==== ======================= ================================= ========= ================
CV   input                   output                            SM WAN    answer
==== ======================= ================================= ========= ================
2    Service Request         Command for Local Delivery        no        sync, ``I0``
3    Service Request         Command and Command for LD        yes       sync + async
6    Signed Pre-Command      Command for Local Delivery        no        sync, ``I0``
7    Signed Pre-Command      Command and Command for LD        yes       sync + async
==== ======================= ================================= ========= ================

The command for local delivery comes back in the synchronous answer as
``ResponseMessage/LocalCommand/GBCSPayload`` (:func:`hanlab.duis.xml.build_local_command_
response`): ``I0`` for 2 / 6 (nothing else follows), ``I99`` for 3 / 7 (the device's
response over the WAN follows as for CommandVariant 1 / 5). 6 and 7 carry a
``SignedPreCommand`` body and repeat the RequestID of their Transform request (CV 4), as 5
does.

The User's HHT delivers the command over the HAN and the User returns the device's
response, or an alert the HHT got, with SR 8.13 Return Local Command Response
(``ReturnLocalCommandResponse``: ``OriginalRequestID`` optional, ``DeviceGBCSResponse``).
The DCC then does what it does for a response over the WAN (hanlab's reading of seed 000,
'no WAN' installation: "8.13 Return Local Command Response - Update SR 8.11 response to
DCC", then "Wait For Device Alert N24"): the DCC Alerts of the original SR follow
(N24 for SR 8.11, N27 / N17 for 6.23 ...). A returned response for a RequestID the DCC
never returned for local delivery, or returned twice, is refused.
"""

from __future__ import annotations

from base64 import b64decode
from dataclasses import dataclass, field
from typing import Final

from hanlab.duis.xml import SR_NS, DuisRequest, RequestId
from hanlab.emulator.dcc.alerts import DccAlert, DccAlertCodes
from hanlab.errors import BadInputError
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message

__all__ = [
    "LOCAL_AND_WAN_VARIANTS",
    "LOCAL_ONLY_VARIANTS",
    "SIGNED_PRE_COMMAND_VARIANTS",
    "LocalDelivery",
    "LocalReturn",
    "LocalReturnError",
    "returns_local_command",
    "sends_over_wan",
]

LOCAL_ONLY_VARIANTS: Final = frozenset({2, 6})
"""CommandVariants returned for local delivery only, never sent over the SM WAN (DUIS 5.4
XSD ``CommandVariant``: "SM WAN: No")."""

LOCAL_AND_WAN_VARIANTS: Final = frozenset({3, 7})
"""CommandVariants sent over the SM WAN as well as returned for local delivery."""

SIGNED_PRE_COMMAND_VARIANTS: Final = frozenset({5, 6, 7})
"""CommandVariants whose input is a Signed Pre-Command (same RequestID as the CV 4)."""


def returns_local_command(command_variant: int) -> bool:
    """Whether the DCC returns a command for local delivery for ``command_variant``."""
    return command_variant in LOCAL_ONLY_VARIANTS | LOCAL_AND_WAN_VARIANTS


def sends_over_wan(command_variant: int) -> bool:
    """Whether a device command of ``command_variant`` goes over the SM WAN."""
    return command_variant not in LOCAL_ONLY_VARIANTS


class LocalReturnError(BadInputError):
    """An SR 8.13 the DCC cannot take (unreadable, or for no command it returned)."""


@dataclass(frozen=True, slots=True)
class LocalReturn:
    """One SR 8.13 the DCC took.

    Attributes:
        original: the request whose command was delivered locally, or ``None`` (an
            alert the HHT got, returned with no ``OriginalRequestID``).
        message: the returned GBCS response or alert.
        alerts: the DCC Alerts that follow it.
    """

    original: DuisRequest | None
    message: GbcsMessage
    alerts: tuple[DccAlert, ...]


@dataclass
class LocalDelivery:
    """The commands the emulated DCC returned for local delivery, and their returns.

    Args:
        codes: the DCC Alert codes (N24 for a returned SR 8.11 response).
    """

    codes: DccAlertCodes
    issued: dict[RequestId, DuisRequest] = field(default_factory=dict)
    returned: set[RequestId] = field(default_factory=set)

    def issue(self, request: DuisRequest) -> None:
        """``request``'s command was returned for local delivery."""
        self.issued[request.request_id] = request

    def take_return(self, request: DuisRequest) -> LocalReturn:
        """Read an SR 8.13 (``ReturnLocalCommandResponse``) without changing any state.

        Commit it with :meth:`commit`; the DCC Alerts to post are in the result.

        Raises:
            LocalReturnError: the body is not a ReturnLocalCommandResponse, the
                DeviceGBCSResponse is not a GBCS message, or the OriginalRequestID names a
                request the DCC did not return for local delivery or whose response was
                returned already.
        """
        body = request.body
        if request.body_name != "ReturnLocalCommandResponse":
            raise LocalReturnError(f"SR 8.13 needs a ReturnLocalCommandResponse body, "
                                   f"not {request.body_name}")
        payload = body.findtext(f"{{{SR_NS}}}DeviceGBCSResponse")
        try:
            octets = b64decode(payload or "", validate=True)
        except ValueError as error:
            raise LocalReturnError(f"DeviceGBCSResponse is not base64: {error}") from error
        message = parse_gbcs_message(octets)
        if not isinstance(message, GbcsMessage):
            raise LocalReturnError("DeviceGBCSResponse is not a GBCS message")
        original_text = body.findtext(f"{{{SR_NS}}}OriginalRequestID")
        if not original_text:
            return LocalReturn(None, message, ())
        try:
            original_id = RequestId.parse(original_text.strip())
        except BadInputError as error:
            raise LocalReturnError(f"OriginalRequestID: {error.message}") from error
        original = self.issued.get(original_id)
        if original is None:
            raise LocalReturnError(
                f"OriginalRequestID {original_id} was not returned for local delivery")
        if original_id in self.returned:
            raise LocalReturnError(f"the response to {original_id} was returned already")
        if message.originator_system_title != original_id.target:
            raise LocalReturnError(
                f"DeviceGBCSResponse comes from {message.originator_system_title}, not from "
                f"{original_id.target} (the target of {original_id})")
        alerts: list[DccAlert] = []
        if original.service_reference_variant == "8.11":
            alerts.append(DccAlert(
                self.codes.update_han_device_log_success, "UpdateHANDeviceLogResult",
                {"UpdateHANDeviceLogServiceRequestID": str(original_id)},
                (original_id.originator,)))
        return LocalReturn(original, message, tuple(alerts))

    def commit(self, taken: LocalReturn) -> None:
        """Record ``taken`` (from :meth:`take_return`) as returned."""
        if taken.original is not None:
            self.returned.add(taken.original.request_id)
