"""``hanlab scenario run`` as a process, in-process runtime: pcapng per band, the job's
DUIS log and record with the per-band timing report, the report printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.lab_util import stored_jobs

ROOT = Path(__file__).resolve().parents[2]


def test_run_writes_captures_and_timings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        ["hanlab", "scenario", "run", "meter-reading", "--rig", "emulated-dual-band",
         "--variant", "electricity-instantaneous", "--time-scale", "4", "--no-daemon",
         "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1/1 variant runs passed, 2/2 SRs answered" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert sorted(p.name.split("_")[1] for p in out.glob("*.pcapng")) == [
        "2.4GHz", "subGHz"]
    (job,) = stored_jobs(out)
    duis_lines = Path(job["duis_log"]).read_text().splitlines()
    assert {json.loads(line)["kind"] for line in duis_lines} >= {"request", "ack", "response"}
    srs = {(r["sr_variant"], r["device_role"]) for r in job["timings"]["rows"]}
    assert {("4.1.1", "ESME"), ("4.1.2", "ESME")} <= srs
    # the printed table fits 80 columns and no cell is cut
    table = [line for line in proc.stdout.splitlines() if line.startswith("2.4GHz")]
    assert table and all(len(line) <= 80 for line in table)
    assert "…" not in proc.stdout
