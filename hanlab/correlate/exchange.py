"""Exchanges: what the correlator emits, one per SR and one per device-initiated alert.

An :class:`Exchange` is plain data with a stable JSON form (:meth:`Exchange.to_dict`, keys
sorted by :func:`exchange_json`), so the live run and ``hanlab analyse`` can be compared
byte for byte. Times are ``*_ts_ns`` (ns since the UNIX epoch, UTC); a HAN message's first
and last frame are given by their start of reception (``*_first_ts_ns``, ``*_last_ts_ns``)
and the end of the last frame on air (``*_end_ts_ns``: start + airtime of its PPDU).

Source: issue 5 item 5 (the exchange fields), DESIGN.md "The correlator".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, Final

import orjson

__all__ = ["Exchange", "MatchLevel", "exchange_json"]


class MatchLevel(IntEnum):
    """How a HAN message was tied to its SR, best first (DESIGN.md "The correlator").

    EXACT: the GBCS Originator Counter (or Supplementary Remote Party Counter) of the
    decrypted message equals the SR's counter. STRUCTURAL: NWK decrypted, so the frames
    are known to be ZCL Tunneling (0x0704) APS messages to or from the target device,
    grouped by APS counter, in the SR's window. ADDRESS_TIME: NWK addresses, sizes and
    timing only. NONE: no HAN frame was tied.
    """

    NONE = 0
    ADDRESS_TIME = 1
    STRUCTURAL = 2
    EXACT = 3

    @property
    def label(self) -> str:
        """``exact``, ``structural``, ``address_time`` or ``none``."""
        return MATCH_LEVEL_LABELS[self]


#: MatchLevel value -> its label (``MATCH_LEVEL_LABELS[level]``: no enum property lookup)
MATCH_LEVEL_LABELS: Final[tuple[str, ...]] = tuple(
    level.name.lower() for level in sorted(MatchLevel))


@dataclass(slots=True)
class Exchange:
    """One SR (``kind == "sr"``) or one device-initiated alert (``kind == "alert"``).

    Attributes:
        kind: ``sr`` or ``alert``.
        request_id: RequestID text (SR), or the ResponseID of the DUIS alert, or ``None``.
        sr_variant: ServiceReferenceVariant (SR), else ``None``.
        command_variant: DUIS CommandVariant (SR), else ``None``.
        target: the device's EUI-64 in DUIS form.
        device_role: ``ESME``, ``GSME``, … where known (rig file or GBCS use case), else
            ``unknown``.
        outcome: ``responded``, ``responded_locally`` (Local Command Delivery: the device's
            response crossed the HAN to the HHT), ``rejected`` (error acknowledgement),
            ``no_response`` (timed out), ``completed`` (no device involved), ``alert``.
        match_level: the worse of the command's and the response's levels (``none`` when
            no HAN frame was tied); ``command_level``, ``response_level`` each part's.
        submitted_ts_ns: the request sent; ``ack_ts_ns`` its acknowledgement;
            ``response_ts_ns`` the DUIS response (or alert) received.
        ack_code, response_code: DUIS response codes.
        command_*_ts_ns, response_*_ts_ns: first/last frame start and last frame end of
            the command going to the device and the device's response (or alert).
        band, page, channel: where the command (else the response) went.
        frames: HAN frames tied (good FCS, MAC ACKs excluded); ``retries`` of them were
            MAC or APS retransmissions; ``octets``: their PSDU octets.
        gbcs_originator_counter, message_code: from the decrypted GBCS (exact only).
        alert_code: the GBCS Alert Code (hex text) of an alert.

    ``__init__`` is written out so that the compiled build constructs it natively.
    """

    kind: str
    request_id: str | None
    sr_variant: str | None
    command_variant: int | None
    target: str | None
    device_role: str
    outcome: str
    match_level: str
    command_level: str
    response_level: str
    submitted_ts_ns: int | None
    ack_ts_ns: int | None
    ack_code: str | None
    response_ts_ns: int | None
    response_code: str | None
    command_first_ts_ns: int | None
    command_last_ts_ns: int | None
    command_end_ts_ns: int | None
    response_first_ts_ns: int | None
    response_last_ts_ns: int | None
    response_end_ts_ns: int | None
    band: str | None
    page: int | None
    channel: int | None
    frames: int
    retries: int
    octets: int
    gbcs_originator_counter: int | None
    message_code: str | None
    alert_code: str | None = None

    def __init__(self, kind: str, request_id: str | None, sr_variant: str | None,
                 command_variant: int | None, target: str | None, device_role: str,
                 outcome: str, match_level: str, command_level: str, response_level: str,
                 submitted_ts_ns: int | None, ack_ts_ns: int | None, ack_code: str | None,
                 response_ts_ns: int | None, response_code: str | None,
                 command_first_ts_ns: int | None, command_last_ts_ns: int | None,
                 command_end_ts_ns: int | None, response_first_ts_ns: int | None,
                 response_last_ts_ns: int | None, response_end_ts_ns: int | None,
                 band: str | None, page: int | None, channel: int | None, frames: int,
                 retries: int, octets: int, gbcs_originator_counter: int | None,
                 message_code: str | None, alert_code: str | None = None) -> None:
        self.kind = kind
        self.request_id = request_id
        self.sr_variant = sr_variant
        self.command_variant = command_variant
        self.target = target
        self.device_role = device_role
        self.outcome = outcome
        self.match_level = match_level
        self.command_level = command_level
        self.response_level = response_level
        self.submitted_ts_ns = submitted_ts_ns
        self.ack_ts_ns = ack_ts_ns
        self.ack_code = ack_code
        self.response_ts_ns = response_ts_ns
        self.response_code = response_code
        self.command_first_ts_ns = command_first_ts_ns
        self.command_last_ts_ns = command_last_ts_ns
        self.command_end_ts_ns = command_end_ts_ns
        self.response_first_ts_ns = response_first_ts_ns
        self.response_last_ts_ns = response_last_ts_ns
        self.response_end_ts_ns = response_end_ts_ns
        self.band = band
        self.page = page
        self.channel = channel
        self.frames = frames
        self.retries = retries
        self.octets = octets
        self.gbcs_originator_counter = gbcs_originator_counter
        self.message_code = message_code
        self.alert_code = alert_code

    def to_dict(self) -> dict[str, Any]:
        """The exchange as a JSON-ready dict (the MQTT ``exchange`` event payload).

        Every field is a scalar, so a shallow copy is the same as :func:`dataclasses.asdict`
        at a twentieth of its cost (issue 15: it ran once per exchange written).
        """
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    def segments_ns(self) -> dict[str, int | None]:
        """The timing segments of this exchange in ns (``None`` where an end is unknown).

        ``end_to_end`` = DUIS response − submission; ``downstream`` = submission → first
        command frame; ``han_command`` = first command frame → end of its last frame;
        ``turnaround`` = end of the command → first response frame (the device's
        processing); ``han_response`` = first response frame → end of its last frame;
        ``upstream`` = end of the response on air → DUIS response (the upstream
        remainder). Where all are known, downstream + han_command + turnaround +
        han_response + upstream = end_to_end. Source: issue 5 item 6.
        """
        return {
            "end_to_end": _diff(self.response_ts_ns, self.submitted_ts_ns),
            "downstream": _diff(self.command_first_ts_ns, self.submitted_ts_ns),
            "han_command": _diff(self.command_end_ts_ns, self.command_first_ts_ns),
            "turnaround": _diff(self.response_first_ts_ns, self.command_end_ts_ns),
            "han_response": _diff(self.response_end_ts_ns, self.response_first_ts_ns),
            "upstream": _diff(self.response_ts_ns, self.response_end_ts_ns),
        }


def _diff(later: int | None, earlier: int | None) -> int | None:
    if later is None or earlier is None:
        return None
    return later - earlier


def exchange_json(exchange: Exchange) -> str:
    """One exchange as compact JSON with sorted keys (stable byte for byte).

    The text is what ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` writes
    (ASCII, non-ASCII escaped); orjson writes it where the exchange is ASCII and its
    integers fit 64 bits, about 25 times faster (issue 15), and :mod:`json` otherwise.
    """
    record = exchange.to_dict()
    try:
        blob = orjson.dumps(record, option=_SORTED)
    except TypeError:  # an integer beyond 64 bits
        blob = b"\x80"
    if blob.isascii():
        return blob.decode("ascii")
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


_SORTED: Final = orjson.OPT_SORT_KEYS

#: the fields of :class:`Exchange`, in order (its JSON keys).
_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Exchange))
