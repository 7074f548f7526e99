"""The emulated DCC (DUIS 5.4 over HTTP, with its Smart Metering Inventory) and a fake
in-memory HAN for testing it."""

from hanlab.emulator.dcc.alerts import DccAlert, DccAlertCodes, DccAlertRules
from hanlab.emulator.dcc.commands import (
    DCC_ACCESS_CONTROL_BROKER,
    DCC_ORIGINATED_USE_CASES,
    CommandMappingError,
    CommandPlan,
    plan_command,
)
from hanlab.emulator.dcc.fake_han import FakeHan
from hanlab.emulator.dcc.inventory import DeviceStatus, Inventory, InventoryDevice
from hanlab.emulator.dcc.server import (
    SERVICE_PATHS,
    DccStats,
    DccUser,
    EmulatedDcc,
    EmulatedDccSettings,
    RefusalCodes,
)

__all__ = [
    "DCC_ACCESS_CONTROL_BROKER",
    "DCC_ORIGINATED_USE_CASES",
    "SERVICE_PATHS",
    "CommandMappingError",
    "CommandPlan",
    "DccAlert",
    "DccAlertCodes",
    "DccAlertRules",
    "DccStats",
    "DccUser",
    "DeviceStatus",
    "EmulatedDcc",
    "EmulatedDccSettings",
    "FakeHan",
    "Inventory",
    "InventoryDevice",
    "RefusalCodes",
    "plan_command",
]
