"""The emulated DCC: a real HTTP server speaking DUIS 5.4 as the DCC's simulators do.

Endpoints (as DCC Boxed): ``POST /api/v1/serviceS`` (Send Command Service, CommandVariants
1, 2, 3, 5, 6, 7), ``/api/v1/serviceT`` (Transform Service, CommandVariant 4) and
``/api/v1/serviceD`` (Non-Device Service, CommandVariant 8). Each request is parsed safely
(no DTD, no entities, no network), validated against the DUIS XSD, and answered at once:

* ``I99`` acknowledgement for a command to a device; after ``processing_latency_s`` and
  ``wan_latency_s`` the GBCS command goes to the emulated CHF (:class:`HanLink`); the
  device's GBCS response comes back (:class:`DccLink`) and, after the WAN latency and the
  processing latency again, the DUIS Response is POSTed to the User's receive endpoint;
* ``I0`` with a PreCommand for the Transform Service (DUIS 5.4 section 3.2.4);
* ``I0`` for a non-device SR;
* the command for local delivery (CommandVariants 2, 3, 6, 7; SR 8.13 returns the
  device's response: :mod:`hanlab.emulator.dcc.local_delivery`); with the WAN marked
  absent (:attr:`EmulatedDcc.wan_present`) nothing goes over the SM WAN;
* an error acknowledgement (HTTP 400) for anything refused; the server keeps serving.

Device alerts are forwarded as DUIS Device Alerts, and the DCC raises DCC Alerts of its own
(Update HAN Device Log result after SR 8.11; command failure when a device stays silent).

Security (DUIS 5.4 3.4.2, issue 14 items 14-16): with ``verify_signatures`` (the default)
every request must be XML-signed by its User and verify with the User's certificate,
whatever its criticality; a refused request never advances the User's counter state.
Everything the DCC POSTs (responses, device alerts, DCC alerts) is signed with its DSP key
(configured, or an ephemeral P-256 key and self-signed certificate made at construction:
:attr:`EmulatedDcc.certificate`). The server is bounded in time, size and concurrency
(:mod:`hanlab.duis.http`) and serves HTTPS when given a TLS certificate and key.
Every document written is validated against the XSD when one is loaded; failures are
counted in :attr:`EmulatedDcc.invalid_documents` (tests assert none). Every event is
written to the ground-truth log.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import re
from base64 import b64decode
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from hanlab.config.duis import both_or_neither
from hanlab.duis.catalogue import UnknownServiceRequestError, sr
from hanlab.duis.http import (
    CLIENT_KEEPALIVE_S,
    DEFAULT_LIMITS,
    HttpLimits,
    StartStop,
    client_ssl_context,
    listen,
    new_app,
    read_bounded,
    server_ssl_context,
)
from hanlab.duis.schema import DuisSchema
from hanlab.duis.signing import (
    SignatureError,
    ephemeral_identity,
    load_certificate,
    load_signing_key,
    sign_document,
    verify_document,
)
from hanlab.duis.xml import (
    SR_NS,
    BodyMapping,
    DuisRequest,
    DuisXmlError,
    RequestId,
    build_acknowledgement,
    build_dcc_alert,
    build_device_alert,
    build_local_command_response,
    build_precommand_response,
    build_response,
    parse_request,
    parse_xml,
    sr_element,
)
from hanlab.emulator.dcc.alerts import DccAlert, DccAlertCodes, DccAlertRules, users_of
from hanlab.emulator.dcc.commands import (
    DCC_ACCESS_CONTROL_BROKER,
    CommandMappingError,
    build_command,
    plan_command,
)
from hanlab.emulator.dcc.firmware import DccFirmware
from hanlab.emulator.dcc.inventory import DeviceStatus, Inventory, InventoryDevice
from hanlab.emulator.dcc.local_delivery import (
    SIGNED_PRE_COMMAND_VARIANTS,
    LocalDelivery,
    LocalReturnError,
    returns_local_command,
    sends_over_wan,
)
from hanlab.emulator.dcc_link import CommandDelivery, HanLink
from hanlab.emulator.truth import GroundTruthLog, now_ns
from hanlab.errors import BadInputError, HanlabError
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message

if TYPE_CHECKING:
    from hanlab.emulator.dcc.rollout.portal import RolloutPortal

_log = logging.getLogger(__name__)

Service = Literal["S", "T", "D"]
SERVICE_PATHS: Final[Mapping[Service, str]] = {
    "S": "/api/v1/serviceS", "T": "/api/v1/serviceT", "D": "/api/v1/serviceD",
}
SERVICE_COMMAND_VARIANTS: Final[Mapping[Service, frozenset[int]]] = {
    "S": frozenset({1, 2, 3, 5, 6, 7}), "T": frozenset({4}), "D": frozenset({8}),
}
"""CommandVariants each service accepts (DUIS 5.4 XSD ``CommandVariant``: 2, 3, 6, 7 are
Local Command Delivery, see :mod:`hanlab.emulator.dcc.local_delivery`)."""

_CONTENT_TYPE: Final = "application/xml"
_SR_SCAN: Final = re.compile(
    rb"<(?:\w+:)?ServiceReferenceVariant>\s*([0-9.]{1,12})\s*<", re.ASCII
)


@dataclass(frozen=True, slots=True)
class RefusalCodes:
    """The DUIS ResponseCodes the emulated DCC refuses with (DUIS 5.4 section 3.5.3).

    Configurable because labs compare with a particular DCC simulator; the defaults are
    hanlab's reading of the DUIS table: check them against the simulator you compare with.

    Attributes:
        schema: not well-formed, unsafe (DTD / entities) or not valid against the XSD.
        signature: a request unsigned (any SR with ``verify_signatures``, a Critical SR
            with ``require_signature``), or its XML signature does not verify.
        user: the originator of the RequestID is not a registered User.
        command_variant: the CommandVariant does not fit the service or the SR.
        device: the target is not in the DCC's inventory, or the SR has no GBCS for it.
        counter: the RequestID counter is not above the last one of the User for the target.
    """

    schema: str = "E1"
    signature: str = "E2"
    user: str = "E3"
    command_variant: str = "E4"
    device: str = "E5"
    counter: str = "E11"


@dataclass(frozen=True)
class DccUser:
    """A DCC User the emulated DCC knows.

    Attributes:
        eui64: the User's EUI-64 (RequestID originator).
        receive_url: where the DCC POSTs this User's responses and alerts.
        certificate: the User's XML-signing certificate, to verify signatures with when
            :attr:`EmulatedDccSettings.verify_signatures` is on.
        role: the User's DUIS User role (``IS``, ``GS``, ``ED``, ``GT`` ...), which decides
            who gets role-addressed DCC Alerts (N1 to ``ED``, N2 to ``GT``); ``None``:
            unknown.
    """

    eui64: Eui64
    receive_url: str
    certificate: x509.Certificate | None = None
    role: str | None = None


@dataclass(frozen=True)
class EmulatedDccSettings:
    """Settings of the emulated DCC.

    Attributes:
        host, port: where to listen (port 0: any free port, see :attr:`EmulatedDcc.url`).
        processing_latency_s: DCC processing time before a command leaves and before a
            response is posted (each way).
        wan_latency_s: one-way WAN latency between the DCC and the Communications Hub.
        response_timeout_s: how long to wait for a device's response at the CHF.
        require_signature: refuse a Critical SR that carries no ``ds:Signature`` (what
            is left of signature checks with ``verify_signatures`` off).
        verify_signatures: every request must be signed and verify with its User's
            certificate, whatever its criticality (the DUIS templates carry placeholder
            signatures: off for them).
        check_counters: refuse a RequestID counter not above the User's last one for the
            same target (replay protection; the DUIS templates reuse counters: off for them).
        rtds_folder: RTDS ``gbcs-rtds`` folder to take GBCS bodies from, or ``None``.
        dcc_counter_start: first Originator Counter of DCC-originated commands.
        gbcs_version: GBCSVersion written in PreCommands.
        refusal_codes, alert_codes: see :class:`RefusalCodes`, :class:`DccAlertCodes`.
        mpxns: device EUI-64 -> MPAN / MPRN written in DCC Alerts (N1 / N2); others get a
            placeholder derived from the EUI-64.
        firmware_failures: device EUI-64 -> the DCCAlertCode (N18-N23) its firmware
            distribution fails with after SR 11.1 (see :mod:`hanlab.emulator.dcc.alerts`).
        signing_key_file, certificate_file: the DSP's XML-signing key (DER/PEM PKCS#8,
            P-256) and certificate everything posted is signed with; ``None`` (both): an
            ephemeral key and self-signed certificate.
        tls_certificate_file, tls_key_file: serve HTTPS with them (PEM), else HTTP.
        tls_ca_file: PEM certificates to trust (besides the system's) when posting to an
            ``https`` receive endpoint.
        http_limits: time, size and concurrency limits of the server.
        wan_present: the rig's SM WAN is up; ``False`` ('no WAN' installation, seed 000):
            no command reaches a device over the WAN (Local Command Delivery still works).
    """

    host: str = "127.0.0.1"
    port: int = 0
    processing_latency_s: float = 0.05
    wan_latency_s: float = 0.1
    response_timeout_s: float = 30.0
    require_signature: bool = True
    verify_signatures: bool = True
    check_counters: bool = True
    rtds_folder: Path | None = None
    dcc_counter_start: int = 1 << 40
    gbcs_version: str = "4.0"
    refusal_codes: RefusalCodes = field(default_factory=RefusalCodes)
    alert_codes: DccAlertCodes = field(default_factory=DccAlertCodes)
    mpxns: Mapping[Eui64, str] = field(default_factory=dict)
    firmware_failures: Mapping[Eui64, str] = field(default_factory=dict)
    signing_key_file: Path | None = None
    certificate_file: Path | None = None
    tls_certificate_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    http_limits: HttpLimits = DEFAULT_LIMITS
    wan_present: bool = True

    def __post_init__(self) -> None:
        try:
            both_or_neither(self, ("signing_key_file", "certificate_file"),
                            ("tls_certificate_file", "tls_key_file"), who="emulated DCC: ")
        except ValueError as error:
            raise BadInputError(str(error)) from None


class DccRefusal(BadInputError):
    """A request the DCC refuses with a DUIS ResponseCode (answered, never raised out)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Outstanding:
    request: DuisRequest
    delivery: CommandDelivery
    user: DccUser
    future: asyncio.Future[tuple[bytes, int]]


@dataclass
class DccStats:
    """Counters of the emulated DCC (for tests and the dashboard)."""

    requests: int = 0
    acknowledged: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    commands_delivered: int = 0
    responses_posted: int = 0
    alerts_posted: int = 0
    timeouts: int = 0
    post_failures: int = 0
    documents_written: int = 0


class EmulatedDcc(StartStop):
    """The emulated DCC: DUIS 5.4 HTTP server, GBCS to and from the emulated CHF.

    Args:
        settings: see :class:`EmulatedDccSettings`.
        users: the Users it serves (their receive endpoints).
        devices: the inventory, device EUI-64 -> device type (``ESME``, ``GSME``, ``GPF``,
            ``CHF``, ``PPMID``, ``IHD``, ``HCALCS``).
        schema: the DUIS XSD; without it requests are only parsed, not validated.
        han: the emulated CHF / HAN (see :meth:`attach_han`).
        truth: the ground-truth log, or ``None``.
        inventory: the Smart Metering Inventory (device statuses,
            :mod:`hanlab.emulator.dcc.inventory`); default: ``devices``, all
            ``Commissioned``, not persisted.
        rollout: the CH firmware roll-out portal (SECMP0024) to serve under
            ``/rollout/v1`` beside DUIS, or ``None``
            (:class:`~hanlab.emulator.dcc.rollout.portal.RolloutPortal`).

    Raises:
        BadInputError: the DSP key or certificate file is unreadable.

    Use as ``async with EmulatedDcc(...) as dcc:``; :attr:`url` is the base URL;
    :attr:`certificate` is the DSP certificate the Users' receivers verify with.
    """

    def __init__(
        self,
        settings: EmulatedDccSettings,
        *,
        users: Iterable[DccUser],
        devices: Mapping[Eui64, str],
        schema: DuisSchema | None = None,
        han: HanLink | None = None,
        truth: GroundTruthLog | None = None,
        inventory: Inventory | None = None,
        rollout: RolloutPortal | None = None,
    ) -> None:
        self.settings = settings
        self.rollout = rollout
        self.users = {user.eui64: user for user in users}
        self.devices = {eui: kind.upper() for eui, kind in devices.items()}
        self.inventory = inventory or Inventory(
            InventoryDevice(eui, kind, DeviceStatus.COMMISSIONED, DeviceStatus.COMMISSIONED)
            for eui, kind in self.devices.items())
        self.alert_rules = DccAlertRules(
            settings.alert_codes, self.devices,
            roles=users_of((u.eui64, u.role) for u in self.users.values()),
            mpxns=settings.mpxns, firmware_failures=settings.firmware_failures)
        self.schema = schema
        self.truth = truth
        self.stats = DccStats()
        self.invalid_documents: list[tuple[str, list[str]]] = []
        self._han = han
        self._hans: dict[Eui64, HanLink] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # (device, Originator Counter) -> commands awaiting a response, oldest first (a
        # replayed counter, allowed with check_counters off, queues behind the first).
        self._outstanding: dict[tuple[Eui64, int], list[_Outstanding]] = {}
        self._last_counter: dict[tuple[Eui64, Eui64], int] = {}
        self._dcc_counter = itertools.count(settings.dcc_counter_start)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = settings.port
        self._signing_key, self.certificate = self._dsp_identity(settings)
        self.firmware = DccFirmware(self)
        self.local = LocalDelivery(settings.alert_codes)
        self.wan_present = settings.wan_present
        """Whether the SM WAN to the rig's CH is up (a 'no WAN' variant marks it absent)."""

    @staticmethod
    def _dsp_identity(
        settings: EmulatedDccSettings,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if settings.signing_key_file is None or settings.certificate_file is None:
            return ephemeral_identity("hanlab emulated DCC (DSP)")
        return (load_signing_key(settings.signing_key_file),
                load_certificate(settings.certificate_file))

    # -- lifecycle -------------------------------------------------------------------------

    def attach_han(self, han: HanLink, devices: Iterable[Eui64] | None = None) -> None:
        """Connect an emulated CHF / HAN the DCC hands GBCS commands to.

        Args:
            han: the rig's CHF side.
            devices: the devices on that rig (a lab with several rigs attaches one HAN per
                rig); ``None``: the default HAN for every device not attached otherwise.
        """
        if devices is None:
            self._han = han
            return
        for device in devices:
            self._hans[device] = han

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (``https`` with TLS; valid once
        started)."""
        scheme = "http" if self.settings.tls_certificate_file is None else "https"
        return f"{scheme}://{self.settings.host}:{self._port}"

    async def start(self) -> None:
        """Listen for DUIS requests.

        Raises:
            HanlabError: the port cannot be bound.
            BadInputError: a TLS file is unreadable or the key does not fit.
        """
        settings = self.settings
        tls = None
        if settings.tls_certificate_file is not None and settings.tls_key_file is not None:
            tls = server_ssl_context(settings.tls_certificate_file, settings.tls_key_file)
        trust = client_ssl_context(settings.tls_ca_file)
        app = new_app(limits=settings.http_limits)
        for service, path in SERVICE_PATHS.items():
            app.router.add_post(path, self._handler(service))
        if self.rollout is not None:
            self.rollout.mount(app)
        self._runner, self._port = await listen(app, settings.host, settings.port,
                                                "emulated DCC", ssl_context=tls)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(ssl=trust or True,
                                           keepalive_timeout=CLIENT_KEEPALIVE_S))

    async def stop(self) -> None:
        """Cancel and await every task, fail the outstanding commands, close; idempotent."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for queue in self._outstanding.values():
            for pending in queue:
                pending.future.cancel()
        self._outstanding.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("emulated DCC task %s failed", task.get_name(),
                       exc_info=task.exception())

    def _record(self, event: str, ts_ns: int | None = None, /, **fields: object) -> None:
        if self.truth is not None:
            self.truth.record(event, now_ns() if ts_ns is None else ts_ns, **fields)

    # -- documents -------------------------------------------------------------------------

    def _checked(self, document: bytes, what: str) -> bytes:
        """Count ``document``; validate it against the XSD, noting any failure."""
        self.stats.documents_written += 1
        if self.schema is not None:
            problems = self.schema.problems(parse_xml(document))
            if problems:
                _log.error("emulated DCC wrote an invalid %s: %s", what, problems[0])
                self.invalid_documents.append((what, problems))
        return document

    @staticmethod
    def _now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    # -- the HTTP side ---------------------------------------------------------------------

    def _handler(self, service: Service) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            received_ns = now_ns()
            try:
                data = await request.read()
            except (web.HTTPException, aiohttp.ClientError, ValueError) as error:
                return web.Response(status=400, text=f"{self.settings.refusal_codes.schema}: "
                                    f"unreadable request body: {error}")
            try:
                status, body = self._serve(service, data, received_ns)
            except Exception as error:  # a broken request never takes the server down
                _log.exception("emulated DCC: request failed")
                return web.Response(status=500, text=f"internal error: {error}")
            if body is None:
                return web.Response(status=status, text="E1: not a DUIS request")
            return web.Response(status=status, body=body, content_type=_CONTENT_TYPE)

        return handle

    def _serve(self, service: Service, data: bytes, received_ns: int) -> tuple[int, bytes | None]:
        """Answer one POST: ``(HTTP status, DUIS document or None)``."""
        self.stats.requests += 1
        codes = self.settings.refusal_codes
        try:
            root = parse_xml(data)
        except DuisXmlError as error:
            return self._refuse_unreadable(data, codes.schema, str(error), received_ns)
        if self.schema is not None:
            problems = self.schema.problems(root)
            if problems:
                return self._refuse_unreadable(data, codes.schema, problems[0], received_ns)
        try:
            request = parse_request(data)
        except BadInputError as error:
            return self._refuse_unreadable(data, codes.schema, str(error), received_ns)
        self._record("duis_request_received", received_ns, service=service,
                     request_id=str(request.request_id),
                     sr_variant=request.service_reference_variant,
                     command_variant=request.command_variant)
        try:
            return self._accept(service, request, root, data, received_ns)
        except DccRefusal as refusal:
            return self._refuse(request, refusal)

    def _refuse_unreadable(
        self, data: bytes, code: str, reason: str, received_ns: int
    ) -> tuple[int, bytes | None]:
        """Error acknowledgement for a request whose header cannot be trusted.

        The ServiceReferenceVariant is recovered by a bounded text scan (no XML parsing);
        with none the answer is a plain-text HTTP 400, as there is no valid DUIS form.
        """
        self.stats.refused[code] = self.stats.refused.get(code, 0) + 1
        self._record("duis_request_refused", received_ns, response_code=code, reason=reason)
        match = _SR_SCAN.search(data[:65536])
        variant = match.group(1).decode() if match else None
        try:
            entry = sr(variant) if variant else None
        except UnknownServiceRequestError:
            entry = None
        if entry is None:
            return 400, None
        document = build_response(
            request_id=None, response_code=code, response_date_time=self._now(),
            service_reference=entry.service_reference,
            service_reference_variant=entry.service_reference_variant,
        )
        return 400, self._checked(document, "error acknowledgement")

    def _refuse(self, request: DuisRequest, refusal: DccRefusal) -> tuple[int, bytes]:
        code = refusal.code
        self.stats.refused[code] = self.stats.refused.get(code, 0) + 1
        self._record("duis_ack_sent", request_id=str(request.request_id), response_code=code,
                     reason=refusal.message)
        document = build_acknowledgement(
            request_id=request.request_id, service_reference=request.service_reference,
            service_reference_variant=request.service_reference_variant,
            response_date_time=self._now(), response_code=code,
        )
        return 400, self._checked(document, "error acknowledgement")

    def _accept(
        self, service: Service, request: DuisRequest, root: etree._Element, data: bytes,
        received_ns: int,
    ) -> tuple[int, bytes]:
        codes = self.settings.refusal_codes
        entry = sr(request.service_reference_variant)
        user = self.users.get(request.request_id.originator)
        if user is None:
            raise DccRefusal(codes.user, f"{request.request_id.originator} is not a User")
        cv = request.command_variant
        if cv not in SERVICE_COMMAND_VARIANTS[service]:
            raise DccRefusal(codes.command_variant,
                             f"CommandVariant {cv} is not served by service{service}")
        if entry.non_device != (cv == 8):
            raise DccRefusal(codes.command_variant,
                             f"CommandVariant {cv} does not fit SR "
                             f"{entry.service_reference_variant}")
        self._check_signature(request, entry.critical, data, user)
        self._check_counter(request)
        answer = self._dispatch(request, received_ns, user)
        self._commit_counter(request)  # only now: a refused request never advances it
        return answer

    def _dispatch(
        self, request: DuisRequest, received_ns: int, user: DccUser
    ) -> tuple[int, bytes]:
        """The accepted request's answer; raises :class:`DccRefusal` before it changes any
        state."""
        codes = self.settings.refusal_codes
        cv = request.command_variant
        self._check_inventory(request)
        if cv == 8:
            return self._non_device(request)
        device_type = self.devices.get(request.request_id.target)
        if device_type is None:
            raise DccRefusal(codes.device, f"{request.request_id.target} is not in the inventory")
        try:
            plan = plan_command(request.service_reference_variant, device_type, request.body)
        except CommandMappingError as error:
            raise DccRefusal(codes.device, error.message) from error
        if cv in SIGNED_PRE_COMMAND_VARIANTS:
            command = self._signed_pre_command(request)
            message = parse_gbcs_message(command)
            if not isinstance(message, GbcsMessage):
                raise DccRefusal(codes.schema, "SignedPreCommand is not a GBCS message")
            counter, originator = message.originator_counter, message.originator_system_title
        else:
            command, counter, originator = build_command(
                plan=plan, variant=request.service_reference_variant,
                user=request.request_id.originator, target=request.request_id.target,
                user_counter=request.request_id.counter,
                dcc_counter=next(self._dcc_counter), rtds_folder=self.settings.rtds_folder,
                pre_command=cv == 4,
            )
        if cv == 4:
            self._record("pre_command_returned", request_id=str(request.request_id),
                         message_code=plan.message_code, originator_counter=counter)
            self.stats.acknowledged += 1
            document = build_precommand_response(
                request_id=request.request_id, service_reference=request.service_reference,
                service_reference_variant=request.service_reference_variant,
                response_date_time=self._now(), gbcs_payload=command,
                gbcs_version=self.settings.gbcs_version,
            )
            return 200, self._checked(document, "transform response")
        self.alert_rules.device_command(request)
        delivery = CommandDelivery(
            request_id=request.request_id,
            service_reference_variant=request.service_reference_variant,
            command_variant=cv, target=request.request_id.target, device_type=device_type,
            message_code=plan.message_code, originator_counter=counter, originator=originator,
            ts_ns=received_ns,
        )
        if returns_local_command(cv):
            return self._return_local(request, delivery, command, user)
        self._spawn(self._run_command(request, delivery, command, user),
                    f"dcc-command-{request.request_id}")
        return self._acknowledge(request, "I99")

    def _return_local(
        self, request: DuisRequest, delivery: CommandDelivery, command: bytes, user: DccUser
    ) -> tuple[int, bytes]:
        """CommandVariants 2, 3, 6, 7: the command comes back for local delivery; 3 and 7
        also go over the WAN (see :mod:`hanlab.emulator.dcc.local_delivery`)."""
        self.local.issue(request)
        wan = sends_over_wan(request.command_variant)
        self._record("local_command_returned", request_id=str(request.request_id),
                     command_variant=request.command_variant,
                     message_code=delivery.message_code,
                     originator_counter=delivery.originator_counter, also_wan=wan)
        if wan:
            self._spawn(self._run_command(request, delivery, command, user),
                        f"dcc-command-{request.request_id}")
        self.stats.acknowledged += 1
        document = build_local_command_response(
            request_id=request.request_id, service_reference=request.service_reference,
            service_reference_variant=request.service_reference_variant,
            response_date_time=self._now(), gbcs_payload=command,
            response_code="I99" if wan else "I0",
        )
        return 200, self._checked(document, "local command response")

    def _acknowledge(self, request: DuisRequest, code: str) -> tuple[int, bytes]:
        self.stats.acknowledged += 1
        self._record("duis_ack_sent", request_id=str(request.request_id), response_code=code)
        document = build_acknowledgement(
            request_id=request.request_id, service_reference=request.service_reference,
            service_reference_variant=request.service_reference_variant,
            response_date_time=self._now(), response_code=code,
        )
        return 200, self._checked(document, "acknowledgement")

    def _non_device(self, request: DuisRequest) -> tuple[int, bytes]:
        """Non-Device Service (CommandVariant 8): answered at once with ``I0``; the DCC
        Alerts it causes (decommission, firmware distribution, a returned local response)
        follow after the DCC's processing latency."""
        if request.service_reference_variant == "8.13":
            return self._local_return(request)
        answer = (self._read_inventory(request) if request.service_reference_variant == "8.2"
                  else self._acknowledge(request, "I0"))
        self.inventory.accepted(request)
        if request.service_reference_variant == "11.1":
            self.firmware.update_firmware(request)  # to the CH, then over the HAN
        alerts = self.alert_rules.non_device(request)
        if alerts:
            self._spawn(self._post_alerts(alerts, delay_s=self.settings.processing_latency_s),
                        f"dcc-alerts-{request.request_id}")
        return answer

    def _local_return(self, request: DuisRequest) -> tuple[int, bytes]:
        """SR 8.13 Return Local Command Response: the DCC Alerts of the original SR follow,
        as if its response had come over the WAN."""
        try:
            taken = self.local.take_return(request)
        except LocalReturnError as error:
            raise DccRefusal(self.settings.refusal_codes.schema, error.message) from error
        self.local.commit(taken)
        original = taken.original
        self._record("local_response_returned", request_id=str(request.request_id),
                     original_request_id=None if original is None else str(original.request_id),
                     source=taken.message.originator_system_title.duis,
                     cra_flag=taken.message.cra_flag,
                     originator_counter=taken.message.originator_counter)
        alerts = list(taken.alerts)
        if original is not None:
            alerts += self.alert_rules.device_answered(original)
        answer = self._acknowledge(request, "I0")
        if alerts:
            self._spawn(self._post_alerts(alerts, delay_s=self.settings.processing_latency_s),
                        f"dcc-alerts-{request.request_id}")
        return answer

    # -- Smart Metering Inventory (hanlab.emulator.dcc.inventory) ---------------------------

    def _check_inventory(self, request: DuisRequest) -> None:
        """Refuse an SR its target's or a named device's SMI status forbids (DUIS 5.4
        Response Code E5, see :meth:`Inventory.refusal`)."""
        refusal = self.inventory.refusal(request)
        if refusal is not None:
            raise DccRefusal(*refusal)

    def _read_inventory(self, request: DuisRequest) -> tuple[int, bytes]:
        """SR 8.2 Read Inventory: ``I0`` with the SMI's ``DSPInventory``."""
        _, document = self._acknowledge(request, "I0")
        root = parse_xml(document)
        self.inventory.read_response(root, request)
        return 200, self._checked(etree.tostring(root, xml_declaration=True,
                                                 encoding="UTF-8"), "read inventory")

    def _check_signature(
        self, request: DuisRequest, critical: bool, data: bytes, user: DccUser
    ) -> None:
        """Every request signed by its User with ``verify_signatures``, whatever its
        criticality (DUIS 5.4 3.4.2; issue 14 item 15), else Critical SRs signed."""
        codes = self.settings.refusal_codes
        if self.settings.verify_signatures:
            if not request.signed:
                raise DccRefusal(codes.signature, "the request is not signed")
            if user.certificate is None:
                raise DccRefusal(codes.signature, f"no certificate for {user.eui64}")
            try:
                verify_document(data, user.certificate)
            except SignatureError as error:
                raise DccRefusal(codes.signature, error.message) from error
        elif critical and self.settings.require_signature and not request.signed:
            raise DccRefusal(codes.signature, "a Critical SR must be signed")

    def _counter_checked(self, request: DuisRequest) -> bool:
        # CommandVariants 5, 6, 7 repeat the Transform request's RequestID
        return (self.settings.check_counters
                and request.command_variant not in SIGNED_PRE_COMMAND_VARIANTS)

    def _check_counter(self, request: DuisRequest) -> None:
        """Refuse a RequestID counter not above the User's last for the target (replay
        protection, DUIS 5.4 3.4.1.1); changes nothing (see :meth:`_commit_counter`)."""
        if not self._counter_checked(request):
            return
        key = (request.request_id.originator, request.request_id.target)
        last = self._last_counter.get(key)
        if last is not None and request.request_id.counter <= last:
            raise DccRefusal(self.settings.refusal_codes.counter,
                             f"RequestID counter {request.request_id.counter} not above {last}")

    def _commit_counter(self, request: DuisRequest) -> None:
        if self._counter_checked(request):
            key = (request.request_id.originator, request.request_id.target)
            self._last_counter[key] = request.request_id.counter

    def _signed_pre_command(self, request: DuisRequest) -> bytes:
        node = request.body.find(f"{{{SR_NS}}}GBCSPayload")
        if request.body_name != "SignedPreCommand" or node is None or not node.text:
            raise DccRefusal(self.settings.refusal_codes.command_variant,
                             f"CommandVariant {request.command_variant} needs a "
                             "SignedPreCommand body")
        try:
            return b64decode(node.text, validate=False)
        except ValueError as error:
            raise DccRefusal(self.settings.refusal_codes.schema, str(error)) from error

    # -- the WAN / CHF side ----------------------------------------------------------------

    async def _run_command(
        self, request: DuisRequest, delivery: CommandDelivery, command: bytes, user: DccUser
    ) -> None:
        """Processing, WAN, the CHF, the device's answer, back over the WAN, the POST."""
        settings = self.settings
        key = (delivery.target, delivery.originator_counter)
        future: asyncio.Future[tuple[bytes, int]] = asyncio.get_running_loop().create_future()
        entry = _Outstanding(request, delivery, user, future)
        self._outstanding.setdefault(key, []).append(entry)
        try:
            await asyncio.sleep(settings.processing_latency_s + settings.wan_latency_s)
            han = self._hans.get(delivery.target, self._han)
            wan_absent = not self.wan_present
            if wan_absent:  # nothing crosses the SM WAN: the command fails at once
                self._record("command_not_delivered", request_id=str(delivery.request_id),
                             target=delivery.target.duis, reason="SM WAN absent")
                han = None
            if han is not None:
                await han.deliver_command(delivery.target, command, delivery)
                self.stats.commands_delivered += 1
                self._record("command_queued_chf", request_id=str(delivery.request_id),
                             target=delivery.target.duis, message_code=delivery.message_code,
                             originator_counter=delivery.originator_counter,
                             gbcs_octets=len(command))
            response: bytes | None = None
            try:
                if not wan_absent:
                    response = (await asyncio.wait_for(future, settings.response_timeout_s))[0]
            except TimeoutError:
                response = None
        finally:
            queue = self._outstanding.get(key, [])
            if entry in queue:
                queue.remove(entry)
            if not queue:
                self._outstanding.pop(key, None)
        if response is None:
            await self._command_failed(request, delivery, user)
            return
        await asyncio.sleep(settings.wan_latency_s + settings.processing_latency_s)
        await self._post_response(request, delivery, user, response)

    async def _post_response(
        self, request: DuisRequest, delivery: CommandDelivery, user: DccUser, response: bytes
    ) -> None:
        rid = request.request_id
        document = build_response(
            request_id=rid, response_id=RequestId(rid.target, rid.originator, rid.counter),
            response_code="I0", response_date_time=self._now(),
            service_reference=request.service_reference,
            service_reference_variant=request.service_reference_variant,
            gbcs_payload=response,
        )
        self.inventory.answered(request)  # before the User hears of it (and sends more)
        if await self._post(user, self._checked(document, "response"), "duis_response_posted",
                            request_id=str(rid), originator_counter=delivery.originator_counter):
            self.stats.responses_posted += 1
        if request.service_reference_variant == "8.11":
            await self.post_dcc_alert(
                user.eui64, self.settings.alert_codes.update_han_device_log_success,
                "UpdateHANDeviceLogResult", {"UpdateHANDeviceLogServiceRequestID": str(rid)},
            )
        await self._post_alerts(self.alert_rules.device_answered(request))

    async def _post_alerts(self, alerts: Iterable[DccAlert], *, delay_s: float = 0.0) -> None:
        """POST each alert to each of its recipients that is a User (others are recorded
        as ``dcc_alert_dropped``)."""
        if delay_s:
            await asyncio.sleep(delay_s)
        for alert in alerts:
            for recipient in alert.recipients:
                if recipient not in self.users:
                    self._record("dcc_alert_dropped", dcc_alert_code=alert.code,
                                 recipient=recipient.duis)
                    continue
                await self.post_dcc_alert(recipient, alert.code, alert.element,
                                          alert.content, request_id=alert.request_id)

    async def _command_failed(
        self, request: DuisRequest, delivery: CommandDelivery, user: DccUser
    ) -> None:
        self.stats.timeouts += 1
        rid = request.request_id
        self._record("command_timeout", request_id=str(rid), target=delivery.target.duis)
        codes = self.settings.alert_codes
        if request.service_reference_variant == "8.11":
            await self.post_dcc_alert(
                user.eui64, codes.update_han_device_log_failure, "UpdateHANDeviceLogResult",
                {"UpdateHANDeviceLogServiceRequestID": str(rid)},
            )
            return
        await self.post_dcc_alert(
            user.eui64, codes.command_failure, "CommandFailure",
            {"CommandRequestID": str(rid), "DeviceID": delivery.target.duis}, request_id=rid,
        )

    async def post_dcc_alert(
        self, user: Eui64, dcc_alert_code: str, alert_name: str,
        content: BodyMapping, *, request_id: RequestId | None = None,
    ) -> bool:
        """POST a DCC Alert to ``user`` (DUIS 5.4 section 3.6); scenarios use it to inject.

        Args:
            user: the User's EUI-64 (must be registered).
            dcc_alert_code: e.g. ``N24``.
            alert_name: the DCCAlert child, e.g. ``UpdateHANDeviceLogResult``.
            content: its children in schema order, e.g.
                ``{"UpdateHANDeviceLogServiceRequestID": "<RequestID>"}``.
            request_id: the RequestID header element, if any.

        Returns:
            Whether the User's endpoint took it (2xx).

        Raises:
            BadInputError: ``user`` is not registered.
        """
        target = self.users.get(user)
        if target is None:
            raise BadInputError(f"{user} is not a User of the emulated DCC")
        document = build_dcc_alert(
            dcc_alert_code=dcc_alert_code, alert=sr_element(alert_name, content),
            response_date_time=self._now(), request_id=request_id,
        )
        sent = await self._post(target, self._checked(document, "DCC alert"),
                                "dcc_alert_posted", dcc_alert_code=dcc_alert_code)
        if sent:
            self.stats.alerts_posted += 1
        return sent

    async def _post(self, user: DccUser, document: bytes, event: str, **fields: object) -> bool:
        """POST ``document``, signed with the DSP key, to ``user``'s receive endpoint."""
        if self._session is None:
            return False
        document = sign_document(document, self._signing_key, self.certificate)
        self._record(event, user=user.eui64.duis, **fields)
        try:
            async with self._session.post(
                user.receive_url, data=document, headers={"Content-Type": _CONTENT_TYPE}
            ) as reply:
                await read_bounded(reply)
                ok = 200 <= reply.status < 300
        except (aiohttp.ClientError, TimeoutError, BadInputError) as error:
            self.stats.post_failures += 1
            self._record("duis_post_failed", user=user.eui64.duis, error=str(error), **fields)
            return False
        if not ok:
            self.stats.post_failures += 1
            self._record("duis_post_refused", user=user.eui64.duis, http_status=reply.status,
                         **fields)
        return ok

    # -- DccLink ---------------------------------------------------------------------------

    def on_device_response(
        self, gbcs_response: bytes, *, source_eui64: Eui64, ts_ns: int | None = None
    ) -> None:
        """A device's GBCS response reached the CHF (see :class:`DccLink`). Never raises."""
        at_ns = now_ns() if ts_ns is None else ts_ns
        message = parse_gbcs_message(gbcs_response)
        if not isinstance(message, GbcsMessage):
            self._record("device_response_unreadable", at_ns, source=source_eui64.duis)
            return
        queue = self._outstanding.get((source_eui64, message.originator_counter), [])
        pending = next((p for p in queue if not p.future.done()), None)
        self._record("device_response_at_chf", at_ns, source=source_eui64.duis,
                     originator_counter=message.originator_counter,
                     matched=pending is not None)
        if pending is not None:
            pending.future.set_result((gbcs_response, at_ns))

    def on_device_alert(
        self, gbcs_alert: bytes, *, source_eui64: Eui64, ts_ns: int | None = None
    ) -> None:
        """A device's GBCS alert reached the CHF (see :class:`DccLink`). Never raises."""
        at_ns = now_ns() if ts_ns is None else ts_ns
        message = parse_gbcs_message(gbcs_alert)
        if not isinstance(message, GbcsMessage):
            self._record("device_alert_unreadable", at_ns, source=source_eui64.duis)
            return
        self._record("device_alert_at_chf", at_ns, source=source_eui64.duis,
                     originator_counter=message.originator_counter,
                     alert_code=message.alert_code)
        user = self.users.get(message.recipient_system_title)
        if user is None:
            self._record("device_alert_dropped", source=source_eui64.duis,
                         recipient=message.recipient_system_title.duis)
            return
        self._spawn(self._forward_alert(message, gbcs_alert, source_eui64, user),
                    f"dcc-alert-{source_eui64}")

    async def _forward_alert(
        self, message: GbcsMessage, gbcs_alert: bytes, source: Eui64, user: DccUser
    ) -> None:
        settings = self.settings
        await asyncio.sleep(settings.wan_latency_s + settings.processing_latency_s)
        code = message.alert_code if message.alert_code is not None else message.message_code
        document = build_device_alert(
            response_id=RequestId(source, user.eui64, message.originator_counter),
            alert_code=code, gbcs_payload=gbcs_alert, response_date_time=self._now(),
        )
        with contextlib.suppress(HanlabError):
            if await self._post(user, self._checked(document, "device alert"),
                                "device_alert_posted", alert_code=code,
                                originator_counter=message.originator_counter):
                self.stats.alerts_posted += 1


DCC_EUI64: Final = DCC_ACCESS_CONTROL_BROKER
"""The EUI-64 non-device SRs are addressed to (the DCC, as in the DUIS templates)."""
