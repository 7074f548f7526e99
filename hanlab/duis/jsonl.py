"""An append-only JSON Lines writer shared by the DUIS log and the emulator's ground truth.

One JSON object per line, UTF-8, keys in insertion order. Lines are buffered and written
every ``flush_every`` records (1: every line reaches the file at once) and on close, so a
crash loses at most ``flush_every - 1`` lines. Writing is synchronous and short (a buffered
append to a local file), so it is safe to call from the event loop and from several tasks:
one call writes one whole line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from hanlab.errors import BadInputError, os_error_text
from hanlab.resources import Closing


class JsonLinesWriter(Closing):
    """Append JSON objects, one per line, to ``path`` (created with its folder).

    Args:
        path: the ``.jsonl`` file; opened for append, so a restart continues it.
        flush_every: write to the OS every this many lines (>= 1).

    Raises:
        BadInputError: ``flush_every`` < 1, or the file cannot be opened.

    Usable as a sync or async context manager; :meth:`close` is safe to call twice.
    """

    def __init__(self, path: Path | str, *, flush_every: int = 1) -> None:
        if flush_every < 1:
            raise BadInputError(f"flush_every must be >= 1, got {flush_every}")
        self.path = Path(path)
        self._flush_every = flush_every
        self._pending: list[str] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        except OSError as error:
            raise BadInputError(f"cannot open {self.path} for writing: {error}") from error
        self.lines_written = 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._file is None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line (values that JSON cannot hold are written as str).

        Raises:
            BadInputError: the writer is closed.
        """
        if self._file is None:
            raise BadInputError(f"{self.path}: JSON Lines writer is closed")
        self._pending.append(json.dumps(record, separators=(",", ":"), default=str))
        self.lines_written += 1
        if len(self._pending) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines to the file and flush it to the OS."""
        if self._file is None or not self._pending:
            return
        self._file.write("\n".join(self._pending) + "\n")
        self._pending.clear()
        self._file.flush()

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None

    async def aclose(self) -> None:
        """Flush and close (async form of :meth:`close`)."""
        self.close()




def read_json_lines(path: Path | str) -> list[dict[str, Any]]:
    """All records of a JSON Lines file; a torn last line (crash mid-write) is skipped.

    Raises:
        BadInputError: the file is missing, or a line other than the last is not JSON.
    """
    return list(iter_json_lines(path))


def iter_json_lines(path: Path | str) -> Iterator[Any]:
    """The records of a JSON Lines file one by one, streamed: memory holds one line, not
    the file (a night's DUIS log is millions of lines). Blank lines are skipped; a torn
    last line (crash mid-write) is skipped.

    Raises (from iteration):
        BadInputError: the file is missing or unreadable, or a line other than the last is
            not JSON (``FILE:LINE: not JSON: …``, raised once the next line shows that
            it was not the last).
    """
    torn: str | None = None
    try:
        with Path(path).open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if torn is not None:
                    raise BadInputError(torn)
                if not line.strip():
                    continue
                try:
                    yield orjson.loads(line)  # the fast parser for what hanlab writes
                    continue
                except orjson.JSONDecodeError:
                    pass
                try:
                    yield json.loads(line)  # what only json reads (NaN, > 64-bit ints)
                except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
                    torn = f"{path}:{number}: not JSON: {error}"
    except OSError as error:
        raise BadInputError(os_error_text(path, error)) from error
