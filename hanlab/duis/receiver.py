"""The User's HTTP endpoint the DCC POSTs DUIS responses and alerts to (DUIS 5.4 3.5).

Every POST is parsed safely (no DTD, no entities, no network, size-capped) and handed to a
callback with its arrival time; a document that cannot be read is answered HTTP 400 and
counted, and the receiver keeps serving.

Responses and alerts are signed by the DCC (XML-DSig, DUIS 5.4 3.4.2): with the DCC's (DSP)
certificate given, a document that is unsigned or whose signature does not verify with it
is answered HTTP 403, logged with the reason and counted, and never reaches the callback
(issue 14 item 14: otherwise any local process could post a forged Device response).
Without a certificate every readable document is taken and counted as ``unverified``.
The server is bounded in time, size and concurrency (:mod:`hanlab.duis.http`) and serves
HTTPS when given a TLS context.

Several Users may share one receiver, each with its own path ``<path>/<User EUI-64 as 16
hex digits>`` (:meth:`DuisReceiver.url_for`; DUIS 5.4 3.5: the DCC posts to each User's
own endpoint): a document posted there goes to ``on_addressed`` with the User it was for,
so a Change of Supplier test knows N27 reached the old supplier. A path naming no
registered User is answered HTTP 404.
"""

from __future__ import annotations

import logging
import ssl
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from cryptography import x509

from hanlab.duis.http import DEFAULT_LIMITS, HttpLimits, StartStop, listen, new_app
from hanlab.duis.signing import SignatureError, verify_document
from hanlab.duis.xml import DuisResponse, parse_response
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

_log = logging.getLogger(__name__)

DEFAULT_PATH: Final = "/duis"

OnDocument = Callable[[DuisResponse, bytes, int], None]
"""Callback ``(parsed document, raw XML, arrival ts_ns)``; must not block."""

OnAddressedDocument = Callable[[DuisResponse, bytes, int, Eui64], None]
"""Callback for a User's own path: ``(document, raw XML, arrival ts_ns, the User)``."""


@dataclass
class ReceiverStats:
    """Counts of what the receiver got.

    Attributes:
        accepted: documents handed to the callback.
        refused: documents refused (unreadable or badly signed; HTTP 400 / 403).
        bad_signature: of ``refused``, those unsigned or not signed by the DCC (403).
        unverified: of ``accepted``, those taken without a DCC certificate to check.
    """

    accepted: int = 0
    refused: int = 0
    bad_signature: int = 0
    unverified: int = 0


class DuisReceiver(StartStop):
    """An aiohttp server taking DUIS Responses, Device Alerts and DCC Alerts.

    Args:
        on_document: called for every readable document (see :data:`OnDocument`).
        host, port: where to listen (port 0: any free port; see :attr:`url`).
        path: the URL path the DCC posts to.
        dcc_certificate: the DCC's (DSP's) XML-signing certificate; every document must be
            signed with its key. ``None``: documents are taken unverified (a warning is
            logged at start); set it later with :meth:`trust_dcc`.
        limits: time, size and concurrency limits of the server.
        ssl_context: serve HTTPS with it (:func:`hanlab.duis.http.server_ssl_context`).
        recipients: the Users with a path of their own (looked up at each POST, so Users
            added later are served), or ``None``: the shared path only.
        on_addressed: called for documents posted to a User's path; default
            ``on_document``.

    Use as ``async with DuisReceiver(cb) as receiver:``; :attr:`url` is the full URL to
    register with the DCC.
    """

    def __init__(
        self, on_document: OnDocument, *, host: str = "127.0.0.1", port: int = 0,
        path: str = DEFAULT_PATH, dcc_certificate: x509.Certificate | None = None,
        limits: HttpLimits = DEFAULT_LIMITS, ssl_context: ssl.SSLContext | None = None,
        recipients: Mapping[Eui64, object] | None = None,
        on_addressed: OnAddressedDocument | None = None,
    ) -> None:
        self._on_document = on_document
        self._recipients = recipients
        self._on_addressed = on_addressed
        self.host = host
        self.path = path
        self.dcc_certificate = dcc_certificate
        self.limits = limits
        self._ssl_context = ssl_context
        self._port = port
        self._runner: web.AppRunner | None = None
        self.stats = ReceiverStats()

    @property
    def url(self) -> str:
        """E.g. ``http://127.0.0.1:40000/duis`` (``https`` with TLS; valid once started)."""
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{self.host}:{self._port}{self.path}"

    def url_for(self, user: Eui64) -> str:
        """A User's own receive URL, e.g. ``http://127.0.0.1:40000/duis/90B3D51F30010000``."""
        return f"{self.url}/{user.value:016X}"

    def trust_dcc(self, certificate: x509.Certificate) -> None:
        """Verify every document from now on with the DCC's (DSP's) ``certificate``."""
        self.dcc_certificate = certificate

    async def start(self) -> None:
        """Listen.

        Raises:
            HanlabError: the port cannot be bound.
        """
        app = new_app(limits=self.limits)
        app.router.add_post(self.path, self._handle)
        if self._recipients is not None:
            app.router.add_post(self.path.rstrip("/") + "/{user:[0-9A-Fa-f]{16}}",
                                self._handle)
        self._runner, self._port = await listen(app, self.host, self._port, "DUIS receiver",
                                                ssl_context=self._ssl_context)

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        ts_ns = _time.time_ns()
        recipient: Eui64 | None = None
        if "user" in request.match_info:
            recipient = Eui64(int(request.match_info["user"], 16))
            if self._recipients is None or recipient not in self._recipients:
                self.stats.refused += 1
                return web.Response(status=404, text="no such User")
        try:
            data = await request.read()
            document = parse_response(data)
        except (BadInputError, ValueError, web.HTTPException) as error:
            self.stats.refused += 1
            _log.warning("DUIS receiver refused a document from %s: %s", request.remote, error)
            return web.Response(status=400, text=f"not a DUIS response: {error}")
        if self.dcc_certificate is None:
            if not self.stats.unverified:  # once, when it matters (not while the emulated
                # DCC's certificate is still to come: trust_dcc)
                _log.warning("DUIS receiver %s does not verify the DCC's signatures: no DCC "
                             "certificate configured", self.url)
            self.stats.unverified += 1
        else:
            try:
                verify_document(data, self.dcc_certificate)
            except SignatureError as error:
                self.stats.refused += 1
                self.stats.bad_signature += 1
                _log.warning("DUIS receiver refused a document from %s (%s): %s",
                             request.remote, document.response_id or document.request_id,
                             error.message)
                return web.Response(status=403, text="not signed by the DCC")
        self.stats.accepted += 1
        try:
            if recipient is None:
                self._on_document(document, data, ts_ns)
            elif self._on_addressed is not None:
                self._on_addressed(document, data, ts_ns, recipient)
            else:
                self._on_document(document, data, ts_ns)
        except Exception:  # a consumer's bug must not make the DCC retry forever
            _log.exception("DUIS receiver callback failed")
        return web.Response(status=200)
