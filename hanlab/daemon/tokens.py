"""Bearer tokens of the control API (issue 9, item 3; DESIGN.md "One lab runtime").

The daemon keeps its tokens in one JSON file, created on first start with one token per
role and mode 600 (its folder 700)::

    {"tokens": [{"name": "operator", "role": "operator", "token": "<43 url-safe chars>"},
                {"name": "viewer", "role": "viewer", "token": "..."}]}

Roles: ``viewer`` may read everything (every GET); ``operator`` may also submit and cancel
jobs. A file that group or others may read is refused (``chmod 600 PATH``). Token values
are secrets: no message, log line or ``repr`` of this module contains one.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hanlab.errors import BadInputError, HanlabError

__all__ = ["ROLES", "Role", "Token", "TokenStore", "default_tokens_path", "role_allows"]

Role = Literal["viewer", "operator"]

#: The roles, weakest first; a role may do everything the roles before it may.
ROLES: Final[tuple[Role, ...]] = ("viewer", "operator")

_FILE_NAME: Final = "api-tokens.json"
_MAX_FILE_BYTES: Final = 1 << 20


def role_allows(role: str | None, needed: str) -> bool:
    """Whether ``role`` (``viewer``/``operator``, or ``None``: no token) may do what needs
    ``needed``; an unknown role may do nothing."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def default_tokens_path() -> Path:
    """``$XDG_STATE_HOME/hanlab/api-tokens.json``, else ``~/.local/state/hanlab/…``."""
    state_home = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state_home) if state_home and Path(state_home).is_absolute() else (
        Path.home() / ".local" / "state")
    return base / "hanlab" / _FILE_NAME


class _TokenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    role: Role
    token: str = Field(min_length=16, max_length=512, pattern=r"^[\x21-\x7e]+$")


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tokens: list[_TokenModel] = Field(min_length=1, max_length=1000)


@dataclass(frozen=True)
class Token:
    """One bearer token: its ``name`` (shown in logs), ``role`` and secret ``value``
    (never shown: not in ``repr``)."""

    name: str
    role: Role
    value: str = field(repr=False)


class TokenStore:
    """The API's tokens, checked in constant time (:func:`hmac.compare_digest`).

    Args:
        tokens: the tokens (names should be unique).
        path: the file they came from, or ``None`` (kept in memory only).
    """

    def __init__(self, tokens: list[Token], path: Path | None = None) -> None:
        self._tokens = list(tokens)
        self.path = path

    def __repr__(self) -> str:
        names = ", ".join(f"{t.name}:{t.role}" for t in self._tokens)
        return f"TokenStore({names}; path={self.path})"

    @property
    def tokens(self) -> list[Token]:
        """The tokens, in file order."""
        return list(self._tokens)

    @classmethod
    def generate(cls, path: Path | None = None) -> TokenStore:
        """A new store with one random token per role (``secrets.token_urlsafe(32)``:
        256 bits), not written anywhere."""
        return cls([Token(role, role, secrets.token_urlsafe(32)) for role in reversed(ROLES)],
                   path)

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        """Read a tokens file.

        Raises:
            BadInputError: the file is missing or unreadable, group or others may access
                it (``chmod 600 PATH``), or its content is not a tokens document (each
                problem names the file and the field, never a token value).
        """
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as error:
            raise BadInputError(f"cannot read API tokens file {path}: {error.strerror}",
                                hint="start the daemon once to create it, or give "
                                     "api.tokens_file") from error
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BadInputError(f"API tokens file {path} is not a regular file")
            if info.st_mode & 0o077:
                raise BadInputError(
                    f"API tokens file {path} may be read by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):03o}); refusing to use it",
                    hint=f"chmod 600 {path}")
            data = file.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise BadInputError(f"API tokens file {path} is larger than 1 MiB")
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise BadInputError(f"API tokens file {path} is not JSON: {error}") from None
        try:
            parsed = _TokensFile.model_validate(document)
        except ValidationError as error:
            problems = [
                f"{'.'.join(str(p) for p in problem['loc']) or '(document)'}: {problem['msg']}"
                for problem in error.errors(include_input=False, include_url=False)
            ]
            raise BadInputError(f"API tokens file {path}: " + "; ".join(problems),
                                hint='expected {"tokens": [{"name", "role": "viewer" | '
                                     '"operator", "token"}]}') from None
        return cls([Token(t.name, t.role, t.token) for t in parsed.tokens], path)

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> tuple[TokenStore, bool]:
        """Read the tokens file at ``path`` (default :func:`default_tokens_path`), creating
        it with one operator and one viewer token (mode 600; a new folder mode 700) if it
        does not exist; the store and whether the file was created.

        Raises:
            BadInputError: see :meth:`load`; or the file cannot be created.
        """
        path = path if path is not None else default_tokens_path()
        if path.exists() or path.is_symlink():
            return cls.load(path), False
        store = cls.generate(path)
        document = {"tokens": [{"name": t.name, "role": t.role, "token": t.value}
                               for t in store._tokens]}
        try:
            if not path.parent.is_dir():
                path.parent.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise BadInputError(f"cannot create API tokens file {path}: {error.strerror}",
                                hint="give api.tokens_file in a writable folder") from error
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            return cls.load(path), False  # created meanwhile by another process
        except OSError as error:
            raise BadInputError(f"cannot create API tokens file {path}: {error.strerror}",
                                hint="give api.tokens_file in a writable folder") from error
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=1)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            with contextlib.suppress(OSError):
                path.unlink()
            raise BadInputError(f"cannot write API tokens file {path}: {error.strerror}"
                                ) from error
        return store, True

    def identify(self, presented: str) -> Token | None:
        """The token equal to ``presented``, or ``None``; compares with every token in
        constant time (no early exit on a match)."""
        given = presented.encode("utf-8", "replace")
        found: Token | None = None
        for token in self._tokens:
            if hmac.compare_digest(given, token.value.encode("utf-8")) and found is None:
                found = token
        return found

    def role_of(self, presented: str) -> str | None:
        """The role (``viewer``, ``operator``) of the token ``presented``, or ``None``."""
        token = self.identify(presented)
        return token.role if token is not None else None

    def token_for(self, role: str) -> str:
        """A token value with ``role``, else one of a stronger role (an operator token
        also views), for the local CLI.

        Raises:
            HanlabError: the store has none that can act as ``role``.
        """
        for wanted in ROLES[ROLES.index(role):] if role in ROLES else ():
            for token in self._tokens:
                if token.role == wanted:
                    return token.value
        where = f" in {self.path}" if self.path is not None else ""
        raise HanlabError(f"no API token with role {role}{where}",
                          hint="add one to the tokens file (roles: viewer, operator)")
