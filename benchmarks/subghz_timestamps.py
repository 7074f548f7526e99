"""Sub-GHz frame timestamps: ``hanlab up`` with TI SmartRF Packet Sniffer 2 dongles, whole
process, against host stamping (issue 13 item 5).

``--count`` emulated TI dongles (tests/tools/ti_dongle.py, in this process, on
pseudo-terminals; each on its own GB sub-GHz channel of page 28) send frames at
``--rate-hz`` (near full occupancy of a sub-GHz channel at 200/s: a 40-octet frame is
4 ms on air plus 1 ms turnaround), with their own clocks 200 ms ahead and drifting
-25 ppm, each packet written 150 ± 100 µs after the frame ended. ``hanlab up LAB
--duration D`` runs as a child process and writes the pcapng; afterwards every frame of
the capture is matched (by the sequence number in its PSDU) to the emulator's ground
truth. Figures:

* **hanlab**: |pcapng timestamp − true start of the frame| (p50, p99, max, µs), after the
  first ``--warmup-s`` of each dongle's clock model;
* **host stamp**: |time the packet was written − true start|, the best any driver that
  stamps frames on arrival could do (the zigpy driver's way: ``ts_source`` HOST; before
  USB, the kernel and the event loop add their own), since a dongle sends a frame only
  once it has ended;
* frames captured / sent, and the CPU of the ``hanlab up`` child (user + system, % of one
  core over its run, from ``os.wait4``).

Run: ``python benchmarks/subghz_timestamps.py [--count 4] [--duration-s 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REPO_ROOT, report
from hanlab.capture.reader import read_frames
from tests.tools.ti_dongle import EmulatedTiDongle, TiDongleConfig

RIG_HEAD = "name: ti-bench\nsniffers:\n"
SNIFFER = ("  - id: ti{i}\n    driver: ti-smartrf-sniffer2\n    page: 28\n    channel: {ch}\n"
           "    settings: {{port: {port}}}\n")


def _hanlab() -> str:
    """The console script beside this Python (no shim), else ``hanlab`` on PATH."""
    beside = Path(sys.executable).with_name("hanlab")
    return str(beside) if beside.exists() else (shutil.which("hanlab") or "hanlab")


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000


async def _run(args: argparse.Namespace, folder: Path) -> None:
    dongles = [EmulatedTiDongle(folder / f"ti{i}", TiDongleConfig(rate_hz=args.rate_hz, seed=i))
               for i in range(args.count)]
    (folder / "rig.yaml").write_text(
        RIG_HEAD + "".join(SNIFFER.format(i=i, ch=11 + i, port=d.link)
                           for i, d in enumerate(dongles))
        + f"capture: {{folder: {folder / 'captures'}, flush_interval_s: 0.25}}\n")
    (folder / "lab.yaml").write_text("name: bench\nrigs: [rig.yaml]\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    for d in dongles:
        await d.__aenter__()
    try:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            _hanlab(), "up", str(folder / "lab.yaml"), "--duration", str(args.duration_s),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=folder)
        _, err = await proc.communicate()
        wall_s = time.monotonic() - started
        if proc.returncode != 0:
            sys.exit(f"hanlab up failed ({proc.returncode}): {err.decode()[-2000:]}")
    finally:
        for d in dongles:
            await d.__aexit__(None, None, None)
    usage = os.times()
    cpu_s = usage.children_user + usage.children_system

    truth = {}
    for i, d in enumerate(dongles):
        for s in d.sent:
            truth[(f"ti{i}", s.seq)] = s
    ours: list[int] = []
    host: list[int] = []
    captured = 0
    first_ns: dict[str, int] = {}
    for path in sorted((folder / "captures").glob("ti-bench_subGHz_*")):
        for frame in read_frames(path):
            captured += 1
            seq = struct.unpack_from("<I", frame.psdu, 9)[0]
            # the pcapng interface names the sniffer; ground truth per dongle by channel
            sid = f"ti{frame.channel - 11}"
            sent = truth.get((sid, seq))
            if sent is None:
                continue
            first_ns.setdefault(sid, sent.true_start_ns)
            if sent.true_start_ns - first_ns[sid] < args.warmup_s * 1e9:
                continue
            ours.append(abs(frame.ts_ns - sent.true_start_ns))
            host.append(abs(sent.written_ns - sent.true_start_ns))
    total = sum(d.stats.frames for d in dongles)
    if not ours:
        sys.exit("no frames matched: nothing to report")
    report(f"sub-GHz timestamps: {args.count} TI dongles x {args.rate_hz:.0f} frames/s, "
           f"{args.duration_s:.0f} s (|stamp - true start|, µs)", [
               ("p50", f"{_pct(ours, 0.5):.1f}", f"{_pct(host, 0.5):.1f}"),
               ("p99", f"{_pct(ours, 0.99):.1f}", f"{_pct(host, 0.99):.1f}"),
               ("max", f"{max(ours) / 1000:.1f}", f"{max(host) / 1000:.1f}"),
               ("frames captured / sent", f"{captured} / {total}", "-"),
               ("hanlab up CPU, % of one core", f"{100 * cpu_s / wall_s:.0f}", "-"),
           ])
    print("  (baseline: the write time of each packet, what stamping on arrival gets at best)")


def main() -> None:
    """Parse the options and run the benchmark in a temporary folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--rate-hz", type=float, default=150.0)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hanlab-subghz-") as tmp:
        asyncio.run(_run(args, Path(tmp)))


if __name__ == "__main__":
    main()
