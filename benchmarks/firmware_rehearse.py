"""Wall time of the lab rehearsal of a CH firmware roll-out (issue 12 item 5), as a user
runs it: ``hanlab firmware rehearse --image V --time-scale X --out DIR`` on the bundled
two-rig emulated lab, one whole process per time scale, with the time of each phase read
back from the timeline it writes (``rehearsal.json``).

No baseline tool: nothing standard rehearses a SECMP0024 roll-out on a HAN.

    python benchmarks/firmware_rehearse.py [--time-scales 20 40]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, report
from rollout_plan import hanlab_command


def run(time_scale: float) -> tuple[float, dict[str, float]]:
    """Wall time (s) of one rehearsal and the host seconds of each phase."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryDirectory(prefix="hanlab-rehearse-") as out:
        started = time.perf_counter()
        proc = subprocess.run([*hanlab_command(), "firmware", "rehearse", "--image",
                               "CH-EMU-2.0.0", "--time-scale", str(time_scale), "--out", out],
                              capture_output=True, text=True, env=env, check=False)
        wall_s = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"hanlab firmware rehearse failed: {proc.stderr.strip()[-500:]}")
        timeline = json.loads((Path(out) / "rehearsal.json").read_text())["timeline"]
    phases: dict[str, float] = {}
    for entry, following in itertools.pairwise(timeline):
        phases[entry["phase"]] = phases.get(entry["phase"], 0.0) + (
            following["ts_ns"] - entry["ts_ns"]) / 1e9
    return wall_s, phases


def main() -> None:
    """Run the time scales asked for and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scales", type=float, nargs="+", default=[20.0, 40.0])
    args = parser.parse_args()
    rows = []
    for scale in args.time_scales:
        wall_s, phases = run(scale)
        rows.append((f"time scale {scale:g}: wall time (whole process)", f"{wall_s:.1f} s", "-"))
        for name, seconds in phases.items():
            rows.append((f"time scale {scale:g}: phase {name}", f"{seconds:.1f} s", "-"))
    report(f"hanlab firmware rehearse (bundled lab, 2 rigs, {os.cpu_count()} CPUs)", rows)


if __name__ == "__main__":
    main()
