"""GBCS messages the emulated devices exchange: real headers, bodies of the right shape.

* Commands (CRA flag 1) carry the Originator Counter and business originator of the
  request and the Message Code of the SR's GBCS use case for the target's device type
  (:func:`hanlab.duis.catalogue.message_code_for`); critical ones a 64-octet signature.
* Responses (CRA flag 2) carry the command's Originator Counter and Message Code, the
  device as originator and the command's originator as recipient (GBCS v5.x §4.3.1.2).
* Alerts (CRA flag 3): GBZ alerts (profile 0x0109, alert code, UTC time) for ZigBee
  devices, ASN.1 alerts (``SEQUENCE { alertCode INTEGER, ... }``) for CHF alerts
  (GBCS v5.x §7.2.10, §16).

All are wrapped in a General Ciphering MAC header with a 12-octet MAC (not computed: the
emulator has no GBCS keys); nothing here is read from ``../shared`` at run time.
"""

from __future__ import annotations

import random
import struct

from hanlab.gbcs.codes import CraFlag
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, build_gbcs_message, encode_ber_length

#: Response body octets by Message Code where the use case returns much data.
RESPONSE_OCTETS: dict[int, int] = {
    0x0027: 46,    # ECS17b read instantaneous import registers
    0x0028: 18,    # ECS? read active power import
    0x0037: 420,   # ECS?? read active import profile data (48 half-hours)
    0x0078: 400,   # GCS?? read gas profile data
    0x0060: 190,   # daily consumption log
    0x00A0: 190,
    0x0074: 60,
    0x004E: 52,
    0x0089: 52,
}
DEFAULT_RESPONSE_OCTETS = 40
COMMAND_OCTETS = 24
SIGNATURE_OCTETS = 64
MAC_OCTETS = 12

#: Alert Code -> Message Code it travels in (GBCS v5.x §13, §16).
ALERT_MESSAGE_CODES: dict[int, int] = {
    0x8F20: 0x0110, 0x8F26: 0x0111, 0x8F28: 0x0112, 0x8F2A: 0x0113, 0x8F2C: 0x0114,
    0x8F2D: 0x0115,
}
GENERIC_NON_CRITICAL_ALERT = 0x1001


def _body(rng: random.Random, octets: int, tag: int) -> bytes:
    """DLMS-shaped body: an APDU tag octet then ``octets - 1`` pseudo-random octets."""
    return bytes([tag]) + rng.randbytes(max(0, octets - 1))


def command_message(*, originator: Eui64, counter: int, target: Eui64, message_code: int,
                    critical: bool, rng: random.Random,
                    supplementary: tuple[Eui64, int] | None = None) -> bytes:
    """A GBCS command (CRA flag 1) from ``originator`` to ``target``.

    Args:
        counter: the Originator Counter (the DUIS RequestID counter for an RTDS command).
        supplementary: (User EUI-64, User counter) when the DCC originates the command.
    """
    return build_gbcs_message(
        cra_flag=CraFlag.COMMAND, originator_counter=counter,
        originator_system_title=originator, recipient_system_title=target,
        message_code=message_code, content=_body(rng, COMMAND_OCTETS, 0xD9),
        supplementary_remote_party_id=supplementary[0] if supplementary else None,
        supplementary_remote_party_counter=supplementary[1] if supplementary else None,
        signature=rng.randbytes(SIGNATURE_OCTETS) if critical else b"",
        mac=rng.randbytes(MAC_OCTETS),
    )


def response_message(command: GbcsMessage, *, rng: random.Random,
                     body_octets: int | None = None, content: bytes | None = None) -> bytes:
    """The device's GBCS response (CRA flag 2) to ``command``.

    Args:
        content: the response's content when it reports something checked (e.g.
            :func:`hanlab.gbcs.firmware_version.firmware_version_content`); default a
            DLMS-shaped body of the Message Code's size.
    """
    octets = body_octets or RESPONSE_OCTETS.get(command.message_code, DEFAULT_RESPONSE_OCTETS)
    return build_gbcs_message(
        cra_flag=CraFlag.RESPONSE, originator_counter=command.originator_counter,
        originator_system_title=command.recipient_system_title,
        recipient_system_title=command.originator_system_title,
        message_code=command.message_code,
        content=_body(rng, octets, 0xDA) if content is None else content,
        mac=rng.randbytes(MAC_OCTETS),
    )


def alert_message(*, device: Eui64, recipient: Eui64, counter: int, alert_code: int,
                  ts_ns: int, rng: random.Random, asn1: bool = False) -> bytes:
    """A GBCS alert (CRA flag 3) with ``alert_code`` raised by ``device`` at ``ts_ns``.

    Args:
        asn1: CHF alerts are ASN.1; device (ZigBee) alerts GBZ.
    """
    seconds = ts_ns // 1_000_000_000 - 946_684_800  # ZigBee UTC time: since 2000-01-01
    if asn1:
        inner = b"\x02\x02" + alert_code.to_bytes(2, "big") + b"\x18\x0f" + (
            b"20000101000000Z")
        content = b"\x30" + encode_ber_length(len(inner)) + inner
    else:
        content = b"\x01\x09\x01" + struct.pack(">HI", alert_code, seconds & 0xFFFFFFFF)
    return build_gbcs_message(
        cra_flag=CraFlag.ALERT, originator_counter=counter,
        originator_system_title=device, recipient_system_title=recipient,
        message_code=ALERT_MESSAGE_CODES.get(alert_code, GENERIC_NON_CRITICAL_ALERT),
        content=content, mac=rng.randbytes(MAC_OCTETS),
    )
