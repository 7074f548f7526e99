"""Capture retention by age and by total size per rig (issue 14 item 18)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from hanlab.capture.retention import apply_retention, rig_capture_files
from hanlab.capture.sink import CaptureSink
from hanlab.config.models import CaptureConfig
from hanlab.events.bus import EventBus
from hanlab.frames import Band, Frame

DAY_S = 86400.0
NOW_S = 1_750_000_000.0


def _file(folder: Path, name: str, age_days: float, size: int = 1000) -> Path:
    path = folder / name
    path.write_bytes(bytes(size))
    os.utime(path, (NOW_S - age_days * DAY_S, NOW_S - age_days * DAY_S))
    return path


def test_by_age_keeps_open_files_and_other_rigs(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    old = _file(tmp_path, "r1_2.4GHz_20250101T000000Z.pcapng", 10)
    old_sub = _file(tmp_path, "r1_subGHz_20250101T000000Z.pcapng", 9)
    recent = _file(tmp_path, "r1_2.4GHz_20250110T000000Z.pcapng", 1)
    open_old = _file(tmp_path, "r1_subGHz_20250102T000000Z.pcapng", 8)
    other_rig = _file(tmp_path, "r10_2.4GHz_20250101T000000Z.pcapng", 10)
    not_capture = _file(tmp_path, "r1_notes.txt", 10)
    with caplog.at_level(logging.INFO, logger="hanlab.capture.retention"):
        deleted = apply_retention(tmp_path, "r1", open_files=[open_old], retain_days=7,
                                  now_s=NOW_S)
    assert deleted == [old, old_sub]
    assert not old.exists() and not old_sub.exists()
    assert recent.exists() and open_old.exists() and other_rig.exists()
    assert not_capture.exists()
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and all("older than 7 days" in m for m in logged)
    assert str(old) in logged[0]


def test_by_total_size_deletes_the_oldest_first(tmp_path: Path) -> None:
    files = [_file(tmp_path, f"r1_2.4GHz_2025010{i}T000000Z.pcapng", 9 - i, 400 * 1024)
             for i in range(1, 6)]  # 5 × 400 KiB = 2000 KiB, oldest first
    deleted = apply_retention(tmp_path, "r1", open_files=[files[0]], retain_total_mb=1.0,
                              now_s=NOW_S)
    # the oldest is open: kept; then the next oldest go until ≤ 1 MiB
    assert deleted == files[1:4]
    assert rig_capture_files(tmp_path, "r1") == [files[0], files[4]]


def test_config_fields() -> None:
    assert CaptureConfig().retain_days is None and CaptureConfig().retain_total_mb is None
    with pytest.raises(ValueError):
        CaptureConfig(retain_total_mb=0)
    assert CaptureConfig(retain_days=30, retain_total_mb=500).retain_days == 30


async def test_sink_applies_retention_after_each_rotation(tmp_path: Path) -> None:
    bus = EventBus()
    out = tmp_path / "out"
    sink = CaptureSink(bus.subscribe("capture", maxsize=64), out, "r1", {"s1": "2.4GHz"},
                       rotate_size_bytes=4096, retain_total_mb=16 * 1024 / 2**20)
    task = asyncio.create_task(sink.run())
    t0 = 1_700_000_000 * 10**9
    for batch in range(60):
        await bus.publish([Frame(t0 + (batch * 10 + i) * 1000, "s1", Band.GHZ_2_4, 0, 15,
                                 bytes(60), True) for i in range(10)])
    await bus.close()
    await task
    left = rig_capture_files(out, "r1")
    assert sink.deleted and len(sink.files) == len(left) + len(sink.deleted)
    assert sink.files[-1] in left  # the last file (open until the end) was kept
    assert all(not p.exists() for p in sink.deleted)
    # after the last rotation the rig's files total ≤ 16 KiB plus the then open file
    assert sum(p.stat().st_size for p in left[:-1]) <= 16 * 1024
