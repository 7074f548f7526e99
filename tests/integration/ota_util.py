"""An emulated HAN in virtual time moving firmware images to an ESME (2.4 GHz) and a GSME
(sub-GHz), its frames written to pcapng per band, with the rig's keys for tshark."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hanlab.capture.pcapng import PcapngWriter
from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, MemoryTruth
from hanlab.emulator.han.medium import Transmission
from hanlab.emulator.han.ota import OtaSettings
from hanlab.frames import Band, Frame, TsSource, band_of
from hanlab.gbcs.eui64 import Eui64

START_NS = 1_750_000_000 * 10**9
ESME = "00-DB-12-00-00-00-01-01"
GSME = "00-DB-12-00-00-00-02-02"
USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")


@dataclass
class OtaCapture:
    """The run: the HAN, its ground truth, a pcapng per band, keys file and UAT folder."""

    han: EmulatedHan
    truth: MemoryTruth
    captures: dict[Band, Path]
    keys: Path
    wireshark_dir: Path


def run_ota_capture(folder: Path, *, images: dict[str, bytes | None] | None = None,
                    ota: OtaSettings | None = None, duration_s: float = 120.0,
                    faults: list[dict[str, object]] | None = None,
                    han_settings: dict[str, object] | None = None) -> OtaCapture:
    """Join an ESME and a GSME, distribute ``images`` (EUI-64 -> OTA file, ``None``: the
    model's emulated image) after 10 s, run ``duration_s`` more seconds."""
    devices = [EmulatedDevice(role="ESME", eui64=ESME, model="emu-esme-a"),
               EmulatedDevice(role="GSME", eui64=GSME, band=Band.SUB_GHZ, model="emu-gsme-a",
                              wake_interval_s=5)]
    truth = MemoryTruth()
    settings = HanSettings.model_validate({"ota": (ota or OtaSettings()).model_dump(),
                                           "faults": faults or [],
                                           **(han_settings or {})})
    han = EmulatedHan("ota-test", settings, devices, dual_band=True, truth=truth,
                      start_ns=START_NS)
    writers = {band: PcapngWriter(folder / f"ota_{band.value}.pcapng") for band in Band}
    ifaces = {band: w.interface(f"emu-{band.value}", band.value) for band, w in writers.items()}

    def heard(tx: Transmission, page: int, channel: int) -> None:
        band = band_of(page, channel)
        writers[band].write(ifaces[band], Frame(
            tx.start_ns, f"emu-{band.value}", band, page, channel, tx.psdu, not tx.collided,
            None, None, TsSource.EMULATED))

    han.add_tap(Band.GHZ_2_4, heard)
    han.add_tap(Band.SUB_GHZ, heard)
    han.run_for(10)
    for eui, image in (images if images is not None else {ESME: None, GSME: None}).items():
        assert han.ota.distribute(Eui64.parse(eui), image, requester=USER, request_id=f"r-{eui}")
    han.run_for(duration_s)
    for writer in writers.values():
        writer.close()
    keys = folder / "keys.yaml"
    keys.write_text(han.keyring().dump_yaml())
    config = folder / "wireshark"
    config.mkdir(exist_ok=True)
    (config / "zigbee_pc_keys").write_text("\n".join(han.keyring().wireshark_uat_lines()) + "\n")
    return OtaCapture(han, truth, {b: w.path for b, w in writers.items()}, keys, config)


def tshark_rows(tshark: str, path: Path, config: Path, display: str,
                *fields: str) -> list[list[str]]:
    """``tshark -T fields`` rows (``|``-separated) of ``path`` with the UAT keys."""
    cmd = [tshark, "-n", "-r", str(path), "-Y", display, "-T", "fields", "-E", "separator=|"]
    for name in fields:
        cmd += ["-e", name]
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(config)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         timeout=120).stdout
    return [line.split("|") for line in out.splitlines() if line]
