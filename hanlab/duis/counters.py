"""RequestID counters that strictly increase per User and never repeat across runs.

DUIS 5.4 section 3.4.1.1: the counter part of a RequestID must be greater than every counter
the User used before (the DCC and the devices refuse replays; for an RTDS command it is the
GBCS Originator Counter). The store keeps one small JSON file per User in a folder and
reserves counters in blocks: the file holds the block's upper end, written atomically
(temporary file, fsync, rename) before any counter of the block is handed out. A crash or
restart therefore skips the rest of the block and never reuses a counter.

With ``time_floor`` (the default) a counter is also at least the current UNIX time in
milliseconds, as DCC Boxed's tools do, so a lost state folder still cannot cause a repeat.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from hanlab.duis.xml import MAX_COUNTER
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64


class CounterStateError(BadInputError):
    """The counter state folder or a state file cannot be read or written."""


class RequestCounterStore:
    """Per-User RequestID counters persisted under ``folder``.

    Args:
        folder: where ``<user EUI-64 hex>.json`` files live (created).
        block: counters reserved per state-file write (>= 1).
        time_floor: never hand out a counter below the UNIX time in ms.

    Raises:
        CounterStateError: the folder cannot be created.

    One process per User folder (no cross-process locking).
    """

    def __init__(self, folder: Path | str, *, block: int = 64, time_floor: bool = True) -> None:
        if block < 1:
            raise BadInputError(f"counter block must be >= 1, got {block}")
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CounterStateError(f"cannot create counter folder {self.folder}: {error}") \
                from error
        self.block = block
        self.time_floor = time_floor
        self._next: dict[Eui64, int] = {}
        self._reserved: dict[Eui64, int] = {}

    def _path(self, user: Eui64) -> Path:
        return self.folder / f"{user.to_bytes().hex().upper()}.json"

    def _read_reserved(self, user: Eui64) -> int:
        path = self._path(user)
        if not path.exists():
            return -1
        try:
            value = json.loads(path.read_text(encoding="utf-8"))["reserved_through"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CounterStateError(
                f"counter state {path} is unreadable: {error}",
                hint="restore it, or delete it if the time floor is on",
            ) from error
        if not isinstance(value, int) or not -1 <= value <= MAX_COUNTER:
            raise CounterStateError(f"counter state {path} holds {value!r}")
        return value

    def _write_reserved(self, user: Eui64, value: int) -> None:
        path = self._path(user)
        text = json.dumps({"user": user.duis, "reserved_through": value})
        try:
            fd, temporary = tempfile.mkstemp(prefix=path.name, dir=self.folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise CounterStateError(f"cannot write counter state {path}: {error}") from error

    def last_reserved(self, user: Eui64) -> int:
        """The highest counter reserved for ``user`` so far (-1: none)."""
        return self._reserved.get(user, self._read_reserved(user))

    def next(self, user: Eui64) -> int:
        """The next RequestID counter of ``user``: above every counter handed out before.

        Raises:
            CounterStateError: the state cannot be read or written, or 2**64-1 is reached.
        """
        if user not in self._next:
            self._reserved[user] = self._read_reserved(user)
            self._next[user] = self._reserved[user] + 1
        candidate = self._next[user]
        if self.time_floor:
            candidate = max(candidate, time.time_ns() // 1_000_000)
        if candidate > MAX_COUNTER:
            raise CounterStateError(f"RequestID counters of {user} are exhausted")
        if candidate > self._reserved[user]:
            reserved = min(candidate + self.block - 1, MAX_COUNTER)
            self._write_reserved(user, reserved)
            self._reserved[user] = reserved
        self._next[user] = candidate + 1
        return candidate
