"""The results store (issue 10, item 4): one record per job in SQLite or PostgreSQL,
the same data from both, a database unreachable at start (one line, exit 2), and one
lost and back mid-run (writes spooled on disk, nothing lost)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hanlab.errors import BadInputError
from hanlab.runtime.jobs import JobRecord, JobSpec, JobStore
from hanlab.store import ResultsStore, open_store
from tests.integration.pg_util import Postgres

ROOT = Path(__file__).resolve().parents[2]


def _record(steps: int = 3) -> JobRecord:
    record = JobRecord.new(JobSpec(rig="r", scenario="meter-reading", variants=["x"],
                                   devices={"ESME": "00-DB-12-00-00-00-D1-01"}),
                           lab="lab", variants=["x"], steps_per_run=steps)
    record.state, record.started_ns = "running", record.submitted_ns + 1
    for i in range(steps):
        record.steps.append({
            "scenario": "meter-reading", "variant": "x", "repetition": 1, "index": i + 1,
            "kind": "sr", "status": "passed", "optional": False, "sr_variant": "4.1.1",
            "target_role": "ESME", "target_eui64": "00-DB-12-00-00-00-D1-01",
            "request_id": f"90-B3:00-DB:{i}", "outcome": "I0", "band": "subGHz",
            "match_level": "exact", "started_ns": 1_764_000_000_000_000_000 + i,
            "ended_ns": 1_764_000_000_500_000_000 + i, "duration_s": 0.5,
            "segments_ns": {"end_to_end": 500_000_000, "downstream": None}})
        record.exchanges.append({"request_id": f"90-B3:00-DB:{i}", "sr_variant": "4.1.1",
                                 "device_role": "ESME", "band": "subGHz", "kind": "sr",
                                 "outcome": "responded", "match_level": "exact",
                                 "segments_ns": {"end_to_end": 500_000_000 + i}})
    record.variant_runs.append({"scenario": "meter-reading", "variant": "x", "title": "X",
                                "repetition": 1, "passed": True, "duration_s": 1.25,
                                "failed_steps": []})
    record.timings = {"schema": 1, "exchanges": 3, "targets": {"4.1": 2.0}, "rows": [
        {"band": "subGHz", "sr_variant": "4.1.1", "device_role": "ESME",
         "segment": "end_to_end", "count": 3, "min_us": 500000.0, "p50_us": 500000.001,
         "p90_us": 500000.002, "p99_us": 500000.002, "max_us": 500000.002, "target_s": 2.0,
         "within_target": 3, "over_target": 0}]}
    record.captures = ["r_subGHz_20261201T000000Z.pcapng"]
    return record


def _roundtrip(store: ResultsStore) -> None:
    record = _record()
    store.put_job(record.to_dict())
    record.steps[0]["status"] = "failed"  # a changed list is rewritten
    record.steps.append(copy.deepcopy(record.steps[-1]) | {"index": 9})  # appended
    record.state = "failed"
    store.put_job(record.to_dict())
    assert store.get_job(record.id) == record.to_dict()
    assert JobRecord(**store.jobs(label="")[0][0]).to_dict() == record.to_dict()


def test_job_records_round_trip_in_sqlite_and_postgresql(tmp_path: Path,
                                                         postgres: Postgres) -> None:
    for url in (None, postgres.url):
        store = open_store(url, tmp_path / ("sqlite" if url is None else "pg"))
        try:
            _roundtrip(store)
        finally:
            store.close()


def test_a_job_store_reloads_and_interrupts_active_jobs(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "jobs", rigs=["r"])
    record = _record()
    first.add(record)
    first.db.close()
    again = JobStore(tmp_path / "jobs", rigs=["r"])
    (loaded,) = again.records.values()
    assert loaded.state == "interrupted" and loaded.steps == record.steps
    assert JobStore(tmp_path / "jobs", rigs=["other-rig"]).records == {}
    again.db.close()


def test_unreachable_database_at_start_is_one_line_exit_2(tmp_path: Path) -> None:
    from tests.integration.conftest import free_port

    url = f"postgresql+psycopg://hanlab@127.0.0.1:{free_port()}/hanlab"
    with pytest.raises(BadInputError, match="is unreachable"):
        open_store(url, tmp_path)
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: t\nrigs: [{ROOT / 'rigs' / 'emulated-single-band.yaml'}]\n"
                   f"store: {{url: '{url}'}}\napi: {{port: 0, tokens_file: "
                   f"{tmp_path / 'tokens.json'}}}\n")
    proc = subprocess.run(["hanlab", "up", str(lab), "--no-mqtt", "-q", "--out",
                           str(tmp_path / "out"), "--duration", "5"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "results store postgresql+psycopg://hanlab@127.0.0.1" in lines[0]
    bad = tmp_path / "lab-password.yaml"
    bad.write_text(lab.read_text().replace("hanlab@", "hanlab:secret@"))
    proc = subprocess.run(["hanlab", "rig", "validate", str(bad)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "store.url" in proc.stderr and "secret" not in proc.stderr


def test_database_lost_and_back_nothing_lost(tmp_path: Path, postgres: Postgres) -> None:
    store = open_store(postgres.url, tmp_path)
    try:
        record = _record(steps=1)
        store.put_job(record.to_dict())
        postgres.stop()
        records: list[dict[str, Any]] = []
        for i in range(5):  # the job goes on: every save lands in the spool
            record.steps.append(copy.deepcopy(record.steps[0]) | {"index": i + 2})
            store.put_job(record.to_dict())
            records.append(record.to_dict())
        assert store.degraded and store.spool_path.is_file()
        postgres.start()
        store.retry_s = 0.0
        assert store.flush() and not store.degraded and not store.spool_path.exists()
        assert store.get_job(record.id) == records[-1]
    finally:
        store.close()
