"""CH firmware upgrade on the emulated dual-band rig, and the impact report on it.

1. In virtual time, the rig's CH (``rigs/emulated-dual-band.yaml``: 7 devices on two bands)
   reboots into a new image: time from the CH back to every device back (rejoined, tunnel
   open), median and max per device, rejoin attempts; printed beside the reboot time (the
   floor: no device can be back before the CH is).
2. ``hanlab firmware impact`` as a whole process (the user-facing command) on two job
   records of ``--exchanges`` SR exchanges each, beside the same process doing nothing
   (``hanlab --help``: interpreter and import start-up).

    python benchmarks/ch_upgrade.py [--reboot-s 45] [--seeds 5] [--exchanges 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, report

from hanlab.emulator.han.registry import build_han
from hanlab.emulator.han.settings import HanSettings
from hanlab.firmware.ch_image import ChImage

RIG = REPO_ROOT / "rigs" / "emulated-dual-band.yaml"


def recovery(reboot_s: float, seed: int) -> dict[str, float]:
    """One upgrade in virtual time; seconds after the CH came back."""
    han = build_han("emulated-dual-band", HanSettings(seed=seed), rig_file=RIG)
    han.run_for(60)
    record = han.upgrade_ch(ChImage(version="CH-BENCH-2", reboot_s=reboot_s))
    cpu = time.process_time()
    while not record.done():
        han.run_for(10)
    assert record.ready_ns is not None
    back = [(r.resumed_ns or record.ready_ns) - record.ready_ns
            for r in record.devices.values()]
    return {"all_back_s": max(back) / 1e9, "median_s": statistics.median(back) / 1e9,
            "attempts_max": max(r.attempts for r in record.devices.values()),
            "cpu_s": time.process_time() - cpu}


def _job(job_id: str, n: int, median_ms: float, rng: random.Random) -> dict[str, object]:
    devices = [("00-DB-12-00-00-00-D1-01", "ESME", "2.4GHz"),
               ("00-DB-12-00-00-00-D2-02", "GSME", "subGHz")]
    exchanges, steps = [], []
    for k in range(n):
        eui, role, band = devices[k % 2]
        value = int(median_ms * rng.lognormvariate(0, 0.3) * 1e6)
        rid = f"{job_id}-{k}"
        exchanges.append({"request_id": rid, "sr_variant": "4.1.1", "target": eui,
                          "device_role": role, "band": band, "segments_ns": {
                              "end_to_end": value}})
        steps.append({"kind": "sr", "request_id": rid, "sr_variant": "4.1.1",
                      "target_eui64": eui, "status": "passed"})
    return {"id": job_id, "steps": steps, "exchanges": exchanges}


def impact_process(exchanges: int) -> tuple[float, float]:
    """Wall seconds of ``hanlab firmware impact`` and of ``hanlab --help``."""
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        before, after = Path(folder) / "b.json", Path(folder) / "a.json"
        before.write_text(json.dumps(_job("j-b", exchanges, 600, rng)))
        after.write_text(json.dumps(_job("j-a", exchanges, 650, rng)))
        cmd = [sys.executable, "-m", "hanlab.cli"]
        start = time.perf_counter()
        subprocess.run([*cmd, "firmware", "impact", "--before", str(before), "--after",
                        str(after), "--html", str(Path(folder) / "i.html")], check=True,
                       capture_output=True)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([*cmd, "--help"], check=True, capture_output=True)
        return ours, time.perf_counter() - start


def main() -> None:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reboot-s", type=float, default=45.0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--exchanges", type=int, default=2000)
    args = parser.parse_args()
    runs = [recovery(args.reboot_s, seed) for seed in range(1, args.seeds + 1)]
    report(f"CH upgrade, {args.reboot_s:g} s reboot, {args.seeds} seeds (emulated s after "
           "the CH is back)", [
        ("every device back (median of runs)",
         f"{statistics.median(r['all_back_s'] for r in runs):.2f} s", "0 s (floor)"),
        ("every device back (worst run)", f"{max(r['all_back_s'] for r in runs):.2f} s",
         "-"),
        ("per-device median", f"{statistics.median(r['median_s'] for r in runs):.2f} s",
         "-"),
        ("rejoin attempts (max)", str(max(int(r["attempts_max"]) for r in runs)), "-"),
        ("host CPU per upgrade", f"{statistics.mean(r['cpu_s'] for r in runs) * 1e3:.1f} ms",
         "-")])
    ours, base = impact_process(args.exchanges)
    report(f"hanlab firmware impact, 2 jobs x {args.exchanges} exchanges, whole process", [
        ("wall time (text + HTML)", f"{ours:.2f} s", f"{base:.2f} s (hanlab --help)")])


if __name__ == "__main__":
    main()
