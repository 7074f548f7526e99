"""The DUIS client: send Service Requests, take the acknowledgement, await the response.

DUIS 5.4 section 3 flow, as the DCC's simulators (DCC Boxed) serve it:

* CommandVariant 1 (or 2, 6) to ``/api/v1/serviceS``: acknowledgement ``I99``; the Device's
  response arrives later, POSTed to the User's receiver (:class:`DuisReceiver`).
* Critical SRs: CommandVariant 4 to ``/api/v1/serviceT`` returns a PreCommand (``I0``); the
  client signs the GBCS Pre-Command and sends it back with CommandVariant 5 (same RequestID,
  ``SignedPreCommand``) to ``serviceS``: ``I99``, then the response.
* Non-device SRs: CommandVariant 8 to ``/api/v1/serviceD``: ``I0``, complete.
* Local Command Delivery (DUIS 5.4 XSD ``CommandVariant``): 2 (and 6 for a Critical SR:
  CV 4 first, then the signed Pre-Command with CV 6) return the command for local delivery
  in the synchronous answer (``I0``, :attr:`DuisExchange.local_command`); 3 (and 7) return
  it and send it over the WAN too (``I99``, the response follows).

Before signing a Pre-Command the client checks it against the request (seed 001
glossary, "Correlate"; :func:`hanlab.duis.precommand.check_pre_command`) and refuses a
mismatching one with :class:`~hanlab.duis.precommand.PreCommandMismatchError`.

Each request's future is registered under its RequestID before the POST (the response may
overtake the acknowledgement) and always removed, under a timeout (STYLE.md section 7).
Several Users share one client and one receiver; each User has its own receive path
(:meth:`DuisClient.receiver_url_for`), so what arrives is known to be for that User
(:attr:`ReceivedDocument.recipient`): Change of Supplier's N27 / N17 go to the old
supplier. Everything sent and received goes to the
DUIS log.

Every request of a User with a key is XML-signed, whatever its criticality (DUIS 5.4
3.4.2; issue 14 item 15: the DCC refuses unsigned requests). Responses and alerts are taken
only when signed by the DCC, given its certificate (``dcc_certificate`` / :meth:`trust_dcc`,
see :class:`DuisReceiver`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from base64 import b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from hanlab.duis.catalogue import sr
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.http import (
    CLIENT_KEEPALIVE_S,
    DEFAULT_LIMITS,
    HttpLimits,
    StartStop,
    read_bounded,
)
from hanlab.duis.log import DuisLog, Kind
from hanlab.duis.precommand import check_pre_command
from hanlab.duis.receiver import DEFAULT_PATH, DuisReceiver
from hanlab.duis.schema import DuisSchema
from hanlab.duis.signing import load_certificate, load_signing_key, sign_document
from hanlab.duis.xml import (
    DuisResponse,
    RequestId,
    build_request,
    parse_response,
    parse_xml,
    sr_element,
)
from hanlab.errors import BadInputError, HanlabError
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, encode_ber_length, parse_gbcs_message

_log = logging.getLogger(__name__)

SERVICE_PATHS: Final[Mapping[int, str]] = {
    1: "/api/v1/serviceS", 2: "/api/v1/serviceS", 3: "/api/v1/serviceS",
    5: "/api/v1/serviceS", 6: "/api/v1/serviceS", 7: "/api/v1/serviceS",
    4: "/api/v1/serviceT", 8: "/api/v1/serviceD",
}
"""Endpoint path per CommandVariant (DCC Boxed's Send Command, Transform, Non-Device)."""


class DuisClientError(HanlabError):
    """The DCC could not be reached, or answered with something that is not DUIS."""


class DuisTimeoutError(DuisClientError):
    """No DUIS response arrived for a request within its timeout.

    Attributes:
        request_id: the request's RequestID text (``None`` where unknown).
        command_variant: its CommandVariant; ack_code: its acknowledgement's code.
    """

    request_id: str | None = None
    command_variant: int | None = None
    ack_code: str | None = None


@dataclass(frozen=True)
class DuisUser:
    """A DCC User the client sends for.

    Attributes:
        eui64: the User's EUI-64 (RequestID originator).
        role: the User role, e.g. ``IS`` (import supplier), ``GS``, ``ED``, ``OU``.
        signing_key: ECDSA P-256 key for XML signatures and GBCS Pre-Command signatures.
        certificate: the key's X.509 certificate (named in ``ds:KeyInfo``).
        supplier: ``old`` or ``new`` for a Change of Supplier (seed 001: the new supplier
            issues SR 6.23, the old one gets N27 / N17), or ``None``.
    """

    eui64: Eui64
    role: str = "IS"
    signing_key: ec.EllipticCurvePrivateKey | None = None
    certificate: x509.Certificate | None = None
    supplier: str | None = None

    @classmethod
    def from_files(
        cls, eui64: Eui64 | str, role: str, key_file: Path | str | None,
        certificate_file: Path | str | None, *, supplier: str | None = None,
    ) -> DuisUser:
        """A User with its key and certificate read from files (DER / PEM).

        Raises:
            BadInputError: a file is unreadable, or only one of the two is given.
        """
        if (key_file is None) != (certificate_file is None):
            raise BadInputError("give both the signing key and its certificate, or neither")
        return cls(
            eui64=eui64 if isinstance(eui64, Eui64) else Eui64.parse(eui64), role=role,
            signing_key=None if key_file is None else load_signing_key(key_file),
            certificate=None if certificate_file is None else load_certificate(
                certificate_file
            ),
            supplier=supplier,
        )


@dataclass
class DuisExchange:
    """One Service Request and what came back for it.

    Attributes:
        request_id: the RequestID sent.
        sr_variant, command_variant: of the (last) request sent.
        sent_ns: when the first request left (ns, UNIX epoch).
        ack: the synchronous answer to the last request sent.
        ack_ns: when it arrived.
        pre_command: the Transform Service's PreCommand, for Critical SRs.
        local_command: the command returned for local delivery (CommandVariants 2, 3, 6,
            7), for the User's HHT to deliver.
        response: the asynchronous DUIS response, if one was awaited.
        response_ns: when it arrived.
        refused: the DCC answered with an error code (no response follows).
    """

    request_id: RequestId
    sr_variant: str
    command_variant: int
    sent_ns: int
    ack: DuisResponse
    ack_ns: int
    pre_command: bytes | None = None
    local_command: bytes | None = None
    response: DuisResponse | None = None
    response_ns: int | None = None

    @property
    def refused(self) -> bool:
        """Whether the acknowledgement is an error (not I0 / I99)."""
        return not self.ack.is_success

    @property
    def round_trip_s(self) -> float | None:
        """Seconds from the request sent to the response received, if any."""
        if self.response_ns is None:
            return None
        return (self.response_ns - self.sent_ns) / 1e9


@dataclass(frozen=True)
class ReceivedDocument:
    """A document the DCC posted that answered no pending request (alerts, mostly).

    Attributes:
        recipient: the User whose receive path it was posted to
            (:meth:`DuisClient.receiver_url_for`), ``None`` for the shared path.
    """

    document: DuisResponse
    xml: bytes
    ts_ns: int
    recipient: Eui64 | None = None


def sign_pre_command(pre_command: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Sign a GBCS Pre-Command: append ``signature length | r || s`` (GBCS v5.x 4.3.1.3).

    The ECDSA P-256 signature covers the Pre-Command octets (an unsigned General Signing
    message ends after its content), so the result parses with a 64-octet signature.
    """
    r, s = decode_dss_signature(key.sign(pre_command, ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return pre_command + encode_ber_length(len(raw)) + raw


def _gbcs_counter(payload: bytes | None) -> int | None:
    if payload is None:
        return None
    message = parse_gbcs_message(payload)
    return message.originator_counter if isinstance(message, GbcsMessage) else None


@dataclass
class _Pending:
    future: asyncio.Future[tuple[DuisResponse, int]]
    sr_variant: str


@dataclass
class ClientStats:
    """Counters of the client."""

    sent: int = 0
    refused: int = 0
    responses: int = 0
    alerts: int = 0
    unmatched: int = 0
    timeouts: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


class DuisClient(StartStop):
    """Sends DUIS requests for several Users and receives their responses and alerts.

    Args:
        base_url: the DCC (emulated, or a simulator), e.g. ``http://127.0.0.1:8079``.
        users: the Users it sends for.
        counters: RequestID counter store (persisted).
        log: the DUIS log, or ``None``.
        schema: validate every document sent and received against it, or ``None``.
        receiver_host, receiver_port, receiver_path: the HTTP receiver to start for the
            DCC's POSTs (port 0: any free port; :attr:`receiver_url` says which).
        http_timeout_s: per POST to the DCC.
        response_timeout_s: default wait for the asynchronous response.
        alert_queue_size: alerts kept in :attr:`alerts` (oldest dropped when full).
        dcc_certificate: the DCC's (DSP's) XML-signing certificate the receiver verifies
            every response and alert with (``None``: unverified; see :meth:`trust_dcc`).
        receiver_limits: time, size and concurrency limits of the receiver.
        receiver_ssl_context: serve the receiver over HTTPS with it.
        dcc_ssl_context: TLS client context for an ``https`` DCC (e.g. trusting its
            self-signed certificate, :func:`hanlab.duis.http.client_ssl_context`).

    Use as ``async with DuisClient(...) as client:``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        users: Iterable[DuisUser],
        counters: RequestCounterStore,
        log: DuisLog | None = None,
        schema: DuisSchema | None = None,
        receiver_host: str = "127.0.0.1",
        receiver_port: int = 0,
        receiver_path: str = DEFAULT_PATH,
        http_timeout_s: float = 10.0,
        response_timeout_s: float = 60.0,
        alert_queue_size: int = 1024,
        dcc_certificate: x509.Certificate | None = None,
        receiver_limits: HttpLimits = DEFAULT_LIMITS,
        receiver_ssl_context: ssl.SSLContext | None = None,
        dcc_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.users = {user.eui64: user for user in users}
        self.counters = counters
        self.log = log
        self.schema = schema
        self.http_timeout_s = http_timeout_s
        self.response_timeout_s = response_timeout_s
        self.receiver = DuisReceiver(self._on_document, host=receiver_host,
                                     port=receiver_port, path=receiver_path,
                                     dcc_certificate=dcc_certificate, limits=receiver_limits,
                                     ssl_context=receiver_ssl_context,
                                     recipients=self.users, on_addressed=self._on_addressed)
        self._dcc_ssl_context = dcc_ssl_context
        self.alerts: asyncio.Queue[ReceivedDocument] = asyncio.Queue(alert_queue_size)
        self.stats = ClientStats()
        self.invalid_documents: list[tuple[str, list[str]]] = []
        self._pending: dict[RequestId, _Pending] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def receiver_url(self) -> str:
        """The URL the DCC must POST responses and alerts to (shared by the Users)."""
        return self.receiver.url

    def receiver_url_for(self, user: Eui64) -> str:
        """The receive URL of one User (``<receiver_url>/<EUI-64 hex>``): what arrives
        there is that User's (:attr:`ReceivedDocument.recipient`).

        Raises:
            BadInputError: not a User of this client.
        """
        return self.receiver.url_for(self.user(user).eui64)

    def trust_dcc(self, certificate: x509.Certificate) -> None:
        """Take responses and alerts only when signed with ``certificate``'s key (the DCC's
        XML-signing certificate; for the emulated DCC: :attr:`EmulatedDcc.certificate`)."""
        self.receiver.trust_dcc(certificate)

    @property
    def pending_count(self) -> int:
        """Requests whose response is awaited now."""
        return len(self._pending)

    async def start(self) -> None:
        """Start the receiver and the HTTP session."""
        await self.receiver.start()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.http_timeout_s),
            connector=aiohttp.TCPConnector(ssl=self._dcc_ssl_context or True,
                                           keepalive_timeout=CLIENT_KEEPALIVE_S),
        )

    async def stop(self) -> None:
        """Fail pending requests, stop the receiver, close the session; idempotent."""
        for pending in self._pending.values():
            pending.future.cancel()
        self._pending.clear()
        await self.receiver.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- helpers ---------------------------------------------------------------------------

    def _validate(self, document: bytes, what: str) -> None:
        if self.schema is None:
            return
        problems = self.schema.problems(parse_xml(document))
        if problems:
            self.invalid_documents.append((what, problems))

    def _log(
        self, kind: Kind, direction: str, ts_ns: int, xml: bytes, *,
        request_id: RequestId | None, sr_variant: str | None,
        command_variant: int | None = None, document: DuisResponse | None = None,
        gbcs_counter: int | None = None,
    ) -> None:
        if self.log is None:
            return
        if document is not None and gbcs_counter is None:
            gbcs_counter = _gbcs_counter(document.gbcs_payload or document.pre_command
                                         or document.local_command)
        self.log.record(
            ts_ns=ts_ns, direction="out" if direction == "out" else "in", kind=kind,
            request_id=request_id, sr_variant=sr_variant, command_variant=command_variant,
            response_code=None if document is None else document.response_code,
            gbcs_originator_counter=gbcs_counter,
            dcc_alert_code=None if document is None else document.dcc_alert_code,
            alert_code=None if document is None else document.alert_code,
            response_id=None if document is None else document.response_id, xml=xml,
        )

    def user(self, eui64: Eui64) -> DuisUser:
        """The registered User ``eui64``.

        Raises:
            BadInputError: not registered with this client.
        """
        found = self.users.get(eui64)
        if found is None:
            raise BadInputError(f"{eui64} is not a User of this DUIS client")
        return found

    def next_request_id(self, user: Eui64, target: Eui64) -> RequestId:
        """A fresh RequestID ``<user>:<target>:<counter>`` (counter persisted first)."""
        return RequestId(user, target, self.counters.next(user))

    # -- sending ---------------------------------------------------------------------------

    async def post(self, command_variant: int, document: bytes) -> tuple[DuisResponse, bytes, int]:
        """POST one DUIS document to the service of ``command_variant``; its synchronous
        answer, raw XML and arrival ts_ns.

        Raises:
            DuisClientError: not started, unreachable, or the answer is not DUIS.
        """
        if self._session is None:
            raise DuisClientError("DUIS client is not started (use 'async with')")
        url = self.base_url + SERVICE_PATHS[command_variant]
        try:
            async with self._session.post(
                url, data=document, headers={"Content-Type": "application/xml"}
            ) as reply:
                body = await read_bounded(reply)
        except (aiohttp.ClientError, TimeoutError, BadInputError) as error:
            raise DuisClientError(f"DCC at {url} unreachable: {error}",
                                  hint="check the lab's DUIS endpoint") from error
        at_ns = time.time_ns()
        try:
            return parse_response(body), body, at_ns
        except BadInputError as error:
            raise DuisClientError(
                f"DCC at {url} answered HTTP {reply.status} with no DUIS document: {error}"
            ) from error

    def build(
        self, user: Eui64, request_id: RequestId, variant: str, body: etree._Element,
        command_variant: int, *, sign: bool,
    ) -> bytes:
        """A request document, signed with the User's key when ``sign``.

        Raises:
            BadInputError: ``sign`` but the User has no key.
        """
        document = build_request(request_id=request_id, command_variant=command_variant,
                                 service_reference_variant=variant, body=body)
        if not sign:
            return document
        account = self.user(user)
        if account.signing_key is None or account.certificate is None:
            raise BadInputError(f"User {user} has no XML-signing key",
                                hint="set the User's key_file and certificate_file")
        return sign_document(document, account.signing_key, account.certificate)

    async def send(
        self,
        user: Eui64,
        target: Eui64,
        variant: str,
        body: etree._Element | None = None,
        *,
        command_variant: int | None = None,
        wait_response: bool = True,
        response_timeout_s: float | None = None,
    ) -> DuisExchange:
        """Send SR ``variant`` from ``user`` to ``target`` and follow it to its end.

        Args:
            user, target: EUI-64s (target: the device, or the DCC for non-device SRs).
            variant: ServiceReferenceVariant, e.g. ``4.1.1``.
            body: the Body's element (default: the SR's empty element is not known, so
                give it; e.g. ``sr_element("ReadInstantaneousImportRegisters")``).
            command_variant: default 8 for non-device SRs, 4 (then 5) for Critical SRs
                when the User can sign, else 1. 6 / 7 (Local Command Delivery of a
                Critical SR) send CV 4 first, then the signed Pre-Command as 6 / 7.
            wait_response: await the asynchronous response after ``I99``.
            response_timeout_s: overrides the client's default.

        Returns:
            The :class:`DuisExchange`; ``refused`` if the DCC answered with an error.

        Raises:
            DuisTimeoutError: no response in time (the pending entry is removed).
            DuisClientError: the DCC is unreachable or not speaking DUIS.
            BadInputError: unknown SR variant or User.
        """
        entry = sr(variant)
        account = self.user(user)
        if body is None:
            raise BadInputError(f"SR {variant} needs a body element")
        if command_variant is None:
            if entry.non_device:
                command_variant = 8
            elif entry.critical and account.signing_key is not None:
                command_variant = 4
            else:
                command_variant = 1
        request_id = self.next_request_id(user, target)
        sign = account.signing_key is not None  # every request, whatever its criticality
        first = 4 if command_variant in (6, 7) else command_variant
        document = self.build(user, request_id, variant, body, first, sign=sign)
        return await self.send_document(
            document, request_id=request_id, variant=variant, command_variant=first,
            wait_response=wait_response, response_timeout_s=response_timeout_s,
            signed_variant=5 if first == command_variant else command_variant,
        )

    async def send_document(
        self,
        document: bytes,
        *,
        request_id: RequestId,
        variant: str,
        command_variant: int,
        wait_response: bool = True,
        response_timeout_s: float | None = None,
        signed_variant: int = 5,
    ) -> DuisExchange:
        """Send a ready request document (e.g. a template) and follow it; see :meth:`send`.

        ``signed_variant``: after a CommandVariant 4, the CommandVariant the signed
        Pre-Command goes with (5, or 6 / 7 for Local Command Delivery).

        Raises:
            PreCommandMismatchError: the Pre-Command does not correspond to the request
                (nothing is signed or sent after it).
        """
        timeout_s = self.response_timeout_s if response_timeout_s is None else response_timeout_s
        self._validate(document, "request")
        if request_id in self._pending:
            raise BadInputError(f"RequestID {request_id} is already pending")
        pending = _Pending(asyncio.get_running_loop().create_future(), variant)
        self._pending[request_id] = pending
        try:
            sent_ns = time.time_ns()
            self._log("request", "out", sent_ns, document, request_id=request_id,
                      sr_variant=variant, command_variant=command_variant)
            self.stats.sent += 1
            ack, raw, ack_ns = await self.post(command_variant, document)
            self._after_ack(ack, raw, ack_ns, request_id, variant, command_variant)
            exchange = DuisExchange(request_id, variant, command_variant, sent_ns, ack, ack_ns)
            if exchange.refused:
                return exchange
            if command_variant == 4 and ack.pre_command is not None:
                exchange.pre_command = ack.pre_command
                check_pre_command(ack.pre_command, request_id, variant)
                exchange = await self._send_signed_pre_command(exchange, ack.pre_command,
                                                               signed_variant)
                if exchange.refused:
                    return exchange
            exchange.local_command = exchange.ack.local_command
            if exchange.ack.response_code != "I99" or not wait_response:
                return exchange
            try:
                response, response_ns = await asyncio.wait_for(
                    asyncio.shield(pending.future), timeout_s
                )
            except TimeoutError:
                self.stats.timeouts += 1
                timeout = DuisTimeoutError(
                    f"no DUIS response to {request_id} within {timeout_s} s",
                    hint="check the DCC's receive endpoint and the device",
                )
                timeout.request_id = str(request_id)
                timeout.command_variant = exchange.command_variant
                timeout.ack_code = exchange.ack.response_code
                raise timeout from None
            exchange.response, exchange.response_ns = response, response_ns
            return exchange
        finally:
            self._pending.pop(request_id, None)
            if not pending.future.done():
                pending.future.cancel()

    def _after_ack(
        self, ack: DuisResponse, raw: bytes, ack_ns: int, request_id: RequestId, variant: str,
        command_variant: int,
    ) -> None:
        self._validate(raw, "acknowledgement")
        self._log("ack", "in", ack_ns, raw, request_id=request_id, sr_variant=variant,
                  command_variant=command_variant, document=ack)
        self.stats.by_code[ack.response_code] = self.stats.by_code.get(ack.response_code, 0) + 1
        if not ack.is_success:
            self.stats.refused += 1

    async def _send_signed_pre_command(
        self, exchange: DuisExchange, pre_command: bytes, command_variant: int = 5
    ) -> DuisExchange:
        """CommandVariant 5 (or 6 / 7): the signed Pre-Command back to serviceS, same
        RequestID."""
        account = self.user(exchange.request_id.originator)
        if account.signing_key is None:
            raise BadInputError(f"User {account.eui64} cannot sign the Pre-Command")
        signed = sign_pre_command(pre_command, account.signing_key)
        body = sr_element("SignedPreCommand", {"GBCSPayload": b64encode(signed).decode()})
        cv = command_variant
        document = self.build(account.eui64, exchange.request_id, exchange.sr_variant, body, cv,
                              sign=True)
        self._validate(document, "request")
        sent_ns = time.time_ns()
        self._log("request", "out", sent_ns, document, request_id=exchange.request_id,
                  sr_variant=exchange.sr_variant, command_variant=cv,
                  gbcs_counter=_gbcs_counter(signed))
        self.stats.sent += 1
        ack, raw, ack_ns = await self.post(cv, document)
        self._after_ack(ack, raw, ack_ns, exchange.request_id, exchange.sr_variant, cv)
        exchange.command_variant, exchange.ack, exchange.ack_ns = cv, ack, ack_ns
        return exchange

    # -- receiving -------------------------------------------------------------------------

    def _on_addressed(self, document: DuisResponse, xml: bytes, ts_ns: int,
                      recipient: Eui64) -> None:
        """A document posted to one User's receive path."""
        self._on_document(document, xml, ts_ns, recipient)

    def _on_document(self, document: DuisResponse, xml: bytes, ts_ns: int,
                     recipient: Eui64 | None = None) -> None:
        """The receiver's callback: match responses to futures, queue alerts, log all."""
        self._validate(xml, "received")
        is_alert = document.body_name in ("DeviceAlertMessage", "DCCAlertMessage")
        pending = None if document.request_id is None else self._pending.get(document.request_id)
        variant = document.service_reference_variant or (pending.sr_variant if pending else None)
        self._log("alert" if is_alert else "response", "in", ts_ns, xml,
                  request_id=document.request_id, sr_variant=variant, document=document)
        if not is_alert and pending is not None and not pending.future.done():
            self.stats.responses += 1
            pending.future.set_result((document, ts_ns))
            return
        if is_alert:
            self.stats.alerts += 1
        else:
            self.stats.unmatched += 1
        if self.alerts.full():
            self.alerts.get_nowait()
        self.alerts.put_nowait(ReceivedDocument(document, xml, ts_ns, recipient))
