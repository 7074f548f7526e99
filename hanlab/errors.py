"""The one error hierarchy of hanlab (DESIGN.md, Conventions: Errors).

Every error a user can cause carries the thing it is about (file, field, byte offset,
device) and, where there is one, what to do about it. The CLI prints ``str(error)`` as
one line and exits with status 2 for bad input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class HanlabError(Exception):
    """Base of every error hanlab raises on purpose.

    Args:
        message: what went wrong, naming the file, field or offset.
        hint: what the user can do about it, or ``None``.
    """

    exit_status = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInputError(HanlabError):
    """The user gave input that cannot be used: the CLI exits with status 2."""

    exit_status = 2


class ConfigError(BadInputError):
    """A lab, rig or secrets file is invalid.

    Args:
        problems: one line per problem, each ``file:line: field: message``.
    """

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        head = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems: " + "; ".join(self.problems)
        )
        super().__init__(head, hint=hint)


class CaptureFormatError(BadInputError):
    """A capture file cannot be read (from a given byte offset on).

    Args:
        path: the capture file.
        offset: byte offset in the file where reading stopped.
        reason: the cause, e.g. ``"truncated block"`` or ``"unknown link type 1"``.
    """

    def __init__(self, path: Path | str, offset: int, reason: str, *, hint: str | None = None):
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{self.path}: at byte {offset}: {reason}", hint=hint)


class CaptureOpenError(CaptureFormatError):
    """A capture file cannot be opened at all (missing, unreadable).

    Args:
        path: the capture file.
        error: the operating system's error; the message is :func:`os_error_text`.
    """

    def __init__(self, path: Path | str, error: OSError) -> None:
        super().__init__(path, 0, error.strerror or error.__class__.__name__)
        self.message = os_error_text(path, error)
        self.args = (self.message,)


class SourceError(HanlabError):
    """A frame source failed (device gone, file unreadable); the supervisor may retry it."""


class BrokerError(HanlabError):
    """The MQTT broker cannot be reached or refused the connection."""


def os_error_text(path: Path | str, error: OSError) -> str:
    """How every part of hanlab words a file it cannot open (issue 14 item 7).

    Returns:
        ``"PATH: file not found"`` for a missing file, else ``"PATH: cannot read: <cause>"``
        (e.g. ``Permission denied``, ``Is a directory``).
    """
    if isinstance(error, FileNotFoundError):
        return f"{path}: file not found"
    return f"{path}: cannot read: {error.strerror or error.__class__.__name__}"


class FirmwareImageError(BadInputError):
    """An OTA Upgrade image file is malformed or does not fit its target (ZCL 07-5123 §11.4).

    Args:
        source: the file (or ``<bytes>``).
        offset: byte offset in the file the problem is at.
        reason: the cause, e.g. ``"bad magic 0x12345678, expected 0x0BEEF11E"``.
    """

    def __init__(self, source: Path | str, offset: int, reason: str, *,
                 hint: str | None = None) -> None:
        self.source = str(source)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{self.source}: at byte {offset}: {reason}", hint=hint)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the known name closest to a misspelt ``word``, or ``""``.

    Uses :func:`difflib.get_close_matches` (ratio ≥ 0.6); issue 14 item 7.
    """
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
