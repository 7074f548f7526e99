"""Hot-plug under the daemon: 100 unplug/replug cycles of an emulated dongle, for each
serial sniffer driver (nRF 802.15.4; TI SmartRF Packet Sniffer 2 on GB sub-GHz).

Issue 6, "Done when": each cycle resumes within 2 s of the port reappearing, every gap
is recorded with its times (gap events, and statistics blocks in the pcapng), no frame
received outside a gap is lost, the pcapng stays valid for tshark, and another rig of
the same daemon keeps capturing throughout.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hanlab.config import load_lab
from hanlab.runtime.lab import LabOptions, LabRuntime
from tests.tools.sniffer_kinds import KINDS, Kind

CYCLES = 100

RIG = """
name: {name}
sniffers:
  - id: {sniffer}
    driver: {driver}
    page: {page}
    channel: {channel}
    settings: {{port: {port}, path_poll_s: 0.02, reopen_backoff_s: 0.05}}
capture: {{folder: {folder}, flush_interval_s: 0.1}}
"""


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling a test condition
            await asyncio.sleep(0.005)


def tshark_count(tshark: str, path: Path) -> int:
    result = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return len(result.stdout.split())


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
async def test_hundred_replugs_with_another_rig_capturing(
    tmp_path: Path, tshark: str, kind: Kind
) -> None:
    captures = tmp_path / "captures"
    for name, sniffer, channel in (("rigA", "snifA", kind.channel), ("rigB", "snifB", 20)):
        (tmp_path / f"{name}.yaml").write_text(
            RIG.format(
                name=name,
                sniffer=sniffer,
                driver=kind.driver if name == "rigA" else "nrf802154",
                page=kind.page if name == "rigA" else 0,
                channel=channel,
                port=tmp_path / sniffer,
                folder=captures,
            )
        )
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text("name: lab1\nrigs: [rigA.yaml, rigB.yaml]\n")
    lab = load_lab(lab_file)

    async with (
        kind.dongle(tmp_path / "snifA", rate_hz=kind.rate_hz / 2, seed=1) as a,
        KINDS[0].dongle(tmp_path / "snifB", rate_hz=200, seed=2) as b,
    ):
        supervisor = LabRuntime(lab, LabOptions(mqtt=False, api=False))
        daemon = asyncio.create_task(supervisor.run())
        rig_a, rig_b = supervisor.runners
        await until(lambda: a.receiving and b.receiving)
        counters_a = rig_a.source_counters
        plugged_ns: list[int] = []
        b_frames_at_cycle: list[int] = []
        for _ in range(CYCLES):
            await asyncio.sleep(0.03)
            a.receiving = False
            await until(lambda: counters_a["snifA"]["frames"] == a.stats.frames)
            a.unplug()
            await asyncio.sleep(0.02)
            plugged_ns.append(a._clock())
            a.plug()
            await until(lambda: a.receiving)
            b_frames_at_cycle.append(b.stats.frames)
        await asyncio.sleep(0.05)
        a.receiving = b.receiving = False
        await until(lambda: rig_a.source_counters["snifA"]["frames"] == a.stats.frames)
        await until(lambda: rig_b.source_counters["snifB"]["frames"] == b.stats.frames)
        supervisor.stop()
        await asyncio.wait_for(daemon, 10)

    # every gap recorded once, with its times; each resumed within 2 s of the port
    gaps = [g for g in rig_a.gaps if g.sniffer_id == "snifA"]
    assert len(gaps) == CYCLES
    resume_s = []
    for gap, plugged in zip(gaps, plugged_ns, strict=True):
        start, end = gap.detail["gap_start_ns"], gap.detail["gap_end_ns"]
        assert start < plugged <= end
        resume_s.append((end - plugged) / 1e9)
    assert max(resume_s) < 2.0, max(resume_s)
    print(
        f"resume after replug: max {max(resume_s) * 1e3:.1f} ms, "
        f"median {sorted(resume_s)[CYCLES // 2] * 1e3:.1f} ms"
    )
    assert not rig_b.gaps
    # rig B kept capturing during the cycles
    assert all(n2 > n1 for n1, n2 in itertools.pairwise(b_frames_at_cycle))

    # no frame lost; the files are valid for tshark; the gaps are in the pcapng
    files_a = sorted(captures.glob("rigA_*.pcapng"))
    files_b = sorted(captures.glob("rigB_*.pcapng"))
    assert files_a and files_b
    assert sum(tshark_count(tshark, f) for f in files_a) == a.stats.frames
    assert sum(tshark_count(tshark, f) for f in files_b) == b.stats.frames
    assert sum(f.read_bytes().count(b"hanlab gap: port") for f in files_a) == CYCLES
