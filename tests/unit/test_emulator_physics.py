"""The emulated HAN's ground truth against the physics (IEEE 802.15.4-2015 §6.2.5.1, §12,
§20): airtime from the PHY rate, ACKs after aTurnaroundTime, no overlap unless recorded
as a collision, every command answered with its Originator Counter and Message Code."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, MemoryTruth
from hanlab.emulator.han.settings import TrafficSettings
from hanlab.frames import Band
from hanlab.phy import FSK_SUBGHZ, OQPSK_2G4, phy_for

START_NS = 1_750_000_000 * 10**9


def _devices() -> list[EmulatedDevice]:
    return [
        EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-01"),
        EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-02", band=Band.SUB_GHZ),
        EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-01", wake_interval_s=5),
        EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-02", band=Band.SUB_GHZ,
                       wake_interval_s=5),
        EmulatedDevice(role="IHD", eui64="00-DB-12-00-00-00-03-01", poll_interval_s=2),
        EmulatedDevice(role="PPMID", eui64="00-DB-12-00-00-00-04-01", band=Band.SUB_GHZ,
                       poll_interval_s=2),
        EmulatedDevice(role="HCALCS", eui64="00-DB-12-00-00-00-05-01", poll_interval_s=2),
    ]


@pytest.fixture(scope="module")
def run() -> tuple[EmulatedHan, MemoryTruth]:
    truth = MemoryTruth()
    settings = HanSettings(seed=3, traffic=TrafficSettings(enabled=True, interval_s=0.25),
                           subghz_page=29, subghz_channel=30)
    han = EmulatedHan("physics", settings, _devices(), dual_band=True, truth=truth,
                      start_ns=START_NS)
    han.run_for(90)
    return han, truth


def test_phy_rates() -> None:
    # 2.4 GHz: (PSDU with FCS + 6) x 32 us; an ACK (3 + 2 octets) lasts 352 us.
    assert OQPSK_2G4.airtime_ns(3) == 352_000
    assert OQPSK_2G4.airtime_ns(125) == (127 + 6) * 32_000
    assert OQPSK_2G4.unit_backoff_ns == 320_000 and OQPSK_2G4.turnaround_ns == 192_000
    # sub-GHz FSK 100 ksymbol/s: 80 us per octet, 12 octets of SHR + PHR.
    assert FSK_SUBGHZ.airtime_ns(3) == (5 + 12) * 80_000
    assert phy_for(28, 0) is FSK_SUBGHZ and phy_for(0, 11) is OQPSK_2G4


def test_airtime_matches_phy_rate(run: tuple[EmulatedHan, MemoryTruth]) -> None:
    _, truth = run
    frames = [e for e in truth.events if e["event"] == "frame"]
    assert len(frames) > 1000
    bands = {e["band"] for e in frames}
    assert bands == {"2.4GHz", "subGHz"}
    for e in frames:
        phy = phy_for(int(e["page"]), int(e["channel"]))  # type: ignore[call-overload]
        assert e["airtime_ns"] == phy.airtime_ns(int(e["psdu_octets"]))  # type: ignore[call-overload]
        assert e["end_ns"] == int(e["ts_ns"]) + int(e["airtime_ns"])  # type: ignore[call-overload]
    assert {(e["page"], e["channel"]) for e in frames if e["band"] == "subGHz"} == {(29, 30)}


def test_acks_follow_within_turnaround(run: tuple[EmulatedHan, MemoryTruth]) -> None:
    _, truth = run
    by_channel: dict[object, list[dict[str, object]]] = defaultdict(list)
    for e in truth.events:
        if e["event"] == "frame":
            by_channel[(e["page"], e["channel"])].append(e)
    acks = 0
    for key, frames in by_channel.items():
        assert isinstance(key, tuple)
        phy = phy_for(int(key[0]), int(key[1]))
        ends = {(f["seq"], f["end_ns"]) for f in frames if f["ack_request"]}
        for f in frames:
            if not f["ack"]:
                continue
            acks += 1
            assert (f["seq"], int(f["ts_ns"]) - phy.turnaround_ns) in ends  # type: ignore[call-overload]
    assert acks > 300


def test_no_overlap_unless_collision(run: tuple[EmulatedHan, MemoryTruth]) -> None:
    _, truth = run
    by_channel: dict[object, list[dict[str, object]]] = defaultdict(list)
    for e in truth.events:
        if e["event"] == "frame":
            by_channel[(e["page"], e["channel"])].append(e)
    for frames in by_channel.values():
        frames.sort(key=lambda f: int(f["ts_ns"]))  # type: ignore[call-overload]
        for before, after in itertools.pairwise(frames):
            if int(after["ts_ns"]) < int(before["end_ns"]):  # type: ignore[call-overload]
                assert before["collided"] and after["collided"]


def test_every_command_answered_with_its_counter(run: tuple[EmulatedHan, MemoryTruth]) -> None:
    han, truth = run
    queued = {(e["originator_counter"], e["message_code"]) for e in truth.events
              if e["event"] == "command_queued"}
    answered = {(m.originator_counter, m.message_code) for _, m in han.responses}
    assert len(queued) > 300
    # everything queued more than one GSME wake interval before the end was answered
    late = {(e["originator_counter"], e["message_code"]) for e in truth.events
            if e["event"] == "command_queued" and int(e["ts_ns"]) > START_NS + 80 * 10**9}  # type: ignore[call-overload]
    assert queued - late <= answered
    starts = [e for e in truth.events if e["event"] == "processing_start"]
    ends = [e for e in truth.events if e["event"] == "processing_end"]
    assert len(starts) >= len(answered) and len(ends) >= len(answered)


def test_gsme_only_talks_when_awake(run: tuple[EmulatedHan, MemoryTruth]) -> None:
    _, truth = run
    wakes = [e for e in truth.events
             if e["event"] == "wake" and str(e["device"]).startswith("GSME")]
    sleeps = [e for e in truth.events if e["event"] == "sleep"]
    assert len(wakes) >= 20 and sleeps
