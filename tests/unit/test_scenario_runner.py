"""Runner pieces without a network: role resolution, placeholders, bodies, the run store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from hanlab.config import load_rig
from hanlab.duis.client import DuisClient
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64
from hanlab.scenarios.bodies import BODY_ELEMENTS, build_body
from hanlab.scenarios.loader import load_library
from hanlab.scenarios.models import SrStep, Variant, substitute
from hanlab.scenarios.runner import ScenarioRunner, UnresolvedRoleError, devices_by_role
from hanlab.scenarios.store import RunStore, read_results

RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-dual-band.yaml"


class _Client:
    def __init__(self) -> None:
        self.users: dict[Eui64, Any] = {}
        self.schema = None


def _runner() -> ScenarioRunner:
    rig, _ = load_rig(RIG)
    return ScenarioRunner(cast(DuisClient, _Client()), devices_by_role(rig), rig=rig.name,
                          users={"IS": Eui64.parse("90-B3-D5-1F-30-01-00-00")})


def test_roles_resolve_from_the_rig_file() -> None:
    runner = _runner()
    variant = Variant(id="v", title="t", user_role="IS",
                      roles={"METER": "GSME", "NEW_ESME": "ESME#2"}, steps=[])
    assert runner.resolve("METER", variant).duis == "00-DB-12-00-00-00-D2-01"
    assert runner.resolve("NEW_ESME", variant).duis == "00-DB-12-00-00-00-D1-02"
    assert runner.resolve("GSME#2", variant).duis == "00-DB-12-00-00-00-D2-02"
    assert runner.resolve("DCC", variant).duis == "90-B3-D5-1F-30-00-00-02"
    assert runner.concrete_role("METER", variant) == "GSME"
    with pytest.raises(UnresolvedRoleError, match="has no HHT"):
        runner.resolve("HHT", variant)
    with pytest.raises(UnresolvedRoleError, match="has no ESME#3"):
        runner.resolve("ESME#3", variant)
    with pytest.raises(BadInputError, match="no DUIS User with role GS"):
        runner.user_eui64("GS")


def test_placeholders_and_bodies() -> None:
    params = {"DeviceID": "{PPMID}", "Nested": {"Other": ["{ESME}", "x"]}, "N": 3}
    done = substitute(params, {"PPMID": "00-DB-12-00-00-00-D4-01",
                               "ESME": "00-DB-12-00-00-00-D1-01"})
    assert done == {"DeviceID": "00-DB-12-00-00-00-D4-01",
                    "Nested": {"Other": ["00-DB-12-00-00-00-D1-01", "x"]}, "N": 3}
    body = build_body("8.11", {"DeviceID": "00-DB-12-00-00-00-D4-01", "RequestType": "Add"})
    assert body.tag.endswith("}UpdateHANDeviceLog")
    assert [child.text for child in body] == ["00-DB-12-00-00-00-D4-01", "Add"]
    used = {s.sr for sc in load_library().values() for v in sc.variants
            for s in sc.steps_of(v) if isinstance(s, SrStep)}
    assert used <= set(BODY_ELEMENTS)
    with pytest.raises(BadInputError, match="no DUIS Body element"):
        build_body("14.1", {})


def test_run_store_appends_jsonl(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.write({"record": "step", "index": 1})
    with RunStore(tmp_path) as store:
        store.write({"record": "variant", "passed": True})
        store.close()
    records = read_results(tmp_path)
    assert [r["record"] for r in records] == ["step", "variant"]
    assert all(r["schema"] == 1 for r in records)


async def test_ch_firmware_step_outcomes() -> None:
    """A ch_firmware step passes when every device is back, fails naming those that are
    not, is ``requested`` on a real rig, and fails without a DCC to deploy it."""
    from hanlab.scenarios.models import Scenario

    scenario = Scenario.model_validate({
        "name": "chfw", "title": "t", "source": "test", "variants": [{
            "id": "v", "title": "v", "user_role": "IS", "roles": {"NEW": "IHD"},
            "steps": [{"ch_firmware": {"version": "CH-2"}, "connect": ["NEW"]}]}]})
    calls: list[tuple[str, str, list[Eui64], float]] = []
    answers = iter([{"devices": [{}, {}], "missing": []},
                    {"devices": [{}], "missing": ["GSME-D2-01"]},
                    {"requested": True, "missing": []}])

    async def hook(image: Any, mode: str, connect: list[Eui64],
                   timeout_s: float) -> dict[str, Any]:
        calls.append((image.version, mode, connect, timeout_s))
        return next(answers)

    runner = _runner()
    runner.ch_firmware = hook
    outcomes = []
    for _ in range(3):
        result = await runner.run_variant(scenario, scenario.variants[0])
        step = result.steps[0]
        outcomes.append((result.passed, step.kind, step.outcome, step.detail[:22]))
    assert outcomes == [(True, "ch_firmware", "rejoined", "2 devices back on CH-2"),
                        (False, "ch_firmware", "timeout", "not back within 600 s "),
                        (True, "ch_firmware", "requested", "the DCC was asked to d")]
    assert calls[0] == ("CH-2", "upgrade", [Eui64.parse("00-DB-12-00-00-00-D3-01")], 600.0)
    runner.ch_firmware = None
    result = await runner.run_variant(scenario, scenario.variants[0])
    assert not result.passed and "no DCC" in result.steps[0].detail
