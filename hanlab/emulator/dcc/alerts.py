"""The DCC Alerts the emulated DCC raises on its own (DUIS 5.4 §3.6, ``sr:DCCAlertMessage``).

Which alert, on what, to whom, as data (:data:`ALERT_RULES`, :class:`DccAlertCodes`) read
from seed 000's alert tables and the DUIS 5.4 XSD (the ``DCCAlert`` choice). Where DUIS's
own text could not be consulted the reading is hanlab's, configurable, and said so:

============ =========================== ============================================ =========
code         trigger                     DCCAlert element                             to
============ =========================== ============================================ =========
N24 / N25    SR 8.11 answered / failed   UpdateHANDeviceLogResult                     requester
N12 [#]_     device silent (timeout)     CommandFailure (RequestID, DeviceID)         requester
N30 / N31    SR 8.12.1 / 8.12.2 answered DeviceLogRestored (CHFDeviceLog/GPFDeviceLog) requester
N1 / N2 / N9 SR 8.3 of an ESME/GSME/CHF  DeviceStatusChangeEvent                      ED / GT /
                                                                                      requester
N6           SR 8.3                      DSPScheduleRemoval per schedule on device    owner
N27          SR 6.23 answered            ChangeOfSupplier (the 6.23's RequestID)      old supp.
N17          SR 6.23 answered            DSPScheduleRemoval, old supplier's schedules owner
N4           SR 3.2 answered             DSPScheduleRemoval, Other Users' schedules   owner
N18-N23      SR 11.1, per configured     FirmwareDistributionFailure                  requester
             failing device
N42          SR 6.21 answered            SecurityCredentialsUpdated                   the party
N43          SR 8.11 Remove of a PPMID   PPMIDRemoval                                 other
                                                                                      Users
============ =========================== ============================================ =========

.. [#] Not a seed's code: the seeds name no DCC Alert for a device that does not answer,
   and N3 is theirs for the cancellation of future-dated requests on a Change of Tenancy.
   N12 is hanlab's placeholder (configurable, :attr:`DccAlertCodes.command_failure`):
   check it against the DCC simulator you compare with.

Not raised: N3 (cancellation of future-dated DSP requests on a Change of Tenancy) and N33 /
N34 (the same on decommission): the emulated DCC executes every request at once and holds
no future-dated ones.

What each code means: :data:`DCC_ALERT_CODES`, from the alert tables of seed 000 (the DIT
approach document), each row citing the business scenario whose table gives it.

Assumptions (configurable): a User's DUIS role (``ED`` Electricity Distributor = ENO,
``GT`` Gas Transporter = GNO, ``IS`` / ``GS`` suppliers) comes from :class:`DccUser.role`;
with no User of the role the requester gets the alert. The old supplier of N27 / N17 is
every other User that sent a device SR to the device before. MPxNs are not known to the
emulator: ``mpxns`` gives them, else a 13-digit placeholder derived from the EUI-64.
The GPF paired with a CHF (N30 / N31) is the inventory's GPF nearest in EUI-64, else the
CHF's EUI-64 + 1 (and the CHF of a GPF its EUI-64 - 1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from base64 import b64encode
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lxml import etree

from hanlab.duis.xml import SR_NS, BodyMapping, DuisRequest, RequestId
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

__all__ = [
    "DCC_ALERT_CODES", "DccAlert", "DccAlertCodeInfo", "DccAlertCodes", "DccAlertRules",
    "Schedule", "dcc_alert_meaning", "users_of",
]


@dataclass(frozen=True, slots=True)
class DccAlertCodeInfo:
    """One DCCAlertCode (DUIS 5.4 ``sr:DCCAlertMessage/DCCAlertCode``) and what it means.

    Attributes:
        code: e.g. ``N24``.
        meaning: the seed's description of the alert.
        source: the seed and the business scenario whose alert table gives it.
    """

    code: str
    meaning: str
    source: str


_SEED_000 = "seed 000 (DIT approach), alert table of scenario"
_DCC_ALERT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("N1", "Electricity Smart Meter Decommission or withdrawal", "Decommission Device"),
    ("N2", "Gas Smart Meter Decommission or withdrawal", "Decommission Device"),
    ("N3", "Cancellation of Future Dated Response Pattern (DSP) requests because of Change "
           "of Tenancy", "Change of Tenancy Move In"),
    ("N4", "Removal of Other User DCC Schedules because of Change of Tenancy",
     "Change of Tenancy Move In"),
    ("N6", "Schedule removal because of Device decommission", "Decommission Device"),
    ("N9", "Decommission of Communications Hub", "CHF Replacement"),
    ("N17", "Schedule removal because of CoS", "Change of Supplier"),
    *((f"N{n}", "DCC Firmware Distribution Failure", "Firmware Update")
      for n in range(18, 24)),
    ("N24", "Update HAN Device Log - Success", "Install and Commission"),
    ("N25", "Update HAN Device Log - Failure", "Install and Commission"),
    ("N27", "Trigger by ACB to Old Supplier", "Change of Supplier"),
    ("N30", "CHF Device Log Restored", "CHF Replacement"),
    ("N31", "GPF Device Log Restored", "CHF Replacement"),
    ("N33", "Cancellation of Future Dated Response Pattern (DSP) requests because of Device "
            "Decommission", "Decommission Device"),
    ("N34", "Cancellation of all Future Dated (DSP) Services not yet submitted to the CHF "
            "and its associated GPF", "Decommission Device"),
    ("N42", "Remote Party (e.g. Network Operator) whose certificate has been placed on "
            "Device", "Install and Commission"),
    ("N43", "PPMID Removal - When PPMID is joined to both Gas and Electricity meter",
     "PPMID Replacement"),
)

DCC_ALERT_CODES: Mapping[str, DccAlertCodeInfo] = MappingProxyType({
    code: DccAlertCodeInfo(code, meaning, f"{_SEED_000} '{scenario}'")
    for code, meaning, scenario in _DCC_ALERT_ROWS
})
"""DCCAlertCode -> meaning, for every code the seeds describe (seed 000, the Device
Integration Testing approach: the "Alert / Alert Type / Description" tables of its business
scenarios). The DUIS 5.4 XSD allows AD1, N1..N65 and N999; the others are not described by
the seeds and are left out rather than guessed."""


def dcc_alert_meaning(code: str) -> str:
    """The seed's meaning of a DCCAlertCode (``"N24"`` -> ``"Update HAN Device Log -
    Success"``), or ``"unknown"`` for a code the seeds do not describe."""
    info = DCC_ALERT_CODES.get(code.strip().upper())
    return info.meaning if info else "unknown"


@dataclass(frozen=True, slots=True)
class DccAlertCodes:
    """DCCAlertCodes the emulated DCC raises on its own (DUIS 5.4 §3.6, configurable).

    Attributes:
        update_han_device_log_success, update_han_device_log_failure: after SR 8.11.
        command_failure: a device did not answer within ``response_timeout_s``. No seed
            gives this one a code (N3 is the seeds' cancellation of future-dated requests on
            a Change of Tenancy): N12 is hanlab's placeholder; check it against the DCC
            simulator you compare with.
        chf_device_log_restored, gpf_device_log_restored: after SR 8.12.1 / 8.12.2.
        esme_decommissioned, gsme_decommissioned, ch_decommissioned: after SR 8.3.
        schedule_removed_decommission: DSP schedules removed by a decommission.
        change_of_supplier_old_supplier: the ACB's trigger to the old supplier (SR 6.23).
        schedule_removed_change_of_supplier: the old supplier's schedules removed (6.23).
        schedule_removed_change_of_tenancy: Other Users' schedules removed (SR 3.2).
        credentials_placed: a Remote Party's certificate placed on a device (SR 6.21).
        ppmid_removed: a PPMID removed from the CHF device log (SR 8.11 Remove).
    """

    update_han_device_log_success: str = "N24"
    update_han_device_log_failure: str = "N25"
    command_failure: str = "N12"
    chf_device_log_restored: str = "N30"
    gpf_device_log_restored: str = "N31"
    esme_decommissioned: str = "N1"
    gsme_decommissioned: str = "N2"
    ch_decommissioned: str = "N9"
    schedule_removed_decommission: str = "N6"
    change_of_supplier_old_supplier: str = "N27"
    schedule_removed_change_of_supplier: str = "N17"
    schedule_removed_change_of_tenancy: str = "N4"
    credentials_placed: str = "N42"
    ppmid_removed: str = "N43"


@dataclass(frozen=True, slots=True)
class DccAlert:
    """One DCC Alert to post.

    Attributes:
        code: the DCCAlertCode, e.g. ``N30``.
        element: the ``DCCAlert`` child, e.g. ``DeviceLogRestored``.
        content: its children in schema order.
        recipients: the Users to post it to.
        request_id: the RequestID header element, if any.
    """

    code: str
    element: str
    content: BodyMapping
    recipients: tuple[Eui64, ...]
    request_id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A DSP schedule the DCC holds (SR 5.1 Create Schedule): its id, owner, device."""

    schedule_id: int
    owner: Eui64
    device: Eui64


@dataclass
class DccAlertRules:
    """State (schedules, who commanded which device) and the rules of the table above.

    Args:
        codes: the DCCAlertCodes.
        inventory: device EUI-64 -> device type (``ESME``, ``GSME``, ``GPF``, ``CHF`` ...).
        roles: User EUI-64 -> DUIS User role (``IS``, ``GS``, ``ED``, ``GT`` ...), where known.
        mpxns: device EUI-64 -> MPAN / MPRN (placeholders for the others).
        firmware_failures: device EUI-64 -> the N18-N23 code its firmware distribution fails
            with after SR 11.1 (none by default: which of N18-N23 means what is not
            established here; choose the one the test needs).
        today: the date written as RestoredDate (injectable for tests).
    """

    codes: DccAlertCodes
    inventory: Mapping[Eui64, str]
    roles: Mapping[Eui64, str] = field(default_factory=dict)
    mpxns: Mapping[Eui64, str] = field(default_factory=dict)
    firmware_failures: Mapping[Eui64, str] = field(default_factory=dict)
    today: Callable[[], dt.date] = field(default=lambda: dt.datetime.now(dt.UTC).date())
    schedules: list[Schedule] = field(default_factory=list)
    commanders: dict[Eui64, dict[Eui64, None]] = field(default_factory=dict)
    _schedule_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- inputs -----------------------------------------------------------------------------

    def device_command(self, request: DuisRequest) -> None:
        """A device SR was accepted: remember its User as one commanding the device."""
        rid = request.request_id
        self.commanders.setdefault(rid.target, {})[rid.originator] = None

    def device_answered(self, request: DuisRequest) -> list[DccAlert]:
        """The device's response to ``request`` was posted: the alerts that follow it."""
        rid = request.request_id
        variant = request.service_reference_variant
        if variant in ("8.12.1", "8.12.2"):
            return [self._log_restored(request)]
        if variant == "6.23":
            return self._change_of_supplier(request)
        if variant == "3.2":
            return self._schedules_removed(
                rid.target, self.codes.schedule_removed_change_of_tenancy,
                lambda s: s.owner != rid.originator)
        if variant == "6.21":
            return [self._credentials_placed(request)]
        if variant == "8.11":
            return self._ppmid_removed(request)
        return []

    def non_device(self, request: DuisRequest) -> list[DccAlert]:
        """A Non-Device SR (CommandVariant 8) was acknowledged: its alerts."""
        variant = request.service_reference_variant
        if variant == "5.1":
            device = _first_eui(request.body, "DeviceID")
            if device is not None:
                self.schedules.append(Schedule(next(self._schedule_ids),
                                               request.request_id.originator, device))
            return []
        if variant == "8.3":
            return self._decommission(request)
        if variant == "11.1":
            return self._firmware_failures(request)
        return []

    # -- rules ------------------------------------------------------------------------------

    def _users(self, role: str, fallback: Eui64) -> tuple[Eui64, ...]:
        found = tuple(user for user, r in self.roles.items() if r == role)
        return found or (fallback,)

    def _mpxn(self, device: Eui64) -> str:
        return self.mpxns.get(device) or f"{device.value % 10**13:013d}"

    def _nearest(self, device: Eui64, kind: str, offset: int) -> Eui64:
        candidates = [d for d, k in self.inventory.items() if k == kind]
        if candidates:
            return min(candidates, key=lambda d: abs(d.value - device.value))
        return Eui64((device.value + offset) % (1 << 64))

    def _log_restored(self, request: DuisRequest) -> DccAlert:
        rid = request.request_id
        if request.service_reference_variant == "8.12.1":
            new_chf = rid.target
            old_chf = _first_eui(request.body, "OldCHFID") or new_chf
            old_gpf = Eui64((old_chf.value + 1) % (1 << 64))
            new_gpf = self._nearest(new_chf, "GPF", 1)
            code, log = self.codes.chf_device_log_restored, "CHFDeviceLog"
        else:
            new_gpf = rid.target
            old_gpf = _first_eui(request.body, "OldGPFID") or new_gpf
            old_chf = Eui64((old_gpf.value - 1) % (1 << 64))
            new_chf = self._nearest(new_gpf, "CHF", -1)
            code, log = self.codes.gpf_device_log_restored, "GPFDeviceLog"
        return DccAlert(code, "DeviceLogRestored", {
            "RestoredDate": self.today().isoformat(),
            log: {"OldCHFDeviceID": old_chf.duis, "NewCHFDeviceID": new_chf.duis,
                  "OldGPFDeviceID": old_gpf.duis, "NewGPFDeviceID": new_gpf.duis},
        }, (rid.originator,))

    def _schedules_removed(self, device: Eui64, code: str,
                           which: Callable[[Schedule], bool]) -> list[DccAlert]:
        removed = [s for s in self.schedules if s.device == device and which(s)]
        self.schedules = [s for s in self.schedules if s not in removed]
        return [DccAlert(code, "DSPScheduleRemoval",
                         {"DeviceID": s.device.duis, "DSPScheduleID": s.schedule_id},
                         (s.owner,)) for s in removed]

    def _decommission(self, request: DuisRequest) -> list[DccAlert]:
        requester = request.request_id.originator
        device = _first_eui(request.body, "DeviceID")
        if device is None:
            return []
        kind = self.inventory.get(device, "")
        alerts: list[DccAlert] = []
        change: BodyMapping
        if kind in ("ESME", "GSME"):
            change = {"MeterDecommissioningOrWithdrawal": {
                "MeterDecommissionOrWithdrawal": {"ImportMPxN": self._mpxn(device)}}}
            code, role = ((self.codes.esme_decommissioned, "ED") if kind == "ESME"
                          else (self.codes.gsme_decommissioned, "GT"))
            alerts.append(DccAlert(code, "DeviceStatusChangeEvent",
                                   {"DeviceID": device.duis, "DeviceStatusChange": change},
                                   self._users(role, requester)))
        elif kind == "CHF":
            alerts.append(DccAlert(self.codes.ch_decommissioned, "DeviceStatusChangeEvent",
                                   {"DeviceID": device.duis,
                                    "DeviceStatusChange": {"CHFDecommissioning": {}}},
                                   (requester,)))
        alerts += self._schedules_removed(device, self.codes.schedule_removed_decommission,
                                          lambda _s: True)
        self.commanders.pop(device, None)
        return alerts

    def _change_of_supplier(self, request: DuisRequest) -> list[DccAlert]:
        rid = request.request_id
        old = tuple(u for u in self.commanders.get(rid.target, {}) if u != rid.originator)
        alerts = [DccAlert(self.codes.change_of_supplier_old_supplier, "ChangeOfSupplier",
                           {"ChangeOfSupplierServiceRequestID": str(rid)}, old)] if old else []
        alerts += self._schedules_removed(
            rid.target, self.codes.schedule_removed_change_of_supplier,
            lambda s: s.owner in old)
        self.commanders[rid.target] = {rid.originator: None}
        return alerts

    def _credentials_placed(self, request: DuisRequest) -> DccAlert:
        rid = request.request_id
        role = _first_text(request.body, "RemotePartyRole") or "Supplier"
        certificates = _first_text(request.body, "ReplacementCertificates") or str(rid)
        digest = b64encode(hashlib.sha1(certificates.encode()).digest()).decode()
        kind = self.inventory.get(rid.target, "")
        recipients = ((rid.originator,) if role != "NetworkOperator"
                      else self._users("ED" if kind == "ESME" else "GT", rid.originator))
        return DccAlert(self.codes.credentials_placed, "SecurityCredentialsUpdated", {
            "DeviceID": rid.target.duis, "RemotePartyRole": role,
            "Certificates": {"CertificateType": "DigitalSigning", "CertificateHash": digest},
        }, recipients)

    def _ppmid_removed(self, request: DuisRequest) -> list[DccAlert]:
        rid = request.request_id
        device = _first_eui(request.body, "DeviceID")
        if (device is None or self.inventory.get(device) != "PPMID"
                or _first_text(request.body, "RequestType") != "Remove"):
            return []
        others = tuple(u for u in self.roles if u != rid.originator
                       and self.roles[u] in ("IS", "GS"))
        if not others:
            return []
        return [DccAlert(self.codes.ppmid_removed, "PPMIDRemoval",
                         {"PPMIDDeviceID": device.duis, "CHFDeviceID": rid.target.duis},
                         others)]

    def _firmware_failures(self, request: DuisRequest) -> list[DccAlert]:
        listed = (_first_text(request.body, "DeviceIDList") or "").split(",")
        by_code: dict[str, list[str]] = {}
        for text in listed:
            try:
                device = Eui64.parse(text.strip())
            except BadInputError:
                continue
            code = self.firmware_failures.get(device)
            if code is not None:
                by_code.setdefault(code, []).append(device.duis)
        return [DccAlert(code, "FirmwareDistributionFailure", {
            "UpdateFirmwareRequestID": str(request.request_id), "MeterIDs": ",".join(ids)},
            (request.request_id.originator,)) for code, ids in sorted(by_code.items())]


def _first_text(body: etree._Element, local: str) -> str | None:
    """Text of the first descendant of ``body`` named ``local`` (DUIS namespace)."""
    for node in body.iter(f"{{{SR_NS}}}{local}"):
        return (node.text or "").strip() or None
    return None


def _first_eui(body: etree._Element, local: str) -> Eui64 | None:
    text = _first_text(body, local)
    if text is None:
        return None
    try:
        return Eui64.parse(text)
    except BadInputError:
        return None


def users_of(pairs: Iterable[tuple[Eui64, str | None]]) -> dict[Eui64, str]:
    """User EUI-64 -> role for the Users whose role is known."""
    return {eui: role for eui, role in pairs if role}
