"""Test plans (issue 10, item 2): validation with file:line errors before anything runs,
expansion over rigs x variants x devices, the window, and device records (item 1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hanlab.campaign.plan import Window, expand, load_plan, select
from hanlab.cli import main
from hanlab.config.loader import load_rig
from hanlab.errors import ConfigError
from hanlab.scenarios.loader import load_library

ROOT = Path(__file__).resolve().parents[2]
OVERNIGHT = ROOT / "plans" / "overnight-emulated.yaml"
LAB = ROOT / "labs" / "default.yaml"


def _plan(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(f"name: t\nlab: {LAB}\n{body}")
    return path


def test_overnight_plan_covers_every_variant_and_every_selected_device() -> None:
    loaded = load_plan(OVERNIGHT)
    jobs = [j for j in expand(loaded) if j.line_index == 1]
    variants = {f"{s.name}/{v.id}" for s in load_library().values() for v in s.variants}
    for rig in loaded.lab.rigs:
        on_rig = [j for j in jobs if j.rig == rig.name]
        assert {f"{j.scenario}/{j.variant}" for j in on_rig} == variants
        # every installed device of a role a variant addresses is the chosen one in some
        # job (spares are never selected: the variants consuming them take them)
        for job in on_rig:
            same = [j for j in on_rig if (j.scenario, j.variant) == (job.scenario,
                                                                     job.variant)]
            for role in job.devices:
                chosen = {j.devices[role] for j in same}
                assert chosen == {d.eui64 for d in rig.devices
                                  if d.role.value == role and not d.spare}
    sub_ghz = {e for j in jobs for e in j.involved} & {
        "00-DB-12-00-00-00-D2-02", "00-DB-12-00-00-00-D4-01"}
    assert len(sub_ghz) == 2  # the sub-GHz GSME and PPMID
    ci = select(expand(loaded), tags=["ci"])
    assert ci and all(j.line_index == 0 for j in ci)
    assert len(select(expand(loaded), limit_per_rig=3)) == 6


def test_product_and_explicit_combinations(tmp_path: Path) -> None:
    path = _plan(tmp_path, "rigs: [emulated-dual-band]\nlines:\n"
                 "  - {scenarios: [prepayment-top-up/via-wan], combine: product}\n"
                 "  - scenarios: [prepayment-top-up/via-wan]\n"
                 "    devices: {ESME: 00-DB-12-00-00-00-D1-02, GSME: first}\n")
    jobs = expand(load_plan(path))
    assert len([j for j in jobs if j.line_index == 0]) == 4
    (explicit,) = [j for j in jobs if j.line_index == 1]
    assert explicit.devices == {"ESME": "00-DB-12-00-00-00-D1-02",
                                "GSME": "00-DB-12-00-00-00-D2-01"}


@pytest.mark.parametrize(("body", "expected"), [
    ("rigs: [no-such-rig]\nlines: [{scenarios: all}]\n",
     ":3: rigs.0: lab "),
    ("lines:\n  - scenarios: [meter-reading/no-such-variant]\n",
     ":4: lines.0.scenarios.0: scenario meter-reading has no variant 'no-such-variant'"),
    ("lines:\n  - scenarios: [no-such-scenario]\n",
     ":4: lines.0.scenarios.0: no scenario 'no-such-scenario'"),
    ("lines:\n  - scenarios: [meter-reading/gas-midnight]\n"
     "    devices: {GSME: 00-DB-12-00-00-00-FF-FF}\n",
     ":5: lines.0.devices.GSME: no device 00-DB-12-00-00-00-FF-FF"),
    ("lines:\n  - scenarios: [meter-reading/gas-midnight]\n"
     "    devices: {GSME: 00-DB-12-00-00-00-D1-01}\n",
     ":5: lines.0.devices.GSME: 00-DB-12-00-00-00-D1-01 is a ESME, not a GSME"),
    ("lines:\n  - scenarios: [meter-reading/gas-midnight]\n"
     "    devices: {GSME: [00-DB-12-00-00-00-D2-02]}\n",
     ":5: lines.0.devices: the selection leaves role GSME empty on rig "
     "emulated-single-band"),
    ("window: {start: '25:00', stop: '06:00'}\nlines: [{scenarios: all}]\n",
     ":3: window.start: '25:00' is not a local time"),
])
def test_bad_plans_name_file_line_and_field(tmp_path: Path, body: str, expected: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = _plan(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    assert any(p.startswith(str(path)) and expected in p for p in caught.value.problems), \
        caught.value.problems
    with pytest.raises(SystemExit) as exited:
        main(["plan", "show", str(path)])
    assert exited.value.code == 2
    assert expected in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["campaign", "run", str(path), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert not (tmp_path / "out").exists()  # nothing ran, no store made


def test_plan_show_lists_jobs_and_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    main(["plan", "show", str(OVERNIGHT), "--tag", "ci"])
    out = capsys.readouterr().out
    assert "ppmid/ppmid-rejoin-after-rekey PPMID=D4-01 GSME=D2-02 [subGHz]" in out
    assert "8 jobs (0 not runnable: skipped)" in out and "estimated duration" in out


def test_window_spanning_midnight() -> None:
    window = Window(start="20:00", stop="06:00")
    at = dt.datetime(2026, 12, 1, 0, 0)
    assert window.seconds_until_open(at.replace(hour=23)) == 0
    assert window.seconds_until_open(at.replace(hour=5, minute=59)) == 0
    assert window.seconds_until_open(at.replace(hour=6)) == 14 * 3600
    assert Window(start="09:00", stop="17:00").seconds_until_open(
        at.replace(hour=8, minute=30)) == 1800


def test_device_records_in_the_emulated_rigs() -> None:
    for name in ("emulated-single-band", "emulated-dual-band"):
        rig, _ = load_rig(ROOT / "rigs" / f"{name}.yaml")
        for device in rig.devices:
            record = device.record()
            assert record["emulated"] is True
            for key in ("manufacturer", "model", "firmware_version", "gbcs_version",
                        "zigbee_stack", "silicon_vendor", "cpl_reference", "release_note"):
                assert record[key], (name, device.eui64, key)
            hub = device.role.value in ("CHF", "GPF")
            assert bool(record["chts_version"]) == hub
            assert bool(record["smets_version"]) != hub
            assert not {"install_code", "key"} & set(record)
        assert {d.silicon_vendor for d in rig.devices} >= {"Silicon Labs (emulated)",
                                                          "NXP (emulated)"}  # DIT.6


def test_a_chts_version_on_a_meter_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "rigs" / "emulated-single-band.yaml").read_text()
    bad = tmp_path / "rig.yaml"
    bad.write_text(text.replace("smets_version: SMETS2 v3.0", "chts_version: CHTS v1.2", 1))
    with pytest.raises(ConfigError, match="give smets_version, not chts_version"):
        load_rig(bad)


def test_a_rig_without_spares_skips_the_consuming_variants(tmp_path: Path) -> None:
    """The plan marks a variant that consumes a spare the rig lacks as skipped, naming
    what it lacks; the rig's other variants are planned as usual."""
    import yaml

    rig = yaml.safe_load((ROOT / "rigs" / "emulated-single-band.yaml").read_text())
    rig["name"] = "no-spares"
    rig["devices"] = [d for d in rig["devices"] if not d.get("spare")]
    (tmp_path / "no-spares.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    (tmp_path / "lab.yaml").write_text("name: nospares\nrigs: [no-spares.yaml]\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: t\nlab: lab.yaml\nrigs: [no-spares]\nlines:\n  - scenarios: "
                    "[ppmid/ppmid-exchange-gas, ppmid/ppmid-rejoin-after-rekey]\n")
    jobs = expand(load_plan(plan))
    (skipped,) = [j for j in jobs if j.skip]
    assert skipped.variant == "ppmid-exchange-gas" and skipped.skip == (
        "rig no-spares lacks what the variant consumes: 1 spare PPMID for NEW_PPMID "
        "(the rig has 0)")
    runnable = [j for j in jobs if not j.skip]
    assert runnable and {j.variant for j in runnable} == {"ppmid-rejoin-after-rekey"}
