"""The emulated DCC over real HTTP on 127.0.0.1, with the fake HAN behind it.

Every corpus template, signed by its User, is answered: see test_dcc_every_template.py.
Here: every document the DCC writes and every document the receiver gets must validate
against the DUIS 5.4 XSD; hostile documents get an error acknowledgement and the server keeps
serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from hanlab.duis import (
    DuisResponse,
    DuisSchema,
    load_duis_schema,
    parse_response,
    parse_xml,
)
from hanlab.duis.receiver import DuisReceiver
from hanlab.emulator.dcc import (
    DCC_ACCESS_CONTROL_BROKER,
    SERVICE_PATHS,
    DccUser,
    EmulatedDcc,
    EmulatedDccSettings,
    FakeHan,
)
from hanlab.emulator.truth import GroundTruthLog, read_ground_truth
from hanlab.gbcs import Eui64, GbcsMessage, parse_gbcs_message

SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
SUPPLIER_2 = Eui64.parse("90-B3-D5-1F-30-02-00-00")
ESME = Eui64.parse("00-DB-12-34-56-78-90-A0")
GSME = Eui64.parse("00-DB-12-34-56-78-90-A1")
RTDS_INVENTORY = {
    ESME: "ESME", GSME: "GSME",
    Eui64.parse("00-DB-12-34-56-78-90-A2"): "CHF",
    Eui64.parse("00-DB-12-34-56-78-90-A3"): "GPF",
    Eui64.parse("00-DB-12-34-56-78-90-A4"): "PPMID",
    Eui64.parse("00-DB-12-34-56-78-90-A5"): "HCALCS",
    Eui64.parse("00-DB-12-34-56-78-90-A6"): "ESME",
}
RTDS_USERS = [SUPPLIER, SUPPLIER_2, *(Eui64.parse(e) for e in (
    "90-B3-D5-1F-30-01-00-08", "90-B3-D5-1F-30-03-00-00", "90-B3-D5-1F-30-00-00-02"))]
"""Every RequestID originator of the DUIS templates and samples."""
SERVICE_OF_CV = {1: "S", 2: "S", 3: "S", 5: "S", 6: "S", 7: "S", 4: "T", 8: "D"}
FAST = {"processing_latency_s": 0.001, "wan_latency_s": 0.001}
UNSIGNED = {"verify_signatures": False}
"""The corpus templates carry placeholder signatures: tests posting them or unsigned
documents of their own turn verification off (tests/integration/test_duis_security.py
covers it on)."""


@pytest.fixture(scope="module")
def schema(corpus_dir: Path) -> DuisSchema:
    return load_duis_schema(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")


@dataclass
class Inbox:
    """What a User's receive endpoint got, every document checked against the XSD."""

    schema: DuisSchema
    documents: list[DuisResponse] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, document: DuisResponse, xml: bytes, ts_ns: int) -> None:
        problems = self.schema.problems(parse_xml(xml))
        if problems:
            self.invalid.append(problems[0])
        self.documents.append(document)
        self.arrived.set()

    def of_kind(self, body_name: str) -> list[DuisResponse]:
        return [d for d in self.documents if d.body_name == body_name]

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.documents) < count:
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class Rig:
    dcc: EmulatedDcc
    han: FakeHan
    inbox: Inbox
    http: aiohttp.ClientSession
    truth_path: Path

    async def post(self, service: str, document: bytes) -> tuple[int, bytes]:
        path = SERVICE_PATHS[service]  # type: ignore[index]
        async with self.http.post(self.dcc.url + path, data=document) as reply:
            return reply.status, await reply.read()


@pytest.fixture
async def rig(schema: DuisSchema, tmp_path: Path, request: pytest.FixtureRequest
              ) -> AsyncIterator[Rig]:
    overrides = getattr(request, "param", {})
    inbox = Inbox(schema)
    truth_path = tmp_path / "truth.jsonl"
    async with (
        GroundTruthLog(truth_path) as truth,
        DuisReceiver(inbox) as receiver,
    ):
        settings = EmulatedDccSettings(**{**FAST, **UNSIGNED, "response_timeout_s": 2.0,
                                          **overrides})
        users = [DccUser(user, receiver.url) for user in RTDS_USERS]
        async with (
            EmulatedDcc(settings, users=users, devices=RTDS_INVENTORY, schema=schema,
                        truth=truth) as dcc,
            FakeHan(dcc, response_delay_s=0.001, truth=truth) as han,
            aiohttp.ClientSession() as http,
        ):
            dcc.attach_han(han)
            yield Rig(dcc, han, inbox, http, truth_path)
        assert dcc.invalid_documents == []
        assert inbox.invalid == []


def request_documents(corpus_dir: Path) -> Iterator[Path]:
    yield from sorted((corpus_dir / "duis" / "templates").glob("*.XML"))
    yield from sorted((corpus_dir / "duis" / "samples").glob("*REQUEST_DUIS.XML"))


async def test_gbcs_command_fields(rig: Rig) -> None:
    """CRA 1, Originator Counter = RequestID counter, system titles, Message Code."""
    from hanlab.duis import RequestId, build_request, sr_element

    rid = RequestId(SUPPLIER, ESME, 4242)
    status, _ = await rig.post("S", build_request(
        request_id=rid, command_variant=1, service_reference_variant="4.1.1",
        body=sr_element("ReadInstantaneousImportRegisters")))
    assert status == 200
    await rig.inbox.wait_for(1)
    target, command, delivery = rig.han.commands[0]
    assert target == ESME and command.cra_flag == 1
    assert command.originator_counter == 4242 == delivery.originator_counter
    assert command.originator_system_title == SUPPLIER
    assert command.recipient_system_title == ESME
    assert command.message_code == 0x0027  # ECS17b
    response = rig.inbox.documents[0]
    assert response.request_id == rid
    assert response.response_id == RequestId(ESME, SUPPLIER, 4242)
    answer = parse_gbcs_message(response.gbcs_payload or b"")
    assert isinstance(answer, GbcsMessage)
    assert (answer.cra_flag, answer.originator_counter, answer.message_code) == (2, 4242, 0x27)
    events = [e["event"] for e in read_ground_truth(rig.truth_path)]
    for wanted in ("duis_request_received", "duis_ack_sent", "command_queued_chf",
                   "han_command_received", "device_response_sent", "device_response_at_chf",
                   "duis_response_posted"):
        assert wanted in events, wanted
    times = [int(str(e["ts_ns"])) for e in read_ground_truth(rig.truth_path)
             if e["event"] in ("duis_request_received", "command_queued_chf",
                               "duis_response_posted")]
    assert times == sorted(times)


async def test_dcc_originated_command_carries_user_counter(rig: Rig) -> None:
    """CCS01 (SR 8.11): the ACB originates; the User's counter is the Supplementary Remote
    Party Counter; then the DCC raises N24 (Update HAN Device Log result)."""
    from hanlab.duis import RequestId, build_request, sr_element

    chf = Eui64.parse("00-DB-12-34-56-78-90-A2")
    rid = RequestId(SUPPLIER, chf, 77)
    body = sr_element("UpdateHANDeviceLog", {
        "DeviceID": ESME.duis, "RequestType": "Add",
        "AddDeviceToCHFWhitelist": {"JoinTimePeriod": 90,
                                    "InstallCode": "30313233343536373839414243444546"}})
    document = build_request(request_id=rid, command_variant=1,
                             service_reference_variant="8.11", body=body)
    problems = rig.dcc.schema.problems(parse_xml(document)) if rig.dcc.schema else []
    if problems:
        pytest.fail(f"test request invalid: {problems}")
    status, _ = await rig.post("S", document)
    assert status == 200
    await rig.inbox.wait_for(2)
    _, command, _ = rig.han.commands[0]
    assert command.originator_system_title == DCC_ACCESS_CONTROL_BROKER
    assert command.supplementary_remote_party_counter == 77
    assert command.supplementary_remote_party_id == SUPPLIER
    alerts = rig.inbox.of_kind("DCCAlertMessage")
    assert [a.dcc_alert_code for a in alerts] == ["N24"]


HOSTILE = [
    b"<sr:Request",
    b"",
    b"\x00\xff garbage",
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;'
    b'&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;'
    b'&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><sr:Request xmlns:sr="http://www.dcc'
    b'interface.co.uk/ServiceUserGateway"><sr:Header><sr:ServiceReferenceVariant>4.1.1'
    b"</sr:ServiceReferenceVariant></sr:Header>&lol3;</sr:Request>",
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway">&x;'
    b"<sr:ServiceReferenceVariant>4.1.1</sr:ServiceReferenceVariant></sr:Request>",
    b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" '
    b'schemaVersion="5.4"/>',
    b"<a/>",
]


async def test_hostile_documents_are_refused_and_server_keeps_serving(
    rig: Rig, schema: DuisSchema
) -> None:
    from hanlab.duis import RequestId, build_request, sr_element

    for document in HOSTILE:
        for service in ("S", "T", "D"):
            status, body = await rig.post(service, document)
            assert status == 400, document
            if body.startswith(b"<?xml"):
                answer = parse_response(body)
                assert answer.response_code == "E1" and answer.is_acknowledgement
                assert schema.problems(parse_xml(body)) == []
            else:
                assert body.startswith(b"E1")
    assert rig.dcc.stats.refused["E1"] == 3 * len(HOSTILE)
    status, body = await rig.post("S", build_request(
        request_id=RequestId(SUPPLIER, ESME, 1), command_variant=1,
        service_reference_variant="4.1.1", body=sr_element("ReadInstantaneousImportRegisters")))
    assert status == 200 and parse_response(body).response_code == "I99"


@pytest.mark.parametrize(
    ("user", "target", "variant", "cv", "service", "signed", "code"),
    [
        ("90-B3-D5-1F-30-09-00-00", ESME, "4.1.1", 1, "S", False, "E3"),  # unknown User
        (SUPPLIER, ESME, "4.1.1", 4, "S", False, "E4"),  # CV4 on serviceS
        (SUPPLIER, ESME, "4.1.1", 1, "T", False, "E4"),  # CV1 on serviceT
        (SUPPLIER, ESME, "4.1.1", 6, "S", False, "E4"),  # CV6 without a SignedPreCommand
        (SUPPLIER, ESME, "4.1.1", 8, "D", False, "E4"),  # device SR as non-device
        (SUPPLIER, Eui64.parse("00-DB-12-34-56-78-90-FF"), "4.1.1", 1, "S", False, "E5"),
        (SUPPLIER, ESME, "1.6", 4, "T", False, "E2"),  # Critical SR unsigned
    ],
)
async def test_refusals(rig: Rig, user: Eui64 | str, target: Eui64, variant: str, cv: int,
                        service: str, signed: bool, code: str) -> None:
    from hanlab.duis import RequestId, build_request, sr_element

    originator = user if isinstance(user, Eui64) else Eui64.parse(user)
    body = sr_element("ReadInstantaneousImportRegisters") if variant == "4.1.1" else \
        sr_element("ResetTariffBlockCounterMatrix")
    document = build_request(request_id=RequestId(originator, target, 5), command_variant=cv,
                             service_reference_variant=variant, body=body)
    status, answer = await rig.post(service, document)
    assert status == 400
    ack = parse_response(answer)
    assert ack.response_code == code and ack.request_id is not None


async def test_counter_replay_is_refused(rig: Rig) -> None:
    from hanlab.duis import RequestId, build_request, sr_element

    def document(counter: int) -> bytes:
        return build_request(request_id=RequestId(SUPPLIER, ESME, counter), command_variant=1,
                             service_reference_variant="4.1.1",
                             body=sr_element("ReadInstantaneousImportRegisters"))

    assert (await rig.post("S", document(10)))[0] == 200
    status, body = await rig.post("S", document(10))
    assert status == 400 and parse_response(body).response_code == "E11"
    assert (await rig.post("S", document(11)))[0] == 200


@pytest.mark.parametrize("rig", [{"response_timeout_s": 0.1}], indirect=True)
async def test_silent_device_gives_command_failure_alert(rig: Rig) -> None:
    from hanlab.duis import RequestId, build_request, sr_element

    rig.han.silent.add(ESME)
    rid = RequestId(SUPPLIER, ESME, 99)
    await rig.post("S", build_request(request_id=rid, command_variant=1,
                                      service_reference_variant="4.1.1",
                                      body=sr_element("ReadInstantaneousImportRegisters")))
    await rig.inbox.wait_for(1)
    alert = rig.inbox.documents[0]
    assert alert.body_name == "DCCAlertMessage"
    assert alert.dcc_alert_code == rig.dcc.settings.alert_codes.command_failure
    assert alert.request_id == rid
    assert rig.dcc.stats.timeouts == 1
    assert rig.dcc._outstanding == {}


async def test_device_and_dcc_alerts_reach_the_user(rig: Rig) -> None:
    gbcs = rig.han.raise_alert(ESME, SUPPLIER, 0x8F0C)
    rig.han.raise_alert(ESME, Eui64.parse("90-B3-D5-1F-30-09-00-00"), 0x8F0C)  # no such User
    for code, name, content in [
        ("N24", "UpdateHANDeviceLogResult",
         {"UpdateHANDeviceLogServiceRequestID": f"{SUPPLIER}:{ESME}:1"}),
        ("N25", "UpdateHANDeviceLogResult",
         {"UpdateHANDeviceLogServiceRequestID": f"{SUPPLIER}:{ESME}:2"}),
        ("N42", "PPMIDRemoval", {"PPMIDDeviceID": "00-DB-12-34-56-78-90-A4",
                                  "CHFDeviceID": "00-DB-12-34-56-78-90-A2"}),
        ("N4", "CommandFailure", {"CommandRequestID": f"{SUPPLIER}:{ESME}:3",
                                  "DeviceID": ESME.duis}),
    ]:
        assert await rig.dcc.post_dcc_alert(SUPPLIER_2, code, name, content)
    await rig.inbox.wait_for(5)
    device = rig.inbox.of_kind("DeviceAlertMessage")
    assert len(device) == 1
    assert device[0].alert_code == 0x8F0C and device[0].gbcs_payload == gbcs
    assert device[0].response_id is not None and device[0].response_id.target == SUPPLIER
    assert sorted(a.dcc_alert_code or "" for a in rig.inbox.of_kind("DCCAlertMessage")) == [
        "N24", "N25", "N4", "N42"]
    events = [e["event"] for e in read_ground_truth(rig.truth_path)]
    assert "device_alert_dropped" in events and "device_alert_posted" in events


async def test_stop_cancels_pending_commands(schema: DuisSchema, tmp_path: Path) -> None:
    """Tasks are tracked: stopping mid-command leaves nothing behind."""
    from hanlab.duis import RequestId, build_request, sr_element

    settings = EmulatedDccSettings(processing_latency_s=5.0, wan_latency_s=0.0, **UNSIGNED)
    async with EmulatedDcc(settings, users=[DccUser(SUPPLIER, "http://127.0.0.1:9/duis")],
                           devices=RTDS_INVENTORY, schema=schema) as dcc:
        async with aiohttp.ClientSession() as http:
            document = build_request(
                request_id=RequestId(SUPPLIER, ESME, 1), command_variant=1,
                service_reference_variant="4.1.1",
                body=sr_element("ReadInstantaneousImportRegisters"))
            async with http.post(dcc.url + SERVICE_PATHS["S"], data=document) as reply:
                assert reply.status == 200
        assert len(dcc._tasks) == 1
    assert dcc._tasks == set() and dcc._outstanding == {}


async def test_one_han_per_rig(rig: Rig) -> None:
    """A lab with two rigs: commands for the second rig's devices go to its own CHF."""
    from hanlab.duis import RequestId, build_request, sr_element

    async with FakeHan(rig.dcc, response_delay_s=0.001) as second:
        rig.dcc.attach_han(second, devices=[GSME])
        for target, counter in ((ESME, 1), (GSME, 2)):
            await rig.post("S", build_request(
                request_id=RequestId(SUPPLIER, target, counter), command_variant=1,
                service_reference_variant="4.1.1",
                body=sr_element("ReadInstantaneousImportRegisters")))
        await rig.inbox.wait_for(2)
    assert [t for t, _, _ in rig.han.commands] == [ESME]
    assert [t for t, _, _ in second.commands] == [GSME]


ED_USER = Eui64.parse("90-B3-D5-1F-30-03-00-00")
GT_USER = Eui64.parse("90-B3-D5-1F-30-01-00-08")
CHF_A2, GPF_A3, PPMID_A4 = (Eui64.parse(f"00-DB-12-34-56-78-90-A{i}") for i in (2, 3, 4))


async def test_dcc_alerts_of_duis_3_6(schema: DuisSchema, corpus_dir: Path,
                                      tmp_path: Path) -> None:
    """The DCC Alerts the emulated DCC raises on its own (hanlab.emulator.dcc.alerts), each
    to the right User and every one valid against the DUIS 5.4 XSD: N30/N31 after a log
    restore, N27/N17 after a Change of Supplier, N4 after 3.2, N42 after 6.21, N43 after a
    PPMID removal, N19 (configured) after 11.1, N1/N2/N9/N6 after decommissions."""
    from hanlab.duis import RequestId, build_request
    from hanlab.scenarios.xsd_bodies import completer_for

    completer = completer_for(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")
    inbox = Inbox(schema)
    roles = {SUPPLIER: "IS", SUPPLIER_2: "GS", ED_USER: "ED", GT_USER: "GT"}
    counter = iter(range(1000, 10_000))
    async with (
        GroundTruthLog(tmp_path / "truth.jsonl") as truth,
        DuisReceiver(inbox) as receiver,
    ):
        settings = EmulatedDccSettings(
            processing_latency_s=0.001, wan_latency_s=0.001, response_timeout_s=2.0,
            require_signature=False, firmware_failures={GSME: "N19"}, **UNSIGNED)
        users = [DccUser(user, receiver.url, role=role) for user, role in roles.items()]
        async with (
            EmulatedDcc(settings, users=users, devices=RTDS_INVENTORY, schema=schema,
                        truth=truth) as dcc,
            FakeHan(dcc, response_delay_s=0.001) as han,
            aiohttp.ClientSession() as http,
        ):
            dcc.attach_han(han)

            async def send(user: Eui64, target: Eui64, variant: str, element: str,
                           params: dict[str, object], cv: int = 1) -> None:
                body = completer.complete(element, params)
                document = build_request(
                    request_id=RequestId(user, target, next(counter)), command_variant=cv,
                    service_reference_variant=variant, body=body)
                path = SERVICE_PATHS["D" if cv == 8 else "S"]
                async with http.post(dcc.url + path, data=document) as reply:
                    assert reply.status == 200, await reply.text()
                await asyncio.sleep(0.05)  # the response (and its alerts) come back

            dcc_eui = DCC_ACCESS_CONTROL_BROKER
            for owner in (SUPPLIER, SUPPLIER_2, SUPPLIER_2):
                await send(owner, dcc_eui, "5.1", "CreateSchedule", {"DeviceID": ESME.duis}, 8)
            await send(SUPPLIER_2, ESME, "4.1.1", "ReadInstantaneousImportRegisters", {})
            await send(SUPPLIER, ESME, "6.23", "UpdateSecurityCredentialsCoS", {})
            await send(SUPPLIER_2, dcc_eui, "5.1", "CreateSchedule", {"DeviceID": ESME.duis}, 8)
            await send(SUPPLIER, ESME, "3.2", "RestrictAccessForChangeOfTenancy", {})
            await send(SUPPLIER, CHF_A2, "8.12.1", "RestoreHANDeviceLog",
                       {"OldCHFID": "00-DB-12-34-56-78-90-B2"})
            await send(SUPPLIER_2, GPF_A3, "8.12.2", "RestoreGPFDeviceLog",
                       {"OldGPFID": "00-DB-12-34-56-78-90-B3"})
            await send(SUPPLIER, ESME, "6.21", "RequestHandoverOfDCCControlledDevice",
                       {"RemotePartyRole": "NetworkOperator"})
            await send(SUPPLIER, CHF_A2, "8.11", "UpdateHANDeviceLog",
                       {"DeviceID": PPMID_A4.duis, "RequestType": "Remove"})
            await send(SUPPLIER, dcc_eui, "11.1", "UpdateFirmware",
                       {"DeviceIDList": f"{ESME.duis},{GSME.duis}"}, 8)
            await send(SUPPLIER, dcc_eui, "5.1", "CreateSchedule", {"DeviceID": ESME.duis}, 8)
            for device in (ESME, GSME, CHF_A2):
                await send(SUPPLIER, dcc_eui, "8.3", "DecommissionDevice",
                           {"DeviceID": device.duis}, 8)
            await asyncio.sleep(0.2)
            assert dcc.invalid_documents == [] and dcc.stats.refused == {}
    assert inbox.invalid == []
    posted = [(str(e["user"]), str(e["dcc_alert_code"]))
              for e in read_ground_truth(tmp_path / "truth.jsonl")
              if e["event"] == "dcc_alert_posted"]
    expected = {
        ("N17", SUPPLIER_2), ("N27", SUPPLIER_2),  # 6.23: the old supplier's schedules
        ("N4", SUPPLIER_2),                         # 3.2: the Other User's schedule
        ("N30", SUPPLIER), ("N31", SUPPLIER_2),     # log restores
        ("N42", ED_USER),                           # NO certificate placed on the ESME
        ("N43", SUPPLIER_2), ("N24", SUPPLIER),     # PPMID removed: the other supplier
        ("N19", SUPPLIER),                          # configured firmware failure
        ("N1", ED_USER), ("N2", GT_USER), ("N9", SUPPLIER), ("N6", SUPPLIER),
    }
    assert {(code, Eui64.parse(user)) for user, code in posted} == expected
    twice = sorted(code for code in {c for _, c in posted}
                   if sum(c == code for _, c in posted) > 1)
    assert twice == ["N17", "N6"] and len(posted) == len(expected) + 2  # two schedules each
    content = {a.dcc_alert_code: a for a in inbox.of_kind("DCCAlertMessage")}
    assert set(content) == {code for code, _ in expected}


async def test_sr_to_a_decommissioned_device_is_refused_with_e5(rig: Rig) -> None:
    """Over HTTP: SR 8.3 decommissions the ESME (I0); a later SR to it is refused with
    DUIS Response Code E5 (Invalid Device Status) and never reaches the HAN; SR 8.2 reads
    the Smart Metering Inventory's real state (schema-valid DSPInventory)."""
    from hanlab.duis import RequestId, build_request, parse_response, sr_element
    from hanlab.emulator.dcc import DCC_ACCESS_CONTROL_BROKER as DCC

    def read(counter: int) -> bytes:
        return build_request(request_id=RequestId(SUPPLIER, ESME, counter), command_variant=1,
                             service_reference_variant="4.1.1",
                             body=sr_element("ReadInstantaneousImportRegisters"))

    assert (await rig.post("S", read(20)))[0] == 200
    status, body = await rig.post("D", build_request(
        request_id=RequestId(SUPPLIER, DCC, 21), command_variant=8,
        service_reference_variant="8.3",
        body=sr_element("DecommissionDevice", {"DeviceID": ESME.duis})))
    assert status == 200 and parse_response(body).response_code == "I0"
    status, body = await rig.post("S", read(22))
    refused = parse_response(body)
    assert status == 400 and refused.response_code == "E5"
    assert refused.request_id == RequestId(SUPPLIER, ESME, 22)
    assert rig.dcc.stats.refused == {"E5": 1}
    status, body = await rig.post("D", build_request(
        request_id=RequestId(SUPPLIER, DCC, 23), command_variant=8,
        service_reference_variant="8.2",
        body=sr_element("ReadInventory", {"DeviceID": ESME.duis})))
    assert status == 200
    root = parse_xml(body)
    ns = {"sr": "http://www.dccinterface.co.uk/ServiceUserGateway"}
    assert root.xpath("//sr:DSPInventory/sr:Device/sr:DeviceStatus/text()",
                      namespaces=ns) == ["Decommissioned"]
    await asyncio.sleep(0.05)
    assert [m.originator_counter for _, m, _ in rig.han.commands] == [20]  # 22 never left
    truth = [e for e in read_ground_truth(rig.truth_path) if e.get("response_code") == "E5"]
    assert truth and "Decommissioned" in truth[0]["reason"]
