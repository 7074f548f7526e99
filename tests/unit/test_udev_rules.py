"""udev rules and device matching from a lab file (issue 6, item 5).

``hanlab udev generate`` is run against fake udevadm scripts (with ``verify``, failing
``verify``, systemd 252 without it, no udevadm at all; issue 14 item 2) and the real one
where it exists; the rules' content is checked against the lab file everywhere.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hanlab.cli import _register, app
from hanlab.config import load_lab
from hanlab.hardware.devices import SerialPortInfo, configured_devices, match_devices
from hanlab.hardware.udev import RULES_FILE_NAME, rules_text, verify_rules

RIG1 = """
name: rig1
sniffers:
  - id: nrf0
    driver: nrf802154
    channel: 15
    settings: {port: /dev/hanlab/rig1-nrf0, usb_serial: F4CE3612AB01}
  - id: ezsp0
    driver: zigpy
    channel: 20
    settings:
      path: /dev/hanlab/rig1-ezsp0
      baudrate: 115200
      usb_vid: 0x10c4
      usb_pid: 0xea60
      usb_serial: "0001"
  - id: ti0
    driver: ti-smartrf-sniffer2
    page: 28
    channel: 11
    settings: {port: /dev/hanlab/rig1-ti0, usb_serial: L1100ABC}
"""
RIG2 = """
name: rig2
sniffers:
  - id: nrf1
    driver: nrf802154
    channel: 25
    settings: {port: /dev/ttyACM3}
"""


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    (tmp_path / "rig1.yaml").write_text(RIG1)
    (tmp_path / "rig2.yaml").write_text(RIG2)
    lab = tmp_path / "lab.yaml"
    lab.write_text("name: lab1\nrigs: [rig1.yaml, rig2.yaml]\n")
    return lab


RULE = re.compile(
    r'^SUBSYSTEM=="tty", ATTRS\{idVendor\}=="(?P<vid>[0-9a-f]{4})", '
    r'ATTRS\{idProduct\}=="(?P<pid>[0-9a-f]{4})", ATTRS\{serial\}=="(?P<serial>[^"]+)", '
    r'(ENV\{ID_USB_INTERFACE_NUM\}=="(?P<interface>[0-9a-f]{2})", )?'
    r'SYMLINK\+="hanlab/(?P<name>[^"]+)", MODE="0660", GROUP="dialout", '
    r'ENV\{ID_MM_DEVICE_IGNORE\}="1", TAG\+="systemd"$'
)


def test_rules_match_the_lab_file(lab_file: Path, tmp_path: Path) -> None:
    _register()
    result = CliRunner().invoke(
        app, ["udev", "generate", str(lab_file), "--output", str(tmp_path / "udev")]
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "udev" / RULES_FILE_NAME).read_text()
    rules = [RULE.match(line) for line in text.splitlines() if line and not line.startswith("#")]
    assert all(rules), text
    found = {m["name"]: (int(m["vid"], 16), int(m["pid"], 16), m["serial"]) for m in rules if m}
    lab = load_lab(lab_file)
    expected = {}
    for (rig, sniffer), settings in lab.driver_settings.items():
        if settings.usb_serial:
            expected[f"{rig}-{sniffer}"] = (settings.usb_vid, settings.usb_pid, settings.usb_serial)
    assert (
        found
        == expected
        == {
            "rig1-nrf0": (0x1915, 0x154B, "F4CE3612AB01"),
            "rig1-ezsp0": (0x10C4, 0xEA60, "0001"),
            "rig1-ti0": (0x0451, 0xBEF3, "L1100ABC"),
        }
    )
    # the XDS110's sniffer UART is interface 00 (its other port, 03, gets no name)
    assert {m["name"]: m["interface"] for m in rules if m}["rig1-ti0"] == "00"
    assert "# rig rig2, sniffer nrf1 (nrf802154)\n# skipped" in text


def test_the_real_udevadm_whatever_its_version(lab_file: Path, tmp_path: Path) -> None:
    """Where udevadm exists, with or without ``verify``, the rules check never fails."""
    if shutil.which("udevadm") is None:
        pytest.skip("udevadm is not installed here; fake ones are tested below")
    path = tmp_path / RULES_FILE_NAME
    path.write_text(rules_text(configured_devices(load_lab(lab_file)), source="lab.yaml"))
    assert verify_rules(path).startswith("udevadm")


def _fake_udevadm(folder: Path, version: str, verify: str) -> Path:
    """A shell script standing in for udevadm: ``--version`` prints ``version``; ``verify``
    runs the shell snippet ``verify``; every call is logged to ``calls.log``."""
    folder.mkdir()
    script = folder / "udevadm"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{folder}/calls.log"\n'
        f'if [ "$1" = "--version" ]; then echo "{version}"; exit 0; fi\n'
        f'if [ "$1" = "verify" ]; then {verify}; fi\n'
        'echo "Unknown command verb $1." >&2; exit 1\n')
    script.chmod(0o755)
    return folder


FAKES = {
    # systemd 255: verify exists and accepts the file
    "with verify": ("255 (255.4-1)", "exit 0", 0, "udevadm verify: OK"),
    # systemd 255: verify finds a problem
    "verify fails": ("255 (255.4-1)",
                     'echo "$2:7 Invalid key/value pair, ignoring." >&2; exit 1', 1,
                     "Invalid key/value pair"),
    # systemd 252 (Debian 12): no verify verb
    "systemd 252": ("252 (252.33-1~deb12u1)", 'echo "Unknown command verb verify." >&2; exit 1',
                    0, "udevadm 252 has no verify"),
    # no version printed, no verify verb
    "odd version": ("unknown", 'echo "Unknown command verb verify." >&2; exit 1', 0,
                    "has no verify"),
}


@pytest.mark.parametrize("case", sorted(FAKES))
def test_generate_with_a_fake_udevadm(case: str, lab_file: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    version, verify, exit_code, says = FAKES[case]
    fake = _fake_udevadm(tmp_path / "bin", version, verify)
    monkeypatch.setenv("PATH", str(fake))
    _register()
    result = CliRunner().invoke(
        app, ["udev", "generate", str(lab_file), "--output", str(tmp_path / "udev")])
    assert result.exit_code == exit_code, result.output
    assert (tmp_path / "udev" / RULES_FILE_NAME).is_file()
    text = result.output + str(result.exception or "")
    assert says in text, text
    calls = (fake / "calls.log").read_text().splitlines()
    assert calls[0] == "--version"
    if case == "systemd 252":
        assert calls == ["--version"]  # verify is not even tried
    elif case != "odd version":
        assert calls[1] == f"verify {tmp_path / 'udev' / RULES_FILE_NAME}"


def test_generate_without_udevadm(lab_file: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    _register()
    result = CliRunner().invoke(
        app, ["udev", "generate", str(lab_file), "--output", str(tmp_path / "udev")])
    assert result.exit_code == 0, result.output
    assert "udevadm not found: rules not checked" in result.output


def port(device: str, vid: int, pid: int, serial: str,
         interface: int | None = None) -> SerialPortInfo:
    return SerialPortInfo(device, vid, pid, serial, "USB", None, interface)


def test_matching_connected_missing_unidentified(lab_file: Path) -> None:
    devices = configured_devices(load_lab(lab_file))
    ports = [
        port("/dev/ttyACM0", 0x1915, 0x154B, "F4CE3612AB01"),
        port("/dev/ttyACM1", 0x1915, 0x154B, "OTHER"),
        # the TI LaunchPad's XDS110: two ports under one serial number; the sniffer's is 00
        port("/dev/ttyACM2", 0x0451, 0xBEF3, "L1100ABC", 0),
        port("/dev/ttyACM3", 0x0451, 0xBEF3, "L1100ABC", 3),
        SerialPortInfo("/dev/ttyS0", None, None, None, "n/a", None),
    ]
    matches, unclaimed = match_devices(devices, ports)
    status = {m.device.sniffer_id: (m.status, [p.device for p in m.ports]) for m in matches}
    assert status == {
        "nrf0": ("connected", ["/dev/ttyACM0"]),
        "ezsp0": ("missing", []),
        "ti0": ("connected", ["/dev/ttyACM2"]),
        "nrf1": ("unidentified", []),
    }
    assert [p.device for p in unclaimed] == ["/dev/ttyACM1", "/dev/ttyACM3"]


def test_devices_command_lists_ports_and_missing(lab_file: Path) -> None:
    _register()
    result = CliRunner().invoke(app, ["devices", str(lab_file)])
    # nothing is plugged in here: the identifiable devices are missing
    assert result.exit_code == 1
    assert "missing" in result.output and "rig1" in result.output
