"""The emulated DCC's Smart Metering Inventory (SMI): every device with its DUIS device
status and the history of its life cycle, persisted per rig of a lab (issue 13 item 1).

Statuses are DUIS 5.4's ``sr:DeviceStatus`` (DUIS Schema V5.4.xsd: ``Pending``,
``Whitelisted``, ``InstalledNotCommissioned``, ``Commissioned``, ``Decommissioned``,
``Withdrawn``, ``Suspended``, ``Recovery``, ``Recovered``). Transitions, hanlab's reading of
the DUIS 5.4 Service Request definitions (section 8) and seed 000 (DIT business forum packs):

===========================  =====================================  ===========================
SR (when it changes SMI)     device, from                           to
===========================  =====================================  ===========================
8.11 Add (on its response)   the DeviceID, ``Pending``              ``Whitelisted``
8.11 Remove (response)       the DeviceID, ``Whitelisted``          ``Pending``
8.7.x Join (response)        a PPMID / IHD / HCALCS named,          ``Commissioned``
                             ``Whitelisted`` / ``InstalledNot…``
8.1.1 Commission (response)  the target, ``InstalledNotCommiss…``   ``Commissioned``
8.3 Decommission (at once)   the DeviceID (a CHF: its GPF too)      ``Decommissioned``
8.4 UpdateDeviceStatus…      the DeviceID (``…ExceptCH``: Pending /  the status given
                             InstalledNotCommissioned; ``…CH``:
                             Commissioned / Withdrawn / INC)
8.4 DeleteDevice             a ``Pending`` / ``Decommissioned`` /   removed
                             ``Withdrawn`` device
8.14.1 CH Install Success    a CHF (and its GPF) not yet installed  ``Commissioned``
8.14.2 Install No SM WAN     a CHF (and its GPF), ``Pending``       ``InstalledNotCommissioned``
8.14.3 / 8.14.4 CH return    a CHF (and its GPF)                    ``Withdrawn``
12.2 Pre-notification        a device not in the SMI                ``Pending`` (added)
install (a CH spare fitted)  a spare CHF / GPF                      ``Commissioned`` (seed 000,
                                                                    CH Replacement: "the Comms
                                                                    Hub is set to 'Commissioned'
                                                                    … when it connects to the
                                                                    SM WAN")
factory reset                any device                             its initial status (seed
                                                                    000: "device must go to the
                                                                    factory reset process …
                                                                    before device can be re-use")
===========================  =====================================  ===========================

Refusals (DUIS 5.4 Response Codes, section 3.5): a Service Request whose target, or a
device it names (``DeviceID``, ``OtherDeviceID``), has a status the SR is not allowed for
is refused with ``E5`` ("Failed Authorisation - Invalid Device Status: Device SMI Status
incompatible with Service Reference"); decommissioning a GPF, IHD or CAD (seed 000: "Device
type GPF, IHD and CAD can't be decommissioned") with ``E11`` ("Invalid Service Request /
device type combination"). A refusal changes nothing.

Persistence: a JSON file (written atomically after every change, loaded on start); a
device of the rig missing from it starts in its initial status (installed devices
``Commissioned``, spares ``Pending``); a device a variant was consuming when its run died
(:meth:`Inventory.consume` without the factory reset) is factory reset on load.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from lxml import etree

from hanlab.duis.xml import SR_NS, DuisRequest
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

log = logging.getLogger(__name__)

__all__ = ["DeviceStatus", "Inventory", "InventoryCodes", "InventoryDevice", "StatusChange"]


class DeviceStatus(StrEnum):
    """DUIS 5.4 ``sr:DeviceStatus`` (DUIS Schema V5.4.xsd), a device's SMI status."""

    PENDING = "Pending"
    WHITELISTED = "Whitelisted"
    INSTALLED_NOT_COMMISSIONED = "InstalledNotCommissioned"
    COMMISSIONED = "Commissioned"
    DECOMMISSIONED = "Decommissioned"
    WITHDRAWN = "Withdrawn"
    SUSPENDED = "Suspended"
    RECOVERY = "Recovery"
    RECOVERED = "Recovered"


S = DeviceStatus
#: statuses a device answers ordinary device SRs in
OPERATIONAL: Final = frozenset({S.INSTALLED_NOT_COMMISSIONED, S.COMMISSIONED, S.RECOVERED})
#: SR prefix -> statuses its target (and a device it names) may have; longest prefix wins
ALLOWED: Final[dict[str, frozenset[DeviceStatus]]] = {
    "": OPERATIONAL,
    "11.": OPERATIONAL | {S.SUSPENDED},  # firmware: how a Suspended device recovers
    "8.7.": OPERATIONAL | {S.WHITELISTED},  # joining a whitelisted device installs it
    "8.3": OPERATIONAL | {S.WHITELISTED, S.SUSPENDED},
    "8.2": frozenset(S),
    "8.4": frozenset(S),
    "8.14.": OPERATIONAL | {S.PENDING, S.WHITELISTED},  # a CH being installed or returned
    "12.": frozenset(S),
}
#: SR 8.14.x: the CH status it sets and the statuses it sets it from
CH_STATUS_UPDATE: Final[dict[str, tuple[DeviceStatus, frozenset[DeviceStatus]]]] = {
    "8.14.1": (S.COMMISSIONED, frozenset({S.PENDING, S.WHITELISTED,
                                          S.INSTALLED_NOT_COMMISSIONED})),
    "8.14.2": (S.INSTALLED_NOT_COMMISSIONED, frozenset({S.PENDING, S.WHITELISTED})),
    "8.14.3": (S.WITHDRAWN, frozenset(OPERATIONAL | {S.PENDING, S.WHITELISTED})),
    "8.14.4": (S.WITHDRAWN, frozenset(OPERATIONAL | {S.PENDING, S.WHITELISTED})),
}
#: 8.11 Add may name a device not yet installed
HAN_LOG_ADD: Final = OPERATIONAL | {S.PENDING, S.WHITELISTED}
#: SRs whose named devices may have any status: an unjoin or a HAN log removal may follow
#: the decommission (seed 000, Decommission pack: "PPMID/IHD unjoin process must be
#: consider after decommission")
NAMED_ANY: Final = ("8.8.", "8.11:Remove")
NOT_DECOMMISSIONABLE: Final = frozenset({"GPF", "IHD", "CAD"})
JOINABLE: Final = frozenset({"PPMID", "IHD", "HCALCS"})
_NAMED = ("DeviceID", "OtherDeviceID")


@dataclass(frozen=True, slots=True)
class InventoryCodes:
    """The DUIS Response Codes inventory refusals use (DUIS 5.4 section 3.5 table).

    Attributes:
        device_status: "Invalid Device Status: Device SMI Status incompatible with
            Service Reference".
        device_type: "Invalid Service Request / device type combination".
    """

    device_status: str = "E5"
    device_type: str = "E11"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One life-cycle step of a device: ``ts_ns`` (ns since the epoch), ``old`` -> ``new``
    (``None``: not in the inventory), ``sr`` (ServiceReferenceVariant, or ``install`` /
    ``factory-reset``) and the RequestID that caused it."""

    ts_ns: int
    old: DeviceStatus | None
    new: DeviceStatus | None
    sr: str
    request_id: str = ""


@dataclass
class InventoryDevice:
    """One SMI entry.

    Attributes:
        device_id: EUI-64.
        device_type: DUIS DeviceType (``ESME``, ``GSME``, ``CHF``, ``GPF``, ``PPMID``,
            ``IHD``, ``HCALCS``).
        status: its DUIS device status now.
        initial: the status a factory reset returns it to (the rig file's view:
            ``Commissioned`` installed, ``Pending`` spare).
        manufacturer, model: DeviceManufacturer / DeviceModel (at most 30 characters).
        hub: a CHF's GPF and a GPF's CHF (one Communications Hub), else ``None``.
        history: every change, oldest first.
        consumed: a running variant consumes it (:meth:`Inventory.consume`) and has not
            factory reset it yet.
    """

    device_id: Eui64
    device_type: str
    status: DeviceStatus
    initial: DeviceStatus
    manufacturer: str = ""
    model: str = ""
    hub: Eui64 | None = None
    history: list[StatusChange] = field(default_factory=list)
    consumed: bool = False

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the file's form)."""
        return {"device_id": self.device_id.duis, "device_type": self.device_type,
                "status": self.status.value, "initial": self.initial.value,
                "manufacturer": self.manufacturer, "model": self.model,
                "hub": None if self.hub is None else self.hub.duis,
                "consumed": self.consumed,
                "history": [{"ts_ns": c.ts_ns, "old": c.old, "new": c.new, "sr": c.sr,
                             "request_id": c.request_id} for c in self.history]}


Listener = Callable[[InventoryDevice, DeviceStatus | None], None]
"""``(device, old status)``: called after each change (the rig runtime installs a spare on
its emulated HAN once whitelisted)."""


class Inventory:
    """The emulated DCC's SMI (see the module docstring).

    Args:
        devices: the rig's devices.
        path: the JSON file to persist to (loaded when it exists), or ``None``.
        codes: the refusal codes.

    Raises:
        BadInputError: ``path`` exists but is not an inventory file (names the file and
            the entry at fault).
    """

    def __init__(self, devices: Iterable[InventoryDevice], *, path: Path | None = None,
                 codes: InventoryCodes | None = None) -> None:
        self.codes = codes or InventoryCodes()
        self.path = path
        self.devices: dict[Eui64, InventoryDevice] = {d.device_id: d for d in devices}
        self.listeners: list[Listener] = []
        if path is not None and path.exists():
            self._load(path)

    def __iter__(self) -> Iterator[InventoryDevice]:
        return iter(self.devices.values())

    def get(self, device: Eui64) -> InventoryDevice | None:
        """The SMI entry of ``device``, or ``None``."""
        return self.devices.get(device)

    def status(self, device: Eui64) -> DeviceStatus | None:
        """``device``'s status, or ``None`` when not in the inventory."""
        entry = self.devices.get(device)
        return None if entry is None else entry.status

    # -- persistence ---------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            rows = data["devices"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BadInputError(f"{path}: not an emulated DCC inventory: {error}",
                                hint="remove the file to start from the rig file") from None
        for index, row in enumerate(rows):
            try:
                device = Eui64.parse(row["device_id"])
                entry = self.devices.get(device)
                if entry is None:
                    continue  # no longer on the rig
                entry.status = DeviceStatus(row["status"])
                entry.consumed = bool(row.get("consumed", False))
                entry.history = [StatusChange(
                    int(c["ts_ns"]), None if c["old"] is None else DeviceStatus(c["old"]),
                    None if c["new"] is None else DeviceStatus(c["new"]), str(c["sr"]),
                    str(c.get("request_id", ""))) for c in row.get("history", [])]
            except (KeyError, TypeError, ValueError) as error:
                raise BadInputError(f"{path}: devices[{index}]: {error}",
                                    hint="remove the file to start from the rig file") from None
        interrupted = [e for e in self if e.consumed]
        if interrupted:
            log.warning("emulated DCC inventory %s: a run stopped before the factory reset "
                        "of %s: reset now", path,
                        ", ".join(f"{e.device_id.duis} ({e.status})" for e in interrupted))
            for entry in interrupted:
                self.factory_reset(entry.device_id)
        stuck = [f"{e.device_id.duis} {e.status}" for e in self if e.status != e.initial]
        if stuck:
            log.warning("emulated DCC inventory %s: devices not in their rig-file status: "
                        "%s (remove the file to start from the rig file)", path,
                        ", ".join(stuck))

    def save(self) -> None:
        """Write the file (atomically); no-op without a path. Never raises: a failure is
        logged (the inventory in memory stays right)."""
        if self.path is None:
            return
        data = {"devices": [entry.as_json() for entry in self]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.path)
        except OSError as error:
            log.error("emulated DCC inventory: cannot write %s: %s", self.path, error)

    # -- changes -------------------------------------------------------------------------

    def set_status(self, device: Eui64, new: DeviceStatus, sr: str, request_id: str = "",
                   *, ts_ns: int | None = None) -> bool:
        """Move ``device`` to ``new`` (recorded, saved, listeners told); whether it changed
        (an unknown device or the same status: ``False``)."""
        entry = self.devices.get(device)
        if entry is None or entry.status == new:
            return False
        old = entry.status
        entry.status = new
        entry.history.append(StatusChange(time.time_ns() if ts_ns is None else ts_ns,
                                          old, new, sr, request_id))
        self.save()
        for listener in list(self.listeners):
            listener(entry, old)
        return True

    def factory_reset(self, device: Eui64) -> bool:
        """Put ``device`` (and, for a CH, its other half) back in its initial status (the
        factory reset before re-use, seed 000 Decommission pack); whether any changed."""
        entry = self.devices.get(device)
        if entry is None:
            return False
        entry.consumed = False
        changed = self.set_status(device, entry.initial, "factory-reset")
        other = self.devices.get(entry.hub) if entry.hub is not None else None
        if other is not None:
            other.consumed = False
            changed |= self.set_status(other.device_id, other.initial, "factory-reset")
        self.save()
        return changed

    def install(self, device: Eui64) -> bool:
        """A spare CHF / GPF (initial status ``Pending``) fitted and connected to the SM
        WAN: ``Commissioned`` (seed 000 Comms Hub Replacement key assumption); other
        spares stay ``Pending`` until SR 8.11 whitelists them. Whether it changed."""
        entry = self.devices.get(device)
        if entry is None or entry.device_type not in ("CHF", "GPF") \
                or entry.initial != S.PENDING or entry.status != S.PENDING:
            return False
        return self.set_status(device, S.COMMISSIONED, "install")

    def consume(self, devices: Iterable[Eui64]) -> None:
        """A variant starts consuming ``devices``: marked (and saved) until their
        :meth:`factory_reset`, so a run killed half-way is reset on the next load."""
        for device in devices:
            entry = self.devices.get(device)
            if entry is not None:
                entry.consumed = True
        self.save()

    # -- Service Requests ----------------------------------------------------------------

    def refusal(self, request: DuisRequest) -> tuple[str, str] | None:
        """Why the SMI forbids ``request``: ``(DUIS Response Code, reason)``, or ``None``.

        Checks the target of a device SR and every device the body names
        (``DeviceID``, ``OtherDeviceID``) that is in the inventory. Changes nothing.
        """
        variant = request.service_reference_variant
        allowed = _allowed(variant)
        named = _named_devices(request)
        if request.command_variant != 8:
            target = request.request_id.target
            problem = self._status_problem(target, allowed, variant, "target")
            if problem is not None:
                return problem
        if variant == "8.3":
            for device in named.get("DeviceID", []):
                entry = self.devices.get(device)
                if entry is not None and entry.device_type in NOT_DECOMMISSIONABLE:
                    return (self.codes.device_type,
                            f"SR 8.3: {device.duis} is a {entry.device_type}, which cannot be "
                            "decommissioned (only with its CHF)")
        key = variant
        if variant == "8.11":
            allowed = HAN_LOG_ADD
            key = f"8.11:{_text(request, 'RequestType')}"
        if key.startswith(NAMED_ANY):
            return None
        for devices in named.values():
            for device in devices:
                problem = self._status_problem(device, allowed, variant, "named device")
                if problem is not None:
                    return problem
        return None

    def _status_problem(self, device: Eui64, allowed: frozenset[DeviceStatus], variant: str,
                        what: str) -> tuple[str, str] | None:
        status = self.status(device)
        if status is None or status in allowed:
            return None
        return (self.codes.device_status,
                f"SR {variant}: {what} {device.duis} is {status} in the Smart Metering "
                f"Inventory (allowed: {', '.join(sorted(allowed))})")

    def accepted(self, request: DuisRequest) -> None:
        """A non-device SR was accepted: apply its SMI change now (8.3, 8.4, 8.14.x,
        12.2)."""
        variant = request.service_reference_variant
        rid = str(request.request_id)
        named = _named_devices(request).get("DeviceID", [])
        if variant == "12.2":
            self._pre_notified(request, named, rid)
            return
        for device in named:
            entry = self.devices.get(device)
            if entry is None:
                continue
            if variant in CH_STATUS_UPDATE:
                new, old = CH_STATUS_UPDATE[variant]
                for half in (device, entry.hub):
                    if half is not None and self.status(half) in old:
                        self.set_status(half, new, variant, rid)
            elif variant == "8.3":
                self.set_status(device, S.DECOMMISSIONED, variant, rid)
                if entry.device_type == "CHF" and entry.hub is not None:
                    self.set_status(entry.hub, S.DECOMMISSIONED, variant, rid)
            elif variant == "8.4":
                self._update_inventory(request, entry, rid)

    def _pre_notified(self, request: DuisRequest, named: list[Eui64], rid: str) -> None:
        """SR 12.2 Device Pre-notification: an unknown device joins the SMI ``Pending``."""
        kind = _text(request, "DeviceType")
        for device in named:
            if device in self.devices or not kind:
                continue
            entry = InventoryDevice(device, kind, S.PENDING, S.PENDING,
                                    manufacturer=_text(request, "DeviceManufacturer"),
                                    model=_text(request, "DeviceModel"))
            entry.history.append(StatusChange(time.time_ns(), None, S.PENDING, "12.2", rid))
            self.devices[device] = entry
            self.save()

    def _update_inventory(self, request: DuisRequest, entry: InventoryDevice,
                          rid: str) -> None:
        for name in ("UpdateDeviceStatusExceptCH", "UpdateDeviceStatusCH"):
            text = _text(request, name)
            if text:
                self.set_status(entry.device_id, DeviceStatus(text), "8.4", rid)
                return
        if request.body.find(f".//{{{SR_NS}}}DeleteDevice") is not None and entry.status in (
                S.PENDING, S.DECOMMISSIONED, S.WITHDRAWN):
            old = entry.status
            del self.devices[entry.device_id]
            entry.history.append(StatusChange(time.time_ns(), old, None, "8.4", rid))
            self.save()

    def answered(self, request: DuisRequest) -> None:
        """A device SR got its device's response: apply its SMI change (8.11, 8.7.x,
        8.1.1)."""
        variant = request.service_reference_variant
        rid = str(request.request_id)
        named = _named_devices(request)
        if variant == "8.11":
            kind = _text(request, "RequestType")
            for device in named.get("DeviceID", []):
                if kind == "Add" and self.status(device) == S.PENDING:
                    self.set_status(device, S.WHITELISTED, variant, rid)
                elif kind == "Remove" and self.status(device) == S.WHITELISTED:
                    self.set_status(device, S.PENDING, variant, rid)
        elif variant.startswith("8.7."):
            for device in [request.request_id.target, *named.get("OtherDeviceID", [])]:
                entry = self.devices.get(device)
                if entry is not None and entry.device_type in JOINABLE and entry.status in (
                        S.WHITELISTED, S.INSTALLED_NOT_COMMISSIONED):
                    self.set_status(device, S.COMMISSIONED, variant, rid)
        elif variant == "8.1.1":
            target = request.request_id.target
            if self.status(target) == S.INSTALLED_NOT_COMMISSIONED:
                self.set_status(target, S.COMMISSIONED, variant, rid)

    # -- SR 8.2 Read Inventory -----------------------------------------------------------

    def read_response(self, acknowledgement: etree._Element, request: DuisRequest) -> None:
        """Add the ``DSPInventory`` SR 8.2 answers with (DUIS Schema V5.4
        ``sr:DSPInventory``, at most 17 ``Device``) to ``acknowledgement``'s
        ``ResponseMessage``: the device ``DeviceID`` names, else every device."""
        message = acknowledgement.find(f".//{{{SR_NS}}}ResponseMessage")
        if message is None:
            return
        wanted = _named_devices(request).get("DeviceID")
        entries = [self.devices[d] for d in wanted or [] if d in self.devices] if wanted \
            else list(self)
        if not entries:
            return
        inventory = etree.SubElement(message, f"{{{SR_NS}}}DSPInventory")
        for entry in entries[:17]:
            device = etree.SubElement(inventory, f"{{{SR_NS}}}Device")
            for name, value in (("DeviceID", entry.device_id.duis),
                                ("DeviceType", entry.device_type),
                                ("DeviceStatus", entry.status.value),
                                ("DeviceManufacturer", entry.manufacturer[:30]),
                                ("DeviceModel", entry.model[:30])):
                etree.SubElement(device, f"{{{SR_NS}}}{name}").text = value


def _allowed(variant: str) -> frozenset[DeviceStatus]:
    best = ""
    for prefix in ALLOWED:
        if (variant == prefix or (prefix.endswith(".") and variant.startswith(prefix))) \
                and len(prefix) > len(best):
            best = prefix
    return ALLOWED[best]


def _named_devices(request: DuisRequest) -> dict[str, list[Eui64]]:
    """``DeviceID`` / ``OtherDeviceID`` EUI-64s anywhere in the body (unparseable ones are
    left to the schema check)."""
    out: dict[str, list[Eui64]] = {}
    for name in _NAMED:
        for node in request.body.iter(f"{{{SR_NS}}}{name}"):
            try:
                out.setdefault(name, []).append(Eui64.parse((node.text or "").strip()))
            except (BadInputError, ValueError):
                continue
    return out


def _text(request: DuisRequest, name: str) -> str:
    node = request.body.find(f".//{{{SR_NS}}}{name}")
    return "" if node is None or node.text is None else node.text.strip()
