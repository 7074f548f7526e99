"""tshark, given the rig's keys, dissects the emulated HAN's pcapng: every GBCS command and
response is a GBCS Message whose Originator Counter and Message Code are those of the
request that caused it; sub-GHz frames carry pages 28-31 and their channels in the TAP
header (issue 4, done-when)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hanlab.capture.pcapng import PcapngWriter
from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, MemoryTruth
from hanlab.emulator.han.medium import Transmission
from hanlab.emulator.han.settings import TrafficSettings
from hanlab.frames import Band, Frame, TsSource, band_of

START_NS = 1_750_000_000 * 10**9


def _fields(tshark: str, path: Path, config: Path, *fields: str,
            display: str = "") -> list[list[str]]:
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    if display:
        cmd += ["-Y", display]
    for name in fields:
        cmd += ["-e", name]
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(config)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         timeout=120).stdout
    return [line.split("|") for line in out.splitlines() if line]


def test_tshark_dissects_emulated_gbcs(tshark: str, tmp_path: Path) -> None:
    devices = [
        EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-01"),
        EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-02", band=Band.SUB_GHZ),
        EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-01", wake_interval_s=5),
        EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-02", band=Band.SUB_GHZ,
                       wake_interval_s=5),
    ]
    truth = MemoryTruth()
    han = EmulatedHan("tshark", HanSettings(
        traffic=TrafficSettings(enabled=True, interval_s=0.5), subghz_page=31,
        subghz_channel=5), devices, dual_band=True, truth=truth, start_ns=START_NS)
    writers = {band: PcapngWriter(tmp_path / f"{band.value}.pcapng") for band in Band}
    ifaces = {band: w.interface(f"emu-{band.value}", band.value) for band, w in writers.items()}

    def heard(tx: Transmission, page: int, channel: int) -> None:
        band = band_of(page, channel)
        writers[band].write(ifaces[band], Frame(
            tx.start_ns, f"emu-{band.value}", band, page, channel, tx.psdu, not tx.collided,
            None, None, TsSource.EMULATED))

    han.add_tap(Band.GHZ_2_4, heard)
    han.add_tap(Band.SUB_GHZ, heard)
    han.run_for(30)
    for writer in writers.values():
        writer.close()
    config = tmp_path / "wireshark"
    config.mkdir()
    (config / "zigbee_pc_keys").write_text("\n".join(han.keyring().wireshark_uat_lines()) + "\n")

    queued = {(int(str(e["originator_counter"])), int(str(e["message_code"])))
              for e in truth.events if e["event"] == "command_queued"}
    seen: dict[str, set[tuple[int, int]]] = {"1": set(), "2": set()}
    for band in Band:
        rows = _fields(tshark, writers[band].path, config,
                       "gbcs_message.grouping_header.cra_flag",
                       "gbcs_message.grouping_header.originator_counter",
                       "gbcs_message.grouping_header.message_code", display="gbcs_message")
        for cra, counter, code in rows:
            if cra.split(",")[0] in ("0x01", "0x02"):
                seen[str(int(cra.split(",")[0], 16))].add(
                    (int(counter.split(",")[0]), int(code.split(",")[0], 16)))
    answered = {(m.originator_counter, m.message_code) for _, m in han.responses}
    assert len(seen["1"]) > 20 and len(seen["2"]) > 20
    assert seen["1"] <= queued            # every command on air is one that was requested
    assert seen["2"] <= queued            # every response carries its command's counter/code
    assert answered <= seen["2"]          # and every response the CH got was dissected

    taps = _fields(tshark, writers[Band.SUB_GHZ].path, config, "wpan-tap.ch_page",
                   "wpan-tap.ch_num")
    assert taps and {tuple(row) for row in taps} == {("31", "5")}


def test_rotated_capture_after_the_join_still_decodes(tshark: str, tmp_path: Path) -> None:
    """A capture file that starts after every device joined (a rotation, or a sniffer
    started late) holds no Transport Key and no RequestTunnel: tshark, given the keys
    (UAT), still dissects every GBCS Message in it, the same ones the whole capture shows
    for that time span (tshark 4.0: the GBCS tunnel payload is dissected per TransferData,
    without the RequestTunnel exchange)."""
    devices = [EmulatedDevice(role="ESME", eui64="00-DB-12-00-00-00-01-01"),
               EmulatedDevice(role="GSME", eui64="00-DB-12-00-00-00-02-01",
                              wake_interval_s=5)]
    settings = HanSettings(traffic=TrafficSettings(enabled=True, interval_s=0.5))
    truth = MemoryTruth()  # a first run finds when the joins end (runs are reproducible)
    EmulatedHan("rotated", settings, devices, dual_band=False, truth=truth,
                start_ns=START_NS).run_for(5)
    joined = [int(str(e["ts_ns"])) for e in truth.events if e["event"] == "joined"]
    assert len(joined) == 2
    whole = PcapngWriter(tmp_path / "whole.pcapng")
    late = PcapngWriter(tmp_path / "late.pcapng")
    whole_if, late_if = whole.interface("emu", "2.4GHz"), late.interface("emu", "2.4GHz")
    split_ns = max(joined) + 2 * 10**9

    def heard(tx: Transmission, page: int, channel: int) -> None:
        frame = Frame(tx.start_ns, "emu", Band.GHZ_2_4, page, channel, tx.psdu,
                      not tx.collided, None, None, TsSource.EMULATED)
        whole.write(whole_if, frame)
        if tx.start_ns >= split_ns:
            late.write(late_if, frame)

    han = EmulatedHan("rotated", settings, devices, dual_band=False, start_ns=START_NS)
    han.add_tap(Band.GHZ_2_4, heard)
    han.run_for(30)
    whole.close()
    late.close()
    config = tmp_path / "wireshark"
    config.mkdir()
    (config / "zigbee_pc_keys").write_text("\n".join(han.keyring().wireshark_uat_lines()) + "\n")
    fields = ("frame.time_epoch", "gbcs_message.grouping_header.cra_flag",
              "gbcs_message.grouping_header.originator_counter")
    display = f"gbcs_message && frame.time_epoch >= {split_ns / 1e9:.9f}"
    in_whole = _fields(tshark, whole.path, config, *fields, display=display)
    in_late = _fields(tshark, late.path, config, *fields, display="gbcs_message")
    assert len(in_late) > 20
    assert in_late == in_whole
    # The late file really starts after the joins: no Transport Key, no RequestTunnel.
    assert not _fields(tshark, late.path, config, "frame.number",
                       display="zbee_aps.cmd.id == 0x05 || zbee_zcl_se.tun.protocol_id")
    assert _fields(tshark, whole.path, config, "frame.number",
                   display="zbee_zcl_se.tun.protocol_id")
