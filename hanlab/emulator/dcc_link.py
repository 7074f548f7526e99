"""The boundary between the emulated DCC and the emulated CHF / HAN (DESIGN.md, Emulation).

The DCC hands a GBCS command for one device to the CHF of the rig the device is on::

    await han.deliver_command(target_eui64, gbcs_command, request)

and the HAN side calls back, without awaiting, when a device answers or raises an alert::

    dcc.on_device_response(gbcs_response, source_eui64=..., ts_ns=...)
    dcc.on_device_alert(gbcs_alert, source_eui64=..., ts_ns=...)

The DCC matches a response to its command by (device EUI-64, GBCS Originator Counter): a
GBCS response carries the Originator Counter of its command (GBCS v5.x section 4.3.1.2).
Neither side blocks the other: ``deliver_command`` returns once the CHF has queued the
command; the callbacks schedule work and return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hanlab.duis.xml import RequestId
from hanlab.gbcs.eui64 import Eui64

__all__ = ["CommandDelivery", "DccLink", "HanLink"]


@dataclass(frozen=True, slots=True)
class CommandDelivery:
    """What the DCC tells the CHF about a GBCS command it hands over.

    Attributes:
        request_id: the DUIS RequestID of the Service Request.
        service_reference_variant: e.g. ``4.1.1``.
        command_variant: the DUIS CommandVariant (1 or 5 reach a device over the WAN).
        target: the device the command is for.
        device_type: ``ESME``, ``GSME``, ``GPF``, ``CHF``, ``PPMID``, ``IHD``, ``HCALCS``.
        message_code: the GBCS Message Code of the command.
        originator_counter: the command's GBCS Originator Counter; the device's response
            carries the same value.
        originator: the command's GBCS business originator (the User, or the DCC's Access
            Control Broker where the DCC originates the command).
        ts_ns: when the DCC handed the command over (ns since the UNIX epoch).
        via: ``wan`` (the DCC over the SM WAN) or ``hht`` (Local Command Delivery by the
            User's HHT, :mod:`hanlab.emulator.han.hht`).
    """

    request_id: RequestId
    service_reference_variant: str
    command_variant: int
    target: Eui64
    device_type: str
    message_code: int
    originator_counter: int
    originator: Eui64
    ts_ns: int
    via: str = "wan"


@runtime_checkable
class HanLink(Protocol):
    """The CHF side: accepts GBCS commands for devices of the HAN."""

    async def deliver_command(
        self, target_eui64: Eui64, gbcs_command: bytes, request: CommandDelivery
    ) -> None:
        """Queue ``gbcs_command`` (GBCS octets, CRA flag 1) for ``target_eui64`` at its CHF.

        Returns once queued; the device's response arrives later through
        :meth:`DccLink.on_device_response`. Raises nothing for an unknown device: the HAN
        simply never answers (the DCC times the command out).
        """
        ...


@runtime_checkable
class DccLink(Protocol):
    """The DCC side: receives what devices send back over the WAN."""

    def on_device_response(
        self, gbcs_response: bytes, *, source_eui64: Eui64, ts_ns: int | None = None
    ) -> None:
        """A device's GBCS response (CRA flag 2) reached the CHF at ``ts_ns`` (ns, epoch).

        Never raises: an unparseable or unmatched response is recorded and dropped.
        """
        ...

    def on_device_alert(
        self, gbcs_alert: bytes, *, source_eui64: Eui64, ts_ns: int | None = None
    ) -> None:
        """A device's GBCS alert (CRA flag 3) reached the CHF at ``ts_ns`` (ns, epoch).

        Never raises: the DCC forwards it as a DUIS Device Alert to the User it is for.
        """
        ...
