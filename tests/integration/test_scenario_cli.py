"""``hanlab scenario run`` on the emulated dual-band rig: progress lines, verdict, the run
store (issue 5, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlab.cli import main
from hanlab.scenarios.store import read_results

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
