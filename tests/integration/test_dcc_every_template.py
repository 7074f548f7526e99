"""Every DUIS template and sample request of the corpus, signed by its User, is accepted by
one emulated DCC over real HTTP (signature verification on) and answered with the response
its CommandVariant asks for (DUIS 5.4 sections 3.2.4, 3.4.2, 3.5):

* CV 1 / 2 -> ``I99`` acknowledgement, then a ResponseMessage whose GBCS response (CRA flag
  2) carries the Message Code of the template's use case (the RTDS 4.5.0 command of the same
  template where there is one) and the counter the command went with; where the SR body
  cannot tell the use case (same body, the use case depends on the device: single or
  polyphase ESME, device generation, the joining device's type) any of the SR's Message
  Codes for the device type is accepted;
* CV 4 -> ``I0`` with an unsigned GBCS PreCommand of that Message Code;
* CV 8 -> ``I0`` (Non-Device Service).

Users 90-B3-D5-1F-30-01-00-00, -02-00-00 and the DSP 90-B3-D5-1F-30-00-00-02 sign with the
ZAZ1 XML-signing keys of ``duis/signing-keys``; the corpus has no key for the two other
originators (-01-00-08, -03-00-00), which sign with a key made for the run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hanlab.duis import (
    DuisRequest,
    DuisSchema,
    load_duis_schema,
    parse_request,
    parse_response,
    sr,
)
from hanlab.duis.catalogue import GbcsMapping
from hanlab.duis.receiver import DuisReceiver
from hanlab.duis.signing import (
    ephemeral_identity,
    load_certificate,
    load_signing_key,
    sign_document,
)
from hanlab.emulator.dcc import SERVICE_PATHS, DccUser, EmulatedDcc, EmulatedDccSettings, FakeHan
from hanlab.gbcs import Eui64, GbcsMessage, parse_gbcs_message
from hanlab.gbcs.codes import message_codes_for_use_case, use_case_in_name
from tests.integration.test_emulated_dcc import (
    RTDS_INVENTORY,
    RTDS_USERS,
    SERVICE_OF_CV,
    Inbox,
    request_documents,
)

_NAME = re.compile(r"([A-Za-z][A-Za-z0-9-]*)_(\d+(?:\.\d+)*)_")


@pytest.fixture(scope="module")
def schema(corpus_dir: Path) -> DuisSchema:
    return load_duis_schema(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")


Identity = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def identities(corpus_dir: Path) -> dict[Eui64, Identity]:
    """Each RequestID originator's XML-signing key and certificate."""
    keys = corpus_dir / "duis" / "signing-keys"
    found: dict[Eui64, Identity] = {}
    for user in RTDS_USERS:
        plain = user.duis.replace("-", "")
        stem = next((p.name[: -len("-ds.key")] for p in keys.glob(f"*{plain}-ds.key")), None)
        found[user] = ((load_signing_key(keys / f"{stem}-ds.key"),
                        load_certificate(keys / f"{stem}-ds.pem")) if stem
                       else ephemeral_identity(plain))
    return found


@dataclass
class Lab:
    dcc: EmulatedDcc
    han: FakeHan
    inbox: Inbox
    http: aiohttp.ClientSession
    identities: dict[Eui64, Identity]

    async def post_signed(self, document: bytes) -> tuple[int, bytes]:
        request = parse_request(document)
        key, certificate = self.identities[request.request_id.originator]
        signed = sign_document(document, key, certificate)
        path = SERVICE_PATHS[SERVICE_OF_CV[request.command_variant]]  # type: ignore[index]
        async with self.http.post(self.dcc.url + path, data=signed) as reply:
            return reply.status, await reply.read()


@pytest.fixture
async def lab(schema: DuisSchema, corpus_dir: Path) -> AsyncIterator[Lab]:
    inbox = Inbox(schema)
    keys = identities(corpus_dir)
    settings = EmulatedDccSettings(processing_latency_s=0.0, wan_latency_s=0.0,
                                   response_timeout_s=5.0, verify_signatures=True,
                                   check_counters=False)
    async with DuisReceiver(inbox) as receiver:
        users = [DccUser(user, receiver.url, keys[user][1]) for user in RTDS_USERS]
        async with (
            EmulatedDcc(settings, users=users, devices=RTDS_INVENTORY, schema=schema) as dcc,
            FakeHan(dcc, response_delay_s=0.0) as han,
            aiohttp.ClientSession() as http,
        ):
            dcc.attach_han(han)
            yield Lab(dcc, han, inbox, http, keys)
        assert dcc.invalid_documents == []
        assert inbox.invalid == []


def expected_message_code(corpus_dir: Path, path: Path) -> int | None:
    """The Message Code the template's GBCS must carry: its RTDS command's, else its use
    case's single one; ``None`` where the name gives neither (DCC-only SRs)."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    name, variant = match.groups()
    command = (corpus_dir / "gbcs-rtds" / f"{variant}_{name}"
               / path.name.replace("_REQUEST_DUIS.XML", "_COMMAND_GBCS.HEX"))
    if command.is_file():
        message = parse_gbcs_message(bytes.fromhex(command.read_text().strip()))
        if isinstance(message, GbcsMessage):
            return message.message_code
    use_case = use_case_in_name(name)
    if use_case is None:
        return None
    codes = message_codes_for_use_case(use_case)
    return codes[0] if len(codes) == 1 else None


async def test_every_template_signed_is_accepted_and_answered(
    lab: Lab, corpus_dir: Path
) -> None:
    problems: list[str] = []
    by_device: list[str] = []
    files = list(request_documents(corpus_dir))
    assert len(files) >= 212
    for path in files:
        data = path.read_bytes()
        request = parse_request(data)
        want_code = expected_message_code(corpus_dir, path)
        before = len(lab.inbox.of_kind("ResponseMessage"))
        status, body = await lab.post_signed(data)
        for device in list(lab.dcc.inventory.devices):  # each meets the rig as installed
            lab.dcc.inventory.factory_reset(device)  # (8.3 decommissions the ESME)
        ack = parse_response(body)
        want = {1: "I99", 2: "I99", 4: "I0", 8: "I0"}[request.command_variant]
        if status != 200 or ack.response_code != want:
            problems.append(f"{path.name}: HTTP {status} {ack.response_code}, wanted {want}")
            continue
        if ack.request_id != request.request_id:
            problems.append(f"{path.name}: acknowledgement for {ack.request_id}")
        got: int | None = None
        if request.command_variant == 4:
            pre = parse_gbcs_message(ack.pre_command or b"")
            if not isinstance(pre, GbcsMessage) or pre.cra_flag != 1 or pre.signature is not None:
                problems.append(f"{path.name}: PreCommand is not an unsigned GBCS command")
                continue
            got = pre.message_code
        elif request.command_variant in (1, 2):
            message = await response_to(lab, before, str(request.request_id))
            if message is None:
                problems.append(f"{path.name}: no GBCS response")
                continue
            got = message.message_code
        if want_code is None or got is None or got == want_code:
            continue
        if decided_by_body(request, want_code):
            problems.append(f"{path.name}: Message Code 0x{got:04X}, wanted 0x{want_code:04X}")
        elif got not in mapped_codes(request):
            problems.append(f"{path.name}: Message Code 0x{got:04X} is not one of the SR's")
        else:
            by_device.append(path.name)
    assert lab.dcc.stats.refused == {}, lab.dcc.stats.refused
    # Same body, use case by device (polyphase ESME, GBCS generation of the device, the
    # joining device's type: a DCC reads those from its inventory): 19 templates today,
    # e.g. ECS26k (6.2.1 to a polyphase ESME), ECS26l, GCS60a, CS03C. Fewer is progress.
    assert len(by_device) <= 19, "\n".join(by_device)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def _mappings(request: DuisRequest) -> list[GbcsMapping]:
    device_type = RTDS_INVENTORY[request.request_id.target]
    gbcs = sr(request.service_reference_variant).gbcs
    for kind in (device_type, "GSME" if device_type == "GPF" else device_type, "ANY"):
        if found := [m for m in gbcs if m.device_type == kind]:
            return found
    return []


def mapped_codes(request: DuisRequest) -> set[int | None]:
    """Every Message Code the request's SR has for its target's device type."""
    return {m.message_code for m in _mappings(request)}


def decided_by_body(request: DuisRequest, message_code: int) -> bool:
    """The body alone names the use case: one Message Code for the device type, or the
    body has the selector of the mapping with ``message_code``."""
    mappings = _mappings(request)
    return len({m.message_code for m in mappings}) == 1 or any(
        m.message_code == message_code and m.selects(request.body) for m in mappings)


async def response_to(lab: Lab, before: int, request_id: str) -> GbcsMessage | None:
    """The GBCS response (CRA flag 2) of the next ResponseMessage for ``request_id`` that
    answers a command the HAN received, or ``None`` after 5 s."""
    try:
        async with asyncio.timeout(5):
            while True:
                for response in lab.inbox.of_kind("ResponseMessage")[before:]:
                    message = parse_gbcs_message(response.gbcs_payload or b"")
                    if (str(response.request_id) == request_id
                            and isinstance(message, GbcsMessage) and message.cra_flag == 2
                            and any(str(d.request_id) == request_id
                                    and m.originator_counter == message.originator_counter
                                    for (_, m, d) in lab.han.commands)):
                        return message
                await asyncio.sleep(0.002)
    except TimeoutError:
        return None
