"""ZCL names as data: clusters, general commands, Smart Energy cluster commands.

Sources: ZCL 07-5123 (Table 2-3 general commands; cluster identifiers of chapter 3),
ZigBee Smart Energy 1.4 (07-5356, Annex D: Price D.4, Metering D.3, Messaging D.5,
Tunneling D.6, Prepayment D.7, Key Establishment C.3.1) and the OTA Upgrade cluster
(ZCL 07-5123 chapter 11). Cluster-specific command names are keyed by
``(cluster, direction, command id)``; direction 0 is client to server, 1 server to client.
"""

from __future__ import annotations

from typing import Final

CLUSTER_BASIC: Final = 0x0000
CLUSTER_OTA_UPGRADE: Final = 0x0019
CLUSTER_PRICE: Final = 0x0700
CLUSTER_METERING: Final = 0x0702
CLUSTER_MESSAGING: Final = 0x0703
CLUSTER_TUNNELING: Final = 0x0704
CLUSTER_PREPAYMENT: Final = 0x0705
CLUSTER_KEY_ESTABLISHMENT: Final = 0x0800

#: Cluster identifiers (ZCL 07-5123, SE 1.4).
CLUSTER_NAMES: Final[dict[int, str]] = {
    0x0000: "basic",
    0x0001: "power_configuration",
    0x0002: "device_temperature",
    0x0003: "identify",
    0x0004: "groups",
    0x0005: "scenes",
    0x0006: "on_off",
    0x0007: "on_off_switch_configuration",
    0x0008: "level_control",
    0x0009: "alarms",
    0x000A: "time",
    0x000B: "rssi_location",
    0x000F: "binary_input",
    0x0019: "ota_upgrade",
    0x0020: "poll_control",
    0x0021: "green_power",
    0x0101: "door_lock",
    0x0102: "window_covering",
    0x0201: "thermostat",
    0x0202: "fan_control",
    0x0204: "thermostat_ui_configuration",
    0x0300: "color_control",
    0x0400: "illuminance_measurement",
    0x0402: "temperature_measurement",
    0x0403: "pressure_measurement",
    0x0405: "relative_humidity",
    0x0406: "occupancy_sensing",
    0x0500: "ias_zone",
    0x0501: "ias_ace",
    0x0502: "ias_wd",
    0x0700: "price",
    0x0701: "demand_response_load_control",
    0x0702: "metering",
    0x0703: "messaging",
    0x0704: "tunneling",
    0x0705: "prepayment",
    0x0706: "energy_management",
    0x0707: "calendar",
    0x0708: "device_management",
    0x0709: "events",
    0x070A: "mdu_pairing",
    0x070B: "sub_ghz",
    0x0800: "key_establishment",
    0x0B04: "electrical_measurement",
    0x0B05: "diagnostics",
    0x1000: "touchlink",
}

#: Profile-wide (general) commands (ZCL 07-5123 Table 2-3).
GENERAL_COMMAND_NAMES: Final[dict[int, str]] = {
    0x00: "read_attributes",
    0x01: "read_attributes_response",
    0x02: "write_attributes",
    0x03: "write_attributes_undivided",
    0x04: "write_attributes_response",
    0x05: "write_attributes_no_response",
    0x06: "configure_reporting",
    0x07: "configure_reporting_response",
    0x08: "read_reporting_configuration",
    0x09: "read_reporting_configuration_response",
    0x0A: "report_attributes",
    0x0B: "default_response",
    0x0C: "discover_attributes",
    0x0D: "discover_attributes_response",
    0x0E: "read_attributes_structured",
    0x0F: "write_attributes_structured",
    0x10: "write_attributes_structured_response",
    0x11: "discover_commands_received",
    0x12: "discover_commands_received_response",
    0x13: "discover_commands_generated",
    0x14: "discover_commands_generated_response",
    0x15: "discover_attributes_extended",
    0x16: "discover_attributes_extended_response",
}

_TO_SERVER: Final = 0
_TO_CLIENT: Final = 1

_SPECIFIC: Final[dict[tuple[int, int], list[str | None]]] = {
    (CLUSTER_TUNNELING, _TO_SERVER): [
        "RequestTunnel", "CloseTunnel", "TransferData", "TransferDataError",
        "AckTransferData", "ReadyData", "GetSupportedTunnelProtocols",
    ],
    (CLUSTER_TUNNELING, _TO_CLIENT): [
        "RequestTunnelResponse", "TransferData", "TransferDataError", "AckTransferData",
        "ReadyData", "SupportedTunnelProtocolsResponse", "TunnelClosureNotification",
    ],
    (CLUSTER_OTA_UPGRADE, _TO_SERVER): [
        None, "QueryNextImageRequest", None, "ImageBlockRequest", "ImagePageRequest", None,
        "UpgradeEndRequest", None, "QuerySpecificFileRequest",
    ],
    (CLUSTER_OTA_UPGRADE, _TO_CLIENT): [
        "ImageNotify", None, "QueryNextImageResponse", None, None, "ImageBlockResponse", None,
        "UpgradeEndResponse", None, "QuerySpecificFileResponse",
    ],
    (CLUSTER_KEY_ESTABLISHMENT, _TO_SERVER): [
        "InitiateKeyEstablishmentRequest", "EphemeralDataRequest", "ConfirmKeyDataRequest",
        "TerminateKeyEstablishment",
    ],
    (CLUSTER_KEY_ESTABLISHMENT, _TO_CLIENT): [
        "InitiateKeyEstablishmentResponse", "EphemeralDataResponse", "ConfirmKeyDataResponse",
        "TerminateKeyEstablishment",
    ],
    (CLUSTER_METERING, _TO_SERVER): [
        "GetProfile", "RequestMirrorResponse", "MirrorRemoved", "RequestFastPollMode",
        "ScheduleSnapshot", "TakeSnapshot", "GetSnapshot", "StartSampling", "GetSampledData",
        "MirrorReportAttributeResponse", "ResetLoadLimitCounter", "ChangeSupply",
        "LocalChangeSupply", "SetSupplyStatus", "SetUncontrolledFlowThreshold",
    ],
    (CLUSTER_METERING, _TO_CLIENT): [
        "GetProfileResponse", "RequestMirror", "RemoveMirror", "RequestFastPollModeResponse",
        "ScheduleSnapshotResponse", "TakeSnapshotResponse", "PublishSnapshot",
        "GetSampledDataResponse", "ConfigureMirror", "ConfigureNotificationScheme",
        "ConfigureNotificationFlags", "GetNotifiedMessage", "SupplyStatusResponse",
        "StartSamplingResponse",
    ],
    (CLUSTER_PRICE, _TO_SERVER): [
        "GetCurrentPrice", "GetScheduledPrices", "PriceAcknowledgement", "GetBlockPeriods",
        "GetConversionFactor", "GetCalorificValue", "GetTariffInformation", "GetPriceMatrix",
        "GetBlockThresholds", "GetCO2Value", "GetTierLabels", "GetBillingPeriod",
        "GetConsolidatedBill", "CPPEventResponse", "GetCreditPayment",
        "GetCurrencyConversionCommand", "GetTariffCancellation",
    ],
    (CLUSTER_PRICE, _TO_CLIENT): [
        "PublishPrice", "PublishBlockPeriod", "PublishConversionFactor",
        "PublishCalorificValue", "PublishTariffInformation", "PublishPriceMatrix",
        "PublishBlockThresholds", "PublishCO2Value", "PublishTierLabels",
        "PublishBillingPeriod", "PublishConsolidatedBill", "PublishCPPEvent",
        "PublishCreditPayment", "PublishCurrencyConversion", "CancelTariff",
    ],
    (CLUSTER_MESSAGING, _TO_SERVER): [
        "GetLastMessage", "MessageConfirmation", "GetMessageCancellation",
    ],
    (CLUSTER_MESSAGING, _TO_CLIENT): [
        "DisplayMessage", "CancelMessage", "DisplayProtectedMessage", "CancelAllMessages",
    ],
    (CLUSTER_PREPAYMENT, _TO_SERVER): [
        "SelectAvailableEmergencyCredit", None, "ChangeDebt", "EmergencyCreditSetup",
        "ConsumerTopUp", "CreditAdjustment", "ChangePaymentMode", "GetPrepaySnapshot",
        "GetTopUpLog", "SetLowCreditWarningLevel", "GetDebtRepaymentLog",
        "SetMaximumCreditLimit", "SetOverallDebtCap",
    ],
    (CLUSTER_PREPAYMENT, _TO_CLIENT): [
        None, "PublishPrepaySnapshot", "ChangePaymentModeResponse", "ConsumerTopUpResponse",
        None, "PublishTopUpLog", "PublishDebtLog",
    ],
    (0x0003, _TO_SERVER): ["Identify", "IdentifyQuery"],
    (0x0006, _TO_SERVER): ["Off", "On", "Toggle"],
    (0x0008, _TO_SERVER): [
        "MoveToLevel", "Move", "Step", "Stop", "MoveToLevelWithOnOff", "MoveWithOnOff",
        "StepWithOnOff", "StopWithOnOff",
    ],
}

#: Cluster-specific command names keyed by (cluster, direction, command id).
CLUSTER_COMMAND_NAMES: Final[dict[tuple[int, int, int], str]] = {
    (cluster, direction, command_id): name
    for (cluster, direction), names in _SPECIFIC.items()
    for command_id, name in enumerate(names)
    if name is not None
}

#: Tunneling TransferData command ids by direction (SE 1.4 D.6.2.4.3 and D.6.2.5.2).
TUNNEL_TRANSFER_DATA: Final[dict[int, int]] = {_TO_SERVER: 0x02, _TO_CLIENT: 0x01}
