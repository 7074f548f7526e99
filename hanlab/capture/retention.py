"""Capture retention: delete a rig's oldest pcapng files by age and by total size
(issue 14 item 18).

Applied by the capture sink after each rotation (:class:`~hanlab.capture.sink.CaptureSink`),
over the rig's files in its capture folder (``<rig>_<band>_<UTC start>[-N].pcapng`` of
every band, see :mod:`hanlab.capture.rotation`). A file still open for writing is never
deleted; each deletion is logged with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from pathlib import Path

from hanlab.frames import Band

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


def rig_capture_files(folder: Path, rig: str) -> list[Path]:
    """The rig's pcapng files in ``folder`` (every band), oldest first (by mtime)."""
    found: list[tuple[int, str, Path]] = []
    for band in Band:
        for path in folder.glob(f"{rig}_{band.value}_*.pcapng"):
            try:
                found.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:
                continue  # deleted meanwhile
    return [path for _, _, path in sorted(found)]


def apply_retention(folder: Path, rig: str, *, open_files: Collection[Path],
                    retain_days: float | None = None, retain_total_mb: float | None = None,
                    now_s: float | None = None) -> list[Path]:
    """Delete the rig's capture files older than ``retain_days``, then the oldest ones
    until the rig's files total at most ``retain_total_mb`` MiB.

    Args:
        folder: the rig's capture folder.
        rig: rig name (file-name prefix).
        open_files: files being written: never deleted, but counted in the total.
        retain_days: keep files modified within this many days (``None``: any age).
        retain_total_mb: keep at most this many MiB of the rig's files (``None``: any).
        now_s: the time to age files from, s since the epoch (default: now).

    Returns:
        the files deleted, oldest first. A file that cannot be deleted is logged and kept.
    """
    if retain_days is None and retain_total_mb is None:
        return []
    keep = {p.resolve() for p in open_files}
    now = time.time() if now_s is None else now_s
    files: list[tuple[Path, int, float]] = []
    for path in rig_capture_files(folder, rig):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        files.append((path, st.st_size, st.st_mtime))
    total = sum(size for _, size, _ in files)
    limit = None if retain_total_mb is None else int(retain_total_mb * _MIB)
    deleted: list[Path] = []
    for path, size, mtime in files:
        if path.resolve() in keep:
            continue
        age_days = (now - mtime) / 86400
        if retain_days is not None and age_days > retain_days:
            reason = f"older than {retain_days:g} days ({age_days:.1f} days)"
        elif limit is not None and total > limit:
            reason = (f"the rig's captures total {total / _MIB:.1f} MiB, over "
                      f"retain_total_mb {retain_total_mb:g}")
        else:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("rig %s: cannot delete %s (%s): %s", rig, path, reason, exc.strerror)
            continue
        log.info("rig %s: deleted %s: %s", rig, path, reason)
        total -= size
        deleted.append(path)
    return deleted
