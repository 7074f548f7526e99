"""The records of a Communications Hub firmware roll-out (SECMP0024, seed 004).

Every date is a timezone-aware UTC :class:`datetime.datetime` (``*_at``); JSON carries it as
ISO 8601 with ``Z``. CH GUIDs are EUI-64s in DUIS form (``00-DB-12-34-56-78-90-A0``).
Supplier Users are named by their User ID (an EUI-64 in DUIS form).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Final, TypeVar

from hanlab.errors import BadInputError

_E = TypeVar("_E", bound=enum.StrEnum)

SEED: Final = "SECMP0024 business requirements v1.0 (seed 004)"


class Severity(enum.StrEnum):
    """Severity of an upgrade as notified (SECMP0024 section 2.2, Requirement 1)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Priority(enum.StrEnum):
    """Priority of an upgrade as notified (SECMP0024 section 2.2, Requirement 1)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class SupplierRole(enum.StrEnum):
    """Which Supplier of a CH a User is (SECMP0024 section 2.2: "Import and/or Gas")."""

    IMPORT = "import"
    GAS = "gas"
    IMPORT_AND_GAS = "import+gas"


class ChStatus(enum.StrEnum):
    """Where one CH is in a roll-out (SECMP0024 section 2.3 progress, section 2.6 status).

    ``eligible``: notified, no deployment yet; ``deploying``: the image was sent to the CH
    (deployment "in flight"); ``activated``: the DCC received confirmation of successful
    activation (the SMI is updated); ``failed``: deployment or activation failed (a reason
    is kept); ``cancelled``: the roll-out was stopped before this CH was deployed.
    """

    ELIGIBLE = "eligible"
    DEPLOYING = "deploying"
    ACTIVATED = "activated"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RolloutState(enum.StrEnum):
    """The roll-out as the DCC runs it (SECMP0024 section 2.7, Requirement 6).

    ``notified`` -> ``pilot`` (pilot deployment started) -> ``safe_launch`` (pilot ended)
    -> ``complete``; ``suspended`` (the DCC halted at once on an emergency stop, pending
    review), ``paused`` and ``stopped`` come from the DCC's decision; ``revoked`` from the
    DCC revoking the notification (section 2.2).
    """

    NOTIFIED = "notified"
    PILOT = "pilot"
    SAFE_LAUNCH = "safe_launch"
    SUSPENDED = "suspended"
    PAUSED = "paused"
    STOPPED = "stopped"
    REVOKED = "revoked"
    COMPLETE = "complete"


class Decision(enum.StrEnum):
    """The outcomes of the DCC's review of an incident (SECMP0024 section 2.7)."""

    PROCEED = "proceed"
    PAUSE = "pause"
    DELAY_END = "delay_end"
    STOP = "stop"


def utc(value: dt.datetime, what: str = "date") -> dt.datetime:
    """``value`` as an aware UTC datetime.

    Raises:
        BadInputError: ``value`` is naive (no timezone), naming ``what``.
    """
    if value.tzinfo is None:
        raise BadInputError(f"{what}: {value.isoformat()} has no timezone (write e.g. "
                            "2027-01-31T02:00:00Z)")
    return value.astimezone(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with ``Z`` (``None`` stays ``None``)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: object, what: str) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 text.

    Raises:
        BadInputError: ``text`` is not an ISO 8601 date-time with a timezone, naming ``what``.
    """
    if not isinstance(text, str) or len(text) > 40:
        raise BadInputError(f"{what}: expected an ISO 8601 date-time string")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"{what}: {text!r} is not an ISO 8601 date-time") from None
    return utc(value, what)


@dataclass(frozen=True, slots=True)
class ChRecord:
    """One Communications Hub of the Smart Metering Inventory, as the roll-out sees it.

    Attributes:
        guid: the CH GUID (EUI-64, DUIS form).
        device_model: the CH Device Model as on the CPL.
        firmware_version: the CH's current firmware version (CPL form, e.g. ``"4.2.1"``).
        import_supplier: User ID of the Import Supplier, or ``None``.
        gas_supplier: User ID of the Gas Supplier, or ``None``.
        region: the CSP region (``north``, ``central``, ``south``), for pilot business rules.
    """

    guid: str
    device_model: str
    firmware_version: str
    import_supplier: str | None
    gas_supplier: str | None
    region: str = "central"

    @property
    def split(self) -> bool:
        """True when the Import and Gas Suppliers are separate Parties (section 2.4)."""
        return (self.import_supplier is not None and self.gas_supplier is not None
                and self.import_supplier != self.gas_supplier)

    @property
    def suppliers(self) -> tuple[str, ...]:
        """The responsible Supplier Users, each once (section 2.2)."""
        return tuple(dict.fromkeys(s for s in (self.import_supplier, self.gas_supplier)
                                   if s is not None))

    def role_of(self, user: str) -> SupplierRole | None:
        """Whether ``user`` is this CH's Import and/or Gas Supplier (section 2.2)."""
        is_import, is_gas = self.import_supplier == user, self.gas_supplier == user
        if is_import and is_gas:
            return SupplierRole.IMPORT_AND_GAS
        if is_import:
            return SupplierRole.IMPORT
        return SupplierRole.GAS if is_gas else None


@dataclass(frozen=True, slots=True)
class Notification:
    """The DCC's notice that a CH firmware image is available (SECMP0024 Requirement 1,
    section 2.2).

    Attributes:
        image_id: the roll-out's identifier.
        device_model, firmware_version: the CH Device Model and firmware version in
            accordance with the CPL entry.
        from_versions: the current firmware versions the image applies to (the targeted
            CH Device Model and firmware version of section 2.2); empty: any other version.
        release_note: link or reference to the firmware Release Note.
        severity, priority: of the upgrade.
        notified_at: the date of notification of availability.
        automatic_at: the date the DCC deploys automatically (six months after
            notification by default; movable by the DCC).
    """

    image_id: str
    device_model: str
    firmware_version: str
    release_note: str
    severity: Severity
    priority: Priority
    notified_at: dt.datetime
    automatic_at: dt.datetime
    from_versions: tuple[str, ...] = ()

    def applies_to(self, ch: ChRecord) -> bool:
        """True when ``ch`` is eligible: the targeted model, not yet on this version, on one
        of :attr:`from_versions` if any (sections 2.2 and 2.3)."""
        return (ch.device_model == self.device_model
                and ch.firmware_version != self.firmware_version
                and (not self.from_versions or ch.firmware_version in self.from_versions))


@dataclass(frozen=True, slots=True)
class Instruction:
    """A Supplier's instruction to activate early (SECMP0024 Requirement 3, section 2.4).

    Attributes:
        supplier: the instructing Supplier User.
        guids: the CH GUIDs it covers.
        activation_at: the time asked for (earlier than the automatic one).
        received_at: when the DCC received it.
        scope: ``pilot`` or ``safe_launch``.
    """

    supplier: str
    guids: tuple[str, ...]
    activation_at: dt.datetime
    received_at: dt.datetime
    scope: str


@dataclass(slots=True)
class ChProgress:
    """The progress of one CH (SECMP0024 section 2.3: success/fail per device, reason).

    Attributes:
        status: see :class:`ChStatus`.
        reason: the failure reason and commentary, or ``""``.
        deployed_at: when the DCC sent the image, or ``None``.
        activation_at: the activation time the deployment was sent for.
    """

    status: ChStatus = ChStatus.ELIGIBLE
    reason: str = ""
    deployed_at: dt.datetime | None = None
    activation_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class DeployOrder:
    """What the portal's deployment asks of the HAN side: "deploy image X to CH G, to
    activate at T" (the hook the lab wires to its rigs; SECMP0024 section 2.4 "the DCC
    shall distribute the CH firmware update to the specified CH GUIDs").

    Attributes:
        image_id, device_model, firmware_version: the image.
        guid: the CH GUID.
        activation_at: the activation time.
        group: ``pilot`` or ``safe_launch``.
    """

    image_id: str
    device_model: str
    firmware_version: str
    guid: str
    activation_at: dt.datetime
    group: str


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident a Supplier raised (SECMP0024 Requirement 6, section 2.7); every one is
    marked high priority.

    Attributes:
        incident_id: ``INC-<n>``.
        supplier: the raising Supplier User.
        image_id: the roll-out it is about.
        description: what the Supplier saw on the HAN.
        emergency_stop: the Supplier requests an emergency stop to deployments.
        raised_at: when.
        priority: always ``high``.
    """

    incident_id: str
    supplier: str
    image_id: str
    description: str
    emergency_stop: bool
    raised_at: dt.datetime
    priority: Priority = Priority.HIGH


@dataclass(frozen=True, slots=True)
class Notice:
    """One message the DCC sends a User (read by the User's systems, e.g. a CRM, through
    the portal's machine-to-machine API: SECMP0024 section 3.2).

    Attributes:
        seq: increasing per portal; a User asks for the notices after the last it saw.
        kind: ``available``, ``revoked``, ``date_moved``, ``instruction_received``,
            ``second_supplier``, ``validation_failed``, ``pilot_started``, ``progress``,
            ``pilot_ended``, ``activated``, ``incident``, ``decision``.
        image_id: the roll-out.
        at: when it was sent.
        body: the content (JSON-serialisable).
    """

    seq: int
    kind: str
    image_id: str
    at: dt.datetime
    body: dict[str, object] = field(default_factory=dict)


def parse_enum(cls: type[_E], value: object, what: str) -> _E:
    """The member of ``cls`` named ``value``.

    Raises:
        BadInputError: not one of the names, naming ``what`` and listing them.
    """
    try:
        return cls(str(value))
    except ValueError:
        raise BadInputError(f"{what}: {value!r} is not one of "
                            f"{', '.join(m.value for m in cls)}") from None
