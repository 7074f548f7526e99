"""HTTP plumbing shared by every server hanlab runs (DUIS receiver, emulated DCC, control
API) and its HTTP clients: limits on time, size and concurrency, and TLS.

Every server built with :func:`new_app` and served with :func:`listen` (issue 14 item 16):

* **header timeout**: a connection that has not sent a whole request head within
  ``header_timeout_s`` of connecting (or of its previous response) is closed; this is
  aiohttp's ``keepalive_timeout``, which also closes idle keep-alive connections;
* **body timeout**: a request body not read whole within ``body_timeout_s`` is answered
  408 and the connection closed;
* **body size**: a ``Content-Length`` above ``max_body_bytes`` is answered 413 before any
  of the body is read; a chunked body is cut off with 413 once it passes the limit
  (aiohttp's ``client_max_size``);
* **concurrency**: above ``max_concurrent_requests`` requests in progress, 503 with
  ``Retry-After``;
* after such an early answer the unread rest of a body is discarded for at most
  ``lingering_s`` (aiohttp's ``lingering_time``), then the connection is closed.

Refusals are counted in :class:`HttpStats` (:func:`http_stats`) and logged at DEBUG (one
line per refusal would let a flood fill the log).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

from hanlab.errors import BadInputError, HanlabError
from hanlab.resources import StartStop

__all__ = [
    "DEFAULT_LIMITS",
    "HttpLimits",
    "HttpStats",
    "StartStop",
    "client_ssl_context",
    "http_stats",
    "listen",
    "new_app",
    "read_bounded",
    "server_ssl_context",
]

_log = logging.getLogger(__name__)

CLIENT_KEEPALIVE_S: Final = 5.0
"""How long hanlab's own HTTP clients keep an idle connection: below every server's
:attr:`HttpLimits.header_timeout_s`, so a client never reuses a connection the server is
closing."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Time, size and concurrency limits of one HTTP server (issue 14 item 16).

    Attributes:
        max_body_bytes: largest request body taken (octets); DUIS documents are far
            smaller than the 1 MiB default.
        header_timeout_s: time from connecting (or from the previous response) to a whole
            request head; also the idle keep-alive time.
        body_timeout_s: time to read a whole request body.
        max_concurrent_requests: requests handled at once; more get 503.
        lingering_s: time spent discarding an unread body after an early answer.
    """

    max_body_bytes: int = 1024 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    max_concurrent_requests: int = 32
    lingering_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_concurrent_requests < 1:
            raise BadInputError("HTTP limits: max_body_bytes and max_concurrent_requests "
                                "must be >= 1")
        if min(self.header_timeout_s, self.body_timeout_s) <= 0 or self.lingering_s < 0:
            raise BadInputError("HTTP limits: timeouts must be > 0 s")


DEFAULT_LIMITS: Final = HttpLimits()


@dataclass
class HttpStats:
    """What one server refused, by cause, and the requests in progress now."""

    in_progress: int = 0
    busy: int = 0
    too_large: int = 0
    body_timeouts: int = 0


_LIMITS: Final = web.AppKey("hanlab_http_limits", HttpLimits)
_STATS: Final = web.AppKey("hanlab_http_stats", HttpStats)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refusal(status: int, text: str, **headers: str) -> web.Response:
    response = web.Response(status=status, text=text, headers=headers)
    response.force_close()
    return response


@web.middleware
async def _bounded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the app's :class:`HttpLimits`; the body is read here, the handler's own
    ``await request.read()`` then returns it at once."""
    limits, stats = request.app[_LIMITS], request.app[_STATS]
    if stats.in_progress >= limits.max_concurrent_requests:
        stats.busy += 1
        _log.debug("HTTP %s refused: %d requests in progress", request.path,
                   stats.in_progress)
        return _refusal(503, "busy: too many requests in progress", **{"Retry-After": "1"})
    stats.in_progress += 1
    try:
        length = request.content_length
        if length is not None and length > limits.max_body_bytes:
            stats.too_large += 1
            return _refusal(413, f"body of {length} octets exceeds {limits.max_body_bytes}")
        if request.can_read_body:
            try:
                async with asyncio.timeout(limits.body_timeout_s):
                    await request.read()
            except TimeoutError:
                stats.body_timeouts += 1
                return _refusal(408, f"body not received within {limits.body_timeout_s} s")
            except web.HTTPRequestEntityTooLarge:
                stats.too_large += 1
                return _refusal(413, f"body exceeds {limits.max_body_bytes} octets")
        return await handler(request)
    finally:
        stats.in_progress -= 1


def new_app(*, limits: HttpLimits = DEFAULT_LIMITS) -> web.Application:
    """An aiohttp application bounded by ``limits`` (see the module docstring); serve it
    with :func:`listen`, which applies the header timeout."""
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[_bounded])
    app[_LIMITS] = limits
    app[_STATS] = HttpStats()
    return app


def http_stats(app: web.Application) -> HttpStats:
    """The refusal counts of an app made by :func:`new_app`."""
    return app[_STATS]


def server_ssl_context(certificate_file: Path | str, key_file: Path | str) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) from a PEM certificate (chain) and key.

    Raises:
        BadInputError: a file is unreadable, or the key does not fit the certificate (the
            message names the files, never their content).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise BadInputError(
            f"cannot use the TLS certificate {certificate_file} with key {key_file}: "
            f"{type(error).__name__}", hint="give a PEM certificate and its PEM key"
        ) from None
    return context


def client_ssl_context(ca_file: Path | str | None) -> ssl.SSLContext | None:
    """A TLS client context trusting ``ca_file`` (PEM) besides the system's CAs, or
    ``None`` (aiohttp's default verification) when no file is given.

    Raises:
        BadInputError: the file is unreadable or not PEM certificates.
    """
    if ca_file is None:
        return None
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise BadInputError(f"cannot read the TLS CA file {ca_file}: "
                            f"{type(error).__name__}") from None
    return context


async def read_bounded(
    reply: aiohttp.ClientResponse, max_bytes: int = DEFAULT_LIMITS.max_body_bytes
) -> bytes:
    """The body of an HTTP reply, read chunk by chunk up to ``max_bytes`` octets, so a
    hostile peer cannot make a hanlab client hold an unbounded answer.

    Raises:
        BadInputError: the body is (or declares itself) longer than ``max_bytes``.
    """
    if reply.content_length is not None and reply.content_length > max_bytes:
        raise BadInputError(f"HTTP reply of {reply.content_length} octets exceeds {max_bytes}")
    body = bytearray()
    async for chunk in reply.content.iter_chunked(65536):
        body += chunk
        if len(body) > max_bytes:
            raise BadInputError(f"HTTP reply exceeds {max_bytes} octets")
    return bytes(body)


async def listen(
    app: web.Application, host: str, port: int, what: str, *,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); the runner and the bound port.

    An app made by :func:`new_app` gets its header timeout and lingering time here; any
    other app gets :data:`DEFAULT_LIMITS`' (its body is not bounded).

    Args:
        ssl_context: serve HTTPS with it (see :func:`server_ssl_context`), else HTTP.

    Raises:
        HanlabError: the address cannot be bound (``what`` names the server).
    """
    limits = app.get(_LIMITS, DEFAULT_LIMITS)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.header_timeout_s,
                           lingering_time=limits.lingering_s)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as error:
        await runner.cleanup()
        raise HanlabError(f"{what} cannot listen on {host}:{port}: {error}") from error
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
