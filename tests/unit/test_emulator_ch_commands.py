"""Commands to the CHF and GPF themselves, and device alerts raised on demand, in virtual
time: the CH processes its own commands (processing model, ground truth, GBCS response
with the command's Originator Counter and Message Code, the alerts GBCS raises after a
local delivery), and :meth:`EmulatedHan.raise_device_alert` makes any node raise one."""

from __future__ import annotations

import random

import pytest

from hanlab.emulator.han import EmulatedDevice, EmulatedHan, FaultEvent, HanSettings, MemoryTruth
from hanlab.emulator.han.content import command_message
from hanlab.emulator.han.settings import ProcessingModel
from hanlab.errors import BadInputError
from hanlab.frames import Band
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message

START_NS = 1_750_000_000 * 10**9
CHF = "00-DB-12-00-00-00-D0-01"
GPF = "00-DB-12-00-00-00-D0-02"
ESME = "00-DB-12-00-00-00-01-01"
GSME = "00-DB-12-00-00-00-02-01"
USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
ACB = Eui64.parse("90-B3-D5-1F-30-00-00-02")


class Dcc:
    """A DCC side that keeps what reaches it (``DccLink``)."""

    def __init__(self) -> None:
        self.responses: list[tuple[Eui64, GbcsMessage, int]] = []
        self.alerts: list[tuple[Eui64, GbcsMessage]] = []

    def on_device_response(self, gbcs_response: bytes, *, source_eui64: Eui64,
                           ts_ns: int | None = None) -> None:
        message = parse_gbcs_message(gbcs_response)
        assert isinstance(message, GbcsMessage) and ts_ns is not None
        self.responses.append((source_eui64, message, ts_ns))

    def on_device_alert(self, gbcs_alert: bytes, *, source_eui64: Eui64,
                        ts_ns: int | None = None) -> None:
        message = parse_gbcs_message(gbcs_alert)
        assert isinstance(message, GbcsMessage)
        self.alerts.append((source_eui64, message))


def _han(**extra: object) -> tuple[EmulatedHan, MemoryTruth, Dcc]:
    devices = [EmulatedDevice(role="CHF", eui64=CHF), EmulatedDevice(role="GPF", eui64=GPF),
               EmulatedDevice(role="ESME", eui64=ESME),
               EmulatedDevice(role="GSME", eui64=GSME, wake_interval_s=3)]
    truth, dcc = MemoryTruth(), Dcc()
    han = EmulatedHan("ch", HanSettings.model_validate({"seed": 3, **extra}), devices,
                      dual_band=False, truth=truth, start_ns=START_NS, dcc=dcc)
    han.run_for(5)
    assert all(d.joined for d in han.devices)
    return han, truth, dcc


def _command(target: str, code: int, counter: int, *, dcc_originated: bool = False) -> bytes:
    return command_message(
        originator=ACB if dcc_originated else USER, counter=counter,
        target=Eui64.parse(target), message_code=code, critical=False,
        rng=random.Random(counter), supplementary=(USER, counter) if dcc_originated else None)


def test_chf_answers_its_own_command_without_a_han_frame() -> None:
    han, truth, dcc = _han(ch_processing=ProcessingModel(distribution="fixed", mean_s=0.3,
                                                         min_s=0.0))
    frames: list[int] = []
    han.add_tap(Band.GHZ_2_4, lambda tx, _page, _channel: frames.append(tx.start_ns))
    queued_ns, joins = han.scheduler.now_ns, len(dcc.alerts)
    assert han.queue_command(CHF, _command(CHF, 0x0003, 77), source="test")  # CCS03 8.12.1
    han.run_for(1)
    ((source, response, at_ns),) = dcc.responses
    assert source == Eui64.parse(CHF)
    assert (response.cra_flag, response.originator_counter, response.message_code) == (
        2, 77, 0x0003)
    assert response.originator_system_title == Eui64.parse(CHF)
    assert response.recipient_system_title == USER
    assert at_ns - queued_ns == 300_000_000  # the fixed processing time, nothing on air
    events = [e["event"] for e in truth.events if e.get("device") == han.chf.name
              and e.get("originator_counter") == 77]
    assert events == ["command_queued", "processing_start", "processing_end", "response_sent",
                      "response_received"]
    assert not [ts for ts in frames if ts > queued_ns and ts < at_ns]
    assert dcc.alerts[joins:] == []  # no alert for CCS03


@pytest.mark.parametrize(("target", "code", "alert"), [
    (CHF, 0x0001, 0x8F12),   # CCS01 Update HAN Device Log -> CHF Device Log Changed
    (GPF, 0x000E, 0x8071),   # CS03B Join to the GPF -> GPF Device Log Changed
])
def test_local_delivery_raises_the_device_log_alert(target: str, code: int,
                                                    alert: int) -> None:
    han, _truth, dcc = _han()
    han.queue_command(target, _command(target, code, 5, dcc_originated=True), source="test",
                      local=True)
    han.queue_command(target, _command(target, code, 6, dcc_originated=True), source="test")
    han.run_for(2)
    assert sorted(r.originator_counter for _, r, _ in dcc.responses) == [5, 6]
    (source, message), = [(s, m) for s, m in dcc.alerts if m.alert_code == alert]
    assert source == Eui64.parse(target)
    assert message.recipient_system_title == USER  # the Supplementary Remote Party
    assert len([m for _, m in dcc.alerts if m.alert_code == alert]) == 1  # WAN: none


def test_ch_reboot_loses_commands_in_processing() -> None:
    han, truth, dcc = _han(ch_processing=ProcessingModel(distribution="fixed", mean_s=1.0))
    han.queue_command(GPF, _command(GPF, 0x000E, 9), source="test")
    han.inject(FaultEvent(at_s=0, kind="ch_reboot", duration_s=0.5))
    assert not han.queue_command(CHF, _command(CHF, 0x0003, 10), source="test")
    han.run_for(3)
    assert dcc.responses == []
    assert [e["event"] for e in truth.events if e.get("originator_counter") == 9][-1] == (
        "processing_lost")
    assert han.queue_command(CHF, _command(CHF, 0x0003, 11), source="test")
    han.run_for(2)
    assert [r.originator_counter for _, r, _ in dcc.responses] == [11]


def test_raise_device_alert() -> None:
    han, truth, dcc = _han()
    before = len(dcc.alerts)
    assert han.raise_device_alert(GSME, 0x8F0A)       # the sleepy GSME wakes to send it
    assert han.raise_device_alert(Eui64.parse(CHF), 0x8F35)
    assert han.raise_device_alert(GPF, 0x8F36)
    assert not han.raise_device_alert("00-DB-12-00-00-00-09-09", 0x8F0A)
    with pytest.raises(BadInputError):
        han.raise_device_alert(ESME, 0x1_0000)
    han.run_for(2)
    got = {(source.duis, message.alert_code) for source, message in dcc.alerts[before:]}
    assert got == {(GSME, 0x8F0A), (CHF, 0x8F35), (GPF, 0x8F36)}
    assert not han.node(GSME).radios[Band.GHZ_2_4].on  # type: ignore[union-attr]
    han.inject(FaultEvent(at_s=0, kind="brick", device=ESME))
    assert not han.raise_device_alert(ESME, 0x8F0A)
    assert any(e["event"] == "sleep" for e in truth.events)
