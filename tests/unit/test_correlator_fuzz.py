"""No frame and no DUIS log line may raise out of the correlator (issue 14 item 9).

Property-based: real frames (an emulated run with every key, and a real corpus capture
with its network key) are fed with mutated copies among them (bit flips, truncations,
extensions, a flipped FCS verdict), and mutated DUIS log lines (fields removed, of the
wrong type, odd text). ``DuisEvent.from_log_line`` may raise only ``BadInputError``; the
correlator must never raise, and must count every frame it could not read.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hanlab.correlate import Correlator, DuisEvent
from hanlab.correlate.simulate import SimulatedRun, simulate
from hanlab.errors import BadInputError
from hanlab.frames import Band, Frame
from hanlab.zigbee.keyring import Keyring

ZBTK_KEY = "52f0fe8052ebb35907daa243c95a2ff4"


@functools.cache
def _run() -> SimulatedRun:
    return simulate(20.0, seed=3)


def _mutate(frame: Frame, how: tuple[str, Any]) -> Frame:
    kind, arg = how
    psdu = bytearray(frame.psdu)
    if kind == "flip" and psdu:
        for bit in arg:
            bit %= len(psdu) * 8
            psdu[bit // 8] ^= 1 << (bit % 8)
    elif kind == "truncate":
        del psdu[arg % (len(psdu) + 1):]
    elif kind == "extend":
        psdu.extend(arg)
    elif kind == "fcs":
        return frame._replace(fcs_ok=not frame.fcs_ok, psdu=bytes(psdu[: arg % 40]))
    return frame._replace(psdu=bytes(psdu))


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.integers(0, 1016), min_size=1, max_size=6)),
    st.tuples(st.just("truncate"), st.integers(0, 127)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("fcs"), st.integers(0, 127)),
)

JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30)
    | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)

FIELDS = ["ts_ns", "kind", "direction", "request_id", "request_id_text", "sr_variant",
          "command_variant", "response_code", "gbcs_originator_counter", "response_id",
          "alert_code", "dcc_alert_code"]

LINE_MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(FIELDS)),
    st.tuples(st.just("set"), st.tuples(st.sampled_from(FIELDS), JSON_VALUE)),
    st.tuples(st.just("rid_text"), st.text(alphabet="0123456789:-ABCDEF²٣x", max_size=40)),
    st.tuples(st.just("counter"), JSON_VALUE),
    st.tuples(st.just("replace"), JSON_VALUE),
)


def _mutate_line(line: dict[str, Any], how: tuple[str, Any]) -> Any:
    kind, arg = how
    out = dict(line)
    if kind == "drop":
        out.pop(arg, None)
    elif kind == "set":
        out[arg[0]] = arg[1]
    elif kind == "rid_text":
        out["request_id_text"] = arg
        out["request_id"] = None
    elif kind == "counter":
        out["request_id"] = {**dict(out.get("request_id") or {}), "counter": arg}
    else:
        return arg  # not even a mapping
    return out


def _feed(correlator: Correlator, frames: Sequence[Frame],
          frame_mutations: list[tuple[int, tuple[str, Any]]],
          lines: Sequence[dict[str, Any]],
          line_mutations: list[tuple[int, tuple[str, Any]]]) -> int:
    """Feed the stream with the mutated items inserted; return the frames fed."""
    extra_frames: dict[int, list[Frame]] = {}
    for index, how in frame_mutations:
        i = index % len(frames)
        extra_frames.setdefault(i, []).append(_mutate(frames[i], how))
    events: list[DuisEvent] = []
    for line in lines:
        events.append(DuisEvent.from_log_line(line))
    for index, how in line_mutations:
        line = lines[index % len(lines)] if lines else {}
        with contextlib.suppress(BadInputError):  # the only error allowed
            events.append(DuisEvent.from_log_line(_mutate_line(line, how)))
    events.sort(key=lambda e: e.ts_ns)
    fed = 0
    e = 0
    for i, frame in enumerate(frames):
        while e < len(events) and events[e].ts_ns <= frame.ts_ns:
            correlator.feed(events[e])
            e += 1
        for item in (frame, *extra_frames.get(i, ())):
            correlator.feed(item)
            fed += 1
    for event in events[e:]:
        correlator.feed(event)
    correlator.close()
    return fed


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.integers(0, 10**6), MUTATION), min_size=1, max_size=12),
       st.lists(st.tuples(st.integers(0, 10**6), LINE_MUTATION), max_size=6))
def test_mutated_emulated_frames_and_duis_lines_never_raise(
        frame_mutations: list[tuple[int, tuple[str, Any]]],
        line_mutations: list[tuple[int, tuple[str, Any]]]) -> None:
    run = _run()
    correlator = Correlator(run.keyring, device_roles=run.device_roles)
    fed = _feed(correlator, run.frames, frame_mutations, run.duis_lines, line_mutations)
    assert correlator.counts["frames"] == fed


def test_zbtk_frames_flipped_bit_by_bit_never_raise(captures_dir: Path) -> None:
    """Every single-bit flip of the first frames of a real capture, with its network key."""
    from hanlab.capture.reader import read_frames

    ring = Keyring.from_dict({"network_keys": [{"key": ZBTK_KEY, "label": "zbtk"}]})
    frames = list(read_frames(captures_dir / "zbtk__examples_trace.pcap"))[:40]
    correlator = Correlator(ring)
    fed = 0
    for frame in frames:
        correlator.feed(frame)
        fed += 1
        for bit in range(len(frame.psdu) * 8):
            for fcs_ok in (True, False):
                correlator.feed(_mutate(frame, ("flip", [bit]))._replace(fcs_ok=fcs_ok))
                fed += 1
        for length in range(len(frame.psdu)):
            correlator.feed(frame._replace(psdu=frame.psdu[:length], fcs_ok=False))
            correlator.feed(frame._replace(psdu=frame.psdu[:length]))
            fed += 2
    correlator.close()
    assert correlator.counts["frames"] == fed


def test_bad_fcs_frame_with_truncated_source_is_counted_malformed() -> None:
    """The frame of the issue: bad FCS, data frame with ack request, source cut short."""
    # frame control 0xcc61: data, ack request, PAN ID compression, long dst and src
    psdu = bytes([0x61, 0xCC, 0x2A, 0x34, 0x12]) + bytes(8) + b"\x01\x02"
    correlator = Correlator()
    correlator.feed(Frame(1_000, "s", Band.GHZ_2_4, 0, 11, psdu, False))
    correlator.close()
    assert correlator.counts["frames"] == 1
    assert correlator.counts["frames_malformed"] == 1
    assert correlator.counts["frames_bad_fcs"] == 1


@settings(max_examples=300, deadline=None)
@given(JSON_VALUE)
def test_duis_event_from_any_json_raises_only_bad_input(value: Any) -> None:
    for line in (value, {"ts_ns": 5, "kind": "request", "request_id_text": value},
                 {"ts_ns": 5, "kind": "ack", "request_id": value}):
        with contextlib.suppress(BadInputError):
            DuisEvent.from_log_line(line)
