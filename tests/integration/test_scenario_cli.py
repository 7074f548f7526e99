"""``hanlab scenario run`` on the emulated dual-band rig with no daemon running: the same
lab runtime starts in-process for the run; progress lines, verdict, the job's record
(issue 9, item 4) and MQTT events."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlab.cli import main
from tests.integration.conftest import Mosquitto
from tests.integration.lab_util import stored_jobs
from tests.integration.mqtt_watch import Watcher

RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-dual-band.yaml"


def _job(out: Path) -> dict[str, object]:
    (record,) = stored_jobs(out)
    return record


def test_scenario_run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["scenario", "run", "ppmid", "--rig", str(RIG), "--variant",
          "esme-exchange-repairing", "--repeat", "2", "--time-scale", "20", "--no-daemon",
          "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "PASS ppmid/esme-exchange-repairing #1" in out
    assert "PASS ppmid/esme-exchange-repairing #2" in out
    assert "SR 8.7.1 Join Service (Critical) -> ESME#2" in out
    assert "2/2 variant runs passed, 8/8 SRs answered" in out
    record = _job(tmp_path)
    runs = record["variant_runs"]
    assert isinstance(runs, list) and len(runs) == 2 and all(r["passed"] for r in runs)
    steps = record["steps"]
    assert isinstance(steps, list)
    assert {s["target_eui64"] for s in steps if s["target_role"] == "PPMID"} == {
        "00-DB-12-00-00-00-D4-01"}


def test_scenario_run_targets_the_chosen_device(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--device GSME=<the sub-GHz GSME> makes every GSME step go to it, on sub-GHz."""
    main(["scenario", "run", "meter-reading", "--rig", str(RIG), "--variant",
          "gas-instantaneous", "--device", "GSME=00-DB-12-00-00-00-D2-02",
          "--time-scale", "20", "--no-daemon", "--out", str(tmp_path)])
    assert "1/1 variant runs passed" in capsys.readouterr().out
    record = _job(tmp_path)
    steps = record["steps"]
    assert isinstance(steps, list)
    assert {s["target_eui64"] for s in steps} == {"00-DB-12-00-00-00-D2-02"}
    assert {s["band"] for s in steps} == {"subGHz"}
    rows = record["timings"]["rows"]  # type: ignore[index]
    assert {r["band"] for r in rows} == {"subGHz"}


def test_scenario_run_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scenario", "run", "ppmid", "--rig", str(RIG), "--variant", "nope",
              "--no-daemon", "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert "has no variant 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "hanlab.db").exists() or not stored_jobs(tmp_path)  # none queued
    with pytest.raises(SystemExit) as exited:
        main(["scenario", "run", "ppmid", "--rig", str(RIG), "--device",
              "GSME=00-DB-12-00-00-00-D1-01", "--no-daemon", "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert "is a ESME, not a GSME" in capsys.readouterr().err


@pytest.mark.mosquitto
def test_scenario_run_publishes_to_mqtt(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Each step and each variant run reach the rig's broker as scenario_step /
    scenario_run, and the job's progress as job, on hanlab/v1/<lab>/<rig>/<kind>."""
    rig = tmp_path / RIG.name
    rig.write_text(RIG.read_text() + f"broker: {{host: 127.0.0.1, port: {mosquitto.port}}}\n")
    watcher = Watcher(mosquitto.port, client_id="scenario-watch")
    try:
        main(["scenario", "run", "meter-reading", "--rig", str(rig), "--variant",
              "gas-instantaneous", "--time-scale", "20", "--no-daemon",
              "--out", str(tmp_path / "r")])
        watcher.wait_for(lambda messages: any(
            m.payload.get("kind") == "job" and m.payload.get("state") == "passed"
            for m in messages), timeout_s=20)
    finally:
        watcher.close()
    steps = watcher.of_kind("scenario_step")
    runs = watcher.of_kind("scenario_run")
    assert [s["sr_variant"] for s in steps] == ["4.1.1", "4.1.2"]
    assert all(s["response_code"] == "I0" and s["target_role"] == "GSME" for s in steps)
    assert len(runs) == 1 and runs[0]["passed"] and runs[0]["srs_answered"] == 2
    topics = {m.topic for m in watcher.messages if m.payload.get("kind") == "scenario_run"}
    assert topics == {"hanlab/v1/lab/emulated-dual-band/scenario_run"}
