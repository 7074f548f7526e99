"""The correlator against the emulator's ground truth (issue 5, done-when).

One emulated dual-band HAN (an ESME and a GSME on each band, GSMEs waking every 5 s so
commands queue up, spontaneous alerts), 1,000 virtual seconds at one SR per 0.5 s: about
2,000 SRs over both bands. Sniffer timestamps are jittered by ±20 µs. The frames are
correlated with all keys, with the network key only and with none, and each exchange's
HAN timestamps are compared with the true ones of the transmissions that carried the SR's
GBCS command and response.
"""

from __future__ import annotations

from collections import Counter

import pytest

from hanlab.correlate import Correlator, Exchange, time_ordered
from hanlab.correlate.simulate import SimulatedRun, simulate
from hanlab.zigbee.keyring import Keyring

TOLERANCE_NS = 100_000
HAN_FIELDS = ("command_first_ts_ns", "command_end_ts_ns", "response_first_ts_ns",
              "response_end_ts_ns")


@pytest.fixture(scope="module")
def run() -> SimulatedRun:
    return simulate(1000.0, interval_s=0.5, jitter_ns=20_000, seed=1)


def _correlate(run: SimulatedRun, ring: Keyring) -> list[Exchange]:
    correlator = Correlator(ring, device_roles=run.device_roles)
    correlator.feed_all(time_ordered([run.frames], run.duis))
    exchanges = correlator.close()
    counts = correlator.counts
    accounted = sum(v for k, v in counts.items() if k.startswith("frames_"))
    assert counts["frames"] == len(run.frames)
    assert accounted == len(run.frames)  # every frame is counted, none twice
    return [e for e in exchanges if e.kind == "sr"]


def _correct(run: SimulatedRun, exchange: Exchange) -> bool:
    truth = run.truth[exchange.request_id or ""]
    for name in HAN_FIELDS:
        got, want = getattr(exchange, name), getattr(truth, name)
        if (got is None) != (want is None):
            return False
        if got is not None and abs(got - want) > TOLERANCE_NS:
            return False
    return True


def _answered(run: SimulatedRun, exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.outcome == "responded"]


def test_enough_srs_on_both_bands(run: SimulatedRun) -> None:
    bands = Counter(t.band for t in run.truth.values())
    assert len(run.truth) >= 1990 and bands["2.4GHz"] > 900 and bands["subGHz"] > 900


def test_all_keys_exact_and_within_100us(run: SimulatedRun) -> None:
    exchanges = _correlate(run, run.keyring)
    answered = _answered(run, exchanges)
    assert len(answered) >= 1980
    assert all(e.match_level == "exact" for e in answered)
    assert all(_correct(run, e) for e in answered)
    errors = sorted(abs(getattr(e, name) - getattr(run.truth[e.request_id or ""], name))
                    for e in answered for name in HAN_FIELDS)
    assert errors[int(0.99 * len(errors))] <= TOLERANCE_NS
    # segment errors (differences of two jittered stamps) at p99
    seg = sorted(abs((e.command_end_ts_ns or 0) - (e.command_first_ts_ns or 0)
                     - ((run.truth[e.request_id or ""].command_end_ts_ns or 0)
                        - (run.truth[e.request_id or ""].command_first_ts_ns or 0)))
                 for e in answered)
    assert seg[int(0.99 * len(seg))] <= TOLERANCE_NS
    assert {e.device_role for e in answered} == {"ESME", "GSME"}


def test_network_key_only(run: SimulatedRun) -> None:
    exchanges = _correlate(run, run.network_keyring)
    answered = _answered(run, exchanges)
    assert all(e.match_level in ("structural", "none") for e in answered)
    rate = sum(_correct(run, e) for e in answered) / len(answered)
    # issue 5: 99 %. Re-deliveries of a command the CHF gave up on (no MAC ACK after its
    # last attempt) are folded into the first delivery (docs/correlation.md)
    assert rate >= 0.99, rate


def test_no_keys_address_and_time(run: SimulatedRun) -> None:
    exchanges = _correlate(run, Keyring())
    answered = _answered(run, exchanges)
    assert not any(e.match_level in ("exact", "structural") for e in exchanges)
    levels = Counter(e.match_level for e in answered)
    assert levels["address_time"] >= 0.99 * len(answered)
    rate = sum(_correct(run, e) for e in answered) / len(answered)
    assert rate >= 0.90, rate


def test_exact_never_wrong_with_a_device_key_missing(run: SimulatedRun) -> None:
    """Keys for only some devices: exact where readable, never a wrong exact."""
    ring = Keyring()
    ring.add_network_key(run.han.network_key, seq=0, label="nwk")
    full = run.keyring.to_dict()
    kept = [k for k in full.get("link_keys", []) if "ESME" in str(k.get("label", ""))]
    partial = Keyring.from_dict({**full, "link_keys": kept})
    exchanges = _correlate(run, partial)
    exact = [e for e in exchanges if e.match_level == "exact"]
    assert exact and all(_correct(run, e) for e in _answered(run, exact))
    assert all(run.roles_by_request[e.request_id or ""] == "ESME" for e in exact)
