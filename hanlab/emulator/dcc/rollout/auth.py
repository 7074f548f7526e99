"""Per-User authentication of the roll-out portal's machine-to-machine API: every request
is signed with the User's own secret (HMAC-SHA256), fresh and used once.

The DUIS interface authenticates Users by XML signatures on each Service Request; the
portal (SECMP0024 solution option 2, seed 004 section 3.2) takes JSON, so each request
carries instead::

    Authorization: HMAC-SHA256 user=<User ID>,ts=<UNIX s>,nonce=<16-64 hex>,sig=<hex>

with ``sig`` = HMAC-SHA256(secret, ``METHOD \\n PATH?QUERY \\n ts \\n nonce \\n
SHA-256(body) hex``). The portal refuses (401, one generic message) a User it does not
know, a signature that does not verify, a ``ts`` more than :data:`MAX_SKEW_S` from its
clock, and a nonce already seen in that window (replay). Secrets are compared in constant
time and never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from hanlab.errors import BadInputError

SCHEME: Final = "HMAC-SHA256"
MAX_SKEW_S: Final = 300.0
"""How far a request's ``ts`` may be from the portal's clock (s)."""
MAX_NONCES: Final = 200_000
"""Nonces remembered at most (the oldest forgotten first): bounds the replay memory."""
DCC_ROLE: Final = "dcc"
SUPPLIER_ROLE: Final = "supplier"

_HEADER: Final = re.compile(
    r"^HMAC-SHA256 user=([A-Za-z0-9-]{1,40}),ts=(\d{1,12}),nonce=([0-9a-f]{16,64}),"
    r"sig=([0-9a-f]{64})$")


@dataclass(frozen=True)
class PortalUser:
    """A User of the portal.

    Attributes:
        user_id: the User ID (a Supplier's EUI-64 in DUIS form; the DCC operator ``dcc``).
        role: ``supplier`` or ``dcc``.
        secret: the User's HMAC key (at least 16 octets; never printed).

    Raises:
        BadInputError: a short secret or an unknown role.
    """

    user_id: str
    role: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise BadInputError(f"portal User {self.user_id}: the secret must be at least "
                                "16 octets")
        if self.role not in {DCC_ROLE, SUPPLIER_ROLE}:
            raise BadInputError(f"portal User {self.user_id}: role {self.role!r} is not "
                                f"{DCC_ROLE} or {SUPPLIER_ROLE}")


class AuthError(Exception):
    """A request that does not authenticate (the reason is logged at DEBUG only)."""


def _to_sign(method: str, path_qs: str, ts: int, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path_qs}\n{ts}\n{nonce}\n{digest}".encode()


def authorization(user_id: str, secret: bytes, method: str, path_qs: str, body: bytes,
                  *, ts: int | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header value for one request (client side).

    Args:
        path_qs: the path with its query string, as sent (``/rollout/v1/status?limit=5``).
        ts: UNIX time in seconds (default: now); nonce: 32 hex digits (default: random).
    """
    ts = int(time.time()) if ts is None else ts
    nonce = secrets.token_hex(16) if nonce is None else nonce
    sig = hmac.new(secret, _to_sign(method, path_qs, ts, nonce, body), hashlib.sha256)
    return f"{SCHEME} user={user_id},ts={ts},nonce={nonce},sig={sig.hexdigest()}"


class Authenticator:
    """Checks request signatures against the Users' secrets (see the module docstring).

    Args:
        users: the portal's Users.
        clock_s: the current UNIX time in seconds (tests may pass their own).
    """

    def __init__(self, users: Iterable[PortalUser],
                 clock_s: Callable[[], float] = time.time) -> None:
        self.users = {u.user_id: u for u in users}
        self._clock_s = clock_s
        self._nonces: dict[str, float] = {}

    def check(self, header: str | None, method: str, path_qs: str, body: bytes) -> PortalUser:
        """The User who signed this request.

        Raises:
            AuthError: missing or malformed header, unknown User, bad signature, stale
                timestamp or replayed nonce.
        """
        match = _HEADER.match(header or "")
        if match is None:
            raise AuthError("no or malformed Authorization header")
        user_id, ts_text, nonce, sig = match.groups()
        user = self.users.get(user_id)
        if user is None:
            raise AuthError(f"unknown User {user_id}")
        ts = int(ts_text)
        expected = hmac.new(user.secret, _to_sign(method, path_qs, ts, nonce, body),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig):
            raise AuthError(f"signature of User {user_id} does not verify")
        now = self._clock_s()
        if abs(now - ts) > MAX_SKEW_S:
            raise AuthError(f"timestamp {ts} is more than {MAX_SKEW_S} s from {now:.0f}")
        self._forget(now)
        key = f"{user_id}:{nonce}"
        if key in self._nonces:
            raise AuthError(f"nonce replayed by User {user_id}")
        self._nonces[key] = now
        return user

    def _forget(self, now: float) -> None:
        while self._nonces:
            oldest_key = next(iter(self._nonces))
            if (now - self._nonces[oldest_key] <= MAX_SKEW_S * 2
                    and len(self._nonces) < MAX_NONCES):
                break
            del self._nonces[oldest_key]
