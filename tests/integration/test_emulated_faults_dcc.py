"""Faults through the DCC (issue 4, done-when), with the real emulated HAN behind the
emulated DCC (no FakeHan), over real HTTP on 127.0.0.1:

* a bricked device yields no HAN response and the outcome the DCC would give: no frame
  from it on the air, the DUIS client gets the I99 acknowledgement and then the DCC's
  CommandFailure DCC Alert (``DccAlertCodes.command_failure``) for that RequestID, and no
  DUIS response;
* a sub-GHz channel change moves the traffic and raises 0x8F26 end to end: the CHF's
  Device Alert reaches the DUIS receiver, and an SR to a sub-GHz device afterwards travels
  on the new channel only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hanlab.duis.client import DuisClient, ReceivedDocument
from hanlab.duis.xml import RequestId, sr_element
from hanlab.emulator.dcc import EmulatedDcc
from hanlab.emulator.han import EmulatedHan, FaultEvent, MemoryTruth
from hanlab.emulator.han.medium import Transmission
from hanlab.frames import Band
from hanlab.gbcs import GbcsMessage, parse_gbcs_message
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.emulation import EmulationSettings
from tests.integration.dcc_harness import IMPORT_SUPPLIER, build_edges, dcc_on_han

RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-dual-band.yaml"
ESME_2 = Eui64.parse("00-DB-12-00-00-00-D1-02")
GSME_SUBGHZ = Eui64.parse("00-DB-12-00-00-00-D2-02")
CHF = Eui64.parse("00-DB-12-00-00-00-D0-01")
FAST = EmulationSettings(time_scale=20.0, wake_interval_s=2.0, ch_processing_s=0.02)
READ = sr_element("ReadInstantaneousImportRegisters")


class Heard:
    """Every transmission on the HAN with the page and channel it went out on."""

    def __init__(self, han: EmulatedHan) -> None:
        self.items: list[tuple[Transmission, int, int]] = []
        for band in Band:
            han.add_tap(band, self.add)

    def add(self, tx: Transmission, page: int, channel: int) -> None:
        self.items.append((tx, page, channel))

    def since(self, ts_ns: int) -> list[tuple[Transmission, int, int]]:
        return [item for item in self.items if item[0].start_ns >= ts_ns]


class Emulated:
    def __init__(self, client: DuisClient, dcc: EmulatedDcc) -> None:
        self.client = client
        self.dcc = dcc


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[Emulated, EmulatedHan, Heard, MemoryTruth]]:
    edges = build_edges(RIG, FAST)
    heard = Heard(edges.han)
    async with dcc_on_han(edges, tmp_path / "counters", dcc_response_timeout_s=1.0,
                          response_timeout_s=10.0) as (client, dcc):
        yield Emulated(client, dcc), edges.han, heard, edges.truth
        assert dcc.invalid_documents == []


async def next_alert(client: DuisClient, body_name: str,
                     timeout_s: float = 10.0) -> ReceivedDocument:
    """The next alert of kind ``body_name`` (the devices' join alerts 0x8183 skipped)."""
    async with asyncio.timeout(timeout_s):
        while True:
            alert = await client.alerts.get()
            if alert.document.body_name == body_name and alert.document.alert_code != 0x8183:
                return alert


async def test_bricked_device_gives_the_dccs_command_failure(
        lab: tuple[Emulated, EmulatedHan, Heard, MemoryTruth]) -> None:
    emulated, han, heard, truth = lab
    client = emulated.client
    node = han.node(ESME_2)
    assert node is not None
    han.inject(FaultEvent(at_s=0, kind="brick", device=ESME_2.duis))
    bricked_ns = han.scheduler.now_ns
    exchange = await client.send(IMPORT_SUPPLIER, ESME_2, "4.1.1", READ,
                                 wait_response=False)
    assert exchange.ack.response_code == "I99"
    alert = await next_alert(client, "DCCAlertMessage")
    document = alert.document
    assert document.dcc_alert_code == emulated.dcc.settings.alert_codes.command_failure
    assert document.request_id == exchange.request_id
    assert emulated.dcc.stats.timeouts == 1 and emulated.dcc.stats.responses_posted == 0
    # The command waited at the CHF; the bricked ESME never sent a frame, so never fetched
    # it and never answered.
    queued = [e for e in truth.events if e["event"] == "command_queued"
              and e["originator_counter"] == exchange.request_id.counter]
    assert queued and queued[0]["target"] == ESME_2.duis
    assert not [tx for tx, _, _ in heard.since(bricked_ns) if tx.sender.eui64 == ESME_2.value]
    assert not [e for e in truth.events if e["event"] in ("response_sent", "processing_start")
                and e.get("eui64") == ESME_2.duis]
    # The others still answer.
    answered = await client.send(IMPORT_SUPPLIER, Eui64.parse("00-DB-12-00-00-00-D1-01"),
                                 "4.1.1", READ)
    assert answered.response is not None and answered.response.response_code == "I0"
    print(f"\nbricked ESME: I99 then DCC Alert {document.dcc_alert_code} for "
          f"{exchange.request_id}, 0 frames from it, 0 DUIS responses")


async def test_channel_change_moves_traffic_and_raises_8f26(
        lab: tuple[Emulated, EmulatedHan, Heard, MemoryTruth]) -> None:
    emulated, han, heard, truth = lab
    client = emulated.client
    old = han.channels[Band.SUB_GHZ]
    new = (old[0], 20 if old[1] != 20 else 21)
    # The sub-GHz GSME answers on the old channel first.
    before = await client.send(IMPORT_SUPPLIER, GSME_SUBGHZ, "4.1.1", READ)
    assert before.response is not None and before.response.response_code == "I0"
    han.inject(FaultEvent(at_s=0, kind="channel_change", page=new[0], channel=new[1]))
    alert = await next_alert(client, "DeviceAlertMessage")
    document = alert.document
    assert document.alert_code == 0x8F26
    assert document.response_id is not None and document.response_id.originator == CHF
    assert document.response_id.target == IMPORT_SUPPLIER
    gbcs = parse_gbcs_message(document.gbcs_payload or b"")
    assert isinstance(gbcs, GbcsMessage) and gbcs.cra_flag == 3 and gbcs.alert_code == 0x8F26
    assert han.channels[Band.SUB_GHZ] == new
    moved_ns = next(int(str(e["ts_ns"])) for e in truth.events
                    if e["event"] == "channel_change")
    after = await client.send(IMPORT_SUPPLIER, GSME_SUBGHZ, "4.1.1", READ)
    assert after.response is not None and after.response.response_code == "I0"
    subghz_after = [(page, channel) for tx, page, channel in heard.since(moved_ns)
                    if tx.sender.medium.page >= 28]
    assert subghz_after and set(subghz_after) == {new}
    gsme_frames = [(page, channel) for tx, page, channel in heard.since(moved_ns)
                   if tx.sender.eui64 == GSME_SUBGHZ.value]
    assert gsme_frames and set(gsme_frames) == {new}
    gsme_before = {(page, channel) for tx, page, channel in heard.items
                   if tx.sender.eui64 == GSME_SUBGHZ.value and tx.start_ns < moved_ns}
    assert gsme_before == {old}
    # The request after the change is the one whose counter the GSME answered.
    answered = [e for e in truth.events if e["event"] == "response_received"
                and e["originator_counter"] == after.request_id.counter]
    assert answered
    assert RequestId.parse(str(after.request_id)).counter > before.request_id.counter
    print(f"\nchannel change page {old[0]} ch {old[1]} -> ch {new[1]}: 0x8F26 at the DUIS "
          f"receiver, {len(gsme_frames)} GSME frames after it, all on the new channel")
