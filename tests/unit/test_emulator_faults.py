"""Fault injection on the emulated HAN (issue 4, item 7): a bricked device never answers,
a sub-GHz channel change moves the traffic and raises 0x8F26, duty-cycle management
raises its alerts and discards commands, a CH reboot interrupts and recovers."""

from __future__ import annotations

from hanlab.emulator.han import EmulatedDevice, EmulatedHan, FaultEvent, HanSettings, MemoryTruth
from hanlab.emulator.han.settings import DutyCycleSettings, TrafficSettings
from hanlab.frames import Band

START_NS = 1_750_000_000 * 10**9
ESME_A = "00-DB-12-00-00-00-01-01"
ESME_SUB = "00-DB-12-00-00-00-01-02"
GSME_SUB = "00-DB-12-00-00-00-02-02"


def _han(*faults: FaultEvent, **extra: object) -> tuple[EmulatedHan, MemoryTruth]:
    devices = [
        EmulatedDevice(role="ESME", eui64=ESME_A),
        EmulatedDevice(role="ESME", eui64=ESME_SUB, band=Band.SUB_GHZ),
        EmulatedDevice(role="GSME", eui64=GSME_SUB, band=Band.SUB_GHZ, wake_interval_s=4),
    ]
    truth = MemoryTruth()
    settings = HanSettings(seed=5, traffic=TrafficSettings(enabled=True, interval_s=0.5),
                           faults=list(faults), **extra)
    return EmulatedHan("faults", settings, devices, dual_band=True, truth=truth,
                       start_ns=START_NS), truth


def test_bricked_device_yields_no_han_response() -> None:
    han, truth = _han(FaultEvent(at_s=10, kind="brick", device=ESME_A))
    han.run_for(40)
    brick_ns = START_NS + 10 * 10**9
    queued = [e for e in truth.events if e["event"] == "command_queued"
              and e["target"] == ESME_A and int(e["ts_ns"]) > brick_ns]  # type: ignore[call-overload]
    assert len(queued) > 10
    assert not [e for e in truth.events if e.get("device") == han.node(ESME_A).name  # type: ignore[union-attr]
                and e["event"] in ("processing_start", "response_sent", "response_received")
                and int(e["ts_ns"]) > brick_ns + 2 * 10**9]  # type: ignore[call-overload]
    name = han.node(ESME_A).name  # type: ignore[union-attr]
    assert not [e for e in truth.events if e["event"] == "frame" and e["sender"] == name
                and int(e["ts_ns"]) > brick_ns]  # type: ignore[call-overload]
    # the other devices go on answering
    assert any(e["event"] == "response_received" and e["eui64"] == ESME_SUB
               and int(e["ts_ns"]) > brick_ns for e in truth.events)  # type: ignore[call-overload]


def test_channel_change_moves_traffic_and_raises_8f26() -> None:
    han, truth = _han(FaultEvent(at_s=15, kind="channel_change", page=30, channel=40),
                      subghz_page=28, subghz_channel=12)
    heard: list[tuple[int, int, int]] = []
    han.add_tap(Band.SUB_GHZ, lambda tx, page, channel: heard.append((tx.start_ns, page,
                                                                     channel)))
    han.run_for(40)
    change = next(e for e in truth.events if e["event"] == "channel_change")
    change_ns = int(change["ts_ns"])  # type: ignore[call-overload]
    frames = [e for e in truth.events if e["event"] == "frame" and e["band"] == "subGHz"]
    assert {(e["page"], e["channel"]) for e in frames if int(e["ts_ns"]) < change_ns - 10**9} == {  # type: ignore[call-overload]
        (28, 12)}
    after = [e for e in frames if int(e["ts_ns"]) > change_ns]  # type: ignore[call-overload]
    assert len(after) > 50 and {(e["page"], e["channel"]) for e in after} == {(30, 40)}
    assert {(p, c) for ts, p, c in heard if ts > change_ns} == {(30, 40)}
    assert any(code == 0x8F26 for _, code, _ in han.alerts)
    assert any(e["event"] == "response_received" and e["eui64"] == GSME_SUB
               and int(e["ts_ns"]) > change_ns for e in truth.events)  # type: ignore[call-overload]


def test_duty_cycle_alerts_and_discards() -> None:
    han, _truth = _han(duty_cycle=DutyCycleSettings(window_s=60, limited_pct=0.05,
                                                   critical_pct=0.1, regulated_pct=50))
    han.run_for(40)
    codes = [code for _, code, _ in han.alerts]
    assert 0x8F20 in codes and 0x8F22 in codes
    assert 0x8F2C in codes and han.counters["discarded"] > 0
    assert han.duty_cycle_state == "critical"


def test_ch_reboot_interrupts_then_recovers() -> None:
    han, truth = _han(FaultEvent(at_s=10, kind="ch_reboot", duration_s=5))
    han.run_for(40)
    down = (START_NS + 10 * 10**9, START_NS + 15 * 10**9)
    ch = {han.chf.name, han.gpf.name}
    assert not [e for e in truth.events if e["event"] == "frame" and e["sender"] in ch
                and down[0] < int(e["ts_ns"]) < down[1]]  # type: ignore[call-overload]
    assert any(e["event"] == "response_received" and int(e["ts_ns"]) > down[1] + 10**9  # type: ignore[call-overload]
               for e in truth.events)
