"""The TI sub-GHz sniffer from the installed ``hanlab`` (subprocesses): a rig file's bad
driver settings are refused naming the file, line and field; ``hanlab devices`` and
``hanlab udev generate`` know the LaunchPad's XDS110 (0451:bef3, interface 00); ``hanlab
up`` captures sub-GHz frames from an emulated dongle on a pty (issue 13 item 5).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.integration.test_cli_errors import ROOT, _hanlab_command, run_hanlab
from tests.integration.test_hotplug_daemon import tshark_count
from tests.tools.ti_dongle import EmulatedTiDongle, TiDongleConfig

RIG = """name: ti-rig
sniffers:
  - id: ti0
    driver: ti-smartrf-sniffer2
    page: 28
    channel: 11
    settings: {{port: {port}, usb_serial: L1100ABC{extra}}}
capture: {{folder: {folder}, flush_interval_s: 0.1}}
"""


def write_rig(folder: Path, extra: str = "") -> Path:
    rig = folder / "rig.yaml"
    rig.write_text(RIG.format(port=folder / "ti0", extra=extra, folder=folder / "captures"))
    (folder / "lab.yaml").write_text("name: tilab\nrigs: [rig.yaml]\n")
    return rig


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (", phy_index_sub_ghz: 300", "sniffers.0.settings.phy_index_sub_ghz"),
        (", timestamp_reference: middle", "'end_of_sfd', 'start_of_frame' or 'end_of_frame'"),
        (", header_octets: 3", "sniffers.0.settings.header_octets"),
        (", bogus: 1", "sniffers.0.settings.bogus"),
    ],
)
def test_bad_settings_refused_naming_file_line_and_field(
    tmp_path: Path, extra: str, needle: str
) -> None:
    rig = write_rig(tmp_path, extra)
    result = run_hanlab("rig", "validate", str(rig))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{rig}:7:" in result.stderr and needle in result.stderr


def test_devices_and_udev_know_the_xds110(tmp_path: Path) -> None:
    write_rig(tmp_path)
    assert run_hanlab("rig", "validate", str(tmp_path / "rig.yaml")).returncode == 0
    devices = run_hanlab("devices", str(tmp_path / "lab.yaml"))
    assert devices.returncode == 1  # nothing plugged in here: missing
    assert "0451:bef3" in devices.stdout and "missing" in devices.stdout
    udev = run_hanlab("udev", "generate", str(tmp_path / "lab.yaml"), "--output",
                      str(tmp_path / "udev"))
    assert udev.returncode == 0, udev.stderr
    rules = (tmp_path / "udev" / "99-hanlab.rules").read_text()
    assert ('ATTRS{idVendor}=="0451", ATTRS{idProduct}=="bef3", ATTRS{serial}=="L1100ABC", '
            'ENV{ID_USB_INTERFACE_NUM}=="00", SYMLINK+="hanlab/ti-rig-ti0"') in rules


async def test_hanlab_up_captures_from_the_dongle(tmp_path: Path, tshark: str) -> None:
    write_rig(tmp_path)
    async with EmulatedTiDongle(tmp_path / "ti0", TiDongleConfig(rate_hz=100)) as dongle:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        proc = await asyncio.create_subprocess_exec(
            *_hanlab_command(), "up", str(tmp_path / "lab.yaml"), "--duration", "3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
            env=env)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert dongle.stats.frames > 100
    captures = sorted((tmp_path / "captures").glob("ti-rig_subGHz_*"))
    assert captures, list((tmp_path / "captures").iterdir())
    # frames still in flight when the dongle was told to stop are the only ones missing
    assert dongle.stats.frames - 5 <= tshark_count(tshark, captures[0]) <= dongle.stats.frames
