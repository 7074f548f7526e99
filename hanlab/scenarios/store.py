"""The scenario run store: one JSON Lines file of results under a configurable folder.

``<folder>/results.jsonl`` gets one record per step (``"record": "step"``) and one per
variant run (``"record": "variant"``), appended as they finish, each with the run id, the
scenario and variant, the rig and the repetition (issue 5, item 4: results to the run
store). The DUIS log and the correlator's exchanges are separate files; a record's
``request_id`` is the key that joins them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from hanlab.duis.jsonl import JsonLinesWriter, read_json_lines
from hanlab.resources import Closing

RESULTS_FILE: Final = "results.jsonl"
SCHEMA_VERSION: Final = 1


class RunStore(Closing):
    """Appends scenario results to ``<folder>/results.jsonl`` (folder created).

    Args:
        folder: the run store's folder.
        flush_every: write to the OS every this many records.

    Use as ``with RunStore(folder) as store:`` (or ``async with``); :meth:`close` is
    idempotent.
    """

    def __init__(self, folder: Path | str, *, flush_every: int = 1) -> None:
        self.folder = Path(folder)
        self.path = self.folder / RESULTS_FILE
        self._writer = JsonLinesWriter(self.path, flush_every=flush_every)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (``schema`` added)."""
        self._writer.write({"schema": SCHEMA_VERSION, **record})

    def close(self) -> None:
        """Flush and close; idempotent."""
        self._writer.close()


def read_results(folder: Path | str) -> list[dict[str, Any]]:
    """Every record of ``<folder>/results.jsonl``.

    Raises:
        BadInputError: the file is missing or damaged (other than a torn last line).
    """
    return read_json_lines(Path(folder) / RESULTS_FILE)
