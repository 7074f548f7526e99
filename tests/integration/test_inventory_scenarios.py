"""The scenarios that consume devices (issue 13 item 1) on both emulated rigs with the
emulated DCC's Smart Metering Inventory enforced: Comms Hub Replacement installs the spare
CH and decommissions the live one, the PPMID / IHD exchanges swap in the spare, the
decommission variants decommission a meter; the emulated DCC refuses nothing, and after
each variant the consumed devices are factory reset so repeats pass too. A rig without the
spares is refused before any SR, also through the installed ``hanlab``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hanlab.gbcs.eui64 import Eui64
from tests.integration.lab_util import DUAL, SINGLE, lab_of, run_job, running_lab
from tests.integration.test_cli_errors import run_hanlab

AFFECTED = ("comms-hub-replacement", "ppmid", "in-home-display", "decommission")


def _failures(jobs: list[dict[str, Any]]) -> list[str]:
    return [f"{s['scenario']}/{s['variant']} step {s['index']} SR {s['sr_variant']}: "
            f"{s['outcome']} {s['detail']}" for job in jobs for s in job["steps"]
            if s["status"] != "passed" and not s["optional"]]


@pytest.mark.parametrize("rig_file", [SINGLE, DUAL], ids=["single-band", "dual-band"])
async def test_consuming_variants_pass_with_the_inventory(rig_file: Path,
                                                          tmp_path: Path) -> None:
    name = rig_file.stem
    async with running_lab(lab_of(rig_file), tmp_path) as lab:
        jobs = [await run_job(lab, 120, rig=name, scenario=scenario) for scenario in AFFECTED]
        jobs.append(await run_job(lab, 120, rig=name, scenario="comms-hub-replacement",
                                  variants=["elec-only-site"], repeat=2))
        assert not _failures(jobs), "\n".join(_failures(jobs))
        assert all(job["state"] == "passed" for job in jobs)
        runtime = lab.runtimes[name]
        side = runtime.duis
        assert side.dcc.stats.refused == {}
        inventory = side.dcc.inventory
        # every device back as the rig file describes it (factory reset after each variant)
        assert all(entry.status == entry.initial for entry in inventory)
        spare = {d.role.value: Eui64.parse(d.eui64) for d in runtime.rig.devices if d.spare}
        live = {d.role.value: Eui64.parse(d.eui64) for d in reversed(runtime.rig.devices)
                if not d.spare}
        steps = [s for job in jobs for s in job["steps"]]
        restore = [s for s in steps if s["sr_variant"] == "8.12.1"]
        assert restore and {s["target_eui64"] for s in restore} == {spare["CHF"].duis}
        decommissioned = [s for s in steps if s["sr_variant"] == "8.3"
                          and s["scenario"] == "comms-hub-replacement"]
        assert len(decommissioned) == 6  # 4 variants, then one of them twice
        old_chf = [(c.old, c.new, c.sr) for c in inventory.devices[live["CHF"]].history]
        assert old_chf[:2] == [("Commissioned", "Decommissioned", "8.3"),
                               ("Decommissioned", "Commissioned", "factory-reset")]
        assert [c.sr for c in inventory.devices[live["GPF"]].history][:2] == [
            "8.3", "factory-reset"]  # the CHF's decommission takes its GPF
        assert [c.sr for c in inventory.devices[spare["CHF"]].history][:2] == [
            "install", "factory-reset"]
        new_ppmid = [(c.new, c.sr) for c in inventory.devices[spare["PPMID"]].history]
        assert new_ppmid[:3] == [("Whitelisted", "8.11"), ("Commissioned", "8.7.2"),
                                 ("Pending", "factory-reset")]
        assert [(c.new, c.sr) for c in inventory.devices[live["ESME"]].history][:2] == [
            ("Decommissioned", "8.3"), ("Commissioned", "factory-reset")]
        # the new PPMID and IHD joined the HAN for their exchange, and are back on the bench
        han = side.han
        assert {n.eui for n in han.spares} >= {spare["PPMID"], spare["IHD"]}
        assert all(d.joined for d in han.devices)
        path = side.log_path.with_name(f"{name}_dcc-inventory.json")
    saved = {d["device_id"]: d for d in json.loads(path.read_text())["devices"]}
    assert saved[live["CHF"].duis]["history"][0]["sr"] == "8.3"
    assert all(d["status"] == d["initial"] for d in saved.values())


def test_a_rig_without_spares_is_refused_by_the_cli(tmp_path: Path) -> None:
    """``hanlab scenario run`` of a consuming variant on a rig without spares: exit 2, one
    line naming the variant and the spare it lacks, no SR sent (no job recorded)."""
    rig = yaml.safe_load(SINGLE.read_text())
    rig["name"] = "no-spares"
    rig["devices"] = [d for d in rig["devices"] if not d.get("spare")]
    rig_file = tmp_path / "no-spares.yaml"
    rig_file.write_text(yaml.safe_dump(rig, sort_keys=False))
    result = run_hanlab("scenario", "run", "ppmid", "--rig", str(rig_file),
                        "--variant", "ppmid-exchange-electricity", "--variant",
                        "ppmid-rejoin-after-rekey", "--no-daemon", "--time-scale", "20",
                        "--out", str(tmp_path / "out"))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("hanlab: error: variants: rig no-spares lacks devices")
    assert "ppmid/ppmid-exchange-electricity needs 1 spare PPMID for NEW_PPMID " \
           "(the rig has 0)" in line and "spare: true" in line
    assert "ppmid-rejoin-after-rekey" not in line
    assert not list((tmp_path / "out").glob("jobs/*/job.json"))
