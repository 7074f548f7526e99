"""The scenario library (issue 5, item 3): seed 000's 18 business scenarios and 80 variants,
seed 001's Change of Supplier process, all valid against the model and the SR catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlab.cli import main
from hanlab.duis.catalogue import sr
from hanlab.errors import ConfigError
from hanlab.scenarios import (
    SrStep,
    WaitAlertStep,
    get_scenario,
    load_library,
    load_scenario_file,
)
from hanlab.scenarios.models import CONCRETE_ROLES

# Seed 000, "Business Scenario / Business Scenario Variants" summary table.
SEED_000_VARIANTS = {
    "install-and-commission": 4, "no-wan-installation": 4, "prepayment-top-up": 2,
    "comms-hub-replacement": 4, "ppmid": 5, "tariff-update": 2, "change-of-mode": 4,
    "firmware-management": 4, "change-of-supplier": 8, "organisation-certificate-update": 2,
    "device-certificate-update": 3, "schedule-management": 2, "price-update": 2,
    "in-home-display": 4, "change-of-tenancy": 12, "decommission": 4, "meter-reading": 10,
    "prepayment-data": 4,
}

# Seed 000 requirements with scenarios of their own (not business scenarios): DIT.9's three
# cases of CH upgrade with ZigBee 1.2a Devices.
SEED_000_REQUIREMENT_VARIANTS = {"ch-firmware-upgrade": 3}


def test_seed_000_has_18_scenarios_and_80_variants() -> None:
    library = load_library()
    seed_000 = {name: s for name, s in library.items() if s.seed == "000"
                and name not in SEED_000_REQUIREMENT_VARIANTS}
    assert {n: len(s.variants) for n, s in seed_000.items()} == SEED_000_VARIANTS
    assert len(seed_000) == 18
    assert sum(len(s.variants) for s in seed_000.values()) == 80
    assert {n: len(library[n].variants) for n in SEED_000_REQUIREMENT_VARIANTS} == (
        SEED_000_REQUIREMENT_VARIANTS)
    assert len(library) == 18 + 1 + len(SEED_000_REQUIREMENT_VARIANTS)
    assert library["change-of-supplier-process"].seed == "001"


def test_every_step_fits_the_catalogue_and_its_user_role() -> None:
    """Each SR's sending User role is eligible for it (DUIS 5.4 Service Request Matrix)."""
    problems = []
    for scenario in load_library().values():
        for variant in scenario.variants:
            for index, step in enumerate(scenario.steps_of(variant)):
                if not isinstance(step, SrStep):
                    continue
                user = step.user or variant.user_role
                if user not in sr(step.sr).eligible_user_roles:
                    problems.append(f"{scenario.name}/{variant.id} step {index + 1}: "
                                    f"SR {step.sr} not eligible for User role {user}")
                target = step.target or "DCC"
                role = variant.role_ref(target.split("#")[0]).split("#")[0]
                assert role in CONCRETE_ROLES
    assert not problems, "\n".join(problems)


def test_seed_sequences_spot_checks() -> None:
    """A few rows read off the seed's tables."""
    install = get_scenario("install-and-commission")
    steps = install.steps_of(install.variant("esme-credit"))
    srs = [s.sr for s in steps if isinstance(s, SrStep)]
    assert srs[:4] == ["8.11", "6.21", "8.1.1", "6.20.1"]
    assert isinstance(steps[1], WaitAlertStep) and steps[1].wait_alert == ["0x8F69", "N24"]
    cos = get_scenario("change-of-supplier")
    first = cos.steps_of(cos.variant("gain-gas-credit"))[:2]
    assert [(s.sr, s.target) for s in first if isinstance(s, SrStep)] == [
        ("6.23", "GSME"), ("6.23", "GPF")]
    tariff = get_scenario("tariff-update")
    optional = [s.sr for s in tariff.steps_of(tariff.variants[0])
                if isinstance(s, SrStep) and s.optional]
    assert optional == ["5.3", "5.1"]
    no_wan = get_scenario("no-wan-installation")
    gsme = no_wan.variant("gsme-credit")
    lcd = {s.sr: s.command_variant for s in no_wan.steps_of(gsme)
           if isinstance(s, SrStep) and s.command_variant}
    assert {"8.11": 2, "6.8": 6, "8.7.2": 2}.items() <= lcd.items()
    # 'no WAN': every device SR is delivered locally only (CV 2, or 6 when Critical).
    assert all(v.wan == "absent" for v in no_wan.variants)
    assert set(lcd.values()) == {2, 6} and lcd["1.1.1"] == 6 and lcd["6.21"] == 2


def test_change_of_supplier_has_two_users_in_order() -> None:
    """Seed 000 CoS: loss by the old supplier before the gain by the new one; seed 001:
    N27 / N17 checked at the old supplier, the missing SR areas with their update SRs."""
    cos = get_scenario("change-of-supplier")
    ids = [v.id for v in cos.variants]
    assert ids.index("loss-electricity-credit") < ids.index("gain-electricity-credit")
    assert {v.supplier for v in cos.variants if v.id.startswith("gain-")} == {"new"}
    assert {v.supplier for v in cos.variants if v.id.startswith("loss-")} == {"old"}
    process = get_scenario("change-of-supplier-process")
    steps = process.steps_of(process.variant("new-supplier-electricity"))
    first = steps[0]
    assert isinstance(first, SrStep) and (first.sr, first.supplier) == ("4.6.1", "old")
    waits = [s for s in steps if isinstance(s, WaitAlertStep)]
    assert [(w.wait_alert, w.supplier) for w in waits] == [(["N27"], "old"), (["N17"], "old")]
    srs = [s.sr for s in steps if isinstance(s, SrStep)]
    for area in ("6.14.1", "6.14.2", "8.11", "6.11", "7.12"):  # ALC, Device Logs, Time ...
        assert area in srs
    assert "7.4" not in srs  # Supply Status: the update SR, not the read


def test_local_delivery_command_variants_fit_criticality(tmp_path: Path) -> None:
    path = tmp_path / "lcd.yaml"
    path.write_text(
        "name: lcd\ntitle: t\nsource: s\nvariants:\n"
        "  - id: one\n    title: x\n    user_role: IS\n    wan: absent\n    steps:\n"
        "      - {sr: '4.1.1', target: ESME, command_variant: 6}\n"
        "      - {sr: '1.6', target: ESME, command_variant: 2}\n"
        "      - {sr: '4.1.1', target: ESME}\n")
    with pytest.raises(ConfigError) as caught:
        load_scenario_file(path)
    text = "\n".join(caught.value.problems)
    assert "CommandVariant 6 is for Critical SRs" in text
    assert "SR 1.6 is Critical: its Local Command Delivery is CommandVariant 6" in text
    path.write_text(
        "name: lcd\ntitle: t\nsource: s\nvariants:\n"
        "  - id: one\n    title: x\n    user_role: IS\n    wan: absent\n    steps:\n"
        "      - {sr: '4.1.1', target: ESME}\n")
    with pytest.raises(ConfigError, match=r"runs with no WAN: SR 4\.1\.1 needs Local Command"):
        load_scenario_file(path)


def test_bad_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "name: broken\ntitle: t\nsource: s\nvariants:\n"
        "  - id: one\n    title: x\n    user_role: IS\n    steps:\n"
        "      - {sr: '9.99', target: ESME}\n"
        "      - {sr: '5.1', target: ESME}\n"
        "      - {wait_alert: [bogus]}\n")
    with pytest.raises(ConfigError) as caught:
        load_scenario_file(path)
    text = "\n".join(caught.value.problems)
    assert f"{path}:9:" in text and "unknown Service Request variant '9.99'" in text
    assert f"{path}:10:" in text and "non-device SR" in text
    assert f"{path}:11:" in text and "not an alert code" in text


def test_unknown_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alias.yaml"
    path.write_text(
        "name: alias\ntitle: t\nsource: s\nvariants:\n"
        "  - {id: one, title: x, user_role: IS, steps: [{sr: '4.1.1', target: METER}]}\n")
    with pytest.raises(ConfigError, match="role METER is neither"):
        load_scenario_file(path)


def test_cli_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    main(["scenarios", "list"])
    out = capsys.readouterr().out
    assert "20 scenarios, 86 variants" in out
    main(["scenarios", "show", "ch-firmware-upgrade", "--variant", "upgrade-then-new-device"])
    out = capsys.readouterr().out
    assert "CH firmware" in out and "CH-EMU-1.1.0" in out and "NEWDEVICE" in out
    main(["scenarios", "show", "price-update", "--variant", "gas"])
    out = capsys.readouterr().out
    assert "1.2.1" in out and "Update Price" in out and "GSME" in out
    with pytest.raises(SystemExit) as exited:
        main(["scenarios", "show", "no-such-scenario"])
    assert exited.value.code == 2


def test_expect_response_is_validated_by_the_loader(tmp_path: Path) -> None:
    """``expect_response`` names a field the SR's response reports and a valid value."""
    path = tmp_path / "checks.yaml"
    path.write_text(
        "name: checks\ntitle: t\nsource: s\nvariants:\n"
        "  - id: one\n    title: x\n    user_role: IS\n    steps:\n"
        "      - {sr: '11.2', target: ESME, expect_response: {firmware_version: catalogue}}\n"
        "      - {sr: '11.2', target: ESME, expect_response: {firmware_version: '1.2'}}\n"
        "      - {sr: '4.1.1', target: ESME, expect_response: {firmware_version: catalogue}}\n"
        "      - {sr: '11.2', target: ESME, expect_response: {colour: blue}}\n")
    with pytest.raises(ConfigError) as caught:
        load_scenario_file(path)
    text = "\n".join(caught.value.problems)
    assert f"{path}:9:" not in text
    assert f"{path}:10:" in text and "'catalogue' or a file version" in text
    assert f"{path}:11:" in text and "SR 4.1.1's response does not report firmware_version" \
        in text
    assert f"{path}:12:" in text and "unknown field 'colour'" in text
    fm = get_scenario("firmware-management")
    last = fm.steps_of(fm.variant("activation-gas"))[-1]
    assert isinstance(last, SrStep) and last.sr == "11.2"
    assert last.expect_response == {"firmware_version": "catalogue"}
