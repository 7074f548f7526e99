"""The roll-out portal's machine-to-machine API (SECMP0024 solution option 2, seed 004
section 3.2: "capable of machine-to-machine interfacing allowing Supplier systems to be
connected to the web portal"), served by the emulated DCC under ``/rollout/v1``.

Every request is signed by its User (:mod:`~hanlab.emulator.dcc.rollout.auth`); DCC-only
routes need the ``dcc`` role, Supplier routes act for the signing Supplier only. Bodies
are JSON objects, bounded by the server's :class:`~hanlab.duis.http.HttpLimits` and
:data:`MAX_GUIDS`. Answers: 200 with JSON; 400 bad input (the field named); 401 not
authenticated (one generic message); 403 wrong role; 404 unknown route; 409 a rule refused
the request, with ``rule``, ``clause`` and per-GUID ``failures`` (nothing changed).

=======  ================================================  ======  =============================
method   path (under ``/rollout/v1``)                       who     SECMP0024
=======  ================================================  ======  =============================
GET      ``/notifications``                                 any     2.2, 3.2 available updates
POST     ``/notifications``                                 DCC     2.2 notify
POST     ``/notifications/{image}/automatic-date``          DCC     2.2 move the automatic date
POST     ``/notifications/{image}/revoke``                  DCC     2.2 revoke
GET      ``/notifications/{image}/eligible``                Sup.    2.2 report, 2.3 list
POST     ``/notifications/{image}/pilot/select``            Sup.    2.3 business rules
POST     ``/notifications/{image}/pilot``                   Sup.    2.3 submit, 2.4 instruct
POST     ``/notifications/{image}/pilot/start``             DCC     Req. 2, 2.3 start notice
POST     ``/notifications/{image}/instructions``            Sup.    2.4, 2.5 (``guids``: "all")
GET      ``/notifications/{image}/second-supplier/{g}``    Sup.    2.4 second Supplier
POST     ``/notifications/{image}/deploy-due``              DCC     2.4 distribute (batches)
POST     ``/notifications/{image}/outcomes``                DCC     2.3 progress, 2.6 SMI
POST     ``/notifications/{image}/incidents``               Sup.    2.7 incident, emergency stop
POST     ``/incidents/{incident}/decision``                 DCC     2.7 decision
GET      ``/status``                                        Sup.    2.6 estate status report
GET      ``/dashboard``                                     any     2.6 dashboard
GET      ``/notices?after=N&limit=M``                       any     2.3, 2.6, 2.7 notices
=======  ================================================  ======  =============================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from aiohttp import web

from hanlab.duis.http import DEFAULT_LIMITS, HttpLimits, StartStop, listen, new_app
from hanlab.emulator.dcc.rollout.auth import (
    DCC_ROLE,
    Authenticator,
    AuthError,
    PortalUser,
)
from hanlab.emulator.dcc.rollout.model import (
    Decision,
    DeployOrder,
    Instruction,
    Notice,
    Priority,
    Severity,
    iso,
    parse_enum,
    parse_iso,
)
from hanlab.emulator.dcc.rollout.rules import CLAUSES, Rule, RuleViolation
from hanlab.emulator.dcc.rollout.service import PilotRules, RolloutService
from hanlab.errors import BadInputError

_log = logging.getLogger(__name__)

PREFIX: Final = "/rollout/v1"
MAX_GUIDS: Final = 100_000
"""Most GUIDs one request may list (``"all"`` names a Supplier's whole remaining group)."""
MAX_TEXT: Final = 2000
"""Longest free text taken (descriptions, reasons, release notes), in characters."""

Body = dict[str, Any]
Handler = Callable[[web.Request, PortalUser, Body], Awaitable[object] | object]


def _text(body: Body, name: str, *, default: str | None = None, limit: int = MAX_TEXT) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > limit:
        raise BadInputError(f"field {name!r}: expected a string of at most {limit} "
                            "characters")
    return value


def _guids(body: Body, name: str = "guids") -> list[str]:
    value = body.get(name)
    if (not isinstance(value, list) or len(value) > MAX_GUIDS
            or not all(isinstance(g, str) and len(g) <= 40 for g in value)):
        raise BadInputError(f"field {name!r}: expected a list of at most {MAX_GUIDS} CH "
                            "GUID strings")
    return [g.upper() for g in value]


def _bool(body: Body, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadInputError(f"field {name!r}: expected true or false")
    return value


def _int(text: str | None, name: str, default: int, maximum: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or int(text) > maximum:
        raise BadInputError(f"query {name!r}: expected an integer 0..{maximum}")
    return int(text)


def notice_json(notice: Notice) -> dict[str, object]:
    """A notice as the portal serves it."""
    return {"seq": notice.seq, "kind": notice.kind, "image_id": notice.image_id,
            "at": iso(notice.at), **notice.body}


def instruction_json(instruction: Instruction) -> dict[str, object]:
    """An accepted instruction as the portal answers it (SECMP0024 2.6: "Upon the receipt
    of the instruction to deploy, the DCC shall inform the requesting Supplier User")."""
    return {"accepted": True, "scope": instruction.scope, "count": len(instruction.guids),
            "activation_at": iso(instruction.activation_at),
            "received_at": iso(instruction.received_at)}


def order_json(order: DeployOrder) -> dict[str, object]:
    """A deployment order as the portal answers it."""
    return {"guid": order.guid, "activation_at": iso(order.activation_at),
            "group": order.group}


class RolloutPortal(StartStop):
    """The portal: routes over a :class:`RolloutService` (see the module docstring).

    Args:
        service: the roll-out service.
        users: the portal's Users and their secrets.
        host, port, limits: where :meth:`start` listens when served alone (the emulated
            DCC mounts it on its own server instead: :meth:`mount`).
    """

    def __init__(self, service: RolloutService, users: Iterable[PortalUser], *,
                 host: str = "127.0.0.1", port: int = 0,
                 limits: HttpLimits = DEFAULT_LIMITS) -> None:
        self.service = service
        self.auth = Authenticator(users)
        self.refused_auth = 0
        self._host, self._port, self._limits = host, port, limits
        self._runner: web.AppRunner | None = None

    # -- serving ---------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        """Add the portal's routes under ``/rollout/v1`` to ``app`` (an app made by
        :func:`~hanlab.duis.http.new_app`, so its limits bound the portal too)."""
        s = self
        table: list[tuple[str, str, Handler, str | None]] = [
            ("GET", "/notifications", s._notifications, None),
            ("POST", "/notifications", s._notify, DCC_ROLE),
            ("POST", "/notifications/{image}/automatic-date", s._move, DCC_ROLE),
            ("POST", "/notifications/{image}/revoke", s._revoke, DCC_ROLE),
            ("GET", "/notifications/{image}/eligible", s._eligible, "supplier"),
            ("POST", "/notifications/{image}/pilot/select", s._select, "supplier"),
            ("POST", "/notifications/{image}/pilot", s._pilot, "supplier"),
            ("POST", "/notifications/{image}/pilot/start", s._start_pilot, DCC_ROLE),
            ("POST", "/notifications/{image}/instructions", s._instruct, "supplier"),
            ("GET", "/notifications/{image}/second-supplier/{guid}", s._second, "supplier"),
            ("POST", "/notifications/{image}/deploy-due", s._deploy_due, DCC_ROLE),
            ("POST", "/notifications/{image}/outcomes", s._outcome, DCC_ROLE),
            ("POST", "/notifications/{image}/incidents", s._incident, "supplier"),
            ("POST", "/incidents/{incident}/decision", s._decide, DCC_ROLE),
            ("GET", "/status", s._status, "supplier"),
            ("GET", "/dashboard", s._dashboard, None),
            ("GET", "/notices", s._notices, None),
        ]
        for method, path, handler, role in table:
            app.router.add_route(method, PREFIX + path, self._wrap(handler, role))

    @property
    def url(self) -> str:
        """Base URL when served alone (valid once started)."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Serve the portal alone (HTTP on loopback by default).

        Raises:
            HanlabError: the port cannot be bound.
        """
        app = new_app(limits=self._limits)
        self.mount(app)
        self._runner, self._port = await listen(app, self._host, self._port,
                                                "roll-out portal")

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _wrap(self, handler: Handler, role: str | None,
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            data = await request.read()
            try:
                user = self.auth.check(request.headers.get("Authorization"),
                                       request.method, request.path_qs, data)
            except AuthError as error:
                self.refused_auth += 1
                _log.debug("roll-out portal: %s", error)
                return web.json_response({"error": "unauthenticated"}, status=401)
            if role is not None and user.role != role:
                return web.json_response({"error": "forbidden", "rule": Rule.NOT_DCC.value,
                                          "clause": CLAUSES[Rule.NOT_DCC],
                                          "message": f"needs the {role} role"}, status=403)
            try:
                body = self._body(data)
                result = handler(request, user, body)
                if isinstance(result, Awaitable):
                    result = await result
            except RuleViolation as violation:
                return web.json_response(violation.as_json(), status=409)
            except BadInputError as error:
                return web.json_response({"error": "bad_input", "message": str(error)},
                                         status=400)
            return web.json_response(result)
        return handle

    @staticmethod
    def _body(data: bytes) -> Body:
        if not data.strip():
            return {}
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise BadInputError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadInputError("the body must be a JSON object")
        return body

    # -- Requirement 1 ---------------------------------------------------------------------

    def _notifications(self, _r: web.Request, _u: PortalUser, _b: Body) -> object:
        return {"notifications": self.service.notifications()}

    def _notify(self, _r: web.Request, _u: PortalUser, body: Body) -> object:
        automatic = body.get("automatic_at")
        versions = body.get("from_versions", [])
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise BadInputError("field 'from_versions': expected a list of strings")
        notification = self.service.notify(
            _text(body, "image_id", limit=64), _text(body, "device_model", limit=64),
            _text(body, "firmware_version", limit=64),
            release_note=_text(body, "release_note"),
            severity=parse_enum(Severity, body.get("severity"), "field 'severity'"),
            priority=parse_enum(Priority, body.get("priority"), "field 'priority'"),
            automatic_at=None if automatic is None else parse_iso(automatic,
                                                                  "field 'automatic_at'"),
            from_versions=versions[:100])
        return self.service.notification_json(notification)

    def _move(self, request: web.Request, _u: PortalUser, body: Body) -> object:
        image = request.match_info["image"]
        self.service.move_automatic_date(image, parse_iso(body.get("automatic_at"),
                                                          "field 'automatic_at'"))
        return self.service.notification_json(self.service.rollout(image).notification)

    def _revoke(self, request: web.Request, _u: PortalUser, body: Body) -> object:
        self.service.revoke(request.match_info["image"], _text(body, "reason", default=""))
        return {"revoked": True}

    def _eligible(self, request: web.Request, user: PortalUser, _b: Body) -> object:
        items = self.service.eligible_for(user.user_id, request.match_info["image"])
        limit = _int(request.query.get("limit"), "limit", 10_000, MAX_GUIDS)
        offset = _int(request.query.get("offset"), "offset", 0, 1 << 40)
        return {"count": len(items), "offset": offset, "items": items[offset:offset + limit]}

    # -- Requirement 2 ---------------------------------------------------------------------

    def _select(self, request: web.Request, user: PortalUser, body: Body) -> object:
        size, seed = body.get("size", self.service.config.pilot_max_size), body.get("seed", 0)
        regions = body.get("regions", [])
        if not isinstance(size, int) or not isinstance(seed, int) or size < 1:
            raise BadInputError("fields 'size' (>= 1) and 'seed' must be integers")
        if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
            raise BadInputError("field 'regions': expected a list of strings")
        rules = PilotRules(size, tuple(regions[:50]), _bool(body, "single_supplier_only"),
                           seed)
        return {"guids": self.service.select_pilot(user.user_id, request.match_info["image"],
                                                   rules)}

    def _pilot(self, request: web.Request, user: PortalUser, body: Body) -> object:
        return instruction_json(self.service.submit_pilot(
            user.user_id, request.match_info["image"], _guids(body),
            parse_iso(body.get("activation_at"), "field 'activation_at'")))

    def _start_pilot(self, request: web.Request, _u: PortalUser, _b: Body) -> object:
        orders = self.service.start_pilot(request.match_info["image"])
        return {"deployed": [order_json(o) for o in orders]}

    # -- Requirements 3 and 4 ------------------------------------------------------------

    def _instruct(self, request: web.Request, user: PortalUser, body: Body) -> object:
        image = request.match_info["image"]
        scope = _text(body, "scope", default="safe_launch", limit=16)
        if body.get("guids") == "all":
            guids = self.service.remaining_safe_launch(user.user_id, image)
        else:
            guids = _guids(body)
        return instruction_json(self.service.instruct(
            user.user_id, image, guids,
            parse_iso(body.get("activation_at"), "field 'activation_at'"), scope))

    def _second(self, request: web.Request, user: PortalUser, _b: Body) -> object:
        return self.service.second_supplier(user.user_id, request.match_info["image"],
                                            request.match_info["guid"].upper())

    def _deploy_due(self, request: web.Request, _u: PortalUser, body: Body) -> object:
        horizon = body.get("horizon_s", 0.0)
        if not isinstance(horizon, int | float) or not 0 <= horizon <= 1e9:
            raise BadInputError("field 'horizon_s': expected seconds 0..1e9")
        batch = body.get("batch_size")
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise BadInputError("field 'batch_size': expected an integer >= 1")
        orders = self.service.deploy_due(request.match_info["image"], float(horizon), batch)
        return {"deployed": [order_json(o) for o in orders[:MAX_GUIDS]],
                "count": len(orders)}

    def _outcome(self, request: web.Request, _u: PortalUser, body: Body) -> object:
        guid = _text(body, "guid", limit=40).upper()
        self.service.report_outcome(request.match_info["image"], guid,
                                    _bool(body, "success"),
                                    _text(body, "reason", default=""))
        return {"guid": guid, "recorded": True}

    # -- Requirement 6 ---------------------------------------------------------------------

    def _incident(self, request: web.Request, user: PortalUser, body: Body) -> object:
        incident = self.service.raise_incident(
            user.user_id, request.match_info["image"], _text(body, "description"),
            _bool(body, "emergency_stop"))
        return {"incident_id": incident.incident_id, "priority": incident.priority.value,
                "state": self.service.rollout(incident.image_id).state.value}

    def _decide(self, request: web.Request, _u: PortalUser, body: Body) -> object:
        end_at = body.get("end_at")
        incident_id = request.match_info["incident"]
        self.service.decide(incident_id,
                            parse_enum(Decision, body.get("decision"), "field 'decision'"),
                            None if end_at is None else parse_iso(end_at, "field 'end_at'"))
        incident = self.service.incidents[incident_id]
        return {"incident_id": incident_id,
                "state": self.service.rollout(incident.image_id).state.value}

    # -- Requirement 5 ---------------------------------------------------------------------

    def _status(self, request: web.Request, user: PortalUser, _b: Body) -> object:
        return self.service.status_report(
            user.user_id, limit=_int(request.query.get("limit"), "limit", 10_000, MAX_GUIDS),
            offset=_int(request.query.get("offset"), "offset", 0, 1 << 40))

    def _dashboard(self, _r: web.Request, user: PortalUser, _b: Body) -> object:
        return self.service.dashboard(DCC_ROLE if user.role == DCC_ROLE else user.user_id)

    def _notices(self, request: web.Request, user: PortalUser, _b: Body) -> object:
        who = DCC_ROLE if user.role == DCC_ROLE else user.user_id
        notices = self.service.notices_for(
            who, _int(request.query.get("after"), "after", 0, 1 << 62),
            _int(request.query.get("limit"), "limit", 100, 1000))
        return {"notices": [notice_json(n) for n in notices]}


__all__ = ["MAX_GUIDS", "PREFIX", "RolloutPortal"]
