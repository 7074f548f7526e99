"""The DUIS log: every request, acknowledgement, response and alert, one JSON line each.

This is what the correlator reads offline (``hanlab analyse --duis-log run.jsonl``), so each
line is self-contained::

    {"ts_ns": 1714564800123456789, "direction": "out", "kind": "request",
     "user": "90-B3-D5-1F-30-01-00-00",
     "request_id": {"originator": "90-B3-...", "target": "00-DB-...", "counter": 1000},
     "request_id_text": "90-B3-...:00-DB-...:1000", "sr_variant": "4.1.1",
     "command_variant": 1, "response_code": null, "gbcs_originator_counter": null,
     "dcc_alert_code": null, "alert_code": null, "xml": "<?xml ..."}

``ts_ns``: ns since the UNIX epoch (UTC) when the client sent (``out``) or received (``in``)
the document. ``kind``: ``request``, ``ack``, ``response`` or ``alert``. ``request_id`` is
``null`` where the document has none (most alerts); for a response it is the request's.
``gbcs_originator_counter``: the GBCS Originator Counter where known (of the GBCS payload or
PreCommand carried, or of a Signed Pre-Command sent). ``xml`` only with ``keep_xml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from hanlab.duis.jsonl import JsonLinesWriter, iter_json_lines, read_json_lines
from hanlab.duis.xml import RequestId
from hanlab.resources import Closing

Direction = Literal["out", "in"]
Kind = Literal["request", "ack", "response", "alert"]
KINDS: tuple[Kind, ...] = ("request", "ack", "response", "alert")


def request_id_fields(request_id: RequestId | None) -> dict[str, Any] | None:
    """``{"originator", "target", "counter"}`` of a RequestID (EUI-64s in DUIS form)."""
    if request_id is None:
        return None
    return {"originator": request_id.originator.duis, "target": request_id.target.duis,
            "counter": request_id.counter}


class DuisLog(Closing):
    """Writer of the DUIS log (JSON Lines), shared by every User of a run.

    Args:
        path: the ``.jsonl`` file (appended to).
        keep_xml: also write each document's XML (bigger, but self-explaining).
        flush_every: lines per write to the OS (1: each line at once).
    """

    def __init__(self, path: Path | str, *, keep_xml: bool = False, flush_every: int = 1) -> None:
        self._writer = JsonLinesWriter(path, flush_every=flush_every)
        self.path = self._writer.path
        #: called with each line dict right after it is written (e.g. a live correlator).
        self.on_line: Callable[[dict[str, Any]], None] | None = None
        self.keep_xml = keep_xml

    def record(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        kind: Kind,
        request_id: RequestId | None,
        sr_variant: str | None,
        command_variant: int | None = None,
        response_code: str | None = None,
        gbcs_originator_counter: int | None = None,
        user: str | None = None,
        dcc_alert_code: str | None = None,
        alert_code: int | None = None,
        response_id: RequestId | None = None,
        xml: bytes | None = None,
    ) -> None:
        """Append one line (see the module docstring); ignored once closed."""
        if self._writer.closed:
            return
        line: dict[str, Any] = {
            "ts_ns": ts_ns, "direction": direction, "kind": kind,
            "user": user if user is not None else (
                request_id.originator.duis if request_id is not None else None
            ),
            "request_id": request_id_fields(request_id),
            "request_id_text": None if request_id is None else str(request_id),
            "response_id": None if response_id is None else str(response_id),
            "sr_variant": sr_variant, "command_variant": command_variant,
            "response_code": response_code,
            "gbcs_originator_counter": gbcs_originator_counter,
            "dcc_alert_code": dcc_alert_code,
            "alert_code": None if alert_code is None else f"{alert_code:04X}",
        }
        if self.keep_xml and xml is not None:
            line["xml"] = xml.decode("utf-8", errors="replace")
        self._writer.write(line)
        if self.on_line is not None:
            self.on_line(line)

    def close(self) -> None:
        """Flush and close; idempotent."""
        self._writer.close()



def read_duis_log(path: Path | str) -> list[dict[str, Any]]:
    """The lines of a DUIS log in file order (a torn last line is skipped)."""
    return read_json_lines(path)


def iter_duis_log(path: Path | str) -> Iterator[Any]:
    """The lines of a DUIS log in file order, streamed (see :func:`iter_json_lines`)."""
    return iter_json_lines(path)
