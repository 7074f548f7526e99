"""The emulated DCC's Smart Metering Inventory: DUIS device statuses, transitions by SR,
refusals with the DUIS Response Code, persistence; scenario consumption of spares."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, cast

import pytest

from hanlab.config import load_rig
from hanlab.duis import RequestId, build_request, parse_request, sr_element
from hanlab.duis.client import DuisClient
from hanlab.emulator.dcc.inventory import DeviceStatus, Inventory, InventoryDevice
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.duis_side import rig_inventory
from hanlab.scenarios.models import Scenario
from hanlab.scenarios.runner import MissingDevicesError, ScenarioRunner, devices_by_role

S = DeviceStatus
USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
DCC = Eui64.parse("90-B3-D5-1F-30-00-00-02")
CHF, GPF = Eui64.parse("00-DB-12-00-00-00-00-01"), Eui64.parse("00-DB-12-00-00-00-00-02")
ESME, PPMID = Eui64.parse("00-DB-12-00-00-00-00-03"), Eui64.parse("00-DB-12-00-00-00-00-04")
IHD = Eui64.parse("00-DB-12-00-00-00-00-05")
TYPES = {CHF: "CHF", GPF: "GPF", ESME: "ESME", PPMID: "PPMID", IHD: "IHD"}
RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-single-band.yaml"


def _inventory(status: DeviceStatus, *, path: Path | None = None) -> Inventory:
    """Every device in ``status`` (initial ``Commissioned``); the CHF and GPF one CH."""
    entries = [InventoryDevice(eui, kind, status, S.COMMISSIONED) for eui, kind in TYPES.items()]
    entries[0].hub, entries[1].hub = GPF, CHF
    return Inventory(entries, path=path)


def _request(variant: str, target: Eui64, body: str, content: Any = None, cv: int = 1) -> Any:
    return parse_request(build_request(
        request_id=RequestId(USER, target, 7), command_variant=cv,
        service_reference_variant=variant, body=sr_element(body, content)))


def _decommission(device: Eui64) -> Any:
    return _request("8.3", DCC, "DecommissionDevice", {"DeviceID": device.duis}, cv=8)


def _read(target: Eui64) -> Any:
    return _request("4.1.1", target, "ReadInstantaneousImportRegisters")


# (status of every device, request, DUIS Response Code of the refusal or None)
REFUSALS = [
    (S.COMMISSIONED, _read(ESME), None),
    (S.INSTALLED_NOT_COMMISSIONED, _read(ESME), None),
    (S.DECOMMISSIONED, _read(ESME), "E5"),
    (S.WITHDRAWN, _read(ESME), "E5"),
    (S.PENDING, _read(ESME), "E5"),
    (S.SUSPENDED, _read(ESME), "E5"),
    (S.SUSPENDED, _request("11.3", ESME, "ActivateFirmware",
                           {"ExecutionDateTime": "2026-01-01T00:00:00Z"}), None),
    (S.COMMISSIONED, _decommission(ESME), None),
    (S.DECOMMISSIONED, _decommission(ESME), "E5"),
    (S.COMMISSIONED, _decommission(GPF), "E11"),  # seed 000: GPF, IHD, CAD can't be
    (S.COMMISSIONED, _decommission(IHD), "E11"),
    (S.DECOMMISSIONED, _request("8.2", DCC, "ReadInventory", {"DeviceID": ESME.duis}, cv=8),
     None),
    (S.DECOMMISSIONED, _request("8.8.2", ESME, "UnjoinService",
                                {"OtherDeviceID": PPMID.duis}), "E5"),
]


@pytest.mark.parametrize(("status", "request_", "code"), REFUSALS)
def test_refusals_by_status(status: DeviceStatus, request_: Any, code: str | None) -> None:
    inventory = _inventory(status)
    refusal = inventory.refusal(request_)
    assert (refusal[0] if refusal else None) == code
    if refusal:
        assert request_.service_reference_variant in refusal[1]
        assert (str(status) if code == "E5" else "cannot be decommissioned") in refusal[1]


def test_named_device_status_is_checked() -> None:
    """A device the body names counts: joining a decommissioned PPMID to a live ESME is
    refused; an unjoin of it is not (seed 000: unjoin may follow the decommission)."""
    inventory = _inventory(S.COMMISSIONED)
    inventory.set_status(PPMID, S.DECOMMISSIONED, "8.3")
    join = _request("8.7.2", ESME, "JoinService", {"OtherDeviceID": PPMID.duis})
    unjoin = _request("8.8.2", ESME, "UnjoinService", {"OtherDeviceID": PPMID.duis})
    refusal = inventory.refusal(join)
    assert refusal is not None and refusal[0] == "E5" and PPMID.duis in refusal[1]
    assert inventory.refusal(unjoin) is None


# (initial status of the device, how the SR lands, request, device, status after)
TRANSITIONS = [
    (S.COMMISSIONED, "accepted", _decommission(ESME), ESME, S.DECOMMISSIONED),
    (S.PENDING, "answered", _request("8.11", CHF, "UpdateHANDeviceLog",
                                     {"DeviceID": PPMID.duis, "RequestType": "Add"}),
     PPMID, S.WHITELISTED),
    (S.WHITELISTED, "answered", _request("8.11", CHF, "UpdateHANDeviceLog",
                                         {"DeviceID": PPMID.duis, "RequestType": "Remove"}),
     PPMID, S.PENDING),
    (S.COMMISSIONED, "answered", _request("8.11", CHF, "UpdateHANDeviceLog",
                                          {"DeviceID": PPMID.duis, "RequestType": "Remove"}),
     PPMID, S.COMMISSIONED),
    (S.WHITELISTED, "answered", _request("8.7.2", ESME, "JoinService",
                                         {"OtherDeviceID": PPMID.duis}), PPMID, S.COMMISSIONED),
    (S.INSTALLED_NOT_COMMISSIONED, "answered", _request("8.1.1", ESME, "CommissionDevice"),
     ESME, S.COMMISSIONED),
    (S.PENDING, "accepted", _request("8.4", DCC, "UpdateInventory", {
        "DeviceID": ESME.duis, "UpdateDeviceStatusExceptCH": "InstalledNotCommissioned"}, cv=8),
     ESME, S.INSTALLED_NOT_COMMISSIONED),
    (S.COMMISSIONED, "accepted", _request("8.4", DCC, "UpdateInventory", {
        "DeviceID": CHF.duis, "UpdateDeviceStatusCH": "Withdrawn"}, cv=8), CHF, S.WITHDRAWN),
    (S.PENDING, "accepted", _request("8.14.1", DCC, "CHFInstallSuccessSMWAN",
                                     {"DeviceID": CHF.duis}, cv=8), CHF, S.COMMISSIONED),
    (S.COMMISSIONED, "accepted", _request("8.14.2", DCC, "CHFInstallSuccessNoSMWAN",
                                          {"DeviceID": CHF.duis}, cv=8), CHF, S.COMMISSIONED),
    (S.PENDING, "accepted", _request("8.14.2", DCC, "CHFInstallSuccessNoSMWAN",
                                     {"DeviceID": CHF.duis}, cv=8),
     GPF, S.INSTALLED_NOT_COMMISSIONED),  # the CH's GPF with it
    (S.COMMISSIONED, "accepted", _request("8.14.3", DCC, "CHFFaultReturn",
                                          {"DeviceID": CHF.duis}, cv=8), CHF, S.WITHDRAWN),
]


@pytest.mark.parametrize(("initial", "lands", "request_", "device", "after"), TRANSITIONS)
def test_transitions(initial: DeviceStatus, lands: str, request_: Any, device: Eui64,
                     after: DeviceStatus) -> None:
    inventory = _inventory(S.COMMISSIONED)
    inventory.devices[device].status = initial
    getattr(inventory, lands)(request_)
    entry = inventory.devices[device]
    assert entry.status == after
    if after != initial:
        change = entry.history[-1]
        assert (change.old, change.new, change.sr) == (
            initial, after, request_.service_reference_variant)
        assert change.request_id == str(request_.request_id) and change.ts_ns > 0


def test_pre_notification_adds_a_pending_device() -> None:
    inventory = _inventory(S.COMMISSIONED)
    new = Eui64.parse("00-DB-12-00-00-00-00-09")
    inventory.accepted(_request("12.2", DCC, "DevicePrenotification", {
        "DeviceID": new.duis, "DeviceManufacturer": "AB01", "DeviceModel": "010A",
        "DeviceType": "ESME"}, cv=8))
    entry = inventory.get(new)
    assert entry is not None and (entry.device_type, entry.status) == ("ESME", S.PENDING)
    assert [(c.old, c.new, c.sr) for c in entry.history] == [(None, S.PENDING, "12.2")]
    refusal = inventory.refusal(_read(new))
    assert refusal is not None and refusal[0] == "E5"


def test_chf_decommission_takes_its_gpf_and_factory_reset_restores_both() -> None:
    inventory = _inventory(S.COMMISSIONED)
    inventory.accepted(_decommission(CHF))
    assert (inventory.status(CHF), inventory.status(GPF)) == (S.DECOMMISSIONED,
                                                              S.DECOMMISSIONED)
    assert inventory.factory_reset(CHF)
    assert (inventory.status(CHF), inventory.status(GPF)) == (S.COMMISSIONED, S.COMMISSIONED)
    assert inventory.devices[GPF].history[-1].sr == "factory-reset"


def test_read_inventory_and_delete_device() -> None:
    from lxml import etree

    from hanlab.duis.xml import SR_NS, build_acknowledgement, parse_xml

    inventory = _inventory(S.COMMISSIONED)
    inventory.accepted(_decommission(ESME))
    request = _request("8.2", DCC, "ReadInventory", {"DeviceID": ESME.duis}, cv=8)
    root = parse_xml(build_acknowledgement(
        request_id=request.request_id, service_reference="8.2",
        service_reference_variant="8.2", response_date_time=dt.datetime.now(dt.UTC)))
    inventory.read_response(root, request)
    devices = root.findall(f".//{{{SR_NS}}}DSPInventory/{{{SR_NS}}}Device")
    assert [[child.text for child in d] for d in devices] == [
        [ESME.duis, "ESME", "Decommissioned", "", ""]]
    assert etree.QName(devices[0][2]).localname == "DeviceStatus"
    inventory.accepted(_request("8.4", DCC, "UpdateInventory",
                                {"DeviceID": ESME.duis, "DeleteDevice": {}}, cv=8))
    assert inventory.get(ESME) is None


def test_persisted_and_loaded(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    inventory = _inventory(S.COMMISSIONED, path=path)
    inventory.accepted(_decommission(ESME))
    again = _inventory(S.COMMISSIONED, path=path)
    assert again.status(ESME) == S.DECOMMISSIONED
    assert [(c.old, c.new, c.sr) for c in again.devices[ESME].history] == [
        (S.COMMISSIONED, S.DECOMMISSIONED, "8.3")]
    data = json.loads(path.read_text())
    assert {d["device_id"] for d in data["devices"]} == {e.duis for e in TYPES}
    data["devices"][2]["status"] = "Broken"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match=r"inv\.json: devices\[2\]"):
        _inventory(S.COMMISSIONED, path=path)
    path.write_text("{not json")
    with pytest.raises(BadInputError, match="not an emulated DCC inventory"):
        _inventory(S.COMMISSIONED, path=path)


def test_rig_inventory_spares_pending_and_paired() -> None:
    rig, _ = load_rig(RIG)
    inventory = rig_inventory(rig, None)
    spares = {d.eui64 for d in rig.devices if d.spare}
    assert spares and all(inventory.status(Eui64.parse(e)) == S.PENDING for e in spares)
    chf, spare_chf = (Eui64.parse(d.eui64) for d in rig.devices if d.role.value == "CHF")
    assert inventory.devices[chf].status == S.COMMISSIONED
    assert inventory.devices[chf].hub != inventory.devices[spare_chf].hub
    assert inventory.install(spare_chf)
    assert inventory.status(spare_chf) == S.COMMISSIONED
    assert inventory.status(inventory.devices[spare_chf].hub or chf) == S.PENDING


class _Client:
    def __init__(self) -> None:
        self.users: dict[Eui64, Any] = {}
        self.schema = None


async def test_runner_refuses_a_rig_without_the_spares() -> None:
    """Before any SR: the reason names the variant and the spare it lacks."""
    rig, _ = load_rig(RIG)
    scenario = Scenario.model_validate({
        "name": "x", "title": "x", "source": "test", "variants": [{
            "id": "swap", "title": "x", "user_role": "IS",
            "consumes": [{"role": "PPMID", "alias": "OLD"},
                         {"role": "PPMID", "spare": True, "alias": "NEW"},
                         {"role": "PPMID", "spare": True, "alias": "NEWER"}],
            "steps": [{"sr": "8.3", "params": {"DeviceID": "{OLD}"}},
                      {"sr": "8.11", "target": "CHF", "params": {"DeviceID": "{NEW}"}}]}]})
    async with ScenarioRunner(cast(DuisClient, _Client()), devices_by_role(rig),
                              spares=devices_by_role(rig, spare=True), rig=rig.name) as runner:
        with pytest.raises(MissingDevicesError,
                           match=r"x/swap needs 2 spare PPMID for NEW, NEWER \(the rig has 1\)"):
            await runner.run(scenario)
        variant = scenario.variants[0]
        assert runner.resolve("NEW", variant) == devices_by_role(rig, spare=True)["PPMID"][0]
        assert runner.resolve("OLD", variant) == devices_by_role(rig)["PPMID"][0]
        assert runner.concrete_role("NEW", variant) == "PPMID"


def test_decommission_must_be_declared() -> None:
    with pytest.raises(ValueError, match=r"SR 8.3 decommissions ESME but consumes"):
        Scenario.model_validate({
            "name": "x", "title": "x", "source": "test", "variants": [{
                "id": "v", "title": "x", "user_role": "IS",
                "steps": [{"sr": "8.3", "params": {"DeviceID": "{ESME}"}}]}]})
    with pytest.raises(ValueError, match="needs an alias"):
        Scenario.model_validate({
            "name": "x", "title": "x", "source": "test", "variants": [{
                "id": "v", "title": "x", "user_role": "IS",
                "consumes": [{"role": "CHF", "spare": True}], "steps": []}]})


def test_a_run_killed_before_its_factory_reset_is_reset_on_load(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    inventory = _inventory(S.COMMISSIONED, path=path)
    inventory.consume([ESME])
    inventory.accepted(_decommission(ESME))
    inventory.set_status(PPMID, S.SUSPENDED, "test")  # not consumed: stays as it was
    again = _inventory(S.COMMISSIONED, path=path)
    assert again.status(ESME) == S.COMMISSIONED and not again.devices[ESME].consumed
    assert again.devices[ESME].history[-1].sr == "factory-reset"
    assert again.status(PPMID) == S.SUSPENDED
