"""The User's HTTP endpoint the DCC POSTs DUIS responses and alerts to (DUIS 5.4 3.5).

Every POST is parsed safely (no DTD, no entities, no network, size-capped) and handed to a
callback with its arrival time; a document that cannot be read is answered HTTP 400 and
counted, and the receiver keeps serving.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from hanlab.duis.http import StartStop, listen, new_app
from hanlab.duis.xml import DuisResponse, parse_response
from hanlab.errors import BadInputError

_log = logging.getLogger(__name__)

DEFAULT_PATH: Final = "/duis"

OnDocument = Callable[[DuisResponse, bytes, int], None]
"""Callback ``(parsed document, raw XML, arrival ts_ns)``; must not block."""


@dataclass
class ReceiverStats:
    """Counts of what the receiver got: accepted documents and refused ones."""

    accepted: int = 0
    refused: int = 0


class DuisReceiver(StartStop):
    """An aiohttp server taking DUIS Responses, Device Alerts and DCC Alerts.

    Args:
        on_document: called for every readable document (see :data:`OnDocument`).
        host, port: where to listen (port 0: any free port; see :attr:`url`).
        path: the URL path the DCC posts to.

    Use as ``async with DuisReceiver(cb) as receiver:``; :attr:`url` is the full URL to
    register with the DCC.
    """

    def __init__(
        self, on_document: OnDocument, *, host: str = "127.0.0.1", port: int = 0,
        path: str = DEFAULT_PATH,
    ) -> None:
        self._on_document = on_document
        self.host = host
        self.path = path
        self._port = port
        self._runner: web.AppRunner | None = None
        self.stats = ReceiverStats()

    @property
    def url(self) -> str:
        """E.g. ``http://127.0.0.1:40000/duis`` (valid once started)."""
        return f"http://{self.host}:{self._port}{self.path}"

    async def start(self) -> None:
        """Listen.

        Raises:
            HanlabError: the port cannot be bound.
        """
        app = new_app()
        app.router.add_post(self.path, self._handle)
        self._runner, self._port = await listen(app, self.host, self._port, "DUIS receiver")

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        ts_ns = _time.time_ns()
        try:
            data = await request.read()
            document = parse_response(data)
        except (BadInputError, ValueError, web.HTTPException) as error:
            self.stats.refused += 1
            _log.warning("DUIS receiver refused a document: %s", error)
            return web.Response(status=400, text=f"not a DUIS response: {error}")
        self.stats.accepted += 1
        try:
            self._on_document(document, data, ts_ns)
        except Exception:  # a consumer's bug must not make the DCC retry forever
            _log.exception("DUIS receiver callback failed")
        return web.Response(status=200)
