"""The inputs of the correlator: DUIS events and one time-ordered stream (DESIGN.md, "The
correlator"; "Live and offline share it all").

A :class:`DuisEvent` is one line of the DUIS log (:mod:`hanlab.duis.log`) as a typed,
immutable value. The live pipeline builds it from the same dict the DUIS client writes to
the log (:meth:`DuisEvent.from_log_line`), so live and offline feed the correlator the very
same values. :func:`time_ordered` merges frame streams (one per capture file or sniffer) and
DUIS events into one stream ordered by ``ts_ns`` with a stable tie-break, which is what
makes the correlator's output the same byte for byte on every run.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hanlab.errors import BadInputError
from hanlab.frames import Frame

__all__ = ["DuisEvent", "StreamItem", "time_ordered"]

_KINDS = frozenset(("request", "ack", "response", "alert"))


@dataclass(frozen=True, slots=True)
class DuisEvent:
    """One DUIS document sent or received, as logged by the DUIS client.

    Attributes:
        ts_ns: ns since the UNIX epoch (UTC) when the client sent (``out``) or received
            (``in``) the document.
        direction: ``out`` or ``in``.
        kind: ``request``, ``ack``, ``response`` or ``alert``.
        request_id: the RequestID as text ``<originator>:<target>:<counter>`` (DUIS 5.4
            §3.4.1.1), or ``None`` (most alerts).
        originator, target: EUI-64s of the RequestID in DUIS form, or ``None``.
        counter: the RequestID counter, or ``None``.
        sr_variant: ServiceReferenceVariant, e.g. ``4.1.1``, or ``None``.
        command_variant: DUIS CommandVariant, or ``None``.
        response_code: e.g. ``I0``, ``I99``, ``E…``, or ``None``.
        gbcs_originator_counter: the GBCS Originator Counter where the log knows it.
        response_id: the ResponseID text of an alert or response (``<device>:<user>:<n>``).
        alert_code: the GBCS Alert Code (hex text ``8F0A``) of a Device Alert, or ``None``.
        dcc_alert_code: the DCC Alert Code (``N…``/``AD…``) of a DCC Alert, or ``None``.
    """

    ts_ns: int
    direction: str
    kind: str
    request_id: str | None = None
    originator: str | None = None
    target: str | None = None
    counter: int | None = None
    sr_variant: str | None = None
    command_variant: int | None = None
    response_code: str | None = None
    gbcs_originator_counter: int | None = None
    response_id: str | None = None
    alert_code: str | None = None
    dcc_alert_code: str | None = None

    @classmethod
    def from_log_line(cls, line: Any, *, where: str = "DUIS log") -> DuisEvent:
        """From one DUIS log line (the dict :class:`hanlab.duis.log.DuisLog` writes).

        Raises:
            BadInputError: not a mapping, or ``ts_ns`` or ``kind`` missing or of the wrong
                type (the only error raised, whatever the line holds; issue 14 item 9).
        """
        if not isinstance(line, dict):
            raise BadInputError(f"{where}: not a DUIS log line (a JSON object): "
                                f"{type(line).__name__}")
        ts_ns = line.get("ts_ns")
        kind = line.get("kind")
        if not isinstance(ts_ns, int) or isinstance(ts_ns, bool) or not isinstance(kind, str) \
                or kind not in _KINDS:
            raise BadInputError(f"{where}: not a DUIS log line (needs int ts_ns and kind "
                                f"request/ack/response/alert): {str(line)[:120]}")
        rid = line.get("request_id")
        originator = target = None
        counter: int | None = None
        if isinstance(rid, dict):
            originator = _opt_str(rid.get("originator"))
            target = _opt_str(rid.get("target"))
            raw_counter = rid.get("counter")
            counter = raw_counter if isinstance(raw_counter, int) else None
        text = _opt_str(line.get("request_id_text"))
        if text is None and originator and target and counter is not None:
            text = f"{originator}:{target}:{counter}"
        if text is not None and (originator is None or counter is None):
            parts = text.split(":")
            if len(parts) == 3 and parts[2].isascii() and parts[2].isdigit():
                originator, target, counter = parts[0], parts[1], int(parts[2])
        gbcs = line.get("gbcs_originator_counter")
        cv = line.get("command_variant")
        return cls(
            ts_ns=ts_ns, direction=str(line.get("direction") or ""), kind=str(kind),
            request_id=text, originator=originator, target=target, counter=counter,
            sr_variant=_opt_str(line.get("sr_variant")),
            command_variant=cv if isinstance(cv, int) else None,
            response_code=_opt_str(line.get("response_code")),
            gbcs_originator_counter=gbcs if isinstance(gbcs, int) else None,
            response_id=_opt_str(line.get("response_id")),
            alert_code=_opt_str(line.get("alert_code")),
            dcc_alert_code=_opt_str(line.get("dcc_alert_code")),
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


StreamItem = Frame | DuisEvent
"""What the correlator eats: a sniffed frame or a DUIS event."""


def _keyed(items: Iterable[StreamItem], rank: int) -> Iterator[tuple[int, int, int,
                                                                     StreamItem]]:
    for seq, item in enumerate(items):
        yield item.ts_ns, rank, seq, item


def time_ordered(frame_streams: Iterable[Iterable[Frame]],
                 duis_events: Iterable[DuisEvent] = ()) -> Iterator[StreamItem]:
    """Merge frame streams and DUIS events into one stream ordered by ``ts_ns``.

    Each input must itself be in time order (a capture file, a sniffer, the DUIS log);
    the merge is streaming (``heapq.merge``: one item per input held). Ties on ``ts_ns``
    are broken by input position (the DUIS events first, then the frame streams in the
    order given) and then by position within the input, so the order is deterministic.

    Source: DESIGN.md "The correlator" (one time-ordered stream of frames and DUIS events).
    """
    keyed = [_keyed(duis_events, 0)]
    keyed += [_keyed(stream, rank) for rank, stream in enumerate(frame_streams, start=1)]
    for _ts, _rank, _seq, item in heapq.merge(*keyed):
        yield item
