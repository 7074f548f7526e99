"""Live correlation = offline correlation, and the per-band timing report (issue 5,
done-when; DIT.11 "message and response timings across home area networks for both HAN
radio frequencies").

Scenarios run as jobs of the lab runtime on ``rigs/emulated-dual-band.yaml`` (the rig's
emulated sniffers writing per-band pcapng, its DUIS log, its live correlator, always on);
``hanlab analyse`` on the captures that cover the job and the job's own DUIS log, with the
keys from ``hanlab keys emulated`` and the roles from ``--rig``, gives the same SR
exchanges and timings, byte for byte.

The per-band report of one run of repeated meter reads (ESME and GSME on 2.4 GHz, GSME on
sub-GHz, requests at uniformly random moments) shows HAN delivery times in proportion to
the PHY airtime of each band (``hanlab.phy``) and GSME delays set by its wake interval.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hanlab.cli import main
from hanlab.correlate import Exchange
from hanlab.correlate.stats import TimingStats
from hanlab.phy import phy_for
from hanlab.runtime.emulation import EmulationSettings
from hanlab.runtime.jobs import exchange_from_record
from hanlab.scenarios.models import Scenario
from hanlab.scenarios.runner import ScenarioRunner, devices_by_role
from tests.integration.lab_util import DUAL, lab_of, run_job, running_lab

RIG = DUAL


def job_captures(out: Path, job: dict[str, Any]) -> list[Path]:
    """The job's captures in the order of the rig file's sniffers (2.4 GHz, sub-GHz)."""
    return [out / name for band in ("2.4GHz", "subGHz") for name in job["captures"]
            if f"_{band}_" in name]


def analyse_job(tmp_path: Path, out: Path, job: dict[str, Any]) -> tuple[list[str], str]:
    """``hanlab analyse`` on the job's captures and DUIS log: its SR exchanges (compact
    JSON lines) and its timings.json text."""
    import json

    keys = tmp_path / "keys.yaml"
    main(["keys", "emulated", str(RIG), "-o", str(keys)])
    report = tmp_path / f"report-{job['id']}"
    main(["analyse", *map(str, job_captures(out, job)), "--duis-log", job["duis_log"],
          "--keys", str(keys), "--rig", str(RIG), "--out", str(report)])
    lines = [line for line in (report / "exchanges.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "sr"]
    return lines, (report / "timings.json").read_text()


def job_lines(job: dict[str, Any]) -> list[str]:
    """The job's SR exchanges as ``hanlab analyse`` writes them (compact, keys sorted)."""
    from hanlab.correlate import exchange_json

    return [exchange_json(exchange_from_record(e)) for e in job["exchanges"]]


async def test_live_exchanges_equal_hanlab_analyse(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    async with running_lab(lab_of(RIG), out) as lab:
        jobs = [await run_job(lab, rig="emulated-dual-band", scenario="meter-reading"),
                await run_job(lab, rig="emulated-dual-band", scenario="ppmid",
                              variants=["ppmid-exchange-gas"])]
        live = lab.runtimes["emulated-dual-band"].correlator
        assert live is not None and live.late_items == 0
    assert all(job["state"] == "passed" for job in jobs)
    bands = {e["band"] for job in jobs for e in job["exchanges"]
             if e["match_level"] == "exact"}
    assert bands == {"2.4GHz", "subGHz"}
    for job in jobs:
        assert len(job_captures(out, job)) == 2
        offline_lines, offline_timings = analyse_job(tmp_path, out, job)
        assert sorted(offline_lines) == sorted(job_lines(job))
        stats = TimingStats()
        stats.add_all(exchange_from_record(e) for e in job["exchanges"])
        assert offline_timings == stats.to_json() + "\n"
        assert job["timings"] == stats.summary()


def _reads(reads_per_device: int, pause_max_s: float, seed: int) -> Scenario:
    """Meter reads (4.1.1 to the ESME, 4.1.1 to each GSME) in a shuffled order, each after
    a uniformly random pause (host seconds)."""
    rng = random.Random(seed)
    targets = ["ESME", "GSME", "GSME#2"] * reads_per_device
    rng.shuffle(targets)
    steps: list[dict[str, Any]] = []
    for target in targets:
        steps.append({"pause_s": round(rng.uniform(0.0, pause_max_s), 4)})
        steps.append({"sr": "4.1.1", "target": target})
    return Scenario.model_validate({
        "name": "reads", "title": "repeated meter reads", "source": "test",
        "variants": [{"id": "both-bands", "title": "reads", "user_role": "IS",
                      "steps": steps}]})


def _row(rows: list[dict[str, Any]], band: str, role: str, segment: str) -> dict[str, Any]:
    (row,) = [r for r in rows if r["band"] == band and r["device_role"] == role
              and r["sr_variant"] == "4.1.1" and r["segment"] == segment]
    return row


async def test_per_band_report_follows_phy_and_wake_interval(tmp_path: Path) -> None:
    wake_s = 4.0
    settings = EmulationSettings(time_scale=20.0, wake_interval_s=wake_s)
    async with running_lab(lab_of(RIG), tmp_path, emulation=settings) as lab:
        rig = lab.runtimes["emulated-dual-band"]
        side = rig.duis
        side.pause_traffic(True)
        async with ScenarioRunner(side.client, devices_by_role(rig.rig), rig=rig.rig.name,
                                  exchanges=rig.correlator) as runner:
            # pauses uniform over one wake interval (host s = emulated s / time_scale)
            (result,) = await runner.run(_reads(16, wake_s / 20.0, seed=5))
        live = rig.correlator
        assert live is not None
        sent = {s.request_id for s in result.steps if s.request_id is not None}
        exchanges = [e for e in live.exchanges if e.kind == "sr" and e.request_id in sent]
    assert result.passed
    assert len(exchanges) == 48 and all(e.match_level == "exact" for e in exchanges)
    stats = TimingStats()
    stats.add_all(exchanges)
    rows = stats.rows()

    # HAN delivery of the same GBCS messages to the GSME on each band: sub-GHz takes
    # longer in proportion to the PPDU airtime (80 µs vs 32 µs per octet, longer SHR).
    by_band = {band: [e for e in exchanges if e.band == band and e.device_role == "GSME"]
               for band in ("2.4GHz", "subGHz")}
    for segment in ("han_command", "han_response"):
        fast = _row(rows, "2.4GHz", "GSME", segment)["p50_us"]
        slow = _row(rows, "subGHz", "GSME", segment)["p50_us"]
        expected = _airtime_ratio(by_band, segment)
        assert 0.75 * expected <= slow / fast <= 1.35 * expected, (segment, fast, slow,
                                                                    expected)
        assert slow > 2 * fast

    # The GSME holds its radio off between wake-ups: a request arriving at a uniformly
    # random moment waits for the next wake-up, so its command reaches the air about half
    # a wake interval later (p50) and never more than one interval (plus DCC and GPF
    # handling); the ESME fetches at once.
    wake_us = wake_s * 1e6
    for band in ("2.4GHz", "subGHz"):
        downstream = _row(rows, band, "GSME", "downstream")
        assert 0.3 * wake_us <= downstream["p50_us"] <= 0.7 * wake_us, downstream
        assert downstream["max_us"] <= wake_us + 500_000, downstream
    esme = _row(rows, "2.4GHz", "ESME", "downstream")
    assert esme["p90_us"] < 0.1 * wake_us, esme
    print("\nper-band p50 (µs):", {
        (band, role, seg): _row(rows, band, role, seg)["p50_us"]
        for band, role in (("2.4GHz", "ESME"), ("2.4GHz", "GSME"), ("subGHz", "GSME"))
        for seg in ("downstream", "han_command", "turnaround", "han_response")})


def _airtime_ratio(by_band: dict[str, list[Exchange]], segment: str) -> float:
    """Sub-GHz over 2.4 GHz airtime of the median message of ``segment`` (frames of the
    average PSDU size), from the PHY timing of each band's channel (hanlab.phy)."""
    airtime: dict[str, float] = {}
    for band, exchanges in by_band.items():
        sample = exchanges[len(exchanges) // 2]
        phy = phy_for(sample.page or 0, sample.channel or 0)
        first, end = (("command_first_ts_ns", "command_end_ts_ns") if segment == "han_command"
                      else ("response_first_ts_ns", "response_end_ts_ns"))
        assert getattr(sample, first) is not None and getattr(sample, end) is not None
        frames = max(sample.frames, 1)
        airtime[band] = phy.airtime_ns(sample.octets // frames)
    return airtime["subGHz"] / airtime["2.4GHz"]
