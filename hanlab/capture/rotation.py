"""One rig's capture files for one band, rotated by size and by duration.

File names are predictable: ``<rig>_<band>_<UTC start>.pcapng`` where the UTC start is the
timestamp of the file's first frame as ``YYYYMMDDTHHMMSSZ`` (a ``-N`` suffix keeps names
unique when two files start in the same second). Rotation happens before a frame that
would exceed ``rotate_size_bytes`` or that lies ``rotate_duration_s`` or more after the
file's first frame (frame time, so replay and live behave the same). Rotation is
checked at batch boundaries: a file may run past a limit by one batch (at most 512
frames, about 70 KiB).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hanlab.capture.pcapng import PcapngWriter
from hanlab.frames import Band, Frame


def utc_stamp(ts_ns: int) -> str:
    """``YYYYMMDDTHHMMSSZ`` of ``ts_ns`` (ns since the UNIX epoch)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts_ns // 1_000_000_000))


class BandCaptureFiles:
    """The rotating pcapng files of one rig and band.

    Args:
        folder: output folder (created if missing).
        rig: rig name (file-name prefix).
        band: the band these files hold.
        descriptions: sniffer id -> IDB description (e.g. ``"2.4GHz page 0 channel 11"``).
        rotate_size_bytes: start a new file before this size; ``None`` never.
        rotate_duration_s: start a new file after this much frame time; ``None`` never.
        on_rotated: called with the path of each new file once it is open (the capture
            sink applies retention there).
    """

    def __init__(
        self,
        folder: Path,
        rig: str,
        band: Band,
        descriptions: dict[str, str],
        rotate_size_bytes: int | None = None,
        rotate_duration_s: float | None = None,
        on_rotated: Callable[[Path], None] | None = None,
    ) -> None:
        self.folder = folder
        self.rig = rig
        self.band = band
        self.descriptions = descriptions
        self.rotate_size_bytes = rotate_size_bytes
        self.rotate_duration_ns = (
            int(rotate_duration_s * 1e9) if rotate_duration_s is not None else None
        )
        self.on_rotated: Callable[[Path], None] = on_rotated or (lambda _path: None)
        self.files: list[Path] = []
        self.frames = 0
        self._writer: PcapngWriter | None = None
        self._if_ids: dict[str, int] = {}
        self._start_ns = 0
        self._skipped = 0
        #: file-name base (rig, band, UTC second) -> the next ``-N`` suffix to try
        self._next_suffix: dict[str, int] = {}

    def _open(self, ts_ns: int, sniffer_id: str) -> PcapngWriter:
        """Close the current file and open the next, its SHB and the IDB of ``sniffer_id``
        already on disk (issue 14 item 12: a kill right after a rotation leaves a readable
        file, never an empty one)."""
        if self._writer is not None:
            self._skipped += self._writer.skipped
            self._writer.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        base = f"{self.rig}_{self.band.value}_{utc_stamp(ts_ns)}"
        description = self.descriptions.get(sniffer_id, self.band.value)
        n = self._next_suffix.get(base, 0)
        while True:
            path = self.folder / (f"{base}-{n}.pcapng" if n else f"{base}.pcapng")
            if not path.exists():
                try:
                    self._writer = PcapngWriter(path, [(sniffer_id, description)])
                    break
                except FileExistsError:
                    pass
            n += 1
        self._next_suffix = {base: n + 1}
        self._if_ids = {sniffer_id: 0}
        self._start_ns = ts_ns
        self.files.append(path)
        self.on_rotated(path)
        return self._writer

    def _if_id(self, writer: PcapngWriter, sniffer_id: str) -> int:
        if_id = self._if_ids.get(sniffer_id)
        if if_id is None:
            desc = self.descriptions.get(sniffer_id, self.band.value)
            if_id = self._if_ids[sniffer_id] = writer.interface(sniffer_id, desc)
        return if_id

    def _needs_rotation(self, writer: PcapngWriter, ts_ns: int) -> bool:
        if self.rotate_size_bytes is not None and (
            writer.size_bytes + writer.pending_bytes >= self.rotate_size_bytes
        ):
            return writer.frames > 0
        return (
            self.rotate_duration_ns is not None
            and ts_ns - self._start_ns >= self.rotate_duration_ns
            and writer.frames > 0
        )

    def write(self, frames: list[Frame]) -> None:
        """Write ``frames`` (all of this band); rotation is checked once per batch, so a
        file may exceed its limits by at most one batch."""
        writer = self._writer
        if writer is None or self._needs_rotation(writer, frames[0].ts_ns):
            writer = self._open(frames[0].ts_ns, frames[0].sniffer_id)
        writer.write_frames(frames, lambda sid: self._if_id(writer, sid))
        self.frames += len(frames)

    def write_gap(self, sniffer_id: str, start_ns: int, end_ns: int, reason: str) -> None:
        """Record a gap of ``sniffer_id`` in the current file (opening one if needed)."""
        writer = self._writer or self._open(start_ns, sniffer_id)
        writer.write_gap(self._if_id(writer, sniffer_id), start_ns, end_ns, reason)

    @property
    def current(self) -> Path | None:
        """The file open for writing, or ``None``."""
        writer = self._writer
        return writer.path if writer is not None and not writer.closed else None

    @property
    def skipped(self) -> int:
        """Frames skipped by this band's writers (a field that could not be written)."""
        return self._skipped + (self._writer.skipped if self._writer else 0)

    @property
    def pending_bytes(self) -> int:
        """Bytes assembled but not yet written."""
        return self._writer.pending_bytes if self._writer else 0

    def flush(self) -> None:
        """Write every assembled block to the kernel."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the current file; safe to call twice."""
        if self._writer is not None:
            self._writer.close()
