"""Two Users per role for Change of Supplier, and Local Command Delivery with an emulated
HHT (issue 13 items 2 and 3), over real HTTP on 127.0.0.1: the DUIS client, the emulated
DCC, the fake HAN behind it, the scenario runner; every document checked against the XSD.

* Change of Supplier runs with the old and the new supplier as distinct Users, each signing
  with its own corpus key (``90B3D51F30010000``, ``90B3D51F30020000``); N27 / N17 reach the
  old supplier's own receive path.
* CommandVariants 2, 3, 6, 7 as the DUIS XSD defines them; SR 8.13 returns what the HHT
  got; with the WAN marked absent the 'no WAN' variant passes with no WAN delivery at all
  (the DCC's ground truth: every command reached the device through the HHT).
* A CV4 Pre-Command that does not correspond to the request is refused before signing.
"""

from __future__ import annotations

import datetime as dt
from base64 import b64encode
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hanlab.duis import DuisSchema, RequestId, build_request, load_duis_schema, sr_element
from hanlab.duis.client import DuisClient, DuisUser
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.precommand import PreCommandMismatchError
from hanlab.duis.signing import sign_document
from hanlab.duis.xml import build_dcc_alert, build_precommand_response, parse_request
from hanlab.emulator.dcc import DccUser, EmulatedDcc, EmulatedDccSettings, FakeHan
from hanlab.emulator.dcc.commands import build_command, plan_command
from hanlab.emulator.han.hht import EmulatedHht
from hanlab.emulator.truth import GroundTruthLog, read_ground_truth
from hanlab.gbcs import Eui64, GbcsMessage, parse_gbcs_message
from hanlab.scenarios import load_library
from hanlab.scenarios.models import Scenario
from hanlab.scenarios.runner import ScenarioRunner

OLD = Eui64.parse("90-B3-D5-1F-30-01-00-00")
NEW = Eui64.parse("90-B3-D5-1F-30-02-00-00")
ESME = Eui64.parse("00-DB-12-34-56-78-90-A0")
CHF = Eui64.parse("00-DB-12-34-56-78-90-A2")
IHD = Eui64.parse("00-DB-12-34-56-78-90-A7")
INVENTORY = {ESME: "ESME", CHF: "CHF", Eui64.parse("00-DB-12-34-56-78-90-A3"): "GPF",
             IHD: "IHD"}
ROLES = {"ESME": [ESME], "CHF": [CHF], "GPF": [Eui64.parse("00-DB-12-34-56-78-90-A3")],
         "IHD": [IHD]}
FAST = {"processing_latency_s": 0.001, "wan_latency_s": 0.001, "response_timeout_s": 2.0}


def _user(keys: Path, eui: Eui64, supplier: str) -> DuisUser:
    name = f"xml-sign-{eui.to_bytes().hex().upper()}-ds"
    return DuisUser.from_files(eui, "IS", keys / f"{name}.key", keys / f"{name}.pem",
                               supplier=supplier)


@dataclass
class Lab:
    client: DuisClient
    dcc: EmulatedDcc
    han: FakeHan
    hht: EmulatedHht
    truth_path: Path

    def set_wan(self, present: bool) -> bool:
        self.dcc.wan_present = present
        return True

    async def deliver_locally(self, target: Eui64, gbcs_command: bytes, *, request_id: str,
                              sr_variant: str, command_variant: int) -> bytes | None:
        return await self.hht.deliver(target, gbcs_command, request_id=request_id,
                                      sr_variant=sr_variant, command_variant=command_variant)

    async def next_local_alert(self, index: int, timeout_s: float) -> bytes | None:
        return await self.hht.next_alert(index, timeout_s)

    @property
    def local_alerts_kept(self) -> int:
        return self.hht.alerts_kept

    def truth(self) -> list[dict[str, Any]]:
        return list(read_ground_truth(self.truth_path))


@pytest.fixture(scope="module")
def schema(corpus_dir: Path) -> DuisSchema:
    return load_duis_schema(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")


@pytest.fixture
async def lab(corpus_dir: Path, schema: DuisSchema, tmp_path: Path) -> AsyncIterator[Lab]:
    keys = corpus_dir / "duis" / "signing-keys"
    users = [_user(keys, OLD, "old"), _user(keys, NEW, "new")]
    truth_path = tmp_path / "truth.jsonl"
    async with (
        GroundTruthLog(truth_path) as truth,
        DuisClient(base_url="http://127.0.0.1:1", users=users, schema=schema,
                   counters=RequestCounterStore(tmp_path / "counters"),
                   response_timeout_s=5.0) as client,
    ):
        dcc_users = [DccUser(u.eui64, client.receiver_url_for(u.eui64), u.certificate,
                             role=u.role) for u in users]
        async with (
            EmulatedDcc(EmulatedDccSettings(**FAST), users=dcc_users, devices=INVENTORY,
                        schema=schema, truth=truth) as dcc,
            FakeHan(dcc, response_delay_s=0.001, truth=truth) as han,
        ):
            client.trust_dcc(dcc.certificate)
            client.base_url = dcc.url
            dcc.attach_han(han)
            hht = EmulatedHht(han, upstream=dcc, wan_present=lambda: dcc.wan_present,
                              truth=truth, response_timeout_s=2.0)
            hht.attach()
            yield Lab(client, dcc, han, hht, truth_path)
            assert dcc.invalid_documents == [] and client.invalid_documents == []
            assert client.pending_count == 0


async def test_change_of_supplier_two_users_old_gets_n27_n17(lab: Lab) -> None:
    scenario = load_library()["change-of-supplier-process"]
    async with ScenarioRunner(lab.client, ROLES, local=lab) as runner:
        [result] = await runner.run(scenario, ["new-supplier-electricity"])
    failed = [(s.index, s.sr_variant, s.outcome, s.detail) for s in result.steps
              if s.status != "passed"]
    assert result.passed and not failed, failed
    sent = [s for s in result.steps if s.kind == "sr"]
    # The precondition is the old supplier's, everything from the 6.23 on the new one's.
    assert [s.user_eui64 for s in sent[:2]] == [OLD.duis, OLD.duis]
    assert {s.user_eui64 for s in sent[2:]} == {NEW.duis}
    assert all(s.request_id and s.request_id.startswith(s.user_eui64 or "?") for s in sent)
    waits = [s for s in result.steps if s.kind == "wait"]
    assert [(w.alert_code, w.user_eui64) for w in waits] == [("N27", OLD.duis),
                                                           ("N17", OLD.duis)]
    # Each User signed with its own key: the DCC verified every request, refused none.
    assert lab.dcc.stats.refused == {}
    posted = [e for e in lab.truth() if e["event"] == "dcc_alert_posted"]
    assert {e["dcc_alert_code"] for e in posted if e["user"] == OLD.duis} >= {"N27", "N17"}
    assert not {"N27", "N17"} & {e["dcc_alert_code"] for e in posted if e["user"] == NEW.duis}


async def test_a_user_cannot_sign_for_the_other(lab: Lab, corpus_dir: Path) -> None:
    old = lab.client.user(OLD)
    assert old.signing_key is not None and old.certificate is not None
    document = build_request(request_id=RequestId(NEW, ESME, 10), command_variant=1,
                             service_reference_variant="4.1.1",
                             body=sr_element("ReadInstantaneousImportRegisters"))
    forged = sign_document(document, old.signing_key, old.certificate)
    ack, _, _ = await lab.client.post(1, forged)
    assert ack.response_code == "E2"
    exchange = await lab.client.send(NEW, ESME, "4.1.1",
                                     sr_element("ReadInstantaneousImportRegisters"))
    assert exchange.response is not None and exchange.response.response_code == "I0"


async def test_command_variants_for_local_delivery(lab: Lab) -> None:
    body = sr_element("ReadInstantaneousImportRegisters")
    tariff = sr_element("ResetTariffBlockCounterMatrix")
    # CV 2: the command comes back (I0), nothing goes over the WAN.
    cv2 = await lab.client.send(OLD, ESME, "4.1.1", body, command_variant=2)
    assert cv2.ack.response_code == "I0" and cv2.response is None
    local = parse_gbcs_message(cv2.local_command or b"")
    assert isinstance(local, GbcsMessage) and local.recipient_system_title == ESME
    assert local.originator_counter == cv2.request_id.counter
    # CV 6 (Critical, 1.7): CV 4 then the signed Pre-Command as 6; local only.
    cv6 = await lab.client.send(OLD, ESME, "1.7", tariff, command_variant=6)
    assert (cv6.command_variant, cv6.ack.response_code) == (6, "I0")
    signed = parse_gbcs_message(cv6.local_command or b"")
    assert isinstance(signed, GbcsMessage) and signed.signature and len(signed.signature) == 64
    assert lab.han.commands == []  # neither reached the HAN over the WAN
    # CV 3 / 7: returned and sent over the WAN too (I99, then the device's response).
    cv3 = await lab.client.send(OLD, ESME, "4.1.1", body, command_variant=3)
    cv7 = await lab.client.send(OLD, ESME, "1.7", tariff, command_variant=7)
    for exchange in (cv3, cv7):
        assert exchange.ack.response_code == "I99" and exchange.local_command
        assert exchange.response is not None and exchange.response.response_code == "I0"
    assert [c[2].via for c in lab.han.commands] == ["wan", "wan"]
    returned = {e["request_id"]: e["also_wan"] for e in lab.truth()
                if e["event"] == "local_command_returned"}
    assert list(returned.values()) == [False, False, True, True]


async def test_no_wan_variant_reaches_devices_only_through_the_hht(lab: Lab) -> None:
    scenario = load_library()["no-wan-installation"]
    async with ScenarioRunner(lab.client, ROLES, local=lab) as runner:
        [result] = await runner.run(scenario, ["esme-credit"])
    failed = [(s.index, s.sr_variant, s.outcome, s.detail) for s in result.steps
              if s.status != "passed" and not s.optional]
    assert result.passed and not failed, failed
    assert lab.dcc.wan_present  # restored after the variant
    local = [s for s in result.steps if s.local_delivery is not None]
    assert local and all(s.local_delivery == "delivered" for s in local)
    truth = lab.truth()
    events = [e["event"] for e in truth]
    # Ground truth: no command crossed the SM WAN; each reached its device via the HHT.
    assert "command_queued_chf" not in events and "command_not_delivered" not in events
    delivered = [e for e in truth if e["event"] == "hht_command_delivered"]
    assert len(delivered) == len(local) == lab.hht.stats.delivered
    assert all(c[2].via == "hht" for c in lab.han.commands)
    assert lab.dcc.stats.commands_delivered == 0
    # The two 8.13s returned the 8.11 response (then N24) and the CHF's 0x8F12 alert.
    returns = [e for e in truth if e["event"] == "local_response_returned"]
    assert [r["cra_flag"] for r in returns[:2]] == [2, 3]
    n24 = next(s for s in result.steps if s.kind == "wait")
    assert n24.alert_code == "N24"


async def test_sr_8_13_refuses_what_was_not_returned_for_local_delivery(lab: Lab) -> None:
    body = sr_element("UpdateHANDeviceLog", {"DeviceID": IHD.duis, "RequestType": "Add"})
    cv2 = await lab.client.send(OLD, CHF, "8.11", body, command_variant=2)
    assert cv2.local_command is not None
    response = await lab.hht.deliver(CHF, cv2.local_command, request_id=str(cv2.request_id),
                                     sr_variant="8.11", command_variant=2)
    assert response is not None

    async def return_it(original: str) -> str:
        content = {"OriginalRequestID": original,
                   "DeviceGBCSResponse": b64encode(response or b"").decode()}
        exchange = await lab.client.send(
            OLD, Eui64.parse("90-B3-D5-1F-30-00-00-02"), "8.13",
            sr_element("ReturnLocalCommandResponse", content))
        return exchange.ack.response_code

    assert await return_it(str(RequestId(OLD, CHF, 1))) == "E1"  # never returned locally
    assert await return_it(str(cv2.request_id)) == "I0"
    assert await return_it(str(cv2.request_id)) == "E1"  # returned twice
    refused = [e for e in lab.truth() if e["event"] == "duis_ack_sent"
               and e["response_code"] == "E1"]
    assert "was not returned for local delivery" in refused[0]["reason"]
    assert "returned already" in refused[1]["reason"]


async def test_pre_command_is_checked_before_signing(lab: Lab, tmp_path: Path) -> None:
    """A DCC returning a Pre-Command for another device: the client refuses it and never
    signs or sends it (seed 001 glossary, 'Correlate')."""
    posted: list[int] = []

    async def transform(request: web.Request) -> web.Response:
        parsed = parse_request(await request.read())
        posted.append(parsed.command_variant)
        rid = parsed.request_id
        wrong, _, _ = build_command(
            plan=plan_command("1.7", "ESME"), variant="1.7", user=rid.originator,
            target=CHF, user_counter=rid.counter, dcc_counter=1, pre_command=True)
        document = build_precommand_response(
            request_id=rid, service_reference="1.7", service_reference_variant="1.7",
            response_date_time=dt.datetime.now(dt.UTC), gbcs_payload=wrong)
        return web.Response(body=document, content_type="application/xml")

    app = web.Application()
    app.router.add_post("/api/v1/serviceT", transform)
    app.router.add_post("/api/v1/serviceS", transform)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        lab.client.base_url = f"http://127.0.0.1:{port}"
        with pytest.raises(PreCommandMismatchError) as caught:
            await lab.client.send(OLD, ESME, "1.7", sr_element("ResetTariffBlockCounterMatrix"))
        assert caught.value.field == "recipient" and str(CHF) in caught.value.message
        assert posted == [4]  # the CV 5 never left
    finally:
        await runner.cleanup()


async def test_receive_paths_are_per_user(lab: Lab) -> None:
    """Each User's receive path is its own; a path naming no User is refused (404) and a
    forged document on a User's path is refused (403) as on the shared one."""
    receiver = lab.client.receiver
    assert lab.client.receiver_url_for(OLD) != lab.client.receiver_url_for(NEW)
    alert = build_dcc_alert(dcc_alert_code="N27", response_date_time=dt.datetime.now(dt.UTC),
                            alert=sr_element("ChangeOfSupplier", {
                                "ChangeOfSupplierServiceRequestID": str(RequestId(NEW, ESME, 1))}))
    async with aiohttp.ClientSession() as http:
        stranger = receiver.url_for(Eui64.parse("90-B3-D5-1F-30-09-00-00"))
        async with http.post(stranger, data=alert) as reply:
            assert reply.status == 404
        async with http.post(lab.client.receiver_url_for(OLD), data=alert) as reply:
            assert reply.status == 403  # not signed by the DCC
    assert lab.client.alerts.empty()


async def test_a_rig_without_hht_fails_local_steps_clearly(lab: Lab) -> None:
    scenario = Scenario.model_validate({
        "name": "lcd", "title": "t", "source": "test", "variants": [
            {"id": "v", "title": "x", "user_role": "IS", "wan": "absent", "steps": [
                {"sr": "8.11", "target": "CHF", "command_variant": 2,
                 "params": {"DeviceID": "{ESME}", "RequestType": "Add"}},
                {"sr": "8.13"}]},
            {"id": "wan-too", "title": "x", "user_role": "IS", "steps": [
                {"sr": "4.1.1", "target": "ESME", "command_variant": 3}]}]})
    async with ScenarioRunner(lab.client, ROLES) as runner:  # no HHT, WAN as it is
        result, wan_too = await runner.run(scenario)
    # CV 3 answered over the WAN: the local copy is not delivered (it would be a replay).
    assert wan_too.passed and wan_too.steps[0].local_delivery == "not needed"
    assert not result.passed
    first = result.steps[0]
    assert (first.outcome, first.local_delivery) == ("no HHT", "not delivered")
    assert "no HHT to deliver it" in first.detail
    returned = next(s for s in result.steps if s.sr_variant == "8.13")
    assert returned.outcome == "nothing to return" and returned.request_id is None


def test_lab_file_with_two_old_suppliers_of_a_role_is_refused(tmp_path: Path) -> None:
    """``hanlab rig validate`` (the installed script) names the file, line and User."""
    from tests.integration.test_cli_errors import ROOT, run_hanlab

    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(
        f"name: t\nrigs:\n  - {ROOT / 'rigs' / 'emulated-dual-band.yaml'}\n"
        "duis:\n  endpoint: emulated\n  users:\n"
        "    - {name: a, eui64: 90-B3-D5-1F-30-01-00-00, role: IS, supplier: old}\n"
        "    - {name: b, eui64: 90-B3-D5-1F-30-03-00-00, role: IS, supplier: old}\n")
    result = run_hanlab("rig", "validate", str(lab_file))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{lab_file}:4: duis: user b: a second old supplier with role IS" in result.stderr
    assert run_hanlab("rig", "validate", str(ROOT / "labs" / "emulated-duis.yaml")
                      ).returncode == 0
