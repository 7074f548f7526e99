"""The scenario runner (issue 5, item 4): a variant's steps, one by one, through the DUIS
client, on a live rig (emulated or real).

It works against the DUIS client API only (:class:`hanlab.duis.client.DuisClient`: Users,
RequestID counters, send -> acknowledgement -> asynchronous response, alerts queue) and a
mapping from device roles to EUI-64s (the rig file's ``devices:``). Per step it records
the outcome: the acknowledgement's and the response's ResponseCode, the alert seen, or a
timeout. A variant passes when every mandatory step got its expected outcome (seed 000:
"business-critical scenarios must achieve 100% pass"); optional steps are recorded and
never fail it. Results go to the run store (:mod:`.store`) and, as ``scenario_step`` and
``scenario_run`` events, to an event bus (MQTT ``hanlab/v1/<lab>/<rig>/<kind>``).

With an exchange source (the live correlator of the rig, :mod:`hanlab.correlate.live`),
each SR step gets its exchange once the variant ends (issue 5: "each SR correlated"): the
match level of its command and response, the band, and the timing segments; they are in
the :class:`StepResult`, and in the run store as one ``"record": "exchange"`` line per SR
step (joined to its ``step`` line by run id, variant, repetition and index).

While it runs, the runner is the one consumer of the client's alerts queue (a tracked
task moves every alert into its own record, which ``wait_alert`` steps search).

Users: a step is sent by the User of its role (``user:``, default the variant's
``user_role``) and, for a Change of Supplier, side (``supplier: old | new``, default the
variant's); a wait step naming a User or supplier passes only on an alert posted to that
User's receive path (N27 / N17 reach the old supplier, seed 001).

Local Command Delivery (seed 000, 'no WAN' installation): when the DCC returns a command
for local delivery (CommandVariants 2, 3, 6, 7) the runner has the rig's HHT deliver it
(:class:`LocalDelivery`) and the step passes only if the device answered; an SR 8.13 step
with no ``DeviceGBCSResponse`` returns the latest local SR's device response (its first
8.13), then the alerts the HHT kept since that SR (the next ones). A variant with
``wan: absent`` runs with the rig's SM WAN marked absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from base64 import b64encode
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from hanlab.config.models import RigConfig
from hanlab.correlate.exchange import Exchange
from hanlab.duis.catalogue import sr
from hanlab.duis.client import (
    DuisClient,
    DuisClientError,
    DuisExchange,
    DuisTimeoutError,
    ReceivedDocument,
)
from hanlab.duis.precommand import PreCommandMismatchError
from hanlab.emulator.dcc.commands import DCC_ACCESS_CONTROL_BROKER
from hanlab.errors import BadInputError, HanlabError
from hanlab.events.bus import BusEvent, EventBus
from hanlab.firmware.ch_image import ChImage
from hanlab.gbcs.eui64 import Eui64
from hanlab.scenarios.bodies import body_element, build_body
from hanlab.scenarios.checks import CatalogueVersions, check_response
from hanlab.scenarios.models import (
    ChFirmwareStep,
    PauseStep,
    Scenario,
    SrStep,
    Step,
    Variant,
    WaitAlertStep,
    alert_code_text,
    placeholders,
    step_kind,
    substitute,
)
from hanlab.scenarios.store import RunStore
from hanlab.scenarios.xsd_bodies import BodyCompleter, completer_for

Status = Literal["passed", "failed", "skipped"]

_LOCAL_ALERT_WAIT_S = 10.0
"""How long an SR 8.13 step waits for an alert at the HHT to return (host seconds)."""
Restore = Callable[[Sequence[Eui64]], Awaitable[None]]
"""``(devices) -> None``: factory reset the devices a variant consumed (spares it installed,
devices it decommissioned) and put the rig back as its file describes it (an emulated rig's
DCC inventory and HAN do it; on a real rig the technician is asked)."""

Stimulus = Callable[[str, Eui64, int], Awaitable[bool]]
"""``(role, device EUI-64, Device Alert Code) -> done``: perform the field action that makes
the device raise the alert (an emulated lab makes the device raise it; on a real rig the
technician does it and the hook may prompt). Returns whether it was done."""


ChFirmwareHook = Callable[[ChImage, str, list[Eui64], float], Awaitable[dict[str, Any]]]
"""``(image, mode, devices to connect, timeout_s) -> upgrade record``: have the DCC deploy
CH firmware to the rig's CH and wait up to ``timeout_s`` host seconds for its devices
(:meth:`hanlab.runtime.duis_side.RigDuis.ch_firmware`). The record (``ChUpgradeRecord
.to_dict()``, or ``{"requested": true}`` on a real rig) lists ``missing`` devices.
Raises :class:`BadInputError` when the upgrade cannot be started."""


class ExchangeSource(Protocol):
    """Where the exchanges of SRs come from (:class:`hanlab.correlate.live.LiveCorrelator`)."""

    async def wait_for(self, request_ids: Iterable[str],
                       timeout_s: float) -> dict[str, Exchange]:
        """The SR exchanges of ``request_ids`` that came within ``timeout_s`` seconds."""
        ...


class LocalDelivery(Protocol):
    """The rig's HHT for Local Command Delivery and its SM WAN switch
    (:class:`hanlab.runtime.duis_side.RigDuis`)."""

    async def deliver_locally(self, target: Eui64, gbcs_command: bytes, *, request_id: str,
                              sr_variant: str, command_variant: int) -> bytes | None:
        """Deliver a command returned for local delivery; the device's response or
        ``None``; raises :class:`~hanlab.errors.HanlabError` when there is no HHT."""
        ...

    async def next_local_alert(self, index: int, timeout_s: float) -> bytes | None:
        """The ``index``-th alert the HHT kept (0-based), waiting up to ``timeout_s``."""
        ...

    @property
    def local_alerts_kept(self) -> int:
        """How many alerts the HHT has kept so far."""
        ...

    def set_wan(self, present: bool) -> bool:
        """Mark the rig's SM WAN present / absent; whether it could be."""
        ...


@dataclass(frozen=True, slots=True)
class SeenAlert:
    """An alert the client received: ``0x8F69`` (Device) or ``N24`` (DCC), from whom, when,
    and the User it was posted to (``None``: the shared receive path)."""

    code: str
    source: Eui64 | None
    ts_ns: int
    recipient: Eui64 | None = None


@dataclass
class StepResult:
    """The outcome of one step.

    Attributes:
        index: 1-based position in the variant.
        kind: ``sr``, ``wait``, ``pause`` or ``external``.
        status: ``passed``, ``failed`` or ``skipped`` (an optional step whose role the rig
            lacks, or not run).
        optional: the step was optional (never fails the variant).
        sr_variant, target_role, target_eui64, user_role, request_id, command_variant:
            what was sent (SR steps).
        user_eui64: the User that sent the SR, or that a wait step's alert had to reach.
        local_delivery: for a command returned for local delivery, ``delivered`` (the
            device answered the HHT), ``no answer``, ``not delivered`` (no HHT) or ``not
            needed`` (CommandVariant 3 / 7 answered over the WAN: the HHT's copy would be a
            replay of the same Originator Counter).
        ack_code: the (last) acknowledgement's ResponseCode (``I99``, ``I0``, ``E…``).
        response_code: the asynchronous response's ResponseCode, if one came.
        outcome: the final code compared with ``expect``: the response's code, the
            acknowledgement's for non-device SRs and refusals, ``timeout``, ``error``; for a
            wait, the alert code seen or ``timeout``.
        alert_code, alert_source: the alert that ended a wait.
        stimulus: the stimulus performed for a wait, e.g. ``GSME: 0x8183``.
        started_ns, ended_ns: wall clock, ns since the UNIX epoch.
        detail: free text (why it failed or was skipped, the step's comment).
        match_level, command_level, response_level: the SR's exchange's levels
            (``exact``, ``structural``, ``address_time``, ``none``), ``None`` without an
            exchange source or when no exchange came.
        band: where the command (else the response) went over the HAN.
        segments_ns: the exchange's timing segments in ns (``end_to_end``,
            ``downstream``, ``han_command``, ``turnaround``, ``han_response``,
            ``upstream``; :meth:`Exchange.segments_ns`), on the lab's clock.
        ch_upgrade: a ``ch_firmware`` step's upgrade record (the image, the reboot, each
            device's rejoin: :class:`hanlab.emulator.han.ch_upgrade.ChUpgradeRecord`).
    """

    index: int
    kind: str
    status: Status
    optional: bool
    comment: str = ""
    sr_variant: str | None = None
    sr_name: str | None = None
    target_role: str | None = None
    target_eui64: str | None = None
    user_role: str | None = None
    user_eui64: str | None = None
    request_id: str | None = None
    command_variant: int | None = None
    ack_code: str | None = None
    response_code: str | None = None
    outcome: str | None = None
    alert_code: str | None = None
    alert_source: str | None = None
    stimulus: str | None = None
    started_ns: int = 0
    ended_ns: int = 0
    detail: str = ""
    match_level: str | None = None
    command_level: str | None = None
    response_level: str | None = None
    band: str | None = None
    segments_ns: dict[str, int | None] | None = None
    local_delivery: str | None = None
    ch_upgrade: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float:
        """Seconds the step took."""
        return (self.ended_ns - self.started_ns) / 1e9


@dataclass
class VariantResult:
    """One run of one variant: its steps and the verdict.

    Attributes:
        run_id: shared by every variant run of one ``run`` call.
        passed: every mandatory step got its expected outcome.
        srs_sent, srs_answered: SR steps sent, and those that got their expected outcome.
    """

    run_id: str
    scenario: str
    variant: str
    title: str
    rig: str
    repetition: int
    started_ns: int
    ended_ns: int = 0
    passed: bool = False
    steps: list[StepResult] = field(default_factory=list)

    @property
    def srs_sent(self) -> int:
        """SR steps that were sent."""
        return sum(1 for s in self.steps if s.kind == "sr" and s.request_id is not None)

    @property
    def srs_answered(self) -> int:
        """SR steps that got their expected outcome."""
        return sum(1 for s in self.steps if s.kind == "sr" and s.status == "passed")

    @property
    def duration_s(self) -> float:
        """Seconds the variant took."""
        return (self.ended_ns - self.started_ns) / 1e9


class RunObserver(Protocol):
    """Progress display hooks (the CLI's rich display implements them)."""

    def variant_started(self, result: VariantResult, steps: int) -> None:
        """A variant run starts with ``steps`` steps."""

    def step_finished(self, result: VariantResult, step: StepResult) -> None:
        """A step ended (``result.steps`` includes it)."""

    def variant_finished(self, result: VariantResult) -> None:
        """A variant run ended (``result.passed`` is set)."""


def devices_by_role(rig: RigConfig, *, spare: bool = False) -> dict[str, list[Eui64]]:
    """The rig's installed devices per role, in file order (``ESME`` -> [first, second,
    …]); with ``spare``, its spares (``spare: true``) instead."""
    roles: dict[str, list[Eui64]] = {}
    for device in rig.devices:
        if device.spare == spare:
            roles.setdefault(device.role.value, []).append(Eui64.parse(device.eui64))
    return roles


class UnresolvedRoleError(BadInputError):
    """A step names a device role the rig does not have."""


class MissingDevicesError(BadInputError):
    """A variant consumes devices (spares) the rig does not have: refused before any SR."""


def missing_devices(variant: Variant, installed: Mapping[str, Sequence[Eui64]],
                    spares: Mapping[str, Sequence[Eui64]]) -> list[str]:
    """What ``variant`` consumes (:attr:`Variant.consumes`) that the rig lacks (empty: it
    can run), e.g. ``["spare CHF for NEW_CHF (the rig has 0)"]``."""
    wanted: dict[str, list[str]] = {}
    problems: list[str] = []
    for consumed in variant.consumes:
        if consumed.spare:
            wanted.setdefault(consumed.role, []).append(consumed.alias or consumed.role)
            continue
        role, _, number = consumed.role.partition("#")
        have = len(installed.get(role, []))
        if int(number or "1") > have:
            problems.append(f"installed {consumed.role} to decommission (the rig has {have})")
    for role, aliases in wanted.items():
        have = len(spares.get(role, []))
        if have < len(aliases):
            problems.append(f"{len(aliases)} spare {role} for {', '.join(aliases)} "
                            f"(the rig has {have})")
    return problems


def check_consumption(scenario: Scenario, variants: Iterable[Variant], rig: str,
                      installed: Mapping[str, Sequence[Eui64]],
                      spares: Mapping[str, Sequence[Eui64]]) -> None:
    """Refuse variants the rig lacks devices for (see :func:`missing_devices`).

    Raises:
        MissingDevicesError: naming each variant and the devices it lacks.
    """
    problems = []
    for variant in variants:
        lacking = missing_devices(variant, installed, spares)
        if lacking:
            problems.append(f"{scenario.name}/{variant.id} needs {', '.join(lacking)}")
    if problems:
        raise MissingDevicesError(
            f"rig {rig or '?'} lacks devices the variants consume: " + "; ".join(problems),
            hint="mark spares `spare: true` in the rig file's devices:, or run other variants")


class ScenarioRunner:
    """Runs scenario variants through a DUIS client (see the module docstring).

    Args:
        client: a started :class:`DuisClient` (its Users send the SRs).
        devices: role -> EUI-64s of the rig (see :func:`devices_by_role`).
        rig, lab: names for results and MQTT payloads.
        users: User role -> User EUI-64; default: the first client User of each role.
        dcc_eui64: the RequestID target of non-device SRs (the DCC).
        response_timeout_s: default wait for a response (else the client's).
        include_optional: run optional steps (else record them ``skipped``).
        stimulus: performs a wait step's stimulus (see :data:`Stimulus`), or ``None``.
        store: the run store, or ``None``.
        bus: an event bus to publish ``scenario_step`` / ``scenario_run`` on, or ``None``.
        observer: progress display hooks, or ``None``.
        body_completer: completes each Body to an XSD-valid one (:mod:`.xsd_bodies`);
            default: one for the client's schema when it validates against the DUIS XSD.
        exchanges: the rig's live correlator, or ``None``: no exchange per step.
        local: the rig's HHT and WAN switch (:class:`LocalDelivery`), or ``None``: a
            command returned for local delivery fails its step.
        exchange_timeout_s: at the end of a variant, how long to wait for its SRs'
            exchanges (host seconds; the live correlator's reorder window delays them).
        ch_firmware: performs ``ch_firmware`` steps (see :data:`ChFirmwareHook`), or
            ``None``: they fail ("no DCC to deploy CH firmware").
        spares: role -> EUI-64s of the rig's spares (``devices_by_role(rig, spare=True)``),
            for the variants' consumed spare aliases.
        install: takes the devices a variant consumes before its steps (fits its spares;
            same signature as :data:`Restore`), or ``None``.
        restore: factory resets what a variant consumed once it ends (see
            :data:`Restore`), or ``None``.
        catalogue: the catalogue file version of each device, for ``expect_response``
            ``catalogue`` values (:func:`~hanlab.scenarios.checks.catalogue_versions`).

    Use as ``async with ScenarioRunner(...) as runner:``; the alert-draining task is
    cancelled and awaited on exit.
    """

    def __init__(
        self,
        client: DuisClient,
        devices: Mapping[str, Sequence[Eui64]],
        *,
        rig: str = "",
        lab: str = "",
        users: Mapping[str, Eui64] | None = None,
        dcc_eui64: Eui64 = DCC_ACCESS_CONTROL_BROKER,
        response_timeout_s: float | None = None,
        include_optional: bool = True,
        stimulus: Stimulus | None = None,
        store: RunStore | None = None,
        bus: EventBus | None = None,
        observer: RunObserver | None = None,
        body_completer: BodyCompleter | None = None,
        exchanges: ExchangeSource | None = None,
        exchange_timeout_s: float = 10.0,
        local: LocalDelivery | None = None,
        ch_firmware: ChFirmwareHook | None = None,
        spares: Mapping[str, Sequence[Eui64]] | None = None,
        install: Restore | None = None,
        restore: Restore | None = None,
        catalogue: CatalogueVersions | None = None,
    ) -> None:
        self.client = client
        if body_completer is None and client.schema is not None:
            body_completer = completer_for(client.schema.path)
        self.body_completer = body_completer
        self.devices = {role: list(euis) for role, euis in devices.items()}
        self.spares = {role: list(euis) for role, euis in (spares or {}).items()}
        self.install = install
        self.restore = restore
        self.rig = rig
        self.lab = lab
        if users is None:
            users = {}
            for account in client.users.values():
                users.setdefault(account.role, account.eui64)
        self.users = dict(users)
        self.suppliers = {(a.role, a.supplier): a.eui64 for a in client.users.values()
                          if a.supplier is not None}
        """(User role, ``old`` / ``new``) -> User EUI-64 (Change of Supplier)."""
        self.local = local
        self._local_returns: list[tuple[str | None, bytes]] = []
        self._local_alert_index = 0
        self.dcc_eui64 = dcc_eui64
        self.response_timeout_s = response_timeout_s
        self.include_optional = include_optional
        self.stimulus = stimulus
        self.store = store
        self.bus = bus
        self.observer = observer
        self.exchanges = exchanges
        self.exchange_timeout_s = exchange_timeout_s
        self.ch_firmware = ch_firmware
        self.catalogue = catalogue
        self.alerts: list[SeenAlert] = []
        self.cancelled = False
        self._alert_arrived = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._drain_task = asyncio.create_task(self._drain_alerts(), name="scenario-alerts")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel and await the alert-draining task; idempotent."""
        task, self._drain_task = self._drain_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain_alerts(self) -> None:
        while True:
            received = await self.client.alerts.get()
            seen = _seen_alert(received)
            if seen is not None:
                self.alerts.append(seen)
                self._alert_arrived.set()

    # -- roles -----------------------------------------------------------------------------

    @staticmethod
    def concrete_role(ref: str, variant: Variant) -> str:
        """``ref`` with the variant's alias resolved: ``METER`` -> ``GSME``, ``ESME#2``,
        a consumed spare's alias (``NEW_CHF``) -> its role (``CHF``)."""
        return variant.role_ref(ref)

    def resolve(self, ref: str, variant: Variant) -> Eui64:
        """The EUI-64 of role reference ``ref`` (alias, ``ROLE`` or ``ROLE#n``, ``DCC``).

        Raises:
            UnresolvedRoleError: the rig has no such device.
        """
        spare = variant.spare_alias(ref)
        if spare is not None:
            role, index = spare
            euis = self.spares.get(role, [])
            if index >= len(euis):
                raise UnresolvedRoleError(f"rig {self.rig or '?'} has no spare {role} for "
                                          f"{ref} ({len(euis)} spare {role})",
                                          hint="mark a device `spare: true` in the rig file")
            return euis[index]
        ref = self.concrete_role(ref, variant)
        if ref == "DCC":
            return self.dcc_eui64
        role, _, number = ref.partition("#")
        index = int(number or "1") - 1
        euis = self.devices.get(role, [])
        if index >= len(euis):
            raise UnresolvedRoleError(
                f"rig {self.rig or '?'} has no {ref} ({len(euis)} {role} device(s))",
                hint="add the device to the rig file's devices:")
        return euis[index]

    def user_eui64(self, role: str, supplier: str | None = None) -> Eui64:
        """The User EUI-64 sending as ``role`` (and, for Change of Supplier, the ``old`` or
        ``new`` supplier of that role).

        Raises:
            BadInputError: no such User.
        """
        if supplier is not None:
            labelled = self.suppliers.get((role, supplier))
            if labelled is None:
                raise BadInputError(f"no DUIS User with role {role} and supplier {supplier}",
                                    hint="label one in the lab file's duis: users: "
                                    f"(supplier: {supplier})")
            return labelled
        found = self.users.get(role)
        if found is None:
            raise BadInputError(f"no DUIS User with role {role}",
                                hint="add one to the lab file's duis: users:")
        return found

    # -- running ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop after the running step (which finishes or times out): the variant's later
        steps are recorded ``skipped`` ("cancelled") and no further variant starts."""
        self.cancelled = True

    async def run(self, scenario: Scenario, variants: Iterable[str] = (), *,
                  repeat: int = 1) -> list[VariantResult]:
        """Run ``variants`` (default: all) of ``scenario``, each ``repeat`` times, in order.

        Raises:
            KeyError: an unknown variant id.
        """
        chosen = [scenario.variant(v) for v in variants] or list(scenario.variants)
        check_consumption(scenario, chosen, self.rig, self.devices, self.spares)
        run_id = uuid.uuid4().hex[:12]
        results: list[VariantResult] = []
        for repetition in range(1, repeat + 1):
            for variant in chosen:
                if self.cancelled:
                    return results
                results.append(await self.run_variant(scenario, variant, run_id=run_id,
                                                      repetition=repetition))
        return results

    async def run_variant(self, scenario: Scenario, variant: Variant, *, run_id: str = "",
                          repetition: int = 1) -> VariantResult:
        """Run one variant step by step (seed 000 business scenario variant); then factory
        reset what it consumed (:attr:`restore`).

        Raises:
            MissingDevicesError: the rig lacks a device the variant consumes (before any
                SR is sent).
        """
        check_consumption(scenario, [variant], self.rig, self.devices, self.spares)
        steps = scenario.steps_of(variant)
        result = VariantResult(run_id or uuid.uuid4().hex[:12], scenario.name, variant.id,
                               variant.title, self.rig, repetition, time.time_ns())
        if self.observer is not None:
            self.observer.variant_started(result, len(steps))
        await self._consume(variant, self.install)
        wan_switched = variant.wan == "absent" and self.local is not None and \
            self.local.set_wan(False)
        try:
            await self._run_steps(result, variant, steps)
        finally:
            if wan_switched and self.local is not None:
                self.local.set_wan(True)
        await self._consume(variant, self.restore)
        result.ended_ns = time.time_ns()
        result.passed = not self.cancelled and all(
            s.status == "passed" for s in result.steps if not s.optional)
        await self._attach_exchanges(result)
        self._emit_variant(result)
        return result

    async def _run_steps(self, result: VariantResult, variant: Variant,
                         steps: list[Step]) -> None:
        variant_start_ns = last_sent_ns = result.started_ns
        self._local_returns = []
        for index, step in enumerate(steps, 1):
            started_ns = time.time_ns()
            if self.cancelled:
                outcome = StepResult(index, _kind(step), "skipped", step.optional,
                                     step.comment, outcome="cancelled",
                                     detail="the job was cancelled before this step")
            elif step.optional and not self.include_optional:
                outcome = StepResult(index, _kind(step), "skipped", True, step.comment,
                                     detail="optional step not run")
            elif isinstance(step, SrStep):
                last_sent_ns = started_ns
                outcome = await self._sr_step(index, step, variant)
            elif isinstance(step, WaitAlertStep):
                since_ns = {"step": last_sent_ns, "variant": variant_start_ns,
                            "now": started_ns}[step.since]
                outcome = await self._wait_step(index, step, variant, since_ns)
            elif isinstance(step, PauseStep):
                await asyncio.sleep(step.pause_s)
                outcome = StepResult(index, "pause", "passed", step.optional, step.comment)
            elif isinstance(step, ChFirmwareStep):  # a wait after it counts from it
                last_sent_ns = started_ns
                outcome = await self._ch_firmware_step(index, step, variant)
            else:
                outcome = StepResult(index, "external", "passed", step.optional, step.comment,
                                     detail=f"outside DUIS, not executed: {step.external}")
            outcome.started_ns = started_ns
            outcome.ended_ns = time.time_ns()
            result.steps.append(outcome)
            self._emit_step(result, outcome)

    async def _sr_step(self, index: int, step: SrStep, variant: Variant) -> StepResult:
        entry = sr(step.sr)
        user_role = step.user or variant.user_role
        supplier = step.supplier or variant.supplier
        out = StepResult(index, "sr", "failed", step.optional, step.comment,
                         sr_variant=step.sr, sr_name=entry.name,
                         target_role=self.concrete_role(step.target or "DCC", variant),
                         user_role=user_role,
                         command_variant=step.command_variant)
        try:
            target = self.resolve(step.target or "DCC", variant)
            eui_of = {ref: self.resolve(ref, variant).duis for ref in _refs(step.params)}
            user = self.user_eui64(user_role, supplier)
        except BadInputError as error:
            out.status = "skipped" if step.optional else "failed"
            out.outcome, out.detail = "unresolved", error.message
            return out
        out.target_eui64, out.user_eui64 = target.duis, user.duis
        params = substitute(step.params, eui_of)
        if step.sr == "8.13" and "DeviceGBCSResponse" not in params:
            returned = await self._local_return(step)
            if returned is None:
                out.outcome = "nothing to return"
                out.detail = ("no device response or alert from the HHT to return (send a "
                              "Local Command Delivery SR first)")
                return out
            params = {**params, **returned}
        try:
            body = (build_body(step.sr, params) if self.body_completer is None
                    else self.body_completer.complete(body_element(step.sr), params))
        except BadInputError as error:
            out.outcome, out.detail = "error", error.message
            return out
        timeout_s = step.response_timeout_s or self.response_timeout_s
        try:
            exchange = await self.client.send(
                user, target, step.sr, body, command_variant=step.command_variant,
                response_timeout_s=timeout_s)
        except DuisTimeoutError as error:  # the message names the RequestID
            out.outcome, out.detail = "timeout", error.message
            out.request_id, out.command_variant = error.request_id, error.command_variant
            out.ack_code = error.ack_code
            return out
        except (DuisClientError, PreCommandMismatchError) as error:
            out.outcome, out.detail = "error", error.message
            return out
        out.request_id = str(exchange.request_id)
        out.command_variant = exchange.command_variant
        out.ack_code = exchange.ack.response_code
        if exchange.response is not None:
            out.response_code = exchange.response.response_code
            out.outcome = out.response_code
        else:
            out.outcome = out.ack_code
        if exchange.local_command is not None and not await self._deliver_locally(
                out, target, exchange):
            return out
        if out.outcome not in step.expect:
            out.detail = f"expected {'/'.join(step.expect)}, got {out.outcome}"
        elif step.expect_response:
            payload = None if exchange.response is None else exchange.response.gbcs_payload
            problem = check_response(step.expect_response, payload, target,
                                     catalogue=self.catalogue)
            out.status, out.detail = ("failed", problem) if problem else ("passed", "")
        else:
            out.status = "passed"
        return out

    async def _deliver_locally(self, out: StepResult, target: Eui64,
                               exchange: DuisExchange) -> bool:
        """Have the rig's HHT deliver the command returned for local delivery; whether the
        device answered (else ``out`` says why)."""
        command = exchange.local_command
        if command is None:
            return True
        if exchange.response is not None:  # CV 3 / 7: the WAN copy was answered already
            out.local_delivery = "not needed"
            return True
        if self.local is None:
            out.outcome, out.local_delivery = "no HHT", "not delivered"
            out.detail = "the DCC returned the command for local delivery but the rig has " \
                "no HHT to deliver it"
            return False
        self._local_alert_index = self.local.local_alerts_kept
        try:
            response = await self.local.deliver_locally(
                target, command, request_id=str(exchange.request_id),
                sr_variant=exchange.sr_variant, command_variant=exchange.command_variant)
        except HanlabError as error:
            out.outcome, out.local_delivery, out.detail = "no HHT", "not delivered", str(error)
            return False
        if response is None:
            out.outcome, out.local_delivery = "local delivery failed", "no answer"
            out.detail = f"the device {target} did not answer the HHT"
            return False
        out.local_delivery = "delivered"
        self._local_returns = [(str(exchange.request_id), response)]
        return True

    async def _local_return(self, step: SrStep) -> dict[str, Any] | None:
        """The ``ReturnLocalCommandResponse`` content of an SR 8.13 step: the latest local
        SR's response, else the next alert the HHT kept since that SR."""
        if self._local_returns:
            request_id, octets = self._local_returns.pop(0)
            return {"OriginalRequestID": request_id,
                    "DeviceGBCSResponse": b64encode(octets).decode()}
        if self.local is None:
            return None
        alert = await self.local.next_local_alert(
            self._local_alert_index, step.response_timeout_s or _LOCAL_ALERT_WAIT_S)
        if alert is None:
            return None
        self._local_alert_index += 1
        return {"DeviceGBCSResponse": b64encode(alert).decode()}

    async def _wait_step(self, index: int, step: WaitAlertStep, variant: Variant,
                         since_ns: int) -> StepResult:
        out = StepResult(index, "wait", "failed", step.optional, step.comment)
        try:
            source = None if step.source is None else self.resolve(step.source, variant)
            recipient = None
            if step.user is not None or step.supplier is not None:
                recipient = self.user_eui64(step.user or variant.user_role,
                                            step.supplier or variant.supplier)
                out.user_eui64 = recipient.duis
            stimuli = [(role, self.resolve(role, variant), int(code, 16))
                       for role, code in (step.stimulus or {}).items()]
        except BadInputError as error:
            out.status = "skipped" if step.optional else "failed"
            out.outcome, out.detail = "unresolved", error.message
            return out
        wanted = set(step.wait_alert)
        failing = set(step.fail_on)
        found = self._find_alert(wanted | failing, source, since_ns, recipient)
        if found is None and stimuli and self.stimulus is not None:
            done = [f"{role}: 0x{code:04X}" for role, eui, code in stimuli
                    if await self.stimulus(role, eui, code)]
            out.stimulus = ", ".join(done) or None
        deadline = time.monotonic() + step.timeout_s
        while found is None:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            self._alert_arrived.clear()
            found = self._find_alert(wanted | failing, source, since_ns, recipient)
            if found is not None:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._alert_arrived.wait(), remaining_s)
            found = self._find_alert(wanted | failing, source, since_ns, recipient)
        if found is None:
            out.outcome = "timeout"
            out.detail = f"no alert {'/'.join(step.wait_alert)} within {step.timeout_s:g} s"
            if recipient is not None:
                out.detail += f" at User {recipient}"
            return out
        out.alert_code = out.outcome = found.code
        out.alert_source = None if found.source is None else found.source.duis
        if found.code in wanted:
            out.status = "passed"
        else:
            out.detail = f"alert {found.code} means failure"
        return out

    async def _ch_firmware_step(self, index: int, step: ChFirmwareStep,
                                variant: Variant) -> StepResult:
        out = StepResult(index, "ch_firmware", "failed", step.optional, step.comment,
                         target_role="CHF")
        with contextlib.suppress(BadInputError):  # a rig file without a CHF record
            out.target_eui64 = self.resolve("CHF", variant).duis
        if self.ch_firmware is None:
            out.outcome, out.detail = "error", "no DCC to deploy CH firmware on this rig"
            return out
        try:
            connect = [self.resolve(ref, variant) for ref in step.connect]
            record = await self.ch_firmware(step.ch_firmware, step.mode, connect,
                                            step.timeout_s)
        except BadInputError as error:
            out.status = "skipped" if step.optional else "failed"
            out.outcome, out.detail = "error", error.message
            return out
        out.ch_upgrade = record
        missing = record.get("missing") or []
        if record.get("requested"):
            out.status, out.outcome = "passed", "requested"
            out.detail = f"the DCC was asked to deploy {step.ch_firmware.describe()}"
        elif missing:
            out.outcome = "timeout"
            out.detail = (f"not back within {step.timeout_s:g} s after "
                          f"{step.ch_firmware.version}: {', '.join(missing)}")
        else:
            out.status, out.outcome = "passed", "rejoined"
            out.detail = (f"{len(record.get('devices', []))} devices back on "
                          f"{step.ch_firmware.describe()}")
        return out

    async def _consume(self, variant: Variant, hook: Restore | None) -> None:
        """Hand the devices ``variant`` consumes to ``hook``: :attr:`install` before the
        steps, :attr:`restore` (the factory reset before re-use, seed 000) after them."""
        if hook is None or not variant.consumes:
            return
        devices = []
        for item in variant.consumes:
            with contextlib.suppress(BadInputError):
                devices.append(self.resolve(item.alias or item.role, variant))
        await hook(devices)

    def _find_alert(self, codes: set[str], source: Eui64 | None, since_ns: int,
                    recipient: Eui64 | None = None) -> SeenAlert | None:
        for alert in self.alerts:
            if alert.ts_ns >= since_ns and alert.code in codes and (
                    source is None or alert.source is None or alert.source == source) and (
                    recipient is None or alert.recipient == recipient):
                return alert
        return None

    async def _attach_exchanges(self, result: VariantResult) -> None:
        """Each sent SR step's exchange from the live correlator, recorded (issue 5)."""
        if self.exchanges is None:
            return
        sent = [s for s in result.steps if s.kind == "sr" and s.request_id is not None]
        if not sent:
            return
        found = await self.exchanges.wait_for([s.request_id or "" for s in sent],
                                              self.exchange_timeout_s)
        for step in sent:
            exchange = found.get(step.request_id or "")
            if exchange is None:
                continue
            step.match_level = exchange.match_level
            step.command_level = exchange.command_level
            step.response_level = exchange.response_level
            step.band = exchange.band
            step.segments_ns = exchange.segments_ns()
            if self.store is not None:
                self.store.write({
                    "record": "exchange", **self._base(result), "index": step.index,
                    "request_id": step.request_id, "match_level": step.match_level,
                    "command_level": step.command_level,
                    "response_level": step.response_level, "band": step.band,
                    "outcome": exchange.outcome, "segments_ns": step.segments_ns})

    # -- results ---------------------------------------------------------------------------

    def _base(self, result: VariantResult) -> dict[str, Any]:
        return {"run_id": result.run_id, "lab": self.lab, "rig": result.rig,
                "scenario": result.scenario, "variant": result.variant,
                "repetition": result.repetition}

    def _emit_step(self, result: VariantResult, step: StepResult) -> None:
        record = {"record": "step", **self._base(result), **asdict(step),
                  "duration_s": round(step.duration_s, 6)}
        if self.store is not None:
            self.store.write(record)
        if self.bus is not None:
            self.bus.publish_nowait(BusEvent("scenario_step", record))
        if self.observer is not None:
            self.observer.step_finished(result, step)

    def _emit_variant(self, result: VariantResult) -> None:
        record = {"record": "variant", **self._base(result), "title": result.title,
                  "passed": result.passed, "started_ns": result.started_ns,
                  "ended_ns": result.ended_ns, "duration_s": round(result.duration_s, 6),
                  "steps": len(result.steps), "srs_sent": result.srs_sent,
                  "srs_answered": result.srs_answered,
                  "failed_steps": [s.index for s in result.steps
                                   if s.status == "failed" and not s.optional]}
        if self.store is not None:
            self.store.write(record)
        if self.bus is not None:
            self.bus.publish_nowait(BusEvent("scenario_run", record))
        if self.observer is not None:
            self.observer.variant_finished(result)


def _kind(step: Step) -> str:
    return step_kind(step) or "external"


def _refs(params: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(placeholders(dict(params))))


def _seen_alert(received: ReceivedDocument) -> SeenAlert | None:
    document = received.document
    if document.body_name == "DCCAlertMessage" and document.dcc_alert_code:
        return SeenAlert(document.dcc_alert_code, None, received.ts_ns, received.recipient)
    if document.body_name == "DeviceAlertMessage" and document.alert_code is not None:
        source = None if document.response_id is None else document.response_id.originator
        return SeenAlert(alert_code_text(document.alert_code), source, received.ts_ns,
                         received.recipient)
    return None
