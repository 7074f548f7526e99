"""Lab and rig configuration: models (:mod:`.models`) and loading (:mod:`.loader`).

The names below are imported on first use (PEP 562), so importing a light submodule such
as :mod:`hanlab.config.duis` (the correlator's) does not build every pydantic model; type
checkers see ordinary imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hanlab.config.loader import load_lab, load_rig
    from hanlab.config.models import (
        BrokerConfig,
        CaptureConfig,
        ChVariant,
        DeviceConfig,
        DeviceRole,
        Lab,
        LabConfig,
        RigConfig,
        SnifferConfig,
        normalise_eui64,
    )
    from hanlab.secrets_file import check_secrets_file

#: public name -> the submodule defining it.
_LAZY: dict[str, str] = {
    "check_secrets_file": "hanlab.secrets_file",
    **dict.fromkeys(("load_lab", "load_rig"), "hanlab.config.loader"),
    **dict.fromkeys(("BrokerConfig", "CaptureConfig", "ChVariant", "DeviceConfig",
                     "DeviceRole", "Lab", "LabConfig", "RigConfig", "SnifferConfig",
                     "normalise_eui64"), "hanlab.config.models"),
}

__all__ = [
    "BrokerConfig",
    "CaptureConfig",
    "ChVariant",
    "DeviceConfig",
    "DeviceRole",
    "Lab",
    "LabConfig",
    "RigConfig",
    "SnifferConfig",
    "check_secrets_file",
    "load_lab",
    "load_rig",
    "normalise_eui64",
]


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
