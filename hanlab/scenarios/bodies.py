"""The DUIS Body element of each Service Request variant a scenario sends (DUIS 5.4 XSD,
``Request/Body`` choice), filled from the step's ``params``.

The element names are those of the DUIS 5.4 schema. The content is what the step gives
(role placeholders already replaced by EUI-64s); the runner does not invent business data
(tariffs, calendars, UTRNs). A lab that validates against the XSD and a real DCC need
complete bodies: give them in the scenario file's ``params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lxml import etree

from hanlab.duis.xml import sr_element
from hanlab.errors import BadInputError

BODY_ELEMENTS: Final[Mapping[str, str]] = {
    "1.1.1": "UpdateImportTariffPrimaryElement", "1.1.2": "UpdateImportTariffSecondaryElement",
    "1.2.1": "UpdatePricePrimaryElement", "1.2.2": "UpdatePriceSecondaryElement",
    "1.5": "UpdateMeterBalance", "1.6": "UpdatePaymentMode",
    "1.7": "ResetTariffBlockCounterMatrix",
    "2.1": "UpdatePrepayConfiguration", "2.2": "TopUpDevice", "2.3": "UpdateDebt",
    "2.5": "ActivateEmergencyCredit",
    "3.1": "DisplayMessage", "3.2": "RestrictAccessForChangeOfTenancy", "3.3": "ClearEventLog",
    "3.4": "UpdateSupplierName", "3.5": "DisablePrivacyPIN",
    "4.1.1": "ReadInstantaneousImportRegisters", "4.1.2": "ReadInstantaneousImportTOUMatrices",
    "4.1.3": "ReadInstantaneousImportTOUWithBlocksMatrices",
    "4.1.4": "ReadInstantaneousImportBlockCounters",
    "4.2": "ReadInstantaneousExportRegisters", "4.3": "ReadInstantaneousPrepayValues",
    "4.4.2": "RetrieveCoMOrTariffTriggeredBillingDataLog",
    "4.4.3": "RetrieveBillingCalendarTriggeredBillingDataLog",
    "4.4.4": "RetrieveBillingDataLogDebtPayments",
    "4.4.5": "RetrieveBillingDataLogPrepaymentCredits",
    "4.6.1": "RetrieveImportDailyReadLog", "4.6.2": "RetrieveExportDailyReadLog",
    "4.8.1": "ReadActiveImportProfileData", "4.8.2": "ReadReactiveImportProfileData",
    "4.8.3": "ReadExportProfileData", "4.10": "ReadNetworkData",
    "4.11.1": "ReadTariffPrimaryElement", "4.11.2": "ReadTariffSecondaryElement",
    "4.12.1": "ReadMaximumDemandImportRegisters", "4.12.2": "ReadMaximumDemandExportRegisters",
    "4.13": "ReadPrepaymentConfiguration", "4.14": "ReadPrepaymentDailyReadLog",
    "4.15": "ReadLoadLimitData", "4.16": "ReadActivePowerImport",
    "4.17": "RetrieveDailyConsumptionLog", "4.18": "ReadMeterBalance",
    "5.1": "CreateSchedule", "5.2": "ReadSchedule", "5.3": "DeleteSchedule",
    "6.2.7": "ReadDeviceConfigurationMPxN", "6.2.9": "ReadDeviceConfigurationPaymentMode",
    "6.4.1": "UpdateDeviceConfigurationLoadLimitingGeneralSettings",
    "6.6": "UpdateDeviceConfigurationGasConversion",
    "6.8": "UpdateDeviceConfigurationBillingCalendar", "6.11": "SynchroniseClock",
    "6.12": "UpdateDeviceConfigurationInstantaneousPowerThreshold",
    "6.13": "ReadEventOrSecurityLog",
    "6.14.1": "UpdateDeviceConfigurationALCDescriptions",
    "6.14.2": "UpdateDeviceConfigurationALCScheduler", "6.15.1": "UpdateSecurityCredentialsKRP",
    "6.15.2": "UpdateSecurityCredentialsDevice", "6.17": "IssueSecurityCredentials",
    "6.20.1": "SetDeviceConfigurationImportMPxN", "6.21": "RequestHandoverOfDCCControlledDevice",
    "6.22": "ConfigureAlertBehaviour", "6.23": "UpdateSecurityCredentialsCoS",
    "6.25": "SetElectricitySupplyTamperState", "6.28": "SetCHFSubGHzConfiguration",
    "7.4": "ReadSupplyStatus", "7.12": "SetRandomisedOffsetLimit",
    "8.1.1": "CommissionDeviceSynchroniseClock", "8.2": "ReadInventory",
    "8.3": "DecommissionDevice", "8.4": "UpdateInventory",
    "8.7.1": "JoinServiceCritical", "8.7.2": "JoinServiceNonCritical",
    "8.8.1": "UnjoinServiceCritical", "8.8.2": "UnjoinServiceNonCritical",
    "8.9": "ReadDeviceLog", "8.11": "UpdateHANDeviceLog", "8.12.1": "RestoreHANDeviceLog",
    "8.12.2": "RestoreGPFDeviceLog", "8.13": "ReturnLocalCommandResponse",
    "8.14.1": "CHFInstallSuccessSMWAN", "8.14.2": "CHFInstallSuccessNoSMWAN",
    "11.1": "UpdateFirmware", "11.2": "ReadFirmwareVersion", "11.3": "ActivateFirmware",
    "12.2": "DevicePrenotification",
}
"""ServiceReferenceVariant -> the Body's element (DUIS 5.4 XSD) for the SRs the library
uses, and a few more."""


def body_element(variant: str) -> str:
    """The Body element name of SR ``variant``, e.g. ``ReadInstantaneousImportRegisters``.

    Raises:
        BadInputError: the variant is not in :data:`BODY_ELEMENTS`.
    """
    name = BODY_ELEMENTS.get(variant)
    if name is None:
        raise BadInputError(f"no DUIS Body element known for SR {variant}",
                            hint="add it to hanlab.scenarios.bodies.BODY_ELEMENTS")
    return name


def build_body(variant: str, params: Mapping[str, Any]) -> etree._Element:
    """The Body element of SR ``variant`` with ``params`` as its children, in order."""
    return sr_element(body_element(variant), dict(params) or None)
