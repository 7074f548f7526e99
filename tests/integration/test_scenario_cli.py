"""``hanlab scenario run`` on the emulated dual-band rig: progress lines, verdict, the run
store (issue 5, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlab.cli import main
from hanlab.scenarios.store import read_results
from tests.integration.conftest import Mosquitto
from tests.integration.mqtt_watch import Watcher

RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-dual-band.yaml"


def test_scenario_run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["scenario", "run", "ppmid", "--rig", str(RIG), "--variant",
          "esme-exchange-repairing", "--repeat", "2", "--time-scale", "20",
          "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert "PASS ppmid/esme-exchange-repairing #1" in out
    assert "PASS ppmid/esme-exchange-repairing #2" in out
    assert "SR 8.7.1 Join Service (Critical) -> ESME#2" in out
    assert "2/2 variant runs passed, 8/8 SRs answered" in out
    records = read_results(tmp_path)
    variants = [r for r in records if r["record"] == "variant"]
    assert len(variants) == 2 and all(r["passed"] for r in variants)
    steps = [r for r in records if r["record"] == "step"]
    assert {r["target_eui64"] for r in steps if r["target_role"] == "PPMID"} == {
        "00-DB-12-00-00-00-D4-01"}


def test_scenario_run_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scenario", "run", "ppmid", "--rig", str(RIG), "--variant", "nope"])
    assert exited.value.code == 2
    assert "has no variant 'nope'" in capsys.readouterr().err


@pytest.mark.mosquitto
def test_scenario_run_publishes_to_mqtt(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Each step and each variant run reach the rig's broker as scenario_step /
    scenario_run on hanlab/v1/<lab>/<rig>/<kind>."""
    rig = tmp_path / RIG.name  # the sniffers' rig_file names the rig file by this name
    rig.write_text(RIG.read_text() + f"broker: {{host: 127.0.0.1, port: {mosquitto.port}}}\n")
    watcher = Watcher(mosquitto.port, client_id="scenario-watch")
    try:
        main(["scenario", "run", "meter-reading", "--rig", str(rig), "--variant",
              "gas-instantaneous", "--time-scale", "20", "--results", str(tmp_path / "r")])
        watcher.wait_for(lambda messages: any(
            m.payload.get("kind") == "scenario_run" for m in messages), timeout_s=20)
    finally:
        watcher.close()
    steps = watcher.of_kind("scenario_step")
    runs = watcher.of_kind("scenario_run")
    assert [s["sr_variant"] for s in steps] == ["4.1.1", "4.1.2"]
    assert all(s["response_code"] == "I0" and s["target_role"] == "GSME" for s in steps)
    assert len(runs) == 1 and runs[0]["passed"] and runs[0]["srs_answered"] == 2
    topics = {m.topic for m in watcher.messages if m.payload.get("kind") == "scenario_run"}
    assert topics == {"hanlab/v1/lab/emulated-dual-band/scenario_run"}
