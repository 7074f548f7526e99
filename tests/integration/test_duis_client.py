"""DUIS client <-> emulated DCC <-> fake HAN, end to end over real HTTP on 127.0.0.1.

Signed Critical SRs (Transform, then Signed Pre-Command) verified by the DCC with the ZAZ1
test certificates; everything sent and received validated against the DUIS XSD; RequestID
counters persisted across client restarts; timeouts remove futures; two Users at once; the
DUIS log has what the correlator needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hanlab.duis import DuisSchema, load_duis_schema, parse_request, sr_element
from hanlab.duis.client import DuisClient, DuisTimeoutError, DuisUser
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.log import KINDS, DuisLog, read_duis_log
from hanlab.emulator.dcc import (
    DccAlertCodes,
    DccUser,
    EmulatedDcc,
    EmulatedDccSettings,
    FakeHan,
)
from hanlab.emulator.truth import GroundTruthLog, read_ground_truth
from hanlab.gbcs import Eui64, GbcsMessage, parse_gbcs_message
from tests.integration.test_emulated_dcc import ESME, GSME, RTDS_INVENTORY, SUPPLIER, SUPPLIER_2

READ = sr_element("ReadInstantaneousImportRegisters")


@pytest.fixture(scope="module")
def schema(corpus_dir: Path) -> DuisSchema:
    return load_duis_schema(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")


@pytest.fixture(scope="module")
def users(corpus_dir: Path) -> list[DuisUser]:
    keys = corpus_dir / "duis" / "signing-keys"
    return [
        DuisUser.from_files(eui, role, keys / f"xml-sign-{eui.to_bytes().hex().upper()}-ds.key",
                            keys / f"xml-sign-{eui.to_bytes().hex().upper()}-ds.pem")
        for eui, role in ((SUPPLIER, "IS"), (SUPPLIER_2, "GS"))
    ]


@dataclass
class Lab:
    client: DuisClient
    dcc: EmulatedDcc
    han: FakeHan
    log_path: Path
    truth_path: Path
    state: Path


@pytest.fixture
async def lab(schema: DuisSchema, users: list[DuisUser], tmp_path: Path) -> AsyncIterator[Lab]:
    log_path, truth_path, state = tmp_path / "duis.jsonl", tmp_path / "truth.jsonl", tmp_path / "c"
    async with (
        GroundTruthLog(truth_path) as truth,
        DuisLog(log_path, keep_xml=True) as log,
        DuisClient(base_url="http://127.0.0.1:1", users=users,
                   counters=RequestCounterStore(state), log=log, schema=schema,
                   response_timeout_s=5.0) as client,
    ):
        settings = EmulatedDccSettings(processing_latency_s=0.002, wan_latency_s=0.003,
                                       response_timeout_s=2.0, verify_signatures=True)
        dcc_users = [DccUser(u.eui64, client.receiver_url, u.certificate) for u in users]
        async with (
            EmulatedDcc(settings, users=dcc_users, devices=RTDS_INVENTORY, schema=schema,
                        truth=truth) as dcc,
            FakeHan(dcc, response_delay_s=0.005, truth=truth) as han,
        ):
            dcc.attach_han(han)
            client.base_url = dcc.url
            client.trust_dcc(dcc.certificate)
            yield Lab(client, dcc, han, log_path, truth_path, state)
        assert dcc.invalid_documents == []
        assert client.invalid_documents == []
        assert client.pending_count == 0


async def test_non_critical_read_round_trip(lab: Lab) -> None:
    exchange = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    assert exchange.command_variant == 1 and exchange.ack.response_code == "I99"
    assert exchange.response is not None and exchange.response.request_id == exchange.request_id
    message = parse_gbcs_message(exchange.response.gbcs_payload or b"")
    assert isinstance(message, GbcsMessage)
    assert message.originator_counter == exchange.request_id.counter
    assert message.message_code == 0x0027
    assert exchange.round_trip_s is not None and 0 < exchange.round_trip_s < 2.0


async def test_critical_sr_is_transformed_signed_and_verified(
    lab: Lab, corpus_dir: Path
) -> None:
    """SR 1.6 (Critical): CV4 -> PreCommand -> CV5 SignedPreCommand, XML-signed, verified."""
    template = (corpus_dir / "duis" / "templates"
                / "ECS02_1.6_IMMEDIATE_SINGLE_SUCCESS_REQUEST_DUIS.XML")
    body = parse_request(template.read_bytes()).body
    exchange = await lab.client.send(SUPPLIER, ESME, "1.6", body)
    assert exchange.pre_command is not None
    assert exchange.command_variant == 5 and exchange.ack.response_code == "I99"
    assert exchange.response is not None
    _, command, delivery = lab.han.commands[-1]
    assert delivery.command_variant == 5
    assert command.originator_counter == exchange.request_id.counter
    assert command.signature is not None and len(command.signature) == 64
    assert lab.dcc.stats.refused == {}


async def test_tampered_signature_is_refused(lab: Lab, users: list[DuisUser]) -> None:
    from hanlab.duis import RequestId

    request_id = RequestId(SUPPLIER, ESME, lab.client.counters.next(SUPPLIER))
    document = lab.client.build(SUPPLIER, request_id, "4.1.1", READ, 1, sign=True)
    tampered = document.replace(b"ReadInstantaneousImportRegisters/>",
                                b"ReadInstantaneousImportRegisters></sr:"
                                b"ReadInstantaneousImportRegisters>", 1)
    forged = tampered.replace(str(request_id.counter).encode(),
                              str(request_id.counter + 1).encode(), 1)
    exchange = await lab.client.send_document(
        forged, request_id=RequestId(SUPPLIER, ESME, request_id.counter + 1), variant="4.1.1",
        command_variant=1)
    assert exchange.refused and exchange.ack.response_code == "E2"


async def test_two_users_at_once(lab: Lab) -> None:
    sends = [lab.client.send(user, target, "4.1.1", READ)
             for user in (SUPPLIER, SUPPLIER_2) for target in (ESME, GSME) for _ in range(5)]
    exchanges = await asyncio.gather(*sends)
    assert len({e.request_id for e in exchanges}) == 20
    for exchange in exchanges:
        assert exchange.response is not None
        assert exchange.response.request_id == exchange.request_id
        assert exchange.response.response_id is not None
        assert exchange.response.response_id.target == exchange.request_id.originator
    for user in (SUPPLIER, SUPPLIER_2):
        counters = [e.request_id.counter for e in exchanges if e.request_id.originator == user]
        assert len(set(counters)) == 10


async def test_non_device_sr(lab: Lab) -> None:
    from hanlab.emulator.dcc import DCC_ACCESS_CONTROL_BROKER

    exchange = await lab.client.send(SUPPLIER, DCC_ACCESS_CONTROL_BROKER, "8.2",
                                     sr_element("ReadInventory", {"DeviceID": ESME.duis}))
    assert exchange.command_variant == 8 and exchange.ack.response_code == "I0"
    assert exchange.response is None and not exchange.refused


async def test_timeout_removes_the_future(lab: Lab) -> None:
    lab.han.silent.add(ESME)
    with pytest.raises(DuisTimeoutError):
        await lab.client.send(SUPPLIER, ESME, "4.1.1", READ, response_timeout_s=0.05)
    assert lab.client.pending_count == 0
    assert lab.client.stats.timeouts == 1
    alert = await asyncio.wait_for(lab.client.alerts.get(), 5.0)  # the DCC's, later
    assert alert.document.dcc_alert_code == DccAlertCodes().command_failure


async def test_device_alert_is_queued_and_logged(lab: Lab) -> None:
    lab.han.raise_alert(ESME, SUPPLIER, 0x8F0C)
    alert = await asyncio.wait_for(lab.client.alerts.get(), 5.0)
    assert alert.document.alert_code == 0x8F0C
    assert any(line["kind"] == "alert" and line["alert_code"] == "8F0C"
               for line in read_duis_log(lab.log_path))


async def test_duis_log_has_what_the_correlator_needs(lab: Lab) -> None:
    exchange = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    lines = [line for line in read_duis_log(lab.log_path)
             if line["request_id_text"] == str(exchange.request_id)]
    assert [line["kind"] for line in lines] == ["request", "ack", "response"]
    assert [line["direction"] for line in lines] == ["out", "in", "in"]
    for line in lines:
        assert line["kind"] in KINDS and isinstance(line["ts_ns"], int)
        assert line["request_id"] == {"originator": SUPPLIER.duis, "target": ESME.duis,
                                      "counter": exchange.request_id.counter}
        assert line["sr_variant"] == "4.1.1" and line["xml"].startswith("<?xml")
    assert lines[0]["command_variant"] == 1
    assert [line["response_code"] for line in lines] == [None, "I99", "I0"]
    assert lines[2]["gbcs_originator_counter"] == exchange.request_id.counter
    assert lines[0]["ts_ns"] <= lines[1]["ts_ns"] <= lines[2]["ts_ns"]
    truth = read_ground_truth(lab.truth_path)
    received = [int(str(e["ts_ns"])) for e in truth if e["event"] == "duis_request_received"
                and e["request_id"] == str(exchange.request_id)]
    assert received and lines[0]["ts_ns"] <= received[0] <= lines[1]["ts_ns"]


def test_counters_persist_across_restarts(tmp_path: Path) -> None:
    user = Eui64.parse("90-B3-D5-1F-30-01-00-00")
    first = RequestCounterStore(tmp_path, block=4, time_floor=False)
    issued = [first.next(user) for _ in range(6)]
    assert issued == sorted(set(issued)) and issued[0] == 0
    second = RequestCounterStore(tmp_path, block=4, time_floor=False)  # a restart
    after = second.next(user)
    assert after > issued[-1]
    third = RequestCounterStore(tmp_path, block=4)  # time floor: ms since the epoch
    assert third.next(user) > after and third.next(SUPPLIER_2) > 1_700_000_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "90B3D51F30010000.json", "90B3D51F30020000.json"]


async def test_client_restart_keeps_counters_increasing(
    lab: Lab, users: list[DuisUser], schema: DuisSchema
) -> None:
    first = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    async with DuisClient(base_url=lab.dcc.url, users=users,
                          counters=RequestCounterStore(lab.state), schema=schema) as again:
        lab.dcc.users[SUPPLIER] = DccUser(SUPPLIER, again.receiver_url, users[0].certificate)
        second = await again.send(SUPPLIER, ESME, "4.1.1", READ)
    assert second.request_id.counter > first.request_id.counter
    assert second.response is not None


async def test_receiver_refuses_hostile_documents_and_keeps_serving(lab: Lab) -> None:
    import aiohttp

    from tests.integration.test_emulated_dcc import HOSTILE

    async with aiohttp.ClientSession() as http:
        for document in HOSTILE:
            async with http.post(lab.client.receiver_url, data=document) as reply:
                assert reply.status == 400
    assert lab.client.receiver.stats.refused == len(HOSTILE)
    exchange = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    assert exchange.response is not None
