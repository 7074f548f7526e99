"""The lab rehearsal of a CH firmware roll-out (issue 12 item 5) on the bundled two-rig
emulated lab: pilot on the single-band rig, an incident halts the roll-out and a due
deployment is held, the DCC proceeds, the dual-band rig in the safe launch; every device
back after each upgrade; the impact report has before/after rows for both bands. The CLI
runs once as the installed console script (and its error paths)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanlab.config.loader import load_lab
from hanlab.config.models import Lab
from hanlab.firmware.ch_image import ChImage
from hanlab.firmware.rehearsal import plan_for, rehearse
from hanlab.labdata import default_lab
from tests.integration.lab_util import fast_duis, running_lab
from tests.integration.test_cli_errors import run_hanlab

IMAGE = ChImage(version="CH-EMU-2.0.0", chts_version="CHTS v1.1", zigbee_stack="R22",
                se_version="1.4", reboot_s=20.0)


def _lab() -> Lab:
    lab = load_lab(default_lab())
    config = lab.config.model_copy(update={"duis": fast_duis()})
    return lab.model_copy(update={"config": config})


async def test_rehearsal_phases_devices_back_and_both_bands(tmp_path: Path) -> None:
    lab = _lab()
    plan = plan_for(lab)
    lines: list[str] = []
    async with running_lab(lab, tmp_path) as runtime:
        result = await rehearse(runtime, IMAGE, plan, progress=lines.append)
    print("\n".join(lines))
    events = [(e["phase"], e["event"], e.get("rig")) for e in result["timeline"]]
    pilot, launch = plan.pilot[0], plan.safe_launch[0]
    index = {key: i for i, key in reversed(list(enumerate(events)))}
    assert index[("pilot", "upgraded", pilot)] < index[("incident", "incident", None)]
    assert index[("incident", "deploy_refused", None)] < index[("incident", "proceed", None)]
    assert index[("incident", "proceed", None)] < index[("safe_launch", "upgraded", launch)]
    halted = events[index[("incident", "incident", None)]:index[("incident", "proceed", None)]]
    assert not [e for e in halted if e[1] in ("order", "upgraded")]  # nothing while paused
    orders = result["orders"]
    assert [(o["guid"], o["group"]) for o in orders] == [
        (result["rigs"][pilot]["guid"], "pilot"), (result["rigs"][launch]["guid"], "safe_launch")]
    for rig in plan.rigs:
        upgrade = result["rigs"][rig]["upgrade"]
        assert upgrade["missing"] == [] and upgrade["devices"]
        assert all(d["back"] for d in upgrade["devices"])
        assert result["rigs"][rig]["outcome"]["success"]
    bands = {row["band"] for row in result["impact"]["timings"]
             if row["n_before"] and row["n_after"]}
    assert {"2.4GHz", "subGHz"} <= bands, bands


@pytest.mark.parametrize("case", ["unknown rig", "no emulated rig", "image already run",
                                  "empty image", "no safe launch"])
def test_rehearse_errors_are_one_line_exit_2(case: str, tmp_path: Path) -> None:
    rigs = Path(__file__).resolve().parents[2] / "rigs"
    args, needle = {
        "unknown rig": (["--image", "CH-EMU-2.0.0", "--pilot", "nope"], "--pilot nope"),
        "no emulated rig": ([str(rigs / "replay-sinope.yaml"), "--image", "CH-EMU-2.0.0"],
                            "no emulated rig"),
        "image already run": (["--image", "CH-EMU-1.4.2"], "already runs it"),
        "empty image": (["--image", ""], "--image ''"),
        "no safe launch": ([str(rigs / "emulated-dual-band.yaml"), "--image", "X"],
                           "none is left for the safe launch"),
    }[case]
    result = run_hanlab("firmware", "rehearse", *args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and needle in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything started


def test_rehearse_cli_writes_timeline_and_impact(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_hanlab("firmware", "rehearse", "--image", "CH-EMU-2.0.0", "--time-scale",
                        "40", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    for needle in ("pilot: emulated-single-band", "devices back 7/7", "emergency stop",
                   "is held (rollout-halted)", "safe launch batch 1: emulated-dual-band",
                   "roll-out complete", "subGHz"):
        assert needle in text, (needle, text)
    record = json.loads((out / "rehearsal.json").read_text())
    assert [o["group"] for o in record["orders"]] == ["pilot", "safe_launch"]
    assert {"available", "pilot_ended", "incident", "decision", "activated"} <= {
        n["kind"] for n in record["notices"]}
    assert all(r["outcome"]["success"] for r in record["rigs"].values())
    impact = json.loads((out / "impact.json").read_text())
    assert {row["band"] for row in impact["timings"]} == {"2.4GHz", "subGHz"}
    assert 'id="ch-impact"' in (out / "impact.html").read_text()
    assert (out / "impact-emulated-dual-band.html").is_file()
    report = (out / "report.html").read_text()  # the campaign report's ch_impact section
    assert 'id="ch-impact"' in report and "rehearsal-CH-EMU-2.0.0" in report
    assert "job_records" not in record
