"""The daemon's control API: JSON over HTTP(S), versioned under ``/api/v1`` (issue 9,
item 3; DESIGN.md "One lab runtime, jobs on it").

Every endpoint calls one :class:`~hanlab.runtime.service.LabService` method and serves its
JSON-ready result as it is (shapes in :mod:`hanlab.runtime.service`; the OpenAPI document
of :mod:`hanlab.daemon.openapi` at ``GET /api/openapi.json``). Authentication is
``Authorization: Bearer <token>`` with a token of the daemon's tokens file
(:mod:`hanlab.daemon.tokens`): role ``viewer`` for every GET, ``operator`` also to submit
and cancel jobs; ``/api/v1/health`` and the document need none.

Every refusal is JSON ``{"error": {"status", "message", "field"}}``: 401 (no or bad token;
with ``WWW-Authenticate: Bearer``), 403 (role), 404 (no such rig, job or capture, a
malformed name, an unknown path), 405, 409 (:class:`RigBusyError`), 413 (body over
64 KiB), 422 (:class:`JobRefusedError`, a bad body or query field, naming it). An
unexpected exception is logged with its traceback and answered 500 without details; the
server keeps serving. Token values are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from hanlab.config.models import ApiConfig
from hanlab.daemon.openapi import (
    CAPTURE_PATTERN,
    JOB_ID_PATTERN,
    JOB_STATES,
    MAX_LIMIT,
    RIG_PATTERN,
    openapi_document,
)
from hanlab.daemon.tokens import TokenStore, role_allows
from hanlab.duis.http import listen, new_app
from hanlab.errors import BadInputError, HanlabError
from hanlab.resources import StartStop
from hanlab.runtime.service import JobRefusedError, LabService, NotFoundError, RigBusyError

__all__ = ["MAX_BODY_BYTES", "ApiServer", "JobSpecBody", "create_app", "server_ssl_context"]

_log = logging.getLogger(__name__)

#: Largest request body accepted (bytes); a job spec is far smaller.
MAX_BODY_BYTES: Final = 64 * 1024
#: Longest a client may take to send a request body (s).
BODY_TIMEOUT_S: Final = 10.0
DEFAULT_LIMIT: Final = 100

_RIG_RE: Final = re.compile(RIG_PATTERN)
_JOB_RE: Final = re.compile(JOB_ID_PATTERN)
_CAPTURE_RE: Final = re.compile(CAPTURE_PATTERN)

_CAPTURE_TYPES: Final = {".pcapng": "application/x-pcapng",
                         ".pcap": "application/vnd.tcpdump.pcap"}
_AUTHENTICATE: Final = 'Bearer realm="hanlab"'

#: The name of the token a request came with (for log lines; never its value).
_TOKEN_NAME: Final = web.RequestKey("hanlab_token_name", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class JobSpecBody(BaseModel):
    """The body of ``POST /api/v1/jobs`` (strict JSON types; unknown fields refused).

    Only the fields given reach :meth:`LabService.submit`; the others take the lab's
    defaults there.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    rig: Annotated[str, StringConstraints(pattern=RIG_PATTERN)]
    scenario: _Short
    variants: list[_Short] = Field(default_factory=list, max_length=100)
    devices: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                  Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=dict, max_length=50)
    repeat: int = Field(1, ge=1, le=1000)
    include_optional: bool = True
    label: Annotated[str, StringConstraints(max_length=200)] = ""
    wait: bool = False


class _Refusal(Exception):
    """An answer other than 2xx, raised inside a handler."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def _show(value: str) -> str:
    """A client's value for a message: quoted, at most 80 characters."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _sanitise(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _sanitise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitise(v) for v in value]
    return value


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    try:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        body = json.dumps(_sanitise(data), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    return web.Response(body=body.encode("utf-8"), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def _error(status: int, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": {"status": status, "message": message, "field": field}},
                 status=status, headers=headers)


class _Api:
    """The handlers over one service and token store, and the middleware."""

    def __init__(self, service: LabService, tokens: TokenStore) -> None:
        self.service = service
        self.tokens = tokens
        self._openapi = json.dumps(openapi_document(), separators=(",", ":")).encode()
        #: (method, path template) -> role needed (None: public).
        self.roles: dict[tuple[str, str], str | None] = {}
        #: (method, path template) -> the query parameters it takes (others: 422).
        self.queries: dict[tuple[str, str], frozenset[str]] = {}

    def routes(self) -> list[tuple[Any, ...]]:
        """``(method, path, handler, role, *query parameters)`` of every endpoint."""
        rig = "/api/v1/rigs/{rig}"
        job = "/api/v1/jobs/{id}"
        return [
            ("GET", "/api/openapi.json", self.openapi, None),
            ("GET", "/api/v1/health", self.health, None),
            ("GET", "/api/v1/lab", self.lab, "viewer"),
            ("GET", "/api/v1/rigs", self.rigs, "viewer"),
            ("GET", rig, self.rig, "viewer"),
            ("GET", f"{rig}/sniffers", self.sniffers, "viewer"),
            ("GET", f"{rig}/events", self.events, "viewer", "limit"),
            ("GET", f"{rig}/exchanges", self.rig_exchanges, "viewer", "limit"),
            ("GET", f"{rig}/timings", self.rig_timings, "viewer"),
            ("GET", f"{rig}/ota", self.rig_ota, "viewer"),
            ("GET", f"{rig}/dutycycle", self.rig_dutycycle, "viewer"),
            ("GET", f"{rig}/captures", self.captures, "viewer"),
            ("GET", f"{rig}/captures/{{name}}", self.download_capture, "viewer"),
            ("GET", "/api/v1/jobs", self.jobs, "viewer", "rig", "state", "limit"),
            ("POST", "/api/v1/jobs", self.submit, "operator"),
            ("GET", job, self.job, "viewer"),
            ("GET", f"{job}/steps", self.job_steps, "viewer"),
            ("GET", f"{job}/exchanges", self.job_exchanges, "viewer"),
            ("GET", f"{job}/timings", self.job_timings, "viewer"),
            ("POST", f"{job}/cancel", self.cancel, "operator"),
            ("POST", f"{job}/rerun", self.rerun, "operator"),
            ("GET", "/api/v1/scenarios", self.scenarios, "viewer"),
        ]

    # --- authentication and errors -------------------------------------------------

    @staticmethod
    def _key(request: web.Request) -> tuple[str, str]:
        route = request.match_info.route
        return request.method, route.resource.canonical if route.resource else ""

    def _needed_role(self, request: web.Request) -> str | None:
        if request.match_info.http_exception is not None:
            return None  # 404/405: nothing to protect
        key = self._key(request)
        if key in self.roles:
            return self.roles[key]
        # A route someone else added (the dashboard's static files): public outside /api.
        return "operator" if request.path.startswith("/api/") else None

    def _check_query(self, request: web.Request) -> None:
        """422 for a query parameter the endpoint does not take (a typo must not be
        ignored silently); public endpoints ignore their query."""
        key = self._key(request)
        if self.roles.get(key) is None:
            return
        allowed = self.queries.get(key, frozenset())
        for name in request.query:
            if name not in allowed:
                takes = ", ".join(sorted(allowed)) or "none"
                raise _Refusal(422, f"{_show(name)[:60]}: unknown query parameter (this "
                                    f"endpoint takes: {takes})", name[:60])

    def _authorise(self, request: web.Request, needed: str) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise _Refusal(401, "a bearer token is needed: send 'Authorization: Bearer "
                                "<token>' with a token of the daemon's API tokens file",
                           headers={"WWW-Authenticate": _AUTHENTICATE})
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise _Refusal(401, "the Authorization header is not 'Bearer <token>'",
                           headers={"WWW-Authenticate": _AUTHENTICATE})
        token = self.tokens.identify(value)
        if token is None:
            _log.info("control API: refused an unknown token from %s for %s %s",
                      request.remote, request.method, request.path)
            raise _Refusal(401, "the bearer token is not one of this daemon's tokens",
                           headers={"WWW-Authenticate":
                                    f'{_AUTHENTICATE}, error="invalid_token"'})
        if not role_allows(token.role, needed):
            raise _Refusal(403, f"this needs a token with role {needed}; the token given "
                                f"({token.name}) has role {token.role}",
                           headers={"WWW-Authenticate":
                                    f'{_AUTHENTICATE}, error="insufficient_scope"'})
        request[_TOKEN_NAME] = token.name

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate, run the handler, and turn every refusal into JSON."""
        try:
            needed = self._needed_role(request)
            if needed is not None:
                self._authorise(request, needed)
                self._check_query(request)
            response = await handler(request)
        except _Refusal as refusal:
            response = _error(refusal.status, refusal.message, refusal.field,
                              refusal.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            message = {404: f"no such path {request.path[:200]}",
                       405: f"{request.method} is not allowed on {request.path[:200]}",
                       413: f"the request body is over {MAX_BODY_BYTES} bytes",
                       }.get(exc.status, exc.reason)
            response = _error(exc.status, message, None, headers)
        except NotFoundError as error:
            response = _error(404, error.message)
        except RigBusyError as error:
            response = _error(409, str(error))
        except JobRefusedError as error:
            response = _error(422, str(error), error.field)
        except BadInputError as error:
            response = _error(422, str(error))
        except HanlabError as error:
            _log.warning("control API: %s %s: %s", request.method, request.path, error)
            response = _error(503, str(error))
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("control API: internal error in %s %s", request.method,
                           request.path)
            response = _error(500, "internal error in the daemon (see its log)")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # --- input --------------------------------------------------------------------

    @staticmethod
    def _query(request: web.Request, name: str) -> str | None:
        values = request.query.getall(name, [])
        if len(values) > 1:
            raise _Refusal(422, f"{name}: give it once", name)
        return values[0] if values else None

    def _limit(self, request: web.Request) -> int:
        text = self._query(request, "limit")
        if text is None:
            return DEFAULT_LIMIT
        if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= MAX_LIMIT:
            raise _Refusal(422, f"limit: {_show(text)} is not a whole number from 1 to "
                                f"{MAX_LIMIT}", "limit")
        return int(text)

    @staticmethod
    def _rig(request: web.Request) -> str:
        name = request.match_info["rig"]
        if not _RIG_RE.match(name):
            raise NotFoundError(f"no rig {_show(name)}")
        return name

    @staticmethod
    def _job_id(request: web.Request) -> str:
        job_id = request.match_info["id"]
        if not _JOB_RE.match(job_id):
            raise NotFoundError(f"no job {_show(job_id)}")
        return job_id

    @staticmethod
    async def _body(request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise _Refusal(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        # new_app's middleware has read the body already, bounded in time and size
        # (hanlab.duis.http.HttpLimits); read() hands it over at once
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.read()
        except TimeoutError:
            raise _Refusal(408, f"the request body took over {BODY_TIMEOUT_S:g} s") from None
        if len(body) > MAX_BODY_BYTES:
            raise _Refusal(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        chunks = [body] if body else []
        if not chunks:
            raise _Refusal(422, "the request body is empty; send a JSON object")
        try:
            return json.loads(b"".join(chunks).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise _Refusal(422, f"the request body is not JSON: {error}") from None

    # --- handlers -------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/openapi.json``: the OpenAPI document."""
        return web.Response(body=self._openapi, content_type="application/json",
                            charset="utf-8")

    async def health(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/health``: ``{"ok": true}``."""
        return _json({"ok": True})

    async def lab(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/lab``."""
        return _json(self.service.lab())

    async def rigs(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs``."""
        return _json(self.service.rigs())

    async def rig(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}``."""
        return _json(self.service.rig(self._rig(request)))

    async def sniffers(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/sniffers``."""
        return _json(self.service.sniffers(self._rig(request)))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/events?limit=``."""
        rig = self._rig(request)
        return _json(self.service.events(rig, self._limit(request)))

    async def rig_exchanges(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/exchanges?limit=``."""
        rig = self._rig(request)
        return _json(self.service.exchanges(rig, self._limit(request)))

    async def rig_timings(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/timings``."""
        return _json(self.service.timings(self._rig(request)))

    async def rig_ota(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/ota``: the rig's OTA transfers seen on air."""
        return _json(self.service.ota(self._rig(request)))
    async def rig_dutycycle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/dutycycle``: DIT.8 duty cycle and agility."""
        return _json(self.service.dutycycle(self._rig(request)))

    async def captures(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/captures``."""
        return _json(self.service.captures(self._rig(request)))

    async def download_capture(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/rigs/{rig}/captures/{name}``: the file, streamed."""
        rig = self._rig(request)
        name = request.match_info["name"]
        if not _CAPTURE_RE.match(name) or ".." in name:
            raise NotFoundError(f"no capture file {_show(name)} of rig {rig}")
        path = self.service.capture_path(rig, name)
        if not path.is_file():
            raise NotFoundError(f"capture file {_show(name)} of rig {rig} is gone")
        media = _CAPTURE_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        return web.FileResponse(path, headers={
            "Content-Type": media,
            "Content-Disposition": f'attachment; filename="{name}"'})

    async def jobs(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/jobs?rig=&state=&limit=``."""
        rig = self._query(request, "rig")
        if rig is not None and not _RIG_RE.match(rig):
            raise _Refusal(422, f"rig: {_show(rig)} is not a rig name", "rig")
        state = self._query(request, "state")
        if state is not None and state not in JOB_STATES:
            raise _Refusal(422, f"state: {_show(state)} is not one of "
                                f"{', '.join(JOB_STATES)}", "state")
        return _json(self.service.jobs(rig=rig, state=state, limit=self._limit(request)))

    async def submit(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v1/jobs``: queue a job; 201 and the JOB."""
        document = await self._body(request)
        if not isinstance(document, dict):
            raise _Refusal(422, "the request body must be a JSON object (a job spec)")
        try:
            spec = JobSpecBody.model_validate(document)
        except ValidationError as error:
            problem = error.errors(include_input=False, include_url=False)[0]
            location = [str(part) for part in problem["loc"]]
            field = location[0] if location else None
            where = ".".join(location) or "body"
            message = ("unknown field" if problem["type"] == "extra_forbidden"
                       else problem["msg"])
            raise _Refusal(422, f"{where}: {message}", field) from None
        job = self.service.submit(spec.model_dump(exclude_unset=True))
        _log.info("control API: job %s queued on %s by token %s", job.get("id"),
                  job.get("rig"), request.get(_TOKEN_NAME))
        return _json(job, status=201)

    async def job(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/jobs/{id}``."""
        return _json(self.service.job(self._job_id(request)))

    async def job_steps(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/jobs/{id}/steps``."""
        return _json(self.service.job(self._job_id(request)).get("steps", []))

    async def job_exchanges(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/jobs/{id}/exchanges``."""
        return _json(self.service.job(self._job_id(request)).get("exchanges", []))

    async def job_timings(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/jobs/{id}/timings``."""
        return _json(self.service.job(self._job_id(request)).get("timings", {}))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v1/jobs/{id}/cancel``: the JOB."""
        job = self.service.cancel(self._job_id(request))
        _log.info("control API: job %s cancelled by token %s", job.get("id"),
                  request.get(_TOKEN_NAME))
        return _json(job)

    async def rerun(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v1/jobs/{id}/rerun``: 201 and the new JOB (``rerun_of`` = id)."""
        job = self.service.rerun(self._job_id(request))
        _log.info("control API: job %s queued as a rerun of %s by token %s", job.get("id"),
                  job.get("rerun_of"), request.get(_TOKEN_NAME))
        return _json(job, status=201)

    async def scenarios(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/scenarios``."""
        return _json(self.service.scenarios())


def create_app(service: LabService, tokens: TokenStore) -> web.Application:
    """The control API (and the dashboard's static files where
    :mod:`hanlab.daemon.dashboard` exists) as an aiohttp application over ``service``.

    Source: issue 9, item 3. Endpoints in the module docstring and
    :func:`hanlab.daemon.openapi.openapi_document`.
    """
    app = new_app()
    api = _Api(service, tokens)
    app.middlewares.append(api.middleware)
    for method, path, handler, role, *query in api.routes():
        app.router.add_route(method, path, handler)
        api.roles[(method, path)] = role
        api.queries[(method, path)] = frozenset(query)
    try:
        from hanlab.daemon.dashboard import add_routes
    except ImportError as error:
        if error.name != "hanlab.daemon.dashboard":
            _log.warning("control API: no dashboard: %s", error)
    else:
        add_routes(app)
    return app


def server_ssl_context(certificate_file: Path, key_file: Path) -> ssl.SSLContext:
    """The control API's TLS server context: :func:`hanlab.duis.http.server_ssl_context`
    (TLS 1.2+, PEM files) with the lab-file fields to fix named in the hint.

    Raises:
        BadInputError: a file cannot be read or the key does not match (naming both).
    """
    from hanlab.duis.http import server_ssl_context as shared

    try:
        return shared(certificate_file, key_file)
    except BadInputError as error:
        raise BadInputError(
            f"control API: {error.message}",
            hint="api.tls_certificate_file and api.tls_key_file must be PEM files of one "
                 "key pair") from None


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


class ApiServer(StartStop):
    """The control API served on ``config.host:config.port`` (HTTPS when the config
    gives a certificate and key), over ``service``.

    Args:
        service: the running lab (:class:`hanlab.runtime.lab.LabRuntime`).
        config: the lab's ``api`` settings (``enabled`` is for the caller to check).
        tokens: the bearer tokens (:meth:`TokenStore.load_or_create`).

    Use as ``async with ApiServer(service, config, tokens) as server:``; :attr:`url` is
    the bound URL (port 0 is replaced by the port given by the system).
    Source: issue 9, item 3.
    """

    def __init__(self, service: LabService, config: ApiConfig, tokens: TokenStore) -> None:
        self.service = service
        self.config = config
        self.tokens = tokens
        self._runner: web.AppRunner | None = None
        self._port = config.port

    @property
    def tls(self) -> bool:
        """Whether it serves HTTPS."""
        return self.config.tls_certificate_file is not None

    @property
    def port(self) -> int:
        """The bound TCP port once started (else the configured one)."""
        return self._port

    @property
    def url(self) -> str:
        """E.g. ``http://127.0.0.1:8470`` or ``https://lab-pc:8470`` (valid once started)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{_url_host(self.config.host)}:{self._port}"

    async def start(self) -> None:
        """Listen.

        Raises:
            HanlabError: the address cannot be bound.
            BadInputError: the TLS files cannot be used.
        """
        if self._runner is not None:
            return
        context = None
        if self.config.tls_certificate_file is not None and self.config.tls_key_file:
            context = server_ssl_context(self.config.tls_certificate_file,
                                         self.config.tls_key_file)
        app = create_app(self.service, self.tokens)
        self._runner, self._port = await _listen(app, self.config.host, self.config.port,
                                                 context)
        _log.info("control API at %s", self.url)

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def _listen(app: web.Application, host: str, port: int,
                  context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    """:func:`hanlab.duis.http.listen` (its header timeout), with TLS when ``context``."""
    return await listen(app, host, port, "control API", ssl_context=context)
