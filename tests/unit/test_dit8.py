"""DIT.8 monitoring (issue 13 item 4): the rolling duty-cycle window, its states and their
alerts, Mgmt_NWK_Update_req channels, and the monitor checked against the emulated HAN's
ground truth (its CH airtime, its duty-cycle alerts, its channel change)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hanlab.capture.pcapng import PcapngWriter
from hanlab.correlate.agility import decode_update_channel
from hanlab.correlate.dit8 import CH, Dit8Monitor
from hanlab.correlate.dit8_live import Dit8Sink
from hanlab.correlate.dutycycle import (
    DutyCycleState,
    DutyCycleThresholds,
    RollingDutyCycle,
    StateChange,
)
from hanlab.emulator.han import EmulatedDevice, EmulatedHan, FaultEvent, HanSettings, MemoryTruth
from hanlab.emulator.han.settings import DutyCycleSettings, TrafficSettings
from hanlab.errors import BadInputError
from hanlab.events.bus import BusEvent, EventBus
from hanlab.frames import Band, Frame, TsSource

ROOT = Path(__file__).resolve().parents[2]
START_NS = 1_750_000_000 * 10**9
S = 10**9
WINDOW_S = 20.0
#: low thresholds so the emulated CH crosses them within seconds (as SR 6.28 would set)
DUTY = DutyCycleSettings(window_s=WINDOW_S, limited_pct=0.8, critical_pct=1.2,
                         regulated_pct=50)
THRESHOLDS = DutyCycleThresholds(WINDOW_S, 0.8, 1.2, 50)


# -- the window math ------------------------------------------------------------------------


def test_rolling_window_states_and_their_alerts() -> None:
    th = DutyCycleThresholds(10.0, 1.0, 2.0, 50.0)
    roller = RollingDutyCycle(th)
    air = 50_000_000  # 50 ms = 0.5 % of 10 s
    changes: list[StateChange] = []
    for second in range(4):
        changes += roller.add(second * S, air)
    assert roller.pct() == pytest.approx(2.0)
    # up: when the frame that reaches a threshold ends
    assert [(c.ts_ns, c.new, c.alert_code) for c in changes] == [
        (1 * S + air, DutyCycleState.LIMITED, 0x8F20),
        (3 * S + air, DutyCycleState.CRITICAL, 0x8F22)]
    # down: 1 ns after the start + window of the frame whose leaving crosses a threshold
    changes = roller.advance(13 * S)
    assert [(c.ts_ns, c.old, c.new, c.alert_code) for c in changes] == [
        (10 * S + 1, DutyCycleState.CRITICAL, DutyCycleState.LIMITED, 0x8F23),
        (12 * S + 1, DutyCycleState.LIMITED, DutyCycleState.NORMAL, 0x8F21)]
    assert roller.pct() == pytest.approx(0.5)
    assert roller.frames == 4 and roller.airtime_ns == 4 * air
    assert roller.to_dict()["changes"][0] == {
        "ts_ns": 1 * S + air, "old": "Normal", "new": "Limited", "duty_cycle_pct": 1.0,
        "alert_code": "0x8F20"}


def test_a_frame_exactly_window_old_is_still_in() -> None:
    roller = RollingDutyCycle(DutyCycleThresholds(1.0, 1.0, 2.0, 3.0))
    roller.add(0, 20_000_000)
    roller.advance(1 * S)
    assert roller.window_airtime_ns == 20_000_000
    roller.advance(1 * S + 1)
    assert roller.window_airtime_ns == 0


def test_thresholds_are_checked_and_sr628_sets_two_of_them() -> None:
    assert DutyCycleThresholds().state_of(1.3) is DutyCycleState.LIMITED
    assert DutyCycleThresholds().state_of(1.29) is DutyCycleState.NORMAL
    with pytest.raises(BadInputError, match="rise strictly"):
        DutyCycleThresholds(3600, 2.2, 1.3, 10)
    with pytest.raises(BadInputError, match="window_s"):
        DutyCycleThresholds(0)
    body = ("<sr:SetCHFSubGHzConfiguration xmlns:sr='http://www.dccinterface.co.uk/"
            "ServiceUserGateway'><sr:NormalLimitedDutyCycleThreshold>0.9</sr:NormalLimited"
            "DutyCycleThreshold><sr:LimitedCriticalDutyCycleThreshold>2.4</sr:LimitedCritical"
            "DutyCycleThreshold></sr:SetCHFSubGHzConfiguration>")
    set_ = DutyCycleThresholds(600).from_sr628(body)
    assert set_.pcts == (0.9, 2.4, 10.0) and set_.window_s == 600
    with pytest.raises(BadInputError, match=r"req.xml: LimitedCriticalDutyCycleThreshold 2.5"):
        DutyCycleThresholds().from_sr628(body.replace(">2.4<", ">2.5<"), where="req.xml")
    with pytest.raises(BadInputError, match="no NormalLimitedDutyCycleThreshold"):
        DutyCycleThresholds().from_sr628("<a/>")


@pytest.mark.parametrize(("page", "channel"), [(28, 0), (28, 20), (29, 30), (30, 40),
                                               (30, 61), (31, 26)])
def test_mgmt_nwk_update_req_channel(page: int, channel: int) -> None:
    first = {28: 0, 29: 27, 30: 35, 31: 0}[page]
    mask = (page << 27) | (1 << (channel - first))
    assert decode_update_channel(b"\x07" + mask.to_bytes(4, "little") + b"\xfe\x01") == (
        page, channel)
    assert decode_update_channel(b"\x07" + mask.to_bytes(4, "little") + b"\x03") is None
    two = mask | (1 << 26 if channel - first != 26 else 1)
    assert decode_update_channel(b"\x07" + two.to_bytes(4, "little") + b"\xfe\x01") is None


# -- against the emulated HAN ----------------------------------------------------------------


class Run:
    """One emulated dual-band HAN run with its sub-GHz frames and ground truth."""

    def __init__(self) -> None:
        devices = [
            EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-01"),
            EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-02", band=Band.SUB_GHZ),
            EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-02", band=Band.SUB_GHZ,
                           wake_interval_s=4),
        ]
        self.truth = MemoryTruth()
        settings = HanSettings(
            seed=5, traffic=TrafficSettings(enabled=True, interval_s=0.5), duty_cycle=DUTY,
            subghz_page=28, subghz_channel=12,
            faults=[FaultEvent(at_s=30, kind="channel_change", page=30, channel=40)])
        self.han = EmulatedHan("dit8", settings, devices, dual_band=True, truth=self.truth,
                               start_ns=START_NS)
        self.frames: list[Frame] = []
        self.han.add_tap(Band.SUB_GHZ, lambda tx, page, channel: self.frames.append(Frame(
            tx.start_ns, "sub", Band.SUB_GHZ, page, channel, tx.psdu, not tx.collided,
            ts_source=TsSource.EMULATED)))
        self.han.run_for(80)
        self.end_ns = self.han.scheduler.now_ns
        self.ch_names = {self.han.chf.name, self.han.gpf.name}
        self.ch_eui64s = [self.han.chf.eui.duis, self.han.gpf.eui.duis]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.truth.events if e["event"] == name]

    def ch_alerts(self) -> list[tuple[int, int]]:
        """(ts_ns, Alert Code) of the CHF's own alerts (raised over the WAN)."""
        return [(int(e["ts_ns"]), int(str(e["alert_code"]), 16))
                for e in self.events("alert_received")
                if e["device"] == self.han.chf.name and e["alert_code"]]

    def monitor(self, **kwargs: Any) -> tuple[Dit8Monitor, list[tuple[str, StateChange]]]:
        changes: list[tuple[str, StateChange]] = []
        monitor = Dit8Monitor(THRESHOLDS, ch_eui64s=self.ch_eui64s,
                              on_change=lambda name, c: changes.append((name, c)), **kwargs)
        return monitor, changes


@pytest.fixture(scope="module")
def run() -> Run:
    return Run()


def test_ch_duty_cycle_agrees_with_the_emulators_airtime(run: Run) -> None:
    ch_frames = sorted((int(e["ts_ns"]), int(e["end_ns"]), int(e["airtime_ns"]))
                        for e in run.events("frame")
                        if e["band"] == "subGHz" and e["sender"] in run.ch_names)
    window_ns = int(WINDOW_S * S)
    monitor, _ = run.monitor()
    checked = 0
    frames = iter(sorted(run.frames, key=lambda f: f.ts_ns))
    pending = next(frames, None)
    for at_ns in range(START_NS + S, run.end_ns, S // 2):
        while pending is not None and pending.ts_ns + 1_000_000 <= at_ns:
            monitor.feed(pending)  # sub-GHz frames last < 1 ms: ended by at_ns
            pending = next(frames, None)
        monitor.advance(at_ns)
        truth_ns = sum(air for start, end, air in ch_frames
                       if start >= at_ns - window_ns and end <= at_ns)
        mine_ns = monitor.transmitters[CH].window_airtime_ns
        assert abs(mine_ns - truth_ns) <= 0.01 * window_ns, at_ns
        checked += 1
    assert checked > 100
    assert monitor.transmitters[CH].airtime_ns == sum(air for _, _, air in ch_frames)
    assert monitor.transmitters[CH].peak_pct > DUTY.critical_pct


def test_every_crossing_is_reported_when_the_emulator_raised_its_alert(run: Run) -> None:
    monitor, changes = run.monitor()
    monitor.frames(sorted(run.frames, key=lambda f: f.ts_ns))
    monitor.advance(run.end_ns)
    mine = sorted((c.ts_ns, c.new.label.lower()) for name, c in changes if name == CH)
    truth = [(int(e["ts_ns"]), str(e["state"])) for e in run.events("duty_cycle_state")]
    assert len(truth) >= 4 and {s for _, s in truth} >= {"limited", "critical"}
    order = ["normal", "limited", "critical", "regulated"]
    assert any(order.index(b[1]) < order.index(a[1])  # falls as well as rises
               for a, b in itertools.pairwise(truth))
    assert mine == truth
    duty_alerts = [a for a in run.ch_alerts() if 0x8F20 <= a[1] <= 0x8F25]
    assert sorted((c.ts_ns, c.alert_code) for name, c in changes if name == CH) == duty_alerts
    # the devices are transmitters of their own, their EUI-64s learned from NWK headers
    euis = {t["eui64"] for t in monitor.snapshot()["transmitters"].values()}
    assert {"00-DB-12-00-00-00-01-02", "00-DB-12-00-00-00-02-02"} <= euis


def test_channel_change_with_its_request_alert_and_time_to_move(run: Run) -> None:
    monitor, _ = run.monitor(keyring=run.han.keyring())
    moves: list[Any] = []
    monitor.on_agility = moves.append
    monitor.frames(sorted(run.frames, key=lambda f: f.ts_ns))
    (change,) = run.events("channel_change")
    (move,) = monitor.agility.events
    assert moves == [move]
    assert move.old == (28, 12) and move.new == (30, 40) and move.requested == (30, 40)
    assert move.request_ts_ns is not None and START_NS + 30 * S <= move.request_ts_ns < int(
        change["ts_ns"])
    assert move.last_old_ts_ns < int(change["ts_ns"]) <= move.first_new_ts_ns
    assert 0.5 <= move.time_to_move_s < 5
    assert monitor.snapshot()["channel"] == [30, 40]


def test_channel_change_alert_joins_its_move(run: Run) -> None:
    monitor, _ = run.monitor(keyring=run.han.keyring())
    items: list[tuple[int, int, Frame | int]] = [(f.ts_ns, 1, f) for f in run.frames]
    items += [(ts, 0, code) for ts, code in run.ch_alerts()]
    for ts, _, item in sorted(items, key=lambda x: (x[0], x[1])):
        if isinstance(item, Frame):
            monitor.feed(item)
        else:
            monitor.alert(ts, item)
    (move,) = monitor.agility.events
    (change,) = run.events("channel_change")
    assert (int(change["ts_ns"]), 0x8F26) in move.alerts
    assert move.to_dict()["alerts"][0]["alert_code"] == "0x8F26"


async def test_live_sink_publishes_dutycycle_and_agility_events(run: Run) -> None:
    bus = EventBus()
    events = bus.subscribe("test", frames=False)
    sink = Dit8Sink(Dit8Monitor(THRESHOLDS, ch_eui64s=run.ch_eui64s,
                                keyring=run.han.keyring()), tick_s=0.05)
    sink.attach(bus)
    task = asyncio.create_task(sink.run())
    frames = sorted(run.frames, key=lambda f: f.ts_ns)
    for i in range(0, len(frames), 50):
        await bus.publish(frames[i:i + 50])
    await bus.publish([frames[0]._replace(psdu=b"\xff")])  # unreadable: counted, skipped
    await bus.close()
    await asyncio.wait_for(task, 10)
    kinds: list[BusEvent] = []
    while not events.queue.empty():
        item = events.queue.get_nowait()
        if isinstance(item, BusEvent):
            kinds.append(item)
    duty = [e for e in kinds if e.kind == "dutycycle"]
    assert duty and all(e.retain and e.payload["schema"] == 1 for e in duty)
    assert {"transmitter", "ts_ns", "old", "new", "alert_code", "thresholds"} <= set(
        duty[0].payload)
    assert [e.payload["new"] for e in kinds if e.kind == "agility"] == [[30, 40]]
    assert sink.monitor.counts["malformed"] == 1


# -- the command ----------------------------------------------------------------------------


def _hanlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hanlab.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120, cwd=ROOT)


def test_dutycycle_command_json_table_and_errors(run: Run, tmp_path: Path) -> None:
    capture = tmp_path / "sub.pcapng"
    writer = PcapngWriter(capture, [("sub", "subGHz")])
    for frame in sorted(run.frames, key=lambda f: f.ts_ns):
        writer.write(0, frame)
    writer.close()
    rig = tmp_path / "rig.yaml"
    rig.write_text(json.dumps({
        "name": "dit8", "ch_variant": "dual_band",
        "devices": [{"role": "CHF", "eui64": run.ch_eui64s[0]},
                    {"role": "GPF", "eui64": run.ch_eui64s[1]}],
        "sniffers": [{"id": "sub", "driver": "pcap", "page": 28, "channel": 12,
                      "settings": {"file": str(capture)}}]}))
    limits = ["--window-s", str(WINDOW_S), "--normal-limited-pct", "0.8",
              "--limited-critical-pct", "1.2", "--critical-regulated-pct", "50"]
    done = _hanlab("dutycycle", str(capture), "--rig", str(rig), "--json", *limits)
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    truth = [(int(e["ts_ns"]), str(e["state"])) for e in run.events("duty_cycle_state")]
    ch = view["transmitters"][CH]
    assert [(c["ts_ns"], c["new"].lower()) for c in ch["changes"]] == truth
    assert ch["samples"] and view["agility"][0]["new"] == [30, 40]
    table = _hanlab("dutycycle", str(capture), "--rig", str(rig), *limits)
    assert table.returncode == 0, table.stderr
    assert "Critical" in table.stdout and "channel change page 28 channel 12 -> page 30 " \
        "channel 40" in table.stdout
    # damaged part way: what came before is used, the damage named, exit status 1
    damaged = tmp_path / "cut.pcapng"
    damaged.write_bytes(capture.read_bytes()[:-37])
    cut = _hanlab("dutycycle", str(damaged), "--json", *limits)
    assert cut.returncode == 1 and "cut.pcapng" in cut.stderr
    assert json.loads(cut.stdout)["counts"]["frames"] == len(run.frames) - 1
    # bad input: exit status 2 with one line naming the file or value
    notcap = tmp_path / "x.pcapng"
    notcap.write_text("hello")
    bad = _hanlab("dutycycle", str(notcap))
    assert bad.returncode == 2 and "x.pcapng" in bad.stderr
    wrong = _hanlab("dutycycle", str(capture), "--normal-limited-pct", "5")
    assert wrong.returncode == 2 and "rise strictly" in wrong.stderr


# -- the campaign report section --------------------------------------------------------------


def test_campaign_report_has_the_dit8_section(run: Run, tmp_path: Path) -> None:
    from hanlab.reports.dit8 import dit8_section
    from hanlab.reports.html import render_campaign_report
    from hanlab.reports.model import check_report_data

    name = "dit8_subGHz_20250615T000000Z.pcapng"
    writer = PcapngWriter(tmp_path / name, [("sub", "subGHz")])
    for frame in sorted(run.frames, key=lambda f: f.ts_ns):
        writer.write(0, frame)
    writer.close()
    step = {"scenario": "meter-reading", "variant": "v", "repetition": 1, "index": 1,
            "kind": "sr", "status": "passed", "optional": False, "sr_variant": "4.1.1",
            "target_role": "ESME", "target_eui64": "00-DB-12-00-00-00-01-02",
            "request_id": "90-B3-D5-1F-30-01-00-00:00-DB-12-00-00-00-01-02:1",
            "outcome": "I0", "detail": "", "started_ns": 1, "ended_ns": 2}
    record = {"id": "j-1", "rig": "dit8", "scenario": "meter-reading", "state": "passed",
              "steps": [step], "exchanges": [], "variant_runs": [],
              "captures": [name, "dit8_subGHz_gone.pcapng"], "duis_log": "",
              "devices": {"ESME": "00-DB-12-00-00-00-01-02"}}
    data = {"campaign": {"id": "c-1"}, "plan": [], "issues": [],
            "rigs": [{"name": "dit8", "ch_variant": "dual_band", "devices": [
                {"eui64": run.ch_eui64s[0], "role": "CHF"},
                {"eui64": run.ch_eui64s[1], "role": "GPF"}]}],
            "jobs": [{"record": record, "captures_dir": str(tmp_path)}]}
    page = render_campaign_report(data)
    section = page[page.index('<section id="dit8">'):]
    section = section[:section.index("</section>")]
    # the default window (3600 s) and thresholds: 80 s of traffic changes no state
    assert "<svg" in section and "No duty-cycle state changed." in section
    # with the run's thresholds every change of the emulator is in the section
    low = dit8_section(check_report_data(data), thresholds=THRESHOLDS)
    assert low.count("</td><td>CH</td><td>") == len(run.events("duty_cycle_state"))
    assert "Limited → Critical" in low and "0x8F22" in low
    assert "page 28 ch 12</td><td>page 30 ch 40" in section
    assert "1 capture file(s) named by the job records were not found" in section


def test_sr628_in_the_duis_log_sets_thresholds_and_a_bad_one_is_refused() -> None:
    monitor = Dit8Monitor(DutyCycleThresholds(60.0))
    body = ("<SetCHFSubGHzConfiguration><NormalLimitedDutyCycleThreshold>0.5"
            "</NormalLimitedDutyCycleThreshold><LimitedCriticalDutyCycleThreshold>1.6"
            "</LimitedCriticalDutyCycleThreshold></SetCHFSubGHzConfiguration>")
    monitor.duis_line({"ts_ns": 5, "kind": "request", "sr_variant": "6.28", "xml": body})
    assert monitor.thresholds.pcts == (0.5, 1.6, 10.0) and monitor.thresholds.window_s == 60
    monitor.duis_line({"ts_ns": 9, "kind": "request", "sr_variant": "6.28",
                       "xml": body.replace(">0.5<", ">3.0<")})
    assert monitor.thresholds.pcts == (0.5, 1.6, 10.0)
    assert monitor.counts["sr628_refused"] == 1
    assert "NormalLimitedDutyCycleThreshold 3.0 outside 0.5..2.0" in monitor.snapshot()[
        "warnings"][0]
    monitor.duis_line({"ts_ns": 12, "kind": "alert", "alert_code": "8F26"})
    assert monitor.counts["alerts"] == 1
