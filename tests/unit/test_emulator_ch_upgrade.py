"""CH firmware upgrade on the emulated HAN in virtual time (issue 12, item 1): the CH is
silent for the reboot, every device rejoins with a NWK Rejoin Request/Response that
hanlab's own decoder reads with the rig's network key, an SE 1.4 device verifies its
trust-centre link key with an R21+ CH and an SE 1.2a one does not, polling resumes;
installation and a newly connected device join by association; one upgrade at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, MemoryTruth
from hanlab.emulator.han.ch_upgrade import NWK_CMD_REJOIN_REQUEST, NWK_CMD_REJOIN_RESPONSE
from hanlab.emulator.han.medium import Transmission
from hanlab.errors import BadInputError
from hanlab.firmware.ch_image import ChImage
from hanlab.frames import Band
from hanlab.zigbee.frame import Decoder

START_NS = 1_750_000_000 * 10**9
ESME_14 = "00-DB-12-00-00-00-01-01"
ESME_12A = "00-DB-12-00-00-00-01-02"
GSME_SUB = "00-DB-12-00-00-00-02-02"
IHD = "00-DB-12-00-00-00-03-01"
V11 = ChImage(version="CH-EMU-1.1.0", chts_version="CHTS v1.1", zigbee_stack="R22",
              se_version="1.4", reboot_s=30)


def _han() -> tuple[EmulatedHan, MemoryTruth, list[tuple[int, bytes]]]:
    devices = [EmulatedDevice(role="ESME", eui64=ESME_14, se_version="1.4"),
               EmulatedDevice(role="ESME", eui64=ESME_12A),
               EmulatedDevice(role="GSME", eui64=GSME_SUB, band=Band.SUB_GHZ,
                              wake_interval_s=5),
               EmulatedDevice(role="IHD", eui64=IHD)]
    truth = MemoryTruth()
    han = EmulatedHan("upgrade", HanSettings(seed=3), devices, dual_band=True, truth=truth,
                      start_ns=START_NS)
    heard: list[tuple[int, bytes]] = []

    def tap(tx: Transmission, page: int, channel: int) -> None:
        heard.append((tx.start_ns, tx.psdu))

    han.add_tap(Band.GHZ_2_4, tap)
    han.add_tap(Band.SUB_GHZ, tap)
    han.run_for(20)
    assert all(d.joined for d in han.devices)
    return han, truth, heard


def test_upgrade_every_device_rejoins_and_resumes_polling() -> None:
    han, truth, heard = _han()
    assert han.ch_firmware.running.chts_version == "CHTS v1.0"
    record = han.upgrade_ch(V11)
    with pytest.raises(BadInputError, match="under way"):
        han.upgrade_ch(V11)
    han.run_for(3)
    assert not han.chf.powered and not record.done()
    han.run_for(120)
    assert record.done() and record.missing() == [] and han.ch_firmware.running == V11
    ready_ns = record.ready_ns
    assert ready_ns is not None and ready_ns - record.started_ns == pytest.approx(30e9, rel=1e-3)
    entries = {r.eui64: r for r in record.devices.values()}
    assert all(r.method == "nwk_rejoin" and r.noticed and r.rejoined_ns and r.rejoined_ns
               >= ready_ns and r.resumed_ns for r in entries.values())
    assert entries[ESME_14].key_verified is True and entries[ESME_12A].key_verified is None
    # on the air: a Rejoin Request from, and a Rejoin Response to, every device
    decoder = Decoder(han.keyring())
    requests, responses = set(), set()
    for ts_ns, psdu in heard:
        nwk = decoder.decode(psdu, ts_ns).nwk
        if nwk is None or nwk.frame_type != 1 or not nwk.payload or ts_ns < ready_ns:
            continue
        if nwk.payload[0] == NWK_CMD_REJOIN_REQUEST:
            requests.add(nwk.src64)
        elif nwk.payload[0] == NWK_CMD_REJOIN_RESPONSE:
            responses.add(nwk.dst64)
    euis = {d.eui64 for d in han.devices}
    assert requests == euis and responses == euis
    # polling resumed: every device answers a command after the upgrade
    events = [e["event"] for e in truth.events if int(e["ts_ns"]) >= ready_ns]  # type: ignore[call-overload]
    assert events.count("rejoined") == 4 and events.count("key_verified") == 1
    assert "ch_upgrade_done" in events
    for device in han.devices:
        assert han.queue_command(device.eui, _command(han, device.eui), source="test")
    han.run_for(30)
    answered = {e["device"] for e in truth.events if e["event"] == "response_received"
                and int(e["ts_ns"]) > ready_ns}  # type: ignore[call-overload]
    assert answered == {d.name for d in han.devices}


def _command(han: EmulatedHan, eui: object) -> bytes:
    from hanlab.emulator.han.content import command_message
    from hanlab.gbcs.eui64 import Eui64

    return command_message(originator=han.alert_recipient, counter=0x0100_0000_0000_0999,
                           target=Eui64.parse(str(eui)), message_code=0x0029,
                           critical=False, rng=han.rng)


def test_install_and_a_new_device_join_by_association() -> None:
    han, truth, _ = _han()
    install = han.upgrade_ch(V11, mode="install")
    han.run_for(60)
    assert install.done() and {r.method for r in install.devices.values()} == {"association"}
    joins = [e for e in truth.events if e["event"] == "alert_sent"
             and e.get("alert_code") == "0x8183" and int(e["ts_ns"]) > install.started_ns]  # type: ignore[call-overload]
    assert len(joins) == 4  # Device Joined SMHAN again from each device
    connect = han.upgrade_ch(V11.model_copy(update={"version": "CH-EMU-1.1.1"}),
                             connect=[IHD])
    han.run_for(120)
    assert connect.done() and connect.connected == [han.node(IHD).name]  # type: ignore[union-attr]
    methods = {r.eui64: r.method for r in connect.devices.values()}
    assert methods[IHD] == "association" and methods[ESME_14] == "nwk_rejoin"
    with pytest.raises(BadInputError, match="not on the emulated HAN"):
        han.upgrade_ch(V11, connect=["00-DB-12-00-00-00-09-09"])
    with pytest.raises(BadInputError, match="neither upgrade nor install"):
        han.upgrade_ch(V11, mode="replace")


RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-dual-band.yaml"


async def test_real_rig_asks_the_dcc_operator(tmp_path: Path) -> None:
    """Without an emulated HAN the DCC (simulator) operator is asked on the rig's bus; the
    upgrade is ``requested`` and nobody's devices are reported missing."""
    from hanlab.config import load_rig
    from hanlab.config.duis import DuisConfig
    from hanlab.duis.counters import RequestCounterStore
    from hanlab.events.bus import BusEvent, EventBus
    from hanlab.runtime.duis_side import RigDuis
    from hanlab.runtime.lab import DEFAULT_USERS

    folder = tmp_path
    rig, _ = load_rig(RIG)
    bus = EventBus()
    events = bus.subscribe("test", frames=False)
    duis = DuisConfig(endpoint="https://dcc-sim.example", users=list(DEFAULT_USERS))
    side = RigDuis(rig, duis, users=[],
                   counters=RequestCounterStore(folder), log_path=folder / "duis.jsonl",
                   bus=bus, emulated=False)
    record = await side.ch_firmware(V11, "upgrade", [], 5.0)
    assert record == {"requested": True, "missing": []}
    event = events.queue.get_nowait()
    assert isinstance(event, BusEvent) and event.kind == "action"
    assert event.payload["kind"] == "ch_firmware" and event.payload["version"] == "CH-EMU-1.1.0"
