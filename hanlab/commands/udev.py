"""``hanlab udev generate``: stable /dev names for the lab's sniffers (issue 6, item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hanlab.config import load_lab
from hanlab.hardware.devices import configured_devices
from hanlab.hardware.udev import verify_rules, write_rules

udev_app = typer.Typer(help="udev rules for stable sniffer and radio names.", no_args_is_help=True)
console = Console(highlight=False)


@udev_app.command("generate")
def generate(
    lab_file: Annotated[Path, typer.Argument(help="Lab or rig file.")],
    output: Annotated[Path, typer.Option(help="Folder for 99-hanlab.rules.")] = Path("udev"),
    group: Annotated[str, typer.Option(help="Group that may open the devices.")] = "dialout",
) -> None:
    """Write udev rules naming every configured sniffer /dev/hanlab/<rig>-<sniffer>.

    Devices are matched by USB VID, PID and serial number (settings usb_vid, usb_pid,
    usb_serial). Where `udevadm verify` exists (systemd 253 or later) the file is checked
    with it; an older udevadm, or none, leaves it unchecked (said on the console).

    Example:

      hanlab udev generate labs/lab1.yaml && sudo cp udev/99-hanlab.rules /etc/udev/rules.d/
    """
    devices = configured_devices(load_lab(lab_file))
    path = write_rules(devices, output, source=str(lab_file), group=group)
    named = sum(d.identifiable for d in devices)
    console.print(f"{path}: {named} of {len(devices)} devices named", markup=False)
    console.print(verify_rules(path), markup=False)


def register(app: typer.Typer) -> None:
    """Add ``hanlab udev`` to ``app``."""
    app.add_typer(udev_app, name="udev")
