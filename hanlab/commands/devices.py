"""``hanlab devices``: which configured sniffers and radios are plugged in (issue 6, item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hanlab.commands import print_table
from hanlab.config import load_lab
from hanlab.hardware.devices import (
    configured_devices,
    list_serial_ports,
    match_devices,
)

console = Console(highlight=False)


def devices(
    lab_file: Annotated[
        Path | None, typer.Argument(help="Lab or rig file whose sniffers to match.")
    ] = None,
) -> None:
    """List serial ports (USB VID:PID, serial number) and match them to configured sniffers.

    With a lab file, every USB sniffer and radio it configures is shown as connected
    (with its port), missing, ambiguous, or unidentified (no usb_serial in its settings).
    Exit status 1 if a configured device is missing.

    Example:

      hanlab devices labs/lab1.yaml
    """
    ports = list_serial_ports()
    table = Table(title="Serial ports on this host")
    for column in ("port", "USB VID:PID", "serial number", "description"):
        table.add_column(column)
    for p in ports:
        table.add_row(p.device, p.usb_id, p.serial_number or "-", p.description)
    print_table(console, table)
    if lab_file is None:
        return
    lab = load_lab(lab_file)
    matches, unclaimed = match_devices(configured_devices(lab), ports)
    configured = Table(title=f"Configured sniffers and radios of {lab_file}")
    for column in ("rig", "sniffer", "driver", "USB VID:PID", "serial number", "status", "port"):
        configured.add_column(column)
    missing = 0
    for m in matches:
        d = m.device
        usb = f"{d.vid:04x}:{d.pid:04x}" if d.vid is not None and d.pid is not None else "-"
        missing += m.status == "missing"
        configured.add_row(
            d.rig,
            d.sniffer_id,
            d.driver,
            usb,
            d.serial_number or "-",
            m.status,
            ", ".join(p.device for p in m.ports) or "-",
        )
    print_table(console, configured)
    if unclaimed:
        console.print(
            "USB serial ports no sniffer claims: "
            + ", ".join(f"{p.device} ({p.usb_id} {p.serial_number or '-'})" for p in unclaimed),
            markup=False,
        )
    if missing:
        console.print(f"{missing} configured device(s) missing", markup=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``hanlab devices`` to ``app``."""
    app.command("devices")(devices)
