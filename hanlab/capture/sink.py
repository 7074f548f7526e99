"""The capture sink: one rig's frames to pcapng, one rotating file set per band.

It flushes whenever its queue is empty, when 256 KiB are pending, and at least every
``flush_interval_s`` of wall time, so frames received more than that long before a
``kill -9`` are on disk (the page cache survives the process).
"""

from __future__ import annotations

import time
from pathlib import Path

from hanlab.capture.retention import apply_retention
from hanlab.capture.rotation import BandCaptureFiles
from hanlab.events.bus import CLOSED, BusEvent, Subscription
from hanlab.frames import Band, Frame, by_band
from hanlab.sources.base import SourceEvent

FLUSH_PENDING_BYTES = 256 * 1024


class CaptureSink:
    """Writes the frames of one rig's bus to per-band pcapng files.

    Args:
        subscription: the sink's bus subscription.
        folder: output folder.
        rig: rig name.
        descriptions: sniffer id -> interface description.
        sniffer_bands: sniffer id -> configured band (where a gap is recorded before the
            sniffer's first frame).
        rotate_size_bytes, rotate_duration_s: rotation limits (``None``: never).
        flush_interval_s: longest time assembled blocks stay in memory.
        retain_days, retain_total_mb: retention applied after each rotation
            (:func:`~hanlab.capture.retention.apply_retention`; ``None``: keep all).

    Attributes:
        error: the first error that stopped a write (e.g. ``OSError`` disk full), or
            ``None``; the sink goes on with the next batch (issue 14 item 8). See
            :attr:`failed`.
        frames_lost: frames not written because of such errors.
    """

    def __init__(
        self,
        subscription: Subscription,
        folder: Path,
        rig: str,
        descriptions: dict[str, str],
        rotate_size_bytes: int | None = None,
        rotate_duration_s: float | None = None,
        flush_interval_s: float = 0.25,
        sniffer_bands: dict[str, Band] | None = None,
        *,
        retain_days: float | None = None,
        retain_total_mb: float | None = None,
    ) -> None:
        self.subscription = subscription
        self.flush_interval_s = flush_interval_s
        self.folder = folder
        self.rig = rig
        self.retain_days = retain_days
        self.retain_total_mb = retain_total_mb
        #: files deleted by retention, oldest first
        self.deleted: list[Path] = []
        self.bands: dict[Band, BandCaptureFiles] = {
            band: BandCaptureFiles(
                folder, rig, band, descriptions, rotate_size_bytes, rotate_duration_s,
                on_rotated=self._rotated,
            )
            for band in Band
        }
        self._sniffer_band: dict[str, Band] = dict(sniffer_bands or {})
        self.error: Exception | None = None
        self.frames_lost = 0

    @property
    def failed(self) -> bool:
        """Whether any write failed (:attr:`error` says why): the files miss frames."""
        return self.error is not None

    @property
    def frames_skipped(self) -> int:
        """Frames the writers skipped because a field could not be written."""
        return sum(files.skipped for files in self.bands.values())

    def _rotated(self, _path: Path) -> None:
        """Apply retention now that a new file is open (never deleting an open one)."""
        if self.retain_days is None and self.retain_total_mb is None:
            return
        open_files = [files.current for files in self.bands.values()
                      if files.current is not None]
        self.deleted += apply_retention(
            self.folder, self.rig, open_files=open_files, retain_days=self.retain_days,
            retain_total_mb=self.retain_total_mb)

    def _failed(self, exc: Exception, frames: int) -> None:
        if self.error is None:
            self.error = exc
        self.frames_lost += frames

    @property
    def files(self) -> list[Path]:
        """Every file written so far, per band in order of creation."""
        return [p for files in self.bands.values() for p in files.files]

    def _write(self, batch: list[Frame]) -> None:
        for band, part in by_band(batch):
            self.bands[band].write(part)
        self._sniffer_band[batch[0].sniffer_id] = batch[-1].band

    def _event(self, event: SourceEvent | BusEvent) -> None:
        if isinstance(event, SourceEvent) and event.kind == "gap":
            band = self._sniffer_band.get(event.sniffer_id)
            if band is None:
                return
            d = event.detail
            self.bands[band].write_gap(
                event.sniffer_id, int(d.get("gap_start_ns", event.ts_ns)),
                int(d.get("gap_end_ns", event.ts_ns)), str(d.get("reason", "")),
            )

    def flush(self) -> None:
        """Write every pending block of every band."""
        for files in self.bands.values():
            files.flush()

    async def run(self) -> None:
        """Consume the subscription until the bus closes; always closes the files."""
        queue = self.subscription.queue
        last_flush = time.monotonic()
        try:
            while True:
                if queue.empty():
                    self._flush_guarded()
                    last_flush = time.monotonic()
                item = await queue.get()
                if item is CLOSED:
                    break
                try:
                    if isinstance(item, list):
                        self._write(item)
                    elif isinstance(item, SourceEvent | BusEvent):
                        self._event(item)
                except Exception as exc:  # one batch never stops the sink
                    self._failed(exc, len(item) if isinstance(item, list) else 0)
                now = time.monotonic()
                if now - last_flush >= self.flush_interval_s or any(
                    f.pending_bytes >= FLUSH_PENDING_BYTES for f in self.bands.values()
                ):
                    self._flush_guarded()
                    last_flush = now
        finally:
            for files in self.bands.values():
                try:
                    files.close()
                except OSError as exc:
                    self._failed(exc, 0)

    def _flush_guarded(self) -> None:
        try:
            self.flush()
        except OSError as exc:
            self._failed(exc, 0)
