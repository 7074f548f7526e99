"""Lab and rig configuration: models (:mod:`.models`) and loading (:mod:`.loader`)."""

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
