"""``hanlab dutycycle`` (DIT.8) whole process, paired with the tshark run a user would
otherwise start from: ``tshark -r CAP -T fields`` with each frame's time, length and MAC
addresses (what a duty cycle per transmitter would be summed from).

Input: a sub-GHz capture of the emulated dual-band HAN (ESME and GSME on sub-GHz, the
traffic generator at one SR per 0.5 s) run in virtual time for ``--hours`` hours, written
as TAP pcapng; ×N (``--sizes``) runs N hours. Each row prints the median wall time over
``--rounds`` alternating rounds, peak RSS, frames per second and the ratio hanlab/tshark
(``benchmarks/whole_process.py`` helpers).

Run: python benchmarks/dutycycle.py [--sizes 1,4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REPO_ROOT
from benchmarks.whole_process import hanlab_argv, paired, row


def build_capture(folder: Path, hours: float) -> tuple[Path, int]:
    """The emulated HAN's sub-GHz frames of ``hours`` hours as pcapng; (path, frames)."""
    from hanlab.capture.pcapng import PcapngWriter
    from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings
    from hanlab.emulator.han.settings import TrafficSettings
    from hanlab.frames import Band, Frame, TsSource

    devices = [
        EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-02", band=Band.SUB_GHZ),
        EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-02", band=Band.SUB_GHZ,
                       wake_interval_s=4),
    ]
    han = EmulatedHan("bench", HanSettings(seed=3, traffic=TrafficSettings(
        enabled=True, interval_s=0.5)), devices, dual_band=True,
        start_ns=1_750_000_000 * 10**9)
    path = folder / f"bench_subGHz_{hours:g}h.pcapng"
    writer = PcapngWriter(path, [("sub", "subGHz")])
    count = 0

    def tap(tx: object, page: int, channel: int) -> None:
        nonlocal count
        count += 1
        writer.write(0, Frame(tx.start_ns, "sub", Band.SUB_GHZ, page, channel,  # type: ignore[attr-defined]
                              tx.psdu, not tx.collided, ts_source=TsSource.EMULATED))  # type: ignore[attr-defined]

    han.add_tap(Band.SUB_GHZ, tap)
    han.run_for(hours * 3600)
    writer.close()
    return path, count


def main() -> None:
    """Build the inputs, run the pairs, print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4", help="hours of emulated HAN per row")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            capture, frames = build_capture(Path(tmp), size)
            ours = [*hanlab_argv(), "dutycycle", str(capture), "--json"]
            theirs = ["tshark", "-n", "-r", str(capture), "-T", "fields",
                      "-e", "frame.time_epoch", "-e", "frame.len", "-e", "wpan.src16",
                      "-e", "wpan.dst16", "-e", "wpan.seq_no"]
            a, b = paired(args.rounds, env, ours, theirs)
            row("hanlab dutycycle --json", size, frames, a, b, "tshark -T fields")


if __name__ == "__main__":
    main()
