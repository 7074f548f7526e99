"""Offline correlation: captures and a DUIS log in, exchanges and timings out (issue 5
item 7; DESIGN.md "Live and offline share it all").

:func:`analyse` feeds the same :class:`~hanlab.correlate.correlator.Correlator` the live
pipeline feeds, through :func:`~hanlab.correlate.events.time_ordered`, so a report's
timings can be reproduced from the capture and the DUIS log alone. Captures are streamed
(one frame per file held by the merge); the DUIS log is read whole (a few lines per SR) and
put in time order (stable: lines with the same ``ts_ns`` keep their file order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hanlab.correlate.correlator import Correlator, CorrelatorSettings
from hanlab.correlate.events import DuisEvent, time_ordered
from hanlab.correlate.exchange import Exchange
from hanlab.correlate.stats import TimingStats
from hanlab.errors import CaptureFormatError
from hanlab.frames import Frame
from hanlab.zigbee.keyring import Keyring

__all__ = ["AnalyseResult", "Damage", "analyse", "frames_until_damage", "read_duis_events"]


def read_duis_events(path: Path | str) -> list[DuisEvent]:
    """The DUIS log's events in time order (stable for equal ``ts_ns``).

    The log is streamed: memory holds the events, not the file's lines as dicts.

    Raises:
        BadInputError: the file is missing or a line is not a DUIS log line.
    """
    from hanlab.duis.log import iter_duis_log

    events: list[DuisEvent] = []
    name = str(path)
    for number, line in enumerate(iter_duis_log(path), start=1):
        events.append(DuisEvent.from_log_line(line, where=f"{name}:{number}"))
    events.sort(key=_ts_ns)
    return events


def _ts_ns(event: DuisEvent) -> int:
    return event.ts_ns


@dataclass
class Damage:
    """Where a capture stopped being readable (issue 14 item 6).

    Attributes:
        error: the reader's error (``path``, byte ``offset``, ``reason``).
        frames_used: frames of that file read before the damage (all were used).
    """

    error: CaptureFormatError
    frames_used: int

    def warning(self) -> str:
        """One line: ``FILE: at byte N: reason; the K frames before it were used``."""
        return f"{self.error}; the {self.frames_used} frames before it were used"


@dataclass
class AnalyseResult:
    """Exchanges in emission order, their timing statistics, the frame accounting, and
    the damaged captures (empty when every file was read to its end)."""

    exchanges: list[Exchange]
    stats: TimingStats
    counts: Counter[str]
    damaged: list[Damage] = field(default_factory=list)


def _until_damage(path: Path | str, damaged: list[Damage],
                  sniffer_id: str = "file") -> Iterator[Frame]:
    """The frames of ``path``; damage after its first block ends the file's stream and is
    recorded in ``damaged`` instead of raising. A file that is no capture at all (damage
    at byte 0, or missing) still raises: that is bad input, not a damaged capture."""
    from hanlab.capture.reader import read_frames

    frames = 0
    try:
        for frame in read_frames(path, sniffer_id):
            frames += 1
            yield frame
    except CaptureFormatError as error:
        if error.offset == 0 and frames == 0:
            raise
        damaged.append(Damage(error, frames))


#: the frames of one capture up to its damage (for other offline readers: hanlab dutycycle)
frames_until_damage = _until_damage


def analyse(captures: Sequence[Path | str], duis_log: Path | str | Iterable[DuisEvent], *,
            keyring: Keyring | None = None, targets: Mapping[str, float] | None = None,
            device_roles: Mapping[str, str] | None = None,
            settings: CorrelatorSettings | None = None,
            on_exchange: Callable[[Exchange], None] | None = None,
            on_frames: Callable[[Exchange, list[Frame], list[Frame]], None] | None = None,
            sniffer_ids: Sequence[str] | None = None) -> AnalyseResult:
    """Correlate capture files (pcap/pcapng, any band) with a DUIS log.

    A capture damaged part way (truncated, a bad block) gives every frame before the
    damage and is listed in :attr:`AnalyseResult.damaged` (issue 14 item 6).

    ``on_frames`` receives each exchange with its command and response frames (frame
    membership, see :class:`~hanlab.correlate.correlator.Correlator`); ``sniffer_ids``
    names the frames of each capture (default ``file``), e.g. the file name, so a frame
    can be found again in its file.

    Raises:
        BadInputError: an unreadable DUIS log, or a capture that cannot be read at all
            (missing, not a capture: :class:`~hanlab.errors.CaptureFormatError` at byte 0).
    """
    events = (read_duis_events(duis_log) if isinstance(duis_log, str | Path)
              else list(duis_log))
    stats = TimingStats(targets)
    exchanges: list[Exchange] = []

    def emitted(exchange: Exchange) -> None:
        exchanges.append(exchange)
        stats.add(exchange)
        if on_exchange is not None:
            on_exchange(exchange)

    correlator = Correlator(keyring, settings=settings, device_roles=device_roles,
                            on_exchange=emitted, keep=False, on_frames=on_frames)
    damaged: list[Damage] = []
    names = list(sniffer_ids) if sniffer_ids is not None else ["file"] * len(captures)
    correlator.feed_all(time_ordered([_until_damage(path, damaged, name)
                                      for path, name in zip(captures, names, strict=True)],
                                     events))
    correlator.close()
    return AnalyseResult(exchanges, stats, correlator.counts, damaged)
