"""Time and peak memory of planning a CH firmware roll-out (SECMP0024) over a synthetic
estate, as a user runs it: ``hanlab rollout plan --chs N --json``, one whole process per
size (issue 12 item 4). Peak memory is the child's maximum resident set (``wait4``).

No baseline tool: nothing standard plans a SECMP0024 roll-out; the per-step times
(DuckDB: eligibility, pilot, deployment dates, batches) are printed instead, with the
in-memory portal service over a smaller estate for scale (Python, CH by CH).

    python benchmarks/rollout_plan.py [--sizes 1000000 10000000] [--memory-limit 4GB]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import REPO_ROOT, report


def hanlab_command() -> list[str]:
    """The installed console script, or the same entry point through ``python -m``."""
    script = shutil.which("hanlab")
    return [script] if script else [sys.executable, "-m", "hanlab.cli"]


def run_plan(chs: int, memory_limit: str) -> tuple[float, float, dict[str, object]]:
    """Wall time (s), peak RSS (MiB) and the JSON plan of one ``hanlab rollout plan``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([*hanlab_command(), "rollout", "plan", "--chs", str(chs),
                                 "--memory-limit", memory_limit, "--notified",
                                 "2027-01-04T00:00:00Z", "--json"],
                                stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"hanlab rollout plan --chs {chs} failed: {err.read().decode().strip()}")
        return wall_s, usage.ru_maxrss / 1024, json.loads(out.read())


def service_rate(chs: int) -> float:
    """CHs per second the in-memory service notifies and plans (Python loops)."""
    from hanlab.emulator.dcc.rollout import estate
    from hanlab.emulator.dcc.rollout.model import Priority, Severity
    from hanlab.emulator.dcc.rollout.service import RolloutService

    con = estate.connect("1GB", 2)
    estate.generate(con, estate.EstateSpec(chs))
    records = estate.records(con, limit=chs)
    con.close()
    started = time.perf_counter()
    service = RolloutService(records, clock=lambda: dt.datetime(2027, 1, 4, tzinfo=dt.UTC))
    service.notify("bench", "CH-DUAL-A", "2.2", release_note="RN", severity=Severity.LOW,
                   priority=Priority.LOW)
    rollout = service.rollout("bench")
    for ch in rollout.eligible.values():
        service.planned(rollout, ch)
    return chs / (time.perf_counter() - started)


def main() -> None:
    """Run the sizes asked for and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--memory-limit", default="4GB")
    args = parser.parse_args()
    rows = []
    for chs in args.sizes:
        wall_s, peak_mib, plan = run_plan(chs, args.memory_limit)
        steps = plan["steps_s"]
        assert isinstance(steps, dict)
        rows.append((f"{chs:>11,} CHs: wall time (whole process)", f"{wall_s:.2f} s", "-"))
        rows.append((f"{chs:>11,} CHs: peak RSS", f"{peak_mib:.0f} MiB", "-"))
        for name, seconds in steps.items():
            rows.append((f"{chs:>11,} CHs: step {name}", f"{seconds:.2f} s", "-"))
        rows.append((f"{chs:>11,} CHs: eligible / pilot / batches",
                     f"{plan['eligible']} / {plan['pilot']} / {plan['batches']}", "-"))
    rate = service_rate(100_000)
    rows.append(("in-memory service, 100,000 CHs (Python)", f"{rate:,.0f} CH/s", "-"))
    report(f"hanlab rollout plan (DuckDB, memory limit {args.memory_limit}, 2 threads, "
           f"{os.cpu_count()} CPUs)", rows)


if __name__ == "__main__":
    main()
