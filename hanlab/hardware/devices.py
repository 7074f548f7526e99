"""Which USB sniffers and radios a lab configures, and which of them are plugged in.

A configured device is a sniffer of a rig whose driver settings name a USB identity
(``usb_vid``, ``usb_pid``, ``usb_serial``: the nRF sniffer, TI sniffer and zigpy radio
drivers have them; ``usb_interface`` where one USB device has several serial ports, as the
XDS110 of a TI LaunchPad does). Connected serial ports are listed with pyserial's
``list_ports`` (USB VID:PID, serial number and interface from sysfs). A configured device
matches a port when VID, PID, serial number and (if configured) interface number agree
(issue 6, item 5: ``hanlab devices``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from serial.tools import list_ports

from hanlab.config.models import Lab

#: what udev accepts inside a quoted match value without escaping
_UDEV_SAFE = re.compile(r"^[A-Za-z0-9._:+-]{1,126}$")


@dataclass(frozen=True, slots=True)
class ConfiguredDevice:
    """One configured USB sniffer or radio.

    Attributes:
        rig, sniffer_id, driver: where it is configured.
        vid, pid: USB vendor and product ids, or ``None`` if not configured.
        serial_number: USB serial number (iSerial), or ``None`` if not configured.
        path: the device path the driver opens (``port`` or ``path``).
        interface: the USB interface number of its serial port, or ``None`` (any).
    """

    rig: str
    sniffer_id: str
    driver: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    path: str
    interface: int | None = None

    @property
    def stable_name(self) -> str:
        """The udev name under ``/dev``: ``hanlab/<rig>-<sniffer>``."""
        return f"hanlab/{self.rig}-{self.sniffer_id}"

    @property
    def identifiable(self) -> bool:
        """Whether VID, PID and a udev-safe serial number are all configured."""
        return (
            self.vid is not None
            and self.pid is not None
            and self.serial_number is not None
            and _UDEV_SAFE.match(self.serial_number) is not None
        )


@dataclass(frozen=True, slots=True)
class SerialPortInfo:
    """A serial port present on this host (pyserial ``ListPortInfo``; ``interface`` is the
    USB interface number, from the end of its sysfs location ``…:1.<n>``)."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    description: str
    manufacturer: str | None
    interface: int | None = None

    @property
    def usb_id(self) -> str:
        """``VVVV:PPPP`` in hex, or ``-`` for a non-USB port."""
        if self.vid is None or self.pid is None:
            return "-"
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True, slots=True)
class DeviceMatch:
    """A configured device and the connected ports that match it (none: missing)."""

    device: ConfiguredDevice
    ports: tuple[SerialPortInfo, ...]

    @property
    def status(self) -> str:
        """``connected``, ``missing``, ``ambiguous`` (several ports) or
        ``unidentified`` (no USB identity configured)."""
        if not self.device.identifiable:
            return "unidentified"
        if not self.ports:
            return "missing"
        return "connected" if len(self.ports) == 1 else "ambiguous"


def configured_devices(lab: Lab) -> list[ConfiguredDevice]:
    """Every sniffer of ``lab`` whose driver settings carry a USB identity or a port."""
    found: list[ConfiguredDevice] = []
    for rig in lab.rigs:
        for sniffer in rig.sniffers:
            settings: Any = lab.driver_settings.get((rig.name, sniffer.id))
            if settings is None or not hasattr(settings, "usb_serial"):
                continue
            found.append(
                ConfiguredDevice(
                    rig=rig.name,
                    sniffer_id=sniffer.id,
                    driver=sniffer.driver,
                    vid=getattr(settings, "usb_vid", None),
                    pid=getattr(settings, "usb_pid", None),
                    serial_number=settings.usb_serial,
                    path=str(getattr(settings, "port", None) or getattr(settings, "path", "")),
                    interface=getattr(settings, "usb_interface", None),
                )
            )
    return found


def _interface_of(location: str | None) -> int | None:
    """The interface number at the end of a USB sysfs location (``1-1.2:1.3`` → 3)."""
    if not location or ":" not in location:
        return None
    _, _, number = location.rpartition(".")
    return int(number) if number.isdigit() else None


def list_serial_ports() -> list[SerialPortInfo]:
    """Every serial port on this host, USB ones with VID, PID and serial number."""
    return sorted(
        (
            SerialPortInfo(
                device=p.device,
                vid=p.vid,
                pid=p.pid,
                serial_number=p.serial_number,
                description=p.description or "",
                manufacturer=p.manufacturer,
                interface=_interface_of(p.location),
            )
            for p in list_ports.comports()
        ),
        key=lambda p: p.device,
    )


def match_devices(
    devices: list[ConfiguredDevice], ports: list[SerialPortInfo]
) -> tuple[list[DeviceMatch], list[SerialPortInfo]]:
    """Match configured devices to connected ports by USB VID, PID and serial number.

    Returns:
        one :class:`DeviceMatch` per configured device, and the USB ports no
        configured device claims.
    """
    matches: list[DeviceMatch] = []
    claimed: set[str] = set()
    for device in devices:
        hits = tuple(
            p
            for p in ports
            if device.identifiable
            and p.vid == device.vid
            and p.pid == device.pid
            and p.serial_number == device.serial_number
            and (device.interface is None or p.interface == device.interface)
        )
        claimed.update(p.device for p in hits)
        matches.append(DeviceMatch(device, hits))
    unclaimed = [p for p in ports if p.vid is not None and p.device not in claimed]
    return matches, unclaimed
