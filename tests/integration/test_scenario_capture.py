"""``hanlab scenario run --capture``: pcapng per band, DUIS log, per-band timing report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_capture_run_writes_captures_and_timings(tmp_path: Path) -> None:
    results, captures = tmp_path / "results", tmp_path / "caps"
    proc = subprocess.run(
        [sys.executable, "-m", "hanlab.cli", "scenario", "run", "meter-reading",
         "--rig", str(ROOT / "rigs" / "emulated-dual-band.yaml"),
         "--variant", "electricity-instantaneous", "--time-scale", "4",
         "--results", str(results), "--capture", str(captures)],
        capture_output=True, text=True, check=False, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1/1 variant runs passed, 2/2 SRs answered" in proc.stdout
    assert sorted(p.name.split("_")[1] for p in captures.glob("*.pcapng")) == [
        "2.4GHz", "subGHz"]
    duis_lines = (captures / "emulated-dual-band_duis.jsonl").read_text().splitlines()
    assert {json.loads(line)["kind"] for line in duis_lines} >= {"request", "ack", "response"}
    rows = [line.split(",") for line in (results / "timings.csv").read_text().splitlines()]
    header = rows[0]
    srs = {(r[header.index("sr_variant")], r[header.index("device_role")]) for r in rows[1:]}
    assert {("4.1.1", "ESME"), ("4.1.2", "ESME")} <= srs
    assert json.loads((results / "timings.json").read_text())
