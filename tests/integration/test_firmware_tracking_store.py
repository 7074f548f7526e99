"""SIP#7 Firmware Distribution Tracking (seed 003) in the results store's
``firmware_tracking`` table (migration 0002), on SQLite and a real PostgreSQL, through
the installed ``hanlab firmware tracking`` commands: update from a DUIS log, search
(CSV), reset by DCC, purge; and a store that cannot be reached refused in one line."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hanlab.store.db import ResultsStore
from hanlab.store.schema import firmware_tracking
from tests.integration.pg_util import Postgres

USER = "90-B3-D5-1F-30-01-00-00"
DCC = "90-B3-D5-1F-30-00-00-02"
ESME = "00-DB-12-00-00-00-C1-01"
GSME = "00-DB-12-00-00-00-C2-01"
RIG = Path(__file__).resolve().parents[2] / "hanlab/labdata/rigs/emulated-single-band.yaml"


def _hanlab(*args: str, check: bool = True,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["hanlab", "firmware", "tracking", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _duis_log(path: Path, t0_ns: int) -> Path:
    """SR 11.1 to the ESME (verified, activated) and one to the GSME (0x8F1C)."""
    def ack(counter: int, ts_s: float, sr: str = "11.1", target: str = DCC) -> list[Any]:
        base = {"user": USER, "request_id_text": f"{USER}:{target}:{counter}",
                "sr_variant": sr}
        return [{**base, "ts_ns": t0_ns + int(ts_s * 1e9) - 1, "kind": "request",
                 "xml": f"<DeviceIDList>{ESME if counter == 1 else GSME}</DeviceIDList>"},
                {**base, "ts_ns": t0_ns + int(ts_s * 1e9), "kind": "ack",
                 "response_code": "I0"}]

    def alert(device: str, code: str, ts_s: float) -> dict[str, Any]:
        return {"ts_ns": t0_ns + int(ts_s * 1e9), "kind": "alert", "alert_code": code,
                "response_id": f"{device}:{USER}:{int(ts_s)}", "sr_variant": None}

    entries = [*ack(1, 1), alert(ESME, "8F72", 5), *ack(2, 6, sr="11.3", target=ESME),
               alert(ESME, "8F66", 8), *ack(3, 10), alert(GSME, "8F1C", 20)]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'out' / 'hanlab.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The results store's URL, SQLite or PostgreSQL."""
    return _store_url(request, tmp_path)


def test_tracking_in_the_results_store(store_url: str, tmp_path: Path) -> None:
    t0_ns = time.time_ns() - 3 * 86_400 * 10**9
    log = _duis_log(tmp_path / "duis.jsonl", t0_ns)
    spool = str(tmp_path / "spool")
    done = _hanlab("update", "--duis-log", str(log), "--store", store_url, "--rig", str(RIG))
    assert done.stdout.startswith("2 tracked request/device pairs")
    csv = _hanlab("search", "--store", store_url, "--device-id", ESME, "--csv").stdout
    row = csv.splitlines()[1].split(",")
    assert row[0] == f"{USER}:{DCC}:1" and row[3] == "Firmware Activated" \
        and row[-1] == "Complete"
    # The rows are the table's: current status and completion as columns, history JSON.
    db = ResultsStore(store_url, Path(spool))
    try:
        rows = {r["device_id"]: r for r in db.rows(firmware_tracking)}
    finally:
        db.close()
    assert rows[GSME]["completion_status"] == "Failed"
    assert rows[GSME]["current_status"] == "Not Delivered at HAN"
    assert [c["status"] for c in rows[ESME]["history"]] == [
        "Accepted by DSP", "Successful HAN Transfer", "Firmware Activated"]
    # A second update from the same log changes nothing; reset and purge persist.
    _hanlab("update", "--duis-log", str(log), "--store", store_url, "--rig", str(RIG))
    _hanlab("reset", "--store", store_url, "--sr-id", f"{USER}:{DCC}:3", "--device-id",
            GSME, "--reason", "User disagreed")
    text = _hanlab("search", "--store", store_url, "--device-id", GSME).stdout
    assert "Reset by DCC" in text and "In Progress" in text
    assert _hanlab("purge", "--store", store_url, "--retention-days", "2").stdout \
        == "1 purged, 1 kept\n"  # the ESME's, 3 days old; the GSME was reset just now
    assert _hanlab("search", "--store", store_url, "--device-id", ESME, "--csv"
                   ).stdout.count("\n") == 1


def test_an_unreachable_store_is_refused_in_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://hanlab:s3cret@127.0.0.1:9/hanlab"
    done = _hanlab("search", "--store", url, "--device-id", ESME, check=False, cwd=tmp_path)
    assert done.returncode == 2, done
    assert "results store" in done.stderr and "unreachable" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


def test_migration_0002_builds_the_schema_table(tmp_path: Path) -> None:
    """The migrated database's ``firmware_tracking`` is :mod:`hanlab.store.schema`'s."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from hanlab.store.schema import metadata

    db = ResultsStore(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "spool")
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        db.close()
    assert [d for d in diff if "firmware_tracking" in repr(d)] == []
    assert not diff, diff
