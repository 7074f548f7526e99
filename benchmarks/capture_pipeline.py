"""Capture pipeline throughput: replay source → bus → pcapng writer + live stats.

Input: the Sinope capture (38,350 frames) repeated 10 times (10 pcapng sections in one
file, 383,500 frames). hanlab runs its real rig pipeline (PcapReplaySource at fast pace,
EventBus, CaptureSink writing TAP pcapng, LiveStats) on one asyncio loop, i.e. one core.
Baseline, in the same run: scapy's public pipeline, PcapNgReader reading the same file
into packets and PcapNgWriter.write() writing them (what `wrpcapng(rdpcap(...))` does).
A second figure shows scapy's cheapest private path (RawPcapNgReader bytes handed to
PcapNgWriter._write_packet with link type 195: no packets, no dissection, no TAP header),
which does less work than hanlab.

Target (issue 2): at least 200,000 frames/s and at least 10x the baseline.

Run: python benchmarks/capture_pipeline.py [--copies 10] [--baseline-copies 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import SINOPE, need_corpus, report
from hanlab.config import RigConfig, SnifferConfig
from hanlab.runtime.rig import RigOptions, RigRuntime
from hanlab.sources.pcap_replay import PcapReplaySettings


def repeated(copies: int, folder: Path) -> Path:
    path = folder / f"sinope_x{copies}.pcapng"
    data = SINOPE.read_bytes()
    path.write_bytes(data * copies)
    return path


def run_hanlab(source: Path, out: Path) -> tuple[int, float, float]:
    rig = RigConfig(name="bench", sniffers=[SnifferConfig(id="s", driver="pcap",
                                                          settings={"file": str(source)})])
    settings = {"s": PcapReplaySettings(file=source, pace="fast")}
    runner = RigRuntime(rig, settings, RigOptions(capture_folder=out, exit_when_done=True,
                                                  correlate=False))
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    asyncio.run(runner.run())
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    frames = runner.stats.counts["s"].frames
    written = sum(f.frames for f in runner.capture.bands.values())
    assert written == frames, (written, frames)
    return frames, wall, cpu


def run_scapy(source: Path, out: Path) -> tuple[int, float]:
    """scapy's public pipeline: PcapNgReader (packets) -> PcapNgWriter.write(packet)."""
    from scapy.utils import PcapNgReader, PcapNgWriter

    t0 = time.perf_counter()
    n = 0
    writer = PcapNgWriter(str(out / "scapy.pcapng"))
    with PcapNgReader(str(source)) as reader:
        for pkt in reader:
            writer.write(pkt)
            n += 1
    writer.close()
    return n, time.perf_counter() - t0


def run_scapy_raw(source: Path, out: Path) -> tuple[int, float]:
    """scapy's cheapest path: raw bytes, no Packet objects, no dissection."""
    from scapy.utils import PcapNgWriter, RawPcapNgReader

    t0 = time.perf_counter()
    n = 0
    writer = PcapNgWriter(str(out / "scapy-raw.pcapng"))
    with RawPcapNgReader(str(source)) as reader:
        for data, meta in reader:
            ts_us = meta.tshigh << 32 | meta.tslow
            # raw bytes with an explicit link type: scapy's writer without dissection
            writer._write_packet(data, linktype=195, sec=ts_us // 1_000_000,
                                 usec=ts_us % 1_000_000, caplen=len(data), wirelen=meta.wirelen)
            n += 1
    writer.close()
    return n, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--baseline-copies", type=int, default=2,
                        help="copies for the (slow) scapy baseline; rates are per frame")
    args = parser.parse_args()
    need_corpus()
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = repeated(args.copies, folder)
        small = repeated(args.baseline_copies, folder)
        (folder / "h").mkdir()
        (folder / "s").mkdir()
        frames, wall, cpu = run_hanlab(big, folder / "h")
        base_frames, base_wall = run_scapy(small, folder / "s")
        raw_frames, raw_wall = run_scapy_raw(small, folder / "s")
    ours = frames / wall
    base = base_frames / base_wall
    raw = raw_frames / raw_wall
    report("capture pipeline (replay → bus → TAP pcapng + live stats), one core", [
        ("frames", f"{frames:,}", f"{base_frames:,}"),
        ("wall time (s)", f"{wall:.2f}", f"{base_wall:.2f}"),
        ("CPU time (s)", f"{cpu:.2f}", "-"),
        ("frames/s", f"{ours:,.0f}", f"{base:,.0f}"),
        ("ratio hanlab/baseline", f"{ours / base:.1f}x", "1.0x"),
        ("scapy raw-bytes path, frames/s", "-", f"{raw:,.0f}"),
        ("ratio hanlab/raw-bytes path", f"{ours / raw:.1f}x", "1.0x"),
        ("peak RSS (MiB)",
         f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", "(same process)"),
    ])
    print(f"\n  target: >= 200,000 frames/s ({'met' if ours >= 200_000 else 'NOT met'}), "
          f">= 10x baseline ({'met' if ours / base >= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
