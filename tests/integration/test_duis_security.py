"""DUIS signatures both ways and TLS (issue 14 items 14 and 15), over real HTTP(S) on
127.0.0.1, with the ZAZ1 test keys of the corpus (two supplier Users and the DCC's DSP).

* Requests: the client signs every request; the emulated DCC refuses what is unsigned or
  signed by anyone but the User, whatever its criticality, and a refused request never
  advances the User's counter (no lock-out by a forged counter 2^64-1).
* Responses and alerts: the DCC signs everything it posts with its DSP key; the User's
  receiver refuses (403, logged, counted) what is unsigned or signed by anyone else, so a
  forged response never becomes the device's answer.
* TLS on the receiver and the emulated DCC with a self-signed certificate made here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hanlab.duis import RequestId, build_request, build_response, sr_element
from hanlab.duis.client import DuisClient, DuisUser
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.http import client_ssl_context, server_ssl_context
from hanlab.duis.signing import load_certificate, sign_document, verify_document
from hanlab.duis.xml import MAX_COUNTER
from hanlab.emulator.dcc import SERVICE_PATHS, DccUser, EmulatedDcc, EmulatedDccSettings, FakeHan
from tests.integration.test_cross_sniffer import until
from tests.integration.test_emulated_dcc import ESME, RTDS_INVENTORY, SUPPLIER, SUPPLIER_2

READ = sr_element("ReadInstantaneousImportRegisters")
DSP = "90B3D51F30000002"
NOT_IN_INVENTORY = ESME.__class__.parse("00-DB-12-34-56-78-90-FF")


def _keys(corpus_dir: Path) -> Path:
    return corpus_dir / "duis" / "signing-keys"


@pytest.fixture(scope="module")
def users(corpus_dir: Path) -> list[DuisUser]:
    keys = _keys(corpus_dir)
    return [DuisUser.from_files(eui, role, keys / f"xml-sign-{eui.to_bytes().hex().upper()}-ds.key",
                                keys / f"xml-sign-{eui.to_bytes().hex().upper()}-ds.pem")
            for eui, role in ((SUPPLIER, "IS"), (SUPPLIER_2, "GS"))]


def _dsp_settings(corpus_dir: Path, **overrides: object) -> EmulatedDccSettings:
    keys = _keys(corpus_dir)
    return EmulatedDccSettings(
        processing_latency_s=0.002, wan_latency_s=0.002, response_timeout_s=2.0,
        signing_key_file=keys / f"dsp-xml-sign-{DSP}-ds.key",
        certificate_file=keys / f"dsp-xml-sign-{DSP}-ds.pem", **overrides)  # type: ignore[arg-type]


@dataclass
class Lab:
    client: DuisClient
    dcc: EmulatedDcc
    han: FakeHan
    http: aiohttp.ClientSession
    users: list[DuisUser]

    async def post_to_dcc(self, document: bytes, service: str = "S") -> tuple[int, bytes]:
        async with self.http.post(self.dcc.url + SERVICE_PATHS[service],  # type: ignore[index]
                                  data=document) as reply:
            return reply.status, await reply.read()


@pytest.fixture
async def lab(users: list[DuisUser], corpus_dir: Path, tmp_path: Path) -> AsyncIterator[Lab]:
    async with DuisClient(base_url="http://127.0.0.1:1", users=users,
                          counters=RequestCounterStore(tmp_path / "c"),
                          response_timeout_s=5.0) as client:
        dcc_users = [DccUser(u.eui64, client.receiver_url, u.certificate) for u in users]
        async with (
            EmulatedDcc(_dsp_settings(corpus_dir), users=dcc_users,
                        devices=RTDS_INVENTORY) as dcc,
            FakeHan(dcc, response_delay_s=0.005) as han,
            aiohttp.ClientSession() as http,
        ):
            dcc.attach_han(han)
            client.base_url = dcc.url
            client.trust_dcc(load_certificate(_keys(corpus_dir) / f"dsp-xml-sign-{DSP}-ds.pem"))
            yield Lab(client, dcc, han, http, users)
        assert client.pending_count == 0


def _request(user: DuisUser | None, origin: RequestId, body_of: str = "4.1.1") -> bytes:
    document = build_request(request_id=origin, command_variant=1,
                             service_reference_variant=body_of, body=READ)
    if user is None:
        return document
    assert user.signing_key is not None and user.certificate is not None
    return sign_document(document, user.signing_key, user.certificate)


# -- item 15: requests --------------------------------------------------------------------


async def test_unsigned_request_with_max_counter_does_not_lock_the_user_out(lab: Lab) -> None:
    """Before: an unsigned non-critical SR under a registered User was taken (I99) and its
    counter 2^64-1 made every later request of that User E11 until restart."""
    forged = _request(None, RequestId(SUPPLIER, ESME, MAX_COUNTER))
    status, body = await lab.post_to_dcc(forged)
    assert status == 400 and b"<sr:ResponseCode>E2<" in body
    exchange = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    assert exchange.ack.response_code == "I99" and exchange.response is not None
    assert lab.dcc.stats.refused == {"E2": 1}


async def test_request_signed_by_another_user_is_refused(lab: Lab) -> None:
    """SUPPLIER's RequestID signed with SUPPLIER_2's (valid, registered) key: E2."""
    other = lab.users[1]
    forged = _request(other, RequestId(SUPPLIER, ESME, MAX_COUNTER))
    status, body = await lab.post_to_dcc(forged)
    assert status == 400 and b"<sr:ResponseCode>E2<" in body
    exchange = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    assert exchange.ack.response_code == "I99"


async def test_refused_signed_request_does_not_advance_the_counter(lab: Lab) -> None:
    """A properly signed request refused for another reason (target not in the inventory,
    E5) leaves the User's counter state as it was."""
    refused = _request(lab.users[0], RequestId(SUPPLIER, NOT_IN_INVENTORY, MAX_COUNTER))
    status, body = await lab.post_to_dcc(refused)
    assert status == 400 and b"<sr:ResponseCode>E5<" in body
    later = _request(lab.users[0], RequestId(SUPPLIER, NOT_IN_INVENTORY, 5))
    status, body = await lab.post_to_dcc(later)
    assert b"<sr:ResponseCode>E5<" in body  # still E5, not E11
    assert lab.dcc.stats.refused == {"E5": 2}


async def test_client_signs_non_critical_requests(lab: Lab) -> None:
    """4.1.1 (not Critical) goes out XML-signed; the DCC verifies it (every SR)."""
    sent: list[bytes] = []
    post = lab.client.post

    async def spy(command_variant: int, document: bytes):  # type: ignore[no-untyped-def]
        sent.append(document)
        return await post(command_variant, document)

    lab.client.post = spy  # type: ignore[method-assign]
    exchange = await lab.client.send(SUPPLIER, ESME, "4.1.1", READ)
    assert exchange.command_variant == 1 and exchange.ack.response_code == "I99"
    assert lab.users[0].certificate is not None
    verify_document(sent[0], lab.users[0].certificate)
    assert lab.dcc.stats.refused == {}


# -- item 14: responses and alerts --------------------------------------------------------


async def test_forged_responses_are_refused_and_the_dcc_answer_taken(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """While a request waits for its response, a local process posts a forged one for the
    same RequestID, unsigned and then signed with a User's key: both 403, logged, counted;
    the client takes the DCC's (DSP-signed) response. Before: the first forgery won."""
    lab.han.response_delay_s = 0.5
    task = asyncio.create_task(lab.client.send(SUPPLIER, ESME, "4.1.1", READ))
    await until(lambda: lab.client.pending_count > 0 and lab.han.commands, 5)
    _, _, delivery = lab.han.commands[-1]
    rid = delivery.request_id
    forged = build_response(
        request_id=rid, response_id=RequestId(rid.target, rid.originator, rid.counter),
        response_code="I0", response_date_time=dt.datetime.now(dt.UTC),
        service_reference="4.1", service_reference_variant="4.1.1", gbcs_payload=b"\x00" * 40)
    user = lab.users[0]
    assert user.signing_key is not None and user.certificate is not None
    caplog.set_level(logging.WARNING, logger="hanlab.duis.receiver")
    for document in (forged, sign_document(forged, user.signing_key, user.certificate)):
        async with lab.http.post(lab.client.receiver_url, data=document) as reply:
            assert reply.status == 403
    exchange = await task
    assert exchange.response is not None and exchange.response.gbcs_payload != b"\x00" * 40
    stats = lab.client.receiver.stats
    assert stats.bad_signature == 2 and stats.refused == 2 and stats.unverified == 0
    reasons = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(reasons) == 2
    assert "not signed" in reasons[0] and "does not verify" in reasons[1]
    assert not any("PRIVATE" in r or "SignatureValue" in r for r in reasons)


async def test_dcc_signs_alerts_with_its_dsp_key(lab: Lab, corpus_dir: Path) -> None:
    """Device alerts and DCC alerts posted by the DCC verify with the corpus DSP
    certificate, and the DCC exposes that certificate."""
    dsp = load_certificate(_keys(corpus_dir) / f"dsp-xml-sign-{DSP}-ds.pem")
    assert lab.dcc.certificate == dsp
    lab.han.raise_alert(ESME, SUPPLIER, 0x8F0C)
    alert = await asyncio.wait_for(lab.client.alerts.get(), 5.0)
    verify_document(alert.xml, dsp)
    assert await lab.dcc.post_dcc_alert(SUPPLIER, "N24", "UpdateHANDeviceLogResult",
                                        {"UpdateHANDeviceLogServiceRequestID": "x"})
    second = await asyncio.wait_for(lab.client.alerts.get(), 5.0)
    verify_document(second.xml, dsp)
    assert lab.client.receiver.stats.bad_signature == 0


async def test_ephemeral_dsp_identity_by_default(users: list[DuisUser], tmp_path: Path) -> None:
    """No DSP key configured: a fresh P-256 key and self-signed certificate per DCC; a
    client trusting another DCC's certificate refuses its posts."""
    async with DuisClient(base_url="http://127.0.0.1:1", users=users,
                          counters=RequestCounterStore(tmp_path), response_timeout_s=1.0
                          ) as client:
        dcc_users = [DccUser(u.eui64, client.receiver_url, u.certificate) for u in users]
        first = EmulatedDcc(EmulatedDccSettings(), users=dcc_users, devices={})
        second = EmulatedDcc(EmulatedDccSettings(), users=dcc_users, devices={})
        assert isinstance(first.certificate.public_key(), ec.EllipticCurvePublicKey)
        assert first.certificate != second.certificate
        client.trust_dcc(first.certificate)
        async with first, second:
            assert await first.post_dcc_alert(SUPPLIER, "N24", "UpdateHANDeviceLogResult",
                                              {"UpdateHANDeviceLogServiceRequestID": "x"})
            assert not await second.post_dcc_alert(
                SUPPLIER, "N24", "UpdateHANDeviceLogResult",
                {"UpdateHANDeviceLogServiceRequestID": "x"})
        assert client.receiver.stats.accepted == 1
        assert client.receiver.stats.bad_signature == 1


# -- TLS ----------------------------------------------------------------------------------


def _self_signed_tls(folder: Path) -> tuple[Path, Path]:
    """A P-256 TLS server certificate for 127.0.0.1 (SAN IP) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "tls.pem", folder / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


async def test_round_trip_over_tls(
    users: list[DuisUser], corpus_dir: Path, tmp_path: Path
) -> None:
    """Receiver and emulated DCC both on HTTPS with a self-signed certificate: a signed
    request, its DSP-signed response; plain HTTP to the DCC's port gets no DUIS answer."""
    cert_file, key_file = _self_signed_tls(tmp_path)
    async with DuisClient(
        base_url="http://127.0.0.1:1", users=users, counters=RequestCounterStore(tmp_path / "c"),
        response_timeout_s=5.0, receiver_ssl_context=server_ssl_context(cert_file, key_file),
        dcc_ssl_context=client_ssl_context(cert_file),
    ) as client:
        assert client.receiver_url.startswith("https://127.0.0.1:")
        dcc_users = [DccUser(u.eui64, client.receiver_url, u.certificate) for u in users]
        settings = _dsp_settings(corpus_dir, tls_certificate_file=cert_file,
                                 tls_key_file=key_file, tls_ca_file=cert_file)
        async with (
            EmulatedDcc(settings, users=dcc_users, devices=RTDS_INVENTORY) as dcc,
            FakeHan(dcc, response_delay_s=0.005) as han,
        ):
            dcc.attach_han(han)
            assert dcc.url.startswith("https://")
            client.base_url = dcc.url
            client.trust_dcc(dcc.certificate)
            exchange = await client.send(SUPPLIER, ESME, "4.1.1", READ)
            assert exchange.response is not None
            assert client.receiver.stats.accepted == 1
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.ClientError):
                    await http.post(dcc.url.replace("https", "http") + SERVICE_PATHS["S"],
                                    data=b"<x/>")
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await http.post(client.receiver_url, data=b"<x/>")  # not trusted
