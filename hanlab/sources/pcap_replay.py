"""The pcap replay source: a capture file played back as if a sniffer heard it.

Pace ``fast`` delivers batches as fast as the pipeline takes them (the daemon uses
backpressure for file sources, so nothing is dropped); pace ``recorded`` keeps the
recorded spacing between frames, divided by ``scale`` (2.0 plays twice as fast). Frames
keep their recorded ``ts_ns``; out-of-order timestamps are kept as recorded and counted in
``counters["out_of_order"]``. A damaged file delivers every frame before the damage, then
reports a ``damaged`` source event naming the file and byte offset and ends (a damaged
file is not retried: that would replay its frames twice). A missing file raises
:class:`~hanlab.errors.SourceError` from :meth:`start`, so the supervisor retries it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from hanlab.capture.reader import CaptureReader, fill_batch
from hanlab.errors import CaptureFormatError, SourceError, os_error_text
from hanlab.frames import Frame, FrameBatch
from hanlab.sources.base import DriverSettings, FrameSource


class PcapReplaySettings(DriverSettings):
    """Settings of the ``pcap`` driver.

    Attributes:
        file: the pcap or pcapng file.
        pace: ``recorded`` (keep the recorded spacing) or ``fast``.
        scale: playback speed factor for ``recorded`` pace (> 0).
        loop: start again from the beginning at the end of the file; each pass continues
            the time line (see :class:`PcapReplaySource`), and the source never finishes
            (:attr:`never_finishes`).
        batch_frames: most frames per batch at ``fast`` pace.
    """

    file: Path
    pace: Literal["recorded", "fast"] = "recorded"
    scale: float = Field(1.0, gt=0)
    loop: bool = False
    batch_frames: int = Field(512, ge=1, le=65536)

    @property
    def never_finishes(self) -> bool:
        """A looped replay runs until stopped (``--exit-when-done`` would never exit)."""
        return self.loop

    def input_files(self) -> dict[str, Path]:
        """The replayed capture must exist when the rig is loaded."""
        return {"file": self.file}


class _Span:
    """First and last ``ts_ns`` and frame count of one pass over a file."""

    def __init__(self) -> None:
        self.first_ns: int | None = None
        self.last_ns = 0
        self.frames = 0

    def see(self, batch: FrameBatch) -> None:
        if batch:
            if self.first_ns is None:
                self.first_ns = batch[0].ts_ns
            self.last_ns = max(self.last_ns, max(f.ts_ns for f in batch))
            self.frames += len(batch)

    def loop_step_ns(self) -> int:
        """The span plus one mean inter-frame gap (1 ms for a single frame)."""
        if self.first_ns is None:
            return 0
        span_ns = max(self.last_ns - self.first_ns, 0)
        gap_ns = span_ns // (self.frames - 1) if self.frames > 1 else 1_000_000
        return span_ns + max(gap_ns, 1)


class PcapReplaySource(FrameSource[PcapReplaySettings]):
    """Replays one capture file (driver ``pcap``); see the module docstring.

    With ``loop``, pass *k* (from 0) shifts every ``ts_ns`` by *k* × (the recording's span,
    first to last frame, + one mean inter-frame gap; 1 ms for a one-frame file), so the
    time line of one output file never runs backwards (issue 14 item 4).
    """

    Settings: ClassVar[type[DriverSettings]] = PcapReplaySettings
    argument_field: ClassVar[str] = "file"
    #: file sources may be given backpressure instead of drops.
    lossless: ClassVar[bool] = True

    async def start(self) -> None:
        """Check that the file can be opened. Raises :class:`SourceError` if not."""
        try:
            with self.settings.file.open("rb"):
                pass
        except OSError as exc:
            raise SourceError(os_error_text(self.settings.file, exc)) from exc

    async def batches(self) -> AsyncIterator[FrameBatch]:
        """Yield the file's frames in batches; see the module docstring."""
        s = self.settings
        offset_ns = 0
        while True:
            reader = CaptureReader(s.file, self.spec.sniffer_id, self.spec.page,
                                   self.spec.channel)
            self.counters.setdefault("out_of_order", 0)
            self.counters.setdefault("bad_packets", 0)
            base_ooo, base_bad = self.counters["out_of_order"], self.counters["bad_packets"]
            span = _Span()
            try:
                batches = (self._fast(reader, s.batch_frames) if s.pace == "fast"
                           else self._recorded(reader, s.scale))
                async for batch in batches:
                    span.see(batch)
                    if offset_ns:
                        batch = [f._replace(ts_ns=f.ts_ns + offset_ns) for f in batch]
                    batch = self.checked(batch)
                    if batch:
                        yield batch
            except CaptureFormatError as exc:
                self.counters["damaged"] = self.counters.get("damaged", 0) + 1
                self.emit("damaged", reason=str(exc), file=str(exc.path), offset=exc.offset)
                return
            finally:
                self.counters["out_of_order"] = base_ooo + reader.out_of_order
                self.counters["bad_packets"] = base_bad + reader.bad_packets
                self.counters["frames"] = self.counters.get("frames", 0) + reader.frames
            if not s.loop:
                return
            offset_ns += span.loop_step_ns()
            if not span.frames:
                return  # an empty file: looping would spin

    @staticmethod
    async def _fast(reader: CaptureReader, size: int) -> AsyncIterator[FrameBatch]:
        frames = iter(reader)
        while True:
            batch: list[Frame] = []
            try:
                fill_batch(frames, batch, size)  # compiled: no bytecode per frame
            except CaptureFormatError:
                if batch:  # the frames before a damaged block are delivered too
                    yield batch
                raise
            if batch:
                yield batch
            if len(batch) < size:
                return

    @staticmethod
    async def _recorded(reader: CaptureReader, scale: float) -> AsyncIterator[FrameBatch]:
        start_wall = time.monotonic()
        first_ts: int | None = None
        batch: list[Frame] = []
        try:
            for frame in reader:
                if first_ts is None:
                    first_ts = frame.ts_ns
                due = start_wall + (frame.ts_ns - first_ts) / 1e9 / scale
                delay = due - time.monotonic()
                if delay > 0.002:
                    if batch:
                        yield batch
                        batch = []
                    await asyncio.sleep(delay)
                batch.append(frame)
                if len(batch) >= 256:
                    yield batch
                    batch = []
        except CaptureFormatError:
            if batch:
                yield batch
            raise
        if batch:
            yield batch
