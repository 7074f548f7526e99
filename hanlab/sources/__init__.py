"""Frame sources: one driver per sniffer kind, all behind :class:`FrameSource`.

Drivers are named in rig files (``driver:``) and loaded lazily from :data:`DRIVERS`, so a
rig that uses only replay does not import serial or radio libraries.
"""

from __future__ import annotations

import importlib
from typing import Any

from hanlab.errors import BadInputError
from hanlab.sources.base import (
    DriverSettings,
    EventReporter,
    FrameSource,
    SourceEvent,
    SourceSpec,
)

#: driver name -> "module:class" of its :class:`FrameSource` subclass.
DRIVERS: dict[str, str] = {
    "pcap": "hanlab.sources.pcap_replay:PcapReplaySource",
    "nrf802154": "hanlab.sources.nrf802154:Nrf802154Source",
    "ti-smartrf-sniffer2": "hanlab.sources.ti_sniffer:TiSnifferSource",
    "zigpy": "hanlab.sources.zigpy_radio:ZigpyRadioSource",
    "emulated": "hanlab.sources.emulated:EmulatedSnifferSource",
}


def driver_class(name: str) -> type[FrameSource[Any]]:
    """The :class:`FrameSource` class of driver ``name``.

    Raises:
        BadInputError: no such driver, or its module cannot be imported.
    """
    target = DRIVERS.get(name)
    if target is None:
        raise BadInputError(f"unknown sniffer driver {name!r} (known: {', '.join(DRIVERS)})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInputError(f"sniffer driver {name!r} is not available: {exc}") from exc
    cls: type[FrameSource[Any]] = getattr(module, class_name)
    return cls


__all__ = [
    "DRIVERS",
    "DriverSettings",
    "EventReporter",
    "FrameSource",
    "SourceEvent",
    "SourceSpec",
    "driver_class",
]
