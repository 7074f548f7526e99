"""Ground truth of the emulators: the true time of every emulated event (DESIGN.md, Emulation).

Both emulated edges write here: the emulated DCC (request received, command queued at the
CHF, response sent, DUIS response posted) and the emulated HAN (frames on the air). Comparing
it with what the sniffers and the DUIS client measured gives the measurement error.

File format: JSON Lines, one object per event, ``{"event": ..., "ts_ns": ..., <fields>}``,
``ts_ns`` in ns since the UNIX epoch (UTC, :func:`time.time_ns`).
"""

from __future__ import annotations

import time
from pathlib import Path

from hanlab.duis.jsonl import JsonLinesWriter, read_json_lines
from hanlab.resources import Closing

__all__ = ["GroundTruthLog", "now_ns", "read_ground_truth"]


def now_ns() -> int:
    """Now, in ns since the UNIX epoch (UTC): the clock of every ground-truth event."""
    return time.time_ns()


class GroundTruthLog(Closing):
    """Writer of ground-truth events (JSON Lines), safe to share between tasks.

    Args:
        path: the ``.jsonl`` file (appended to; its folder is created).
        flush_every: lines per write to the OS; 1 flushes every line (the default), more
            batches for high event rates (the rest is flushed on close).

    Use as ``async with GroundTruthLog(path) as truth: truth.record("x", now_ns(), a=1)``.
    """

    def __init__(self, path: Path | str, *, flush_every: int = 1) -> None:
        self._writer = JsonLinesWriter(path, flush_every=flush_every)
        self.path = self._writer.path

    def record(self, event: str, ts_ns: int, **fields: object) -> None:
        """Append one event: ``event`` name, its true time ``ts_ns`` (ns, UNIX epoch), fields.

        Field values JSON cannot hold (EUI-64s, RequestIDs) are written as their ``str``.
        Recording after :meth:`close` is ignored (an emulator winding down must not fail).
        """
        if self._writer.closed:
            return
        self._writer.write({"event": event, "ts_ns": ts_ns, **fields})

    def flush(self) -> None:
        """Write buffered events to the file now."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close; idempotent."""
        self._writer.close()



def read_ground_truth(path: Path | str) -> list[dict[str, object]]:
    """The events of a ground-truth file, in file order (a torn last line is skipped)."""
    return read_json_lines(path)
