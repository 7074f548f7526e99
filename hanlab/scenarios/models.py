"""The scenario library's data model (pydantic): scenarios, variants, steps.

One YAML file per business scenario of seed ``000`` (DIT business forum packs: 18 business
scenarios, 80 variants as Service Request sequences) and the Change of Supplier process of
seed ``001``. A variant is a list of steps, written in the file or named from the
scenario's ``sequences:`` (the seed: "same SR's sequence can be utilised by multiple business
scenarios"). Step kinds:

* ``sr``: send one Service Request (DUIS 5.4 ServiceReferenceVariant, e.g. ``8.1.1``) to the
  device in a role (``ESME``, ``GSME#2``, an alias such as ``METER``), as the User of a
  role (``IS``, ``GS``), with body parameters; expected outcome: the final ResponseCode;
* ``wait_alert``: wait for a Device Alert (``0x8F69``) or DCC Alert (``N24``) with a timeout;
  ``stimulus`` names the field action that causes it (an emulated lab performs it);
* ``pause_s``: wait a while;
* ``external``: a step outside DUIS (e.g. "Retrieve Certificate From SMKI"): recorded only;
* ``ch_firmware``: the DCC deploys a Communications Hub firmware image to the rig's CH
  (SECMP0024: CH firmware is the DCC's own operation, not a User's SR) and the step waits
  for every device to come back (issue 12; :class:`ChFirmwareStep`).

Change of Supplier has two Users per role (seed 001, seed 000 "Two service user
simulators"): ``supplier: old | new`` on a step or variant picks the old or new supplier of
the role; a ``wait_alert`` naming ``user`` / ``supplier`` passes only on an alert posted to
that User (N27 / N17 go to the old supplier). A variant with ``wan: absent`` ('no WAN'
installation, seed 000) runs with the rig's SM WAN marked absent.

Any step may be ``optional`` (the seed's "Optional – If Change in Schedule"): it runs, its
outcome is recorded, but it never fails the variant.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from hanlab.duis.catalogue import UnknownServiceRequestError, sr
from hanlab.firmware.ch_image import ChImage
from hanlab.scenarios.checks import validate_expect_response

ROLE_REF_PATTERN = r"^[A-Z][A-Z0-9_]*(#[1-9])?$"
"""A device role reference: a role (``ESME``), the n-th device of a role (``ESME#2``), an
alias defined by the variant (``METER``), or ``DCC`` (non-device SRs)."""

CONCRETE_ROLES = frozenset({"CHF", "GPF", "ESME", "GSME", "IHD", "PPMID", "HCALCS", "HHT",
                            "DCC"})
"""Device roles of a rig (``hanlab.config.DeviceRole``) plus ``DCC`` (the DCC itself)."""

USER_ROLES = ("IS", "GS", "ED", "GT", "RSA", "OU")
"""DUIS User roles a step may be sent as (DUIS 5.4 section 2)."""

UserRole = Literal["IS", "GS", "ED", "GT", "RSA", "OU"]
Supplier = Literal["old", "new"]
RoleRef = Annotated[str, Field(pattern=ROLE_REF_PATTERN)]
_ALERT_CODE = re.compile(r"^(0x[0-9A-Fa-f]{4}|N[0-9]{1,3})$")
_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*(?:#[1-9])?)\}")


def alert_code_text(code: int | str) -> str:
    """An alert code as written in the library: ``0x8F69`` (Device) or ``N24`` (DCC)."""
    return f"0x{code:04X}" if isinstance(code, int) else code.strip()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StepBase(_Model):
    comment: str = ""
    optional: bool = False


class SrStep(_StepBase):
    """Send one Service Request (seed 000: a row "SR | Description | Comment").

    Attributes:
        sr: ServiceReferenceVariant, e.g. ``8.1.1`` (must be in the DUIS 5.4 catalogue).
        target: the role of the target device; non-device SRs go to ``DCC`` (default).
        user: the User role sending it; default: the variant's ``user_role``.
        supplier: ``old`` / ``new``: which supplier of that role sends it (Change of
            Supplier); default: the variant's ``supplier``, else the role's first User.
        command_variant: DUIS CommandVariant; default: 8 non-device, 4 then 5 Critical, 1.
            2 / 6 (local only) and 3 / 7 (local and WAN) are Local Command Delivery (seed
            000 "Command Variant for LCD"; 6 / 7 for Critical SRs).
        params: body content (child name -> value); ``"{ROLE}"`` in a string is replaced
            by that role's EUI-64 in DUIS form.
        expect: final ResponseCodes that count as success (default ``I0``).
        expect_response: what the response must report, field -> expected value (see
            :mod:`hanlab.scenarios.checks`), e.g. ``{firmware_version: catalogue}``.
        response_timeout_s: wait for the asynchronous response; default the runner's.
    """

    sr: str
    target: RoleRef | None = None
    user: UserRole | None = None
    supplier: Supplier | None = None
    command_variant: int | None = Field(default=None, ge=1, le=8)
    params: dict[str, Any] = Field(default_factory=dict)
    expect: list[str] = Field(default_factory=lambda: ["I0"], min_length=1)
    expect_response: dict[str, str] = Field(default_factory=dict)
    response_timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("sr")
    @classmethod
    def _known_sr(cls, value: str) -> str:
        try:
            return sr(str(value)).service_reference_variant
        except UnknownServiceRequestError as error:
            raise ValueError(error.message) from error

    @model_validator(mode="after")
    def _fits_catalogue(self) -> SrStep:
        entry = sr(self.sr)
        if entry.non_device and self.target not in (None, "DCC"):
            raise ValueError(f"SR {self.sr} is a non-device SR: its target is the DCC "
                             "(name the device in params, e.g. DeviceID: '{ESME}')")
        if not entry.non_device and self.target in (None, "DCC"):
            raise ValueError(f"SR {self.sr} goes to a device: give its target role")
        if self.command_variant is not None and entry.non_device != (self.command_variant == 8):
            raise ValueError(f"CommandVariant {self.command_variant} does not fit "
                             f"SR {self.sr} (non-device: {entry.non_device})")
        if self.command_variant in (6, 7) and not entry.critical:
            raise ValueError(f"CommandVariant {self.command_variant} is for Critical SRs; "
                             f"SR {self.sr} is not Critical: use {self.command_variant - 4}")
        if self.command_variant in (2, 3) and entry.critical:
            raise ValueError(f"SR {self.sr} is Critical: its Local Command Delivery is "
                             f"CommandVariant {self.command_variant + 4}")
        validate_expect_response(self.sr, self.expect_response)
        return self


class WaitAlertStep(_StepBase):
    """Wait for an alert (seed 000: "Wait For Device Alert 0x8F69/N24").

    Attributes:
        wait_alert: alert codes, any of which ends the wait: ``0x8F69`` (Device Alert Code)
            or ``N24`` (DCC Alert Code).
        source: the role of the device the alert must come from (Device Alerts), if any.
        timeout_s: how long to wait.
        fail_on: alert codes that end the wait with a failure (e.g. ``N25``, Update HAN
            Device Log - Failure).
        since: ``step`` (default): alerts that arrived since the previous SR was sent
            (or CH firmware deployed) count; ``variant``: any since the variant started;
            ``now``: only new ones.
        stimulus: the field action that makes the alert happen, as ``ROLE: 0xCODE`` (e.g.
            the installer powering the new CH makes the GSME join: ``GSME: 0x8183``). On a
            real rig the technician does it; an emulated lab makes the device raise it.
        user, supplier: the alert must reach this User (role, default the variant's, and
            ``old`` / ``new`` supplier), e.g. N27 to the old supplier; neither: any User.
    """

    wait_alert: list[str] = Field(min_length=1)
    fail_on: list[str] = Field(default_factory=list)
    source: RoleRef | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    since: Literal["step", "variant", "now"] = "step"
    stimulus: dict[RoleRef, str] | None = None
    user: UserRole | None = None
    supplier: Supplier | None = None

    @field_validator("wait_alert", "fail_on")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        out = []
        for code in codes:
            text = str(code).strip()
            if not _ALERT_CODE.match(text):
                raise ValueError(f"{code!r} is not an alert code (0x8F69 or N24)")
            out.append(text[:2] + text[2:].upper() if text.startswith("0x") else text)
        return out

    @field_validator("stimulus")
    @classmethod
    def _stimulus(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for code in value.values():
            if not re.match(r"^0x[0-9A-Fa-f]{4}$", str(code)):
                raise ValueError(f"stimulus alert {code!r} is not a Device Alert Code")
        return value


class PauseStep(_StepBase):
    """Wait ``pause_s`` seconds (e.g. for a device to settle after a join)."""

    pause_s: float = Field(ge=0)


class ExternalStep(_StepBase):
    """A step outside DUIS (seed 000: "Retrieve Certificate From SMKI", "Trigger TOM
    Commands"): recorded in the results, never executed."""

    external: str = Field(min_length=1)


class ChFirmwareStep(_StepBase):
    """The DCC deploys CH firmware to the rig's CH; wait for its devices to come back.

    Seed 000 DIT.9 ("Communications Hubs being upgraded from v1.0 to v1.1 while 1.2a
    Devices are connected", "v1.1 Communications Hubs being installed and connected to
    1.2a Devices"); SECMP0024 (seeds 002/004): the DCC deploys CH firmware. An emulated
    rig's CH reboots into the image and its devices rejoin
    (:mod:`hanlab.emulator.han.ch_upgrade`); on a real rig the DCC (simulator) operator
    is asked to deploy it (an ``action`` event) and later steps prove the devices work.

    Attributes:
        ch_firmware: the image (version, CHTS version, ZigBee PRO stack, SE version,
            reboot time).
        mode: ``upgrade`` (devices stay joined and rejoin) or ``install`` (a CH installed
            running the image: every device joins afresh).
        connect: roles of devices connected afresh once the CH is back (DIT.9 "a new 1.2a
            Device subsequently being connected").
        timeout_s: host seconds to wait for every device to be back.
    """

    ch_firmware: ChImage
    mode: Literal["upgrade", "install"] = "upgrade"
    connect: list[RoleRef] = Field(default_factory=list)
    timeout_s: float = Field(default=600.0, gt=0)


_STEP_KINDS: tuple[tuple[str, str, type], ...] = (
    ("sr", "sr", SrStep), ("wait_alert", "wait", WaitAlertStep),
    ("pause_s", "pause", PauseStep), ("external", "external", ExternalStep),
    ("ch_firmware", "ch_firmware", ChFirmwareStep))


def step_kind(value: Any) -> str | None:
    """The kind of a step (``sr``, ``wait``, ``pause``, ``external``, ``ch_firmware``),
    given as its model or as the mapping written in a scenario file."""
    for key, kind, cls in _STEP_KINDS:
        if (key in value) if isinstance(value, dict) else type(value) is cls:
            return kind
    return None


Step = Annotated[
    Annotated[SrStep, Tag("sr")] | Annotated[WaitAlertStep, Tag("wait")]
    | Annotated[PauseStep, Tag("pause")] | Annotated[ExternalStep, Tag("external")]
    | Annotated[ChFirmwareStep, Tag("ch_firmware")],
    Discriminator(step_kind, custom_error_type="step_kind",
                  custom_error_message="a step needs one of sr, wait_alert, pause_s, "
                                       "external, ch_firmware"),
]


class Consumed(_Model):
    """A device a variant uses up (seed 000, Decommission Device pack: "After device
    decommission, device must go to the factory reset process to clear logs and
    certificates before device can be re-use"; Comms Hub Replacement: a new CH).

    Attributes:
        role: the device role (``CHF``, ``PPMID``; ``ESME#2`` for an installed one).
        spare: a spare of the rig (a device marked ``spare: true`` in the rig file, not
            installed): the variant installs it. Else the installed device of ``role``,
            which the variant decommissions (SR 8.3).
        alias: the variant's name for it in steps (``NEW_CHF``, ``OLD_PPMID``); required
            for a spare (the n-th spare alias of a role takes the rig's n-th spare).

    The runner refuses a variant whose rig lacks a spare it consumes, before any SR; after
    the variant the consumed devices are factory reset (the rig's ``restore`` hook) so
    the next variant, job or campaign night finds the rig as its file describes it.
    """

    role: RoleRef
    spare: bool = False
    alias: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")] | None = None

    @model_validator(mode="after")
    def _fits(self) -> Consumed:
        base = self.role.split("#")[0]
        if base not in CONCRETE_ROLES or base == "DCC":
            raise ValueError(f"{self.role} is not a device role")
        if self.spare and (self.alias is None or "#" in self.role):
            raise ValueError(f"a spare {self.role} needs an alias (e.g. NEW_{base}) and a "
                             "plain role")
        if self.alias is not None and self.alias in CONCRETE_ROLES:
            raise ValueError(f"alias {self.alias} shadows a device role")
        return self


class Variant(_Model):
    """One business scenario variant (seed 000: the 80 "Business Scenario Variants").

    Attributes:
        id: short name, unique in the scenario (e.g. ``esme-credit``).
        title: the seed's title of the variant.
        user_role: the seed's User Role of the variant (``IS`` / ``GS``).
        roles: aliases used by the steps, e.g. ``{METER: GSME}``.
        sequence: name of a sequence of the scenario's ``sequences:`` (or give ``steps``).
        steps: the steps, when not a named sequence.
        priority: the seed's priority (critical business scenarios: High / Medium).
        supplier: the steps' default supplier (``old`` / ``new``, Change of Supplier).
        wan: ``absent``: the rig's SM WAN is marked absent while the variant runs ('no
            WAN' installation); every device SR then needs Local Command Delivery.
        consumes: the devices it uses up (:class:`Consumed`): spares it installs and
            installed devices it decommissions (every SR 8.3 ``DeviceID`` must be one).
    """

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    title: str
    user_role: UserRole
    roles: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], RoleRef] = Field(
        default_factory=dict)
    sequence: str | None = None
    steps: list[Step] | None = None
    priority: Literal["High", "Medium", "Low"] | None = None
    supplier: Supplier | None = None
    wan: Literal["present", "absent"] = "present"
    consumes: list[Consumed] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> Variant:
        if (self.sequence is None) == (self.steps is None):
            raise ValueError("give either sequence or steps")
        for consumed in self.consumes:
            if consumed.alias is not None and consumed.alias in self.roles:
                raise ValueError(f"alias {consumed.alias} is both in roles and consumes")
        for alias, target in self.roles.items():
            if alias in CONCRETE_ROLES:
                raise ValueError(f"alias {alias} shadows a device role")
            if target.split("#")[0] not in CONCRETE_ROLES:
                raise ValueError(f"alias {alias}: {target} is not a device role")
        return self


    def role_ref(self, ref: str) -> str:
        """The role reference behind ``ref``: an alias of :attr:`roles` or
        :attr:`consumes` resolved (a spare's alias: its plain role), else ``ref``."""
        if "#" in ref:
            return ref
        spare = self.spare_alias(ref)
        if spare is not None:
            return spare[0]
        return self.installed_alias(ref) or self.roles.get(ref, ref)

    def consumed_aliases(self) -> set[str]:
        """The aliases of :attr:`consumes` (``NEW_CHF`` ...)."""
        return {c.alias for c in self.consumes if c.alias is not None}

    def spare_alias(self, ref: str) -> tuple[str, int] | None:
        """``(role, n)`` when ``ref`` is the alias of the variant's n-th (0-based) spare of
        that role, else ``None``."""
        index: dict[str, int] = {}
        for consumed in self.consumes:
            if not consumed.spare:
                continue
            n = index.get(consumed.role, 0)
            index[consumed.role] = n + 1
            if consumed.alias == ref:
                return consumed.role, n
        return None

    def installed_alias(self, ref: str) -> str | None:
        """The role reference a consumed installed device's alias stands for
        (``OLD_CHF`` -> ``CHF``), else ``None``."""
        for consumed in self.consumes:
            if not consumed.spare and consumed.alias == ref:
                return consumed.role
        return None


class AlertInfo(_Model):
    """One row of a seed's alert table (code, type, trigger)."""

    code: str
    type: Literal["Device", "DCC"]
    trigger: str


class Scenario(_Model):
    """One business scenario (seed 000), one YAML file of the library.

    Attributes:
        name: the file's stem, e.g. ``install-and-commission``.
        title: the seed's business scenario name.
        seed: the seed it comes from: ``000`` (DIT business scenarios) or ``001`` (SEC
            Change of Supplier guidance).
        source: where the sequences come from (seed and pack).
        description: free text.
        prerequisites: the seed's pre-requisites, as text.
        alerts: the seed's alert table for the scenario.
        sequences: named step lists shared by variants.
        variants: the variants, in the seed's order.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    title: str
    seed: Literal["000", "001"] = "000"
    source: str
    description: str = ""
    prerequisites: list[str] = Field(default_factory=list)
    alerts: list[AlertInfo] = Field(default_factory=list)
    sequences: dict[str, list[Step]] = Field(default_factory=dict)
    variants: list[Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        seen: set[str] = set()
        for variant in self.variants:
            if variant.id in seen:
                raise ValueError(f"variant {variant.id} appears twice")
            seen.add(variant.id)
            if variant.sequence is not None and variant.sequence not in self.sequences:
                raise ValueError(f"variant {variant.id}: no sequence {variant.sequence!r}")
            aliases = set(variant.roles) | variant.consumed_aliases()
            for step in self.steps_of(variant):
                if (variant.wan == "absent" and isinstance(step, SrStep)
                        and not sr(step.sr).non_device and step.command_variant not in (2, 6)):
                    raise ValueError(f"variant {variant.id} runs with no WAN: SR {step.sr} "
                                     "needs Local Command Delivery only (command_variant 2, "
                                     "or 6 for a Critical SR)")
                for ref in step_role_refs(step):
                    base = ref.split("#")[0]
                    if base not in CONCRETE_ROLES and base not in aliases:
                        raise ValueError(f"variant {variant.id}: role {ref} is neither a "
                                         "device role nor an alias of the variant")
                self._decommission_declared(variant, step)
        return self

    @staticmethod
    def _decommission_declared(variant: Variant, step: Step) -> None:
        """An SR 8.3 (Decommission Device) must name a device the variant consumes."""
        if not (isinstance(step, SrStep) and step.sr == "8.3"):
            return
        consumed = {ref for c in variant.consumes for ref in (c.alias, c.role) if ref}
        for ref in placeholders(step.params):
            named = variant.roles.get(ref, ref)
            if ref not in consumed and named not in consumed:
                raise ValueError(f"variant {variant.id}: SR 8.3 decommissions {ref} but "
                                 "consumes: does not declare it (seed 000: a decommissioned "
                                 "device needs a factory reset before re-use)")

    def steps_of(self, variant: Variant) -> list[Step]:
        """The steps of ``variant`` (its own, or its named sequence's)."""
        if variant.steps is not None:
            return list(variant.steps)
        return list(self.sequences[variant.sequence or ""])

    def variant(self, variant_id: str) -> Variant:
        """The variant ``variant_id``.

        Raises:
            KeyError: no such variant.
        """
        for variant in self.variants:
            if variant.id == variant_id:
                return variant
        raise KeyError(variant_id)


def step_role_refs(step: Step) -> list[str]:
    """Every role reference a step uses (target, source, stimulus, ``{ROLE}`` in params)."""
    refs: list[str] = []
    if isinstance(step, SrStep):
        if step.target is not None:
            refs.append(step.target)
        refs.extend(placeholders(step.params))
    elif isinstance(step, WaitAlertStep):
        if step.source is not None:
            refs.append(step.source)
        refs.extend((step.stimulus or {}).keys())
    elif isinstance(step, ChFirmwareStep):
        refs.extend(step.connect)
    return refs


def placeholders(value: Any) -> list[str]:
    """Every ``{ROLE}`` placeholder in ``value`` (strings, dicts, lists, recursively)."""
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in placeholders(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in placeholders(item)]
    return []


def substitute(value: Any, eui_of: dict[str, str]) -> Any:
    """``value`` with every ``{ROLE}`` replaced by ``eui_of[ROLE]`` (recursively)."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: eui_of[m.group(1)], value)
    if isinstance(value, dict):
        return {key: substitute(item, eui_of) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, eui_of) for item in value]
    return value
