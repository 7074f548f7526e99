"""Unit tests of the correlator's pieces: DUIS events, merge order, outcomes, statistics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hanlab.correlate import Correlator, DuisEvent, exchange_json, time_ordered
from hanlab.correlate.stats import TimingStats, load_targets, percentile
from hanlab.errors import BadInputError
from hanlab.frames import Band, Frame

USER = "90-B3-D5-1F-30-01-00-00"
ESME = "00-DB-12-00-00-00-01-00"


def _line(ts_ns: int, kind: str, counter: int = 7, code: str | None = None,
          cv: int = 1, variant: str = "4.1.1") -> dict[str, object]:
    return {"ts_ns": ts_ns, "direction": "out" if kind == "request" else "in", "kind": kind,
            "request_id": {"originator": USER, "target": ESME, "counter": counter},
            "request_id_text": f"{USER}:{ESME}:{counter}", "sr_variant": variant,
            "command_variant": cv, "response_code": code, "gbcs_originator_counter": None}


def test_duis_event_from_log_line() -> None:
    event = DuisEvent.from_log_line(_line(5, "ack", code="I99"))
    assert (event.kind, event.counter, event.target, event.response_code) == (
        "ack", 7, ESME, "I99")
    with pytest.raises(BadInputError):
        DuisEvent.from_log_line({"kind": "nonsense"})


def test_time_ordered_is_stable() -> None:
    def frame(ts: int, name: str) -> Frame:
        return Frame(ts, name, Band.GHZ_2_4, 0, 11, b"\x02\x00\x01", True)
    duis = [DuisEvent(ts_ns=10, direction="out", kind="request")]
    merged = list(time_ordered([[frame(10, "a"), frame(12, "a")], [frame(10, "b")]], duis))
    assert [getattr(m, "sniffer_id", "duis") for m in merged] == ["duis", "a", "b", "a"]


def test_outcomes_without_han() -> None:
    correlator = Correlator()
    events = [_line(1, "request", 1), _line(2, "ack", 1, "E10"),
              _line(3, "request", 2, cv=8, variant="8.2"), _line(4, "ack", 2, "I0", cv=8,
                                                                  variant="8.2"),
              _line(5, "request", 3), _line(6, "ack", 3, "I99"), _line(9, "response", 3, "I0")]
    correlator.feed_all(DuisEvent.from_log_line(e) for e in events)
    out = {e.request_id.rsplit(":", 1)[1]: e for e in correlator.close() if e.request_id}
    assert out["1"].outcome == "rejected" and out["2"].outcome == "completed"
    assert out["3"].outcome == "responded" and out["3"].match_level == "none"
    assert out["3"].segments_ns()["end_to_end"] == 4
    for exchange in out.values():  # the shallow to_dict is asdict's equal (issue 15)
        assert exchange.to_dict() == dataclasses.asdict(exchange)


def test_timeout_and_determinism() -> None:
    def once() -> list[str]:
        correlator = Correlator()
        correlator.feed_all([DuisEvent.from_log_line(_line(0, "request")),
                             Frame(4_000 * 10**9, "s", Band.GHZ_2_4, 0, 11, b"\x02\x00\x01",
                                   True)])
        return [exchange_json(e) for e in correlator.close()]
    first = once()
    assert first == once() and '"outcome":"no_response"' in first[0]


def test_percentiles_and_targets(tmp_path: Path) -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    targets = tmp_path / "t.yaml"
    targets.write_text("'4.1': 30\n'*': 60\n")
    stats = TimingStats(load_targets(targets))
    assert stats.target_for("4.1.1") == 30 and stats.target_for("6.2.7") == 60
    targets.write_text("'4.1': -1\n")
    with pytest.raises(BadInputError):
        load_targets(targets)
    assert TimingStats().target_for("4.1.1") is None  # no default target


def test_bus_events() -> None:
    from hanlab.correlate.bus import exchange_event, timings_event

    correlator = Correlator()
    correlator.feed_all(DuisEvent.from_log_line(e) for e in (
        _line(1, "request"), _line(2, "ack", code="I99"), _line(9, "response", code="I0")))
    exchange = correlator.close()[0]
    stats = TimingStats()
    stats.add(exchange)
    assert exchange_event(exchange).kind == "exchange"
    summary = timings_event(stats).payload
    assert summary["rows"][0]["segment"] == "end_to_end" and summary["rows"][0]["count"] == 1
