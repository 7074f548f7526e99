"""Correlation and timing statistics over 100,000 SRs and 10 million frames, streaming
(issue 5, done-when): throughput and peak memory, hanlab against a naive baseline.

The input is synthesised from an emulated lab run (:mod:`hanlab.correlate.simulate`, all
keys): one *tile* of real emulated traffic (about 240 SRs, both bands) is repeated with its
times shifted, each copy with its own RequestIDs (the GBCS Originator Counter on air is the
tile's, given in the DUIS log's ``gbcs_originator_counter``), and padded with copies of the
tile's small frames (MAC ACKs, tunnel GETs, empty GET-RESPONSEs) spread over the copy to
reach the frame count. Frames are generated on the fly: nothing holds the whole input.

Each measurement runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own:

* hanlab at 1 M and at 10 M frames (with 10,000 and 100,000 SRs): memory flat in frames;
* baseline "hold everything and join at the end" (decode every frame into a record, keep
  them all with the DUIS events, then join each SR to its frames by GBCS counter) at 1 M
  frames only: its memory grows with the input.

Usage: ``python benchmarks/correlate.py [--srs 100000] [--frames 10000000]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

TILE_S = 120.0
SPACING_NS = int((TILE_S + 60) * 1e9)


def _tile() -> Any:
    from hanlab.correlate.simulate import simulate

    return simulate(TILE_S, seed=7)


def _stream(run: Any, srs: int, frames: int) -> tuple[Iterator[Any], Iterator[Any], int]:
    """(frames, DUIS events, copies) of the synthetic input."""
    from hanlab.correlate.events import DuisEvent

    per_tile = len(run.truth)
    copies = max(1, -(-srs // per_tile))
    pad_per_copy = max(0, frames // copies - len(run.frames))
    small = [f for f in run.frames if len(f.psdu) <= 67 and f.fcs_ok]
    t0 = run.frames[0].ts_ns

    def frame_iter() -> Iterator[Any]:
        for copy in range(copies):
            shift = copy * SPACING_NS
            tile = [f._replace(ts_ns=f.ts_ns + shift) for f in run.frames]
            step = SPACING_NS // max(pad_per_copy, 1)
            pad = [small[i % len(small)]._replace(ts_ns=t0 + shift + i * step + 7)
                   for i in range(pad_per_copy)]
            merged = tile + pad
            merged.sort(key=lambda f: f.ts_ns)
            yield from merged

    def duis_iter() -> Iterator[Any]:
        for line in duis_lines(run, copies):
            yield DuisEvent.from_log_line(line)

    return frame_iter(), duis_iter(), copies


def duis_lines(run: Any, copies: int) -> Iterator[dict[str, Any]]:
    """The tile's DUIS log lines ``copies`` times, each copy shifted by ``SPACING_NS`` with
    its own RequestIDs (the on-air Originator Counter in ``gbcs_originator_counter``)."""
    for copy in range(copies):
        shift = copy * SPACING_NS
        for line in run.duis_lines:
            rid = dict(line["request_id"])
            counter = int(rid["counter"])
            rid["counter"] = copy * 10_000_000 + counter % 10_000_000
            text = f"{rid['originator']}:{rid['target']}:{rid['counter']}"
            yield {**line, "ts_ns": int(line["ts_ns"]) + shift, "request_id": rid,
                   "request_id_text": text, "gbcs_originator_counter": counter}


def _child(mode: str, srs: int, frames: int) -> dict[str, Any]:
    from hanlab.correlate import Correlator, time_ordered
    from hanlab.correlate.stats import TimingStats

    run = _tile()
    frame_iter, duis_iter, copies = _stream(run, srs, frames)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if mode == "hanlab":
        stats = TimingStats()
        correlator = Correlator(run.keyring, on_exchange=stats.add, keep=False)
        correlator.feed_all(time_ordered([frame_iter], duis_iter))
        correlator.close()
        fed = correlator.counts["frames"]
        levels = {"exchanges": correlator.counts["exchanges"], "rows": len(stats.rows())}
    else:
        fed, levels = _baseline(run, frame_iter, duis_iter)
    elapsed = time.perf_counter() - start
    return {"mode": mode, "frames": fed, "srs": copies * len(run.truth),
            "elapsed_s": round(elapsed, 2), "frames_per_s": round(fed / elapsed),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                  1),
            "rss_before_mib": round(rss_before / 1024, 1), **levels}


def _baseline(run: Any, frame_iter: Iterator[Any], duis_iter: Iterator[Any]
              ) -> tuple[int, dict[str, Any]]:
    """Hold everything, join at the end: every frame decoded to a record and kept."""
    from hanlab.gbcs.message import GbcsMessage, GbtBlock
    from hanlab.gbcs.tunnel import parse_tunnel_payload
    from hanlab.zigbee.frame import Decoder

    decoder = Decoder(run.keyring)
    records = []
    for frame in frame_iter:
        d = decoder.decode(frame.psdu, frame.ts_ns, fcs_ok=frame.fcs_ok)
        counter = cra = None
        zcl = d.zcl
        data = zcl.tunnel_data if zcl is not None else None
        if data is not None:
            message = parse_tunnel_payload(data).message
            if isinstance(message, GbcsMessage | GbtBlock):
                counter, cra = message.originator_counter, message.cra_flag
        records.append((frame.ts_ns, len(frame.psdu), counter, cra, frame.band))
    events = list(duis_iter)
    by_counter: dict[tuple[int, int], list[int]] = {}
    for ts, _octets, counter, cra, _band in records:
        if counter is not None and cra is not None:
            by_counter.setdefault((counter, cra), []).append(ts)
    joined = 0
    for event in events:
        if event.kind == "request" and event.gbcs_originator_counter is not None:
            command = [t for t in by_counter.get((event.gbcs_originator_counter, 1), [])
                       if t >= event.ts_ns]
            joined += bool(command)
    return len(records), {"exchanges": joined}


def _measure(mode: str, srs: int, frames: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--srs", str(srs),
                          "--frames", str(frames)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run the three measurements and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--srs", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=10_000_000)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.srs, args.frames)))
        return
    from _common import report

    small = _measure("hanlab", args.srs // 10, args.frames // 10)
    big = _measure("hanlab", args.srs, args.frames)
    base = _measure("baseline", args.srs // 10, args.frames // 10)
    for result in (small, big, base):
        print(json.dumps(result))
    report(f"correlation + statistics, {small['frames']:,} frames / {small['srs']:,} SRs "
           f"(hanlab vs baseline)", [
               ("frames/s", f"{small['frames_per_s']:,}", f"{base['frames_per_s']:,}"),
               ("elapsed s", str(small["elapsed_s"]), str(base["elapsed_s"])),
               ("peak RSS MiB", str(small["peak_rss_mib"]), str(base["peak_rss_mib"])),
           ])
    report("memory flat in frames (hanlab)", [
        ("frames", f"{small['frames']:,}", f"{big['frames']:,}"),
        ("SRs", f"{small['srs']:,}", f"{big['srs']:,}"),
        ("frames/s", f"{small['frames_per_s']:,}", f"{big['frames_per_s']:,}"),
        ("peak RSS MiB", str(small["peak_rss_mib"]), str(big["peak_rss_mib"])),
    ])


if __name__ == "__main__":
    main()
