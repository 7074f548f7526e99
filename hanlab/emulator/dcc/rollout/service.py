"""The emulated DCC's CH firmware roll-out service: SECMP0024 solution option 2 (seed 004
section 3.2, a DCC operated portal) behind its machine-to-machine API
(:mod:`hanlab.emulator.dcc.rollout.portal`).

It holds the roll-outs, the Smart Metering Inventory's CH records and the notices sent to
each User; every change goes through the rules of :mod:`~hanlab.emulator.dcc.rollout.rules`,
all checked before anything changes, so a refused request leaves the plan as it was.

Deployment is a hook: for each CH the DCC distributes to, :class:`RolloutService` calls
``deploy(DeployOrder)`` ("deploy image X to CH G, activating at T"); whatever carries the
image to the CH (an emulated rig's HAN, a test) reports back with
:meth:`RolloutService.report_outcome` (success, or failure with its reason). A hook that
raises fails that CH with the error as its reason; the roll-out carries on.

Lab scale (thousands of CHs) in memory; estate scale is :mod:`~hanlab.emulator.dcc.rollout.
estate` (the same rules in DuckDB).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from hanlab.emulator.dcc.rollout.model import (
    SEED,
    ChProgress,
    ChRecord,
    ChStatus,
    Decision,
    DeployOrder,
    Incident,
    Instruction,
    Notice,
    Notification,
    Priority,
    RolloutState,
    Severity,
    iso,
)
from hanlab.emulator.dcc.rollout.rules import (
    RolloutConfig,
    Rule,
    RuleViolation,
    automatic_date,
    check_batch,
    check_guids,
    check_pilot,
    check_timing,
    halted,
    instruction_deadline,
    pending_effect,
    pilot_rank,
    planned_activation,
)
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

_log = logging.getLogger(__name__)

DeployHook = Callable[[DeployOrder], None]
"""Called once per CH the DCC distributes the image to (see the module docstring)."""

MAX_NOTICES: Final = 100_000
"""Notices kept (oldest dropped first): a User that reads less often loses the oldest."""
MAX_LISTED: Final = 1000
"""GUIDs listed in one notice at most (the count is always given)."""


@dataclass(frozen=True, slots=True)
class PilotRules:
    """Configurable business rules a Supplier selects its pilot group with (SECMP0024
    section 2.3: "a facility to select a 'pilot group' ... via configurable business
    rules").

    Attributes:
        size: how many CHs (capped at the configured pilot maximum, section 2.1).
        regions: only CHs in these CSP regions (empty: any).
        single_supplier_only: leave out split-supply CHs (whose pilot needs the other
            Supplier's instruction too, section 2.4).
        seed: the sample is the CHs in :func:`~.rules.pilot_rank` order under ``seed``:
            repeatable, spread over the estate, and the order :mod:`.estate` uses.
    """

    size: int = 300
    regions: tuple[str, ...] = ()
    single_supplier_only: bool = False
    seed: int = 0

    def rank(self, guid: str) -> tuple[int, str]:
        """The sort key of ``guid`` under :attr:`seed` (:func:`~.rules.pilot_rank`)."""
        return pilot_rank(Eui64.parse(guid).value, self.seed), guid


@dataclass
class _Rollout:
    notification: Notification
    eligible: dict[str, ChRecord]
    state: RolloutState = RolloutState.NOTIFIED
    resume_state: RolloutState = RolloutState.NOTIFIED
    pilot: dict[str, tuple[str, ...]] = field(default_factory=dict)
    instructed: dict[str, dict[str, dt.datetime]] = field(default_factory=dict)
    instructions: list[Instruction] = field(default_factory=list)
    progress: dict[str, ChProgress] = field(default_factory=dict)
    pilot_started_at: dt.datetime | None = None
    pilot_ended_at: dt.datetime | None = None

    @property
    def pilot_guids(self) -> set[str]:
        return {g for guids in self.pilot.values() for g in guids}

    def suppliers(self) -> set[str]:
        return {s for ch in self.eligible.values() for s in ch.suppliers}


class RolloutService:
    """The DCC's roll-out portal service (see the module docstring).

    Args:
        inventory: the CH records of the Smart Metering Inventory.
        config: the rule parameters (:class:`RolloutConfig`; defaults are the seed's).
        clock: the current UTC time (tests pass a settable clock).
        deploy: the deployment hook, or ``None`` (orders are only recorded).

    Raises:
        BadInputError: the inventory lists a GUID twice or one that is not an EUI-64
            (GUIDs are kept in DUIS form, upper case).
    """

    def __init__(self, inventory: Iterable[ChRecord], config: RolloutConfig | None = None,
                 *, clock: Callable[[], dt.datetime] | None = None,
                 deploy: DeployHook | None = None) -> None:
        self.inventory: dict[str, ChRecord] = {}
        for ch in inventory:
            try:
                ch = replace(ch, guid=Eui64.parse(ch.guid).duis)
            except BadInputError as error:
                raise BadInputError(f"inventory: CH GUID: {error}") from None
            if ch.guid in self.inventory:
                raise BadInputError(f"inventory: CH GUID {ch.guid} is listed twice")
            self.inventory[ch.guid] = ch
        self.config = config or RolloutConfig()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.deploy = deploy
        self.orders: list[DeployOrder] = []
        self.incidents: dict[str, Incident] = {}
        self._rollouts: dict[str, _Rollout] = {}
        self._notices: collections.deque[tuple[frozenset[str], Notice]] = (
            collections.deque(maxlen=MAX_NOTICES))
        self._seq = itertools.count(1)

    # -- helpers ---------------------------------------------------------------------------

    def rollout(self, image_id: str) -> _Rollout:
        """The roll-out of ``image_id``.

        Raises:
            RuleViolation: no such notification (:attr:`Rule.NOT_NOTIFIED`).
        """
        found = self._rollouts.get(image_id)
        if found is None:
            raise RuleViolation(Rule.NOT_NOTIFIED, f"no notified image {image_id!r}")
        return found

    def _open(self, image_id: str) -> _Rollout:
        rollout = self.rollout(image_id)
        if rollout.state is RolloutState.REVOKED:
            raise RuleViolation(Rule.REVOKED, f"the notification of {image_id} was revoked")
        return rollout

    def _running(self, image_id: str) -> _Rollout:
        rollout = self._open(image_id)
        if halted(rollout.state) or rollout.state is RolloutState.COMPLETE:
            raise RuleViolation(Rule.HALTED, f"roll-out {image_id} is {rollout.state.value}")
        return rollout

    def _send(self, to: Iterable[str], kind: str, image_id: str, /, **body: object) -> None:
        body.pop("image_id", None)
        notice = Notice(next(self._seq), kind, image_id, self.clock(), dict(body))
        self._notices.append((frozenset(to), notice))

    def notices_for(self, user: str, after_seq: int = 0, limit: int = 100) -> list[Notice]:
        """The notices sent to ``user`` after ``after_seq``, oldest first, at most
        ``limit`` (SECMP0024 3.2: real-time updates for the Supplier's CRM)."""
        out = []
        for to, notice in self._notices:
            if notice.seq > after_seq and (user in to or "*" in to):
                out.append(notice)
                if len(out) >= limit:
                    break
        return out

    # -- Requirement 1: notification --------------------------------------------------------

    def notify(self, image_id: str, device_model: str, firmware_version: str, *,
               release_note: str, severity: Severity, priority: Priority,
               automatic_at: dt.datetime | None = None,
               from_versions: Sequence[str] = ()) -> Notification:
        """Notify the relevant Users of an available CH image (SECMP0024 Requirement 1,
        section 2.2): model and version as on the CPL, release note, severity, priority,
        the automatic deployment date (six months on by default, or the DCC's); and send
        each Supplier its report of the eligible CH GUIDs it is responsible for, as Import
        and/or Gas Supplier.

        Raises:
            BadInputError: ``image_id`` is already notified.
            RuleViolation: ``automatic_at`` not after now (:attr:`Rule.DATE_INVALID`).
        """
        if image_id in self._rollouts:
            raise BadInputError(f"image {image_id!r} is already notified")
        now = self.clock()
        notification = Notification(
            image_id, device_model, firmware_version, release_note, severity, priority,
            now, automatic_date(now, self.config, automatic_at), tuple(from_versions))
        eligible = {g: ch for g, ch in self.inventory.items() if notification.applies_to(ch)}
        rollout = _Rollout(notification, eligible)
        self._rollouts[image_id] = rollout
        self._send(["*"], "available", image_id, **self.notification_json(notification))
        for supplier in sorted(rollout.suppliers()):
            mine = self.eligible_for(supplier, image_id)
            roles = [str(m["role"]) for m in mine]
            self._send([supplier], "eligible_report", image_id, count=len(mine),
                       import_count=sum(1 for r in roles if "import" in r),
                       gas_count=sum(1 for r in roles if "gas" in r),
                       guids=[m["guid"] for m in mine[:MAX_LISTED]])
        return notification

    @staticmethod
    def notification_json(n: Notification) -> dict[str, object]:
        """A notification as the portal serves it."""
        return {"image_id": n.image_id, "device_model": n.device_model,
                "firmware_version": n.firmware_version, "from_versions": list(n.from_versions),
                "release_note": n.release_note, "severity": n.severity.value,
                "priority": n.priority.value, "notified_at": iso(n.notified_at),
                "automatic_at": iso(n.automatic_at)}

    def notifications(self) -> list[dict[str, object]]:
        """Every notification with its roll-out state (SECMP0024 3.2: "the list of
        available updates")."""
        return [{**self.notification_json(r.notification), "state": r.state.value}
                for r in self._rollouts.values()]

    def move_automatic_date(self, image_id: str, automatic_at: dt.datetime) -> None:
        """The DCC sets the automatic deployment date earlier or later (SECMP0024 2.2);
        the Suppliers are told.

        Raises:
            RuleViolation: the date is not after the notification and now.
        """
        rollout = self._open(image_id)
        n = rollout.notification
        new_at = automatic_date(max(n.notified_at, self.clock()), self.config, automatic_at)
        rollout.notification = replace(n, automatic_at=new_at)
        self._send(rollout.suppliers(), "date_moved", image_id, automatic_at=iso(new_at),
                   instruction_deadline=iso(instruction_deadline(new_at, self.config)))

    def revoke(self, image_id: str, reason: str) -> None:
        """The DCC revokes a notification (SECMP0024 2.2); CHs not yet deployed are
        cancelled and pending instructions with them.

        Raises:
            RuleViolation: no such notification, or already revoked.
        """
        rollout = self._open(image_id)
        rollout.state = RolloutState.REVOKED
        self._cancel_pending(rollout)
        self._send(["*"], "revoked", image_id, reason=reason)

    def _cancel_pending(self, rollout: _Rollout) -> None:
        for guid in rollout.eligible:
            progress = rollout.progress.setdefault(guid, ChProgress())
            if progress.status is ChStatus.ELIGIBLE:
                progress.status = ChStatus.CANCELLED
        rollout.instructed.clear()

    def eligible_for(self, supplier: str, image_id: str) -> list[dict[str, object]]:
        """The eligible CH GUIDs ``supplier`` is responsible for, with its role and
        whether supply is split (SECMP0024 2.2 report, 2.3 list), sorted by GUID.

        Raises:
            RuleViolation: no such notification.
        """
        rollout = self.rollout(image_id)
        out: list[dict[str, object]] = []
        for guid in sorted(rollout.eligible):
            ch = rollout.eligible[guid]
            role = ch.role_of(supplier)
            if role is not None:
                out.append({"guid": guid, "role": role.value, "split": ch.split,
                            "region": ch.region})
        return out

    # -- Requirement 2: pilot --------------------------------------------------------------

    def select_pilot(self, supplier: str, image_id: str, rules: PilotRules) -> list[str]:
        """The pilot group ``rules`` select from the Supplier's eligible CHs (SECMP0024
        2.3); nothing is submitted.

        Raises:
            RuleViolation: no such notification.
        """
        rollout = self.rollout(image_id)
        taken = {g for s, guids in rollout.pilot.items() if s != supplier for g in guids}
        candidates = [
            ch.guid for ch in rollout.eligible.values()
            if ch.role_of(supplier) is not None and ch.guid not in taken
            and (not rules.regions or ch.region in rules.regions)
            and not (rules.single_supplier_only and ch.split)]
        candidates.sort(key=rules.rank)
        return sorted(candidates[:min(rules.size, self.config.pilot_max_size)])

    def submit_pilot(self, supplier: str, image_id: str, guids: Sequence[str],
                     activation_at: dt.datetime) -> Instruction:
        """The Supplier submits its pilot group and instructs its activation (SECMP0024
        2.3 and 2.4); a new submission replaces the Supplier's previous one.

        Raises:
            RuleViolation: the pilot has started (:attr:`Rule.PILOT_STARTED`), is empty or
                over the maximum, a GUID fails validation, or the times break 2.4.
        """
        rollout = self._running(image_id)
        if rollout.state is not RolloutState.NOTIFIED:
            raise RuleViolation(Rule.PILOT_STARTED, f"the pilot of {image_id} has started")
        unique = tuple(dict.fromkeys(guids))
        check_pilot(unique, self.config)
        check_guids(supplier, unique, self.inventory, rollout.notification,
                    rollout.eligible)
        instruction = self._instruction(rollout, supplier, unique, activation_at, "pilot")
        for guid in rollout.pilot.get(supplier, ()):
            rollout.instructed.get(guid, {}).pop(supplier, None)
        rollout.pilot[supplier] = unique
        self._record(rollout, instruction)
        return instruction

    def start_pilot(self, image_id: str) -> list[DeployOrder]:
        """The DCC triggers the pilot group deployment (SECMP0024 Requirement 2, 2.3):
        every relevant party is told it starts, and each pilot CH is distributed for its
        planned activation time.

        Raises:
            RuleViolation: the roll-out is halted or the pilot already started, no pilot
                was submitted, or a split-supply pilot CH lacks the other Supplier's
                instruction (:attr:`Rule.SPLIT_NEEDS_BOTH`, the CHs listed).
        """
        rollout = self._running(image_id)
        if rollout.state is not RolloutState.NOTIFIED:
            raise RuleViolation(Rule.PILOT_STARTED, f"the pilot of {image_id} has started")
        pilot = sorted(rollout.pilot_guids)
        if not pilot:
            raise RuleViolation(Rule.PILOT_EMPTY, f"no Supplier submitted a pilot for "
                                f"{image_id}")
        lacking = {g: "instructed by one of its two Suppliers only" for g in pilot
                   if len(rollout.instructed.get(g, {})) < len(rollout.eligible[g].suppliers)}
        if lacking:
            raise RuleViolation(Rule.SPLIT_NEEDS_BOTH, f"{len(lacking)} split-supply pilot "
                                "CHs lack the second Supplier's instruction", failures=lacking)
        rollout.state = RolloutState.PILOT
        rollout.pilot_started_at = self.clock()
        self._send(rollout.suppliers(), "pilot_started", image_id, count=len(pilot),
                   guids=pilot[:MAX_LISTED])
        return self._distribute(rollout, pilot, "pilot")

    # -- Requirements 3 and 4: instructions ----------------------------------------------

    def instruct(self, supplier: str, image_id: str, guids: Sequence[str],
                 activation_at: dt.datetime, scope: str = "safe_launch") -> Instruction:
        """A Supplier instructs a safe-launch batch, or (``scope="pilot"``, as the second
        Supplier of split pilot CHs) pilot CHs, for an earlier time (SECMP0024
        Requirement 3, 2.4; split supply 2.5). With split supply the DCC waits for both
        Suppliers (the later time applies; without agreement the automatic date); each
        Supplier of a split CH is told a second Supplier exists and whether it has
        instructed (never who).

        Raises:
            RuleViolation: too late, not earlier than the automatic date, in the past, a
                GUID failing validation, a pilot CH, a batch below the minimum, or the
                roll-out halted. Nothing changes.
        """
        rollout = self._running(image_id)
        unique = tuple(dict.fromkeys(guids))
        if not unique:
            raise RuleViolation(Rule.BATCH_TOO_SMALL, "the instruction lists no CH")
        check_guids(supplier, unique, self.inventory, rollout.notification,
                    rollout.eligible)
        deployed = {g: f"already {rollout.progress[g].status.value}" for g in unique
                    if rollout.progress.get(g, ChProgress()).status is not ChStatus.ELIGIBLE}
        if deployed:
            raise RuleViolation(Rule.ALREADY_DEPLOYED, f"{len(deployed)} CHs are past "
                                "instruction", failures=deployed)
        if scope == "pilot":
            return self._instruct_pilot(rollout, supplier, unique, activation_at)
        if scope != "safe_launch":
            raise BadInputError(f"scope {scope!r}: expected pilot or safe_launch")
        remaining = self.remaining_safe_launch(supplier, image_id)
        check_batch(unique, remaining, rollout.pilot_guids, self.config)
        instruction = self._instruction(rollout, supplier, unique, activation_at,
                                        "safe_launch")
        self._record(rollout, instruction)
        return instruction

    def remaining_safe_launch(self, supplier: str, image_id: str) -> list[str]:
        """The Supplier's safe-launch CHs (eligible, not in the pilot group; SECMP0024 2.1)
        it has not instructed and the DCC has not deployed, sorted: what ``"all"`` names
        (2.4: "select all of the relevant CHs for which it is responsible").

        Raises:
            RuleViolation: no such notification.
        """
        rollout = self.rollout(image_id)
        pilot = rollout.pilot_guids
        return sorted(g for g, ch in rollout.eligible.items()
                      if ch.role_of(supplier) is not None and g not in pilot
                      and supplier not in rollout.instructed.get(g, {})
                      and rollout.progress.get(g, ChProgress()).status is ChStatus.ELIGIBLE)

    def _instruct_pilot(self, rollout: _Rollout, supplier: str, guids: tuple[str, ...],
                        activation_at: dt.datetime) -> Instruction:
        if rollout.state is not RolloutState.NOTIFIED:
            raise RuleViolation(Rule.PILOT_STARTED, "the pilot of "
                                f"{rollout.notification.image_id} has started")
        outside = {g: "not in the pilot group" for g in guids if g not in rollout.pilot_guids}
        if outside:
            raise RuleViolation(Rule.NOT_IN_PILOT, f"{len(outside)} GUIDs are not in the "
                                "pilot group", failures=outside)
        instruction = self._instruction(rollout, supplier, guids, activation_at, "pilot")
        self._record(rollout, instruction)
        return instruction

    def _instruction(self, rollout: _Rollout, supplier: str, guids: tuple[str, ...],
                     activation_at: dt.datetime, scope: str) -> Instruction:
        now = self.clock()
        check_timing(rollout.notification, activation_at, now, self.config)
        return Instruction(supplier, guids, activation_at, now, scope)

    def _record(self, rollout: _Rollout, instruction: Instruction) -> None:
        """Keep an accepted instruction; tell the Supplier (2.6) and, for split CHs, both
        Suppliers about the second one (2.4)."""
        supplier, image_id = instruction.supplier, rollout.notification.image_id
        rollout.instructions.append(instruction)
        split = []
        for guid in instruction.guids:
            rollout.instructed.setdefault(guid, {})[supplier] = instruction.activation_at
            if rollout.eligible[guid].split:
                split.append(guid)
        self._send([supplier], "instruction_received", image_id, scope=instruction.scope,
                   count=len(instruction.guids), activation_at=iso(instruction.activation_at))
        if not split:
            return
        by_other: dict[str, list[str]] = {}
        for guid in split:
            other = next(s for s in rollout.eligible[guid].suppliers if s != supplier)
            by_other.setdefault(other, []).append(guid)
        waiting = [g for g in split if len(rollout.instructed[g]) < 2]
        agreed = [g for g in split if len(rollout.instructed[g]) >= 2]
        self._send([supplier], "second_supplier", image_id, second_supplier_exists=True,
                   second_supplier_instructed=not waiting,
                   awaiting_count=len(waiting), awaiting_guids=waiting[:MAX_LISTED],
                   agreed_count=len(agreed))
        for other, mine in by_other.items():
            self._send([other], "second_supplier", image_id, second_supplier_exists=True,
                       second_supplier_instructed=True, count=len(mine),
                       guids=mine[:MAX_LISTED])

    def second_supplier(self, supplier: str, image_id: str, guid: str) -> dict[str, object]:
        """What ``supplier`` may know of the other Supplier of ``guid`` (SECMP0024 2.4:
        that there is a second Supplier, not who, and whether it has instructed).

        Raises:
            RuleViolation: the GUID fails validation for ``supplier``.
        """
        rollout = self.rollout(image_id)
        ch = check_guids(supplier, [guid], self.inventory, rollout.notification,
                         rollout.eligible)[0]
        instructed = rollout.instructed.get(guid, {})
        others = [s for s in ch.suppliers if s != supplier]
        return {"guid": guid, "second_supplier_exists": bool(others),
                "second_supplier_instructed": any(s in instructed for s in others),
                "planned_activation_at": iso(self.planned(rollout, ch))}

    def planned(self, rollout: _Rollout, ch: ChRecord) -> dt.datetime:
        """The planned activation of ``ch`` (:func:`~.rules.planned_activation`)."""
        return planned_activation(ch, rollout.notification.automatic_at,
                                  rollout.instructed.get(ch.guid, {}))

    # -- deployment and progress (Requirements 3 and 5) -----------------------------------

    def deploy_due(self, image_id: str, horizon_s: float = 0.0,
                   batch_size: int | None = None) -> list[DeployOrder]:
        """The DCC distributes the safe-launch CHs whose planned activation is within
        ``horizon_s`` of now (SECMP0024 2.4: on instruction, or at the automatic date),
        all of them or one batch of ``batch_size`` (earliest planned first; 2.4 and 2.7:
        "the DCC and Suppliers ... roll out firmware updates in batches").

        Raises:
            RuleViolation: the roll-out is halted (2.7), its pilot has not ended
                (:attr:`Rule.PILOT_FIRST`, Requirement 2), or ``batch_size`` is below the
                minimum (:attr:`Rule.BATCH_TOO_SMALL`).
        """
        rollout = self._running(image_id)
        if rollout.state is not RolloutState.SAFE_LAUNCH:
            raise RuleViolation(Rule.PILOT_FIRST, f"the pilot of {image_id} has not ended "
                                f"(roll-out {rollout.state.value})")
        if batch_size is not None and batch_size < self.config.batch_min_size:
            raise RuleViolation(Rule.BATCH_TOO_SMALL, f"a batch of {batch_size} CHs is "
                                f"below the minimum of {self.config.batch_min_size}")
        until = self.clock() + dt.timedelta(seconds=horizon_s)
        due = sorted((self.planned(rollout, ch), g) for g, ch in rollout.eligible.items()
                     if rollout.progress.get(g, ChProgress()).status is ChStatus.ELIGIBLE
                     and self.planned(rollout, ch) <= until)
        chosen = [g for _, g in due[:batch_size]]
        return self._distribute(rollout, chosen, "safe_launch")

    def _distribute(self, rollout: _Rollout, guids: Sequence[str],
                    group: str) -> list[DeployOrder]:
        n, now = rollout.notification, self.clock()
        orders = []
        for guid in guids:
            activation_at = max(self.planned(rollout, rollout.eligible[guid]), now)
            order = DeployOrder(n.image_id, n.device_model, n.firmware_version, guid,
                                activation_at, group)
            rollout.progress[guid] = ChProgress(ChStatus.DEPLOYING, "", now, activation_at)
            orders.append(order)
            self.orders.append(order)
            if self.deploy is not None:
                try:
                    self.deploy(order)
                except Exception as error:  # one CH's failure never stops the roll-out
                    _log.warning("deployment hook failed for CH %s: %s", guid, error)
                    self.report_outcome(n.image_id, guid, False,
                                        f"deployment failed: {type(error).__name__}: {error}")
        return orders

    def report_outcome(self, image_id: str, guid: str, success: bool, reason: str = "") -> None:
        """The outcome of one CH's deployment (SECMP0024 2.3 progress; 2.6): on confirmed
        activation the SMI takes the new version and the CH's current Suppliers are told;
        a failure keeps its reason. The pilot ends when every pilot CH has an outcome
        (end notice with commentary), the roll-out when every eligible CH has.

        Raises:
            RuleViolation: the CH is not being deployed (:attr:`Rule.OUTCOME_UNEXPECTED`).
        """
        rollout = self.rollout(image_id)
        progress = rollout.progress.get(guid)
        if progress is None or progress.status is not ChStatus.DEPLOYING:
            raise RuleViolation(Rule.OUTCOME_UNEXPECTED, f"CH {guid} is not being deployed "
                                f"in {image_id}", failures={guid: "not deploying"})
        n, ch = rollout.notification, rollout.eligible[guid]
        progress.status = ChStatus.ACTIVATED if success else ChStatus.FAILED
        progress.reason = reason
        current = self.inventory.get(guid, ch)
        if success and current.firmware_version != n.firmware_version:
            self.inventory[guid] = replace(current, firmware_version=n.firmware_version)
            self._send(current.suppliers, "activated", image_id, guid=guid,
                       firmware_version=n.firmware_version, smi_updated=True)
        in_pilot = guid in rollout.pilot_guids
        if in_pilot:
            self._send(ch.suppliers, "progress", image_id, guid=guid, group="pilot",
                       success=success, reason=reason)
        if not success and not in_pilot:
            self._send(ch.suppliers, "progress", image_id, guid=guid, group="safe_launch",
                       success=False, reason=reason)
        self._advance(rollout)

    def _advance(self, rollout: _Rollout) -> None:
        def done(guids: Iterable[str]) -> bool:
            return all(rollout.progress.get(g, ChProgress()).status
                       in {ChStatus.ACTIVATED, ChStatus.FAILED} for g in guids)

        pilot = rollout.pilot_guids
        if rollout.pilot_ended_at is None and rollout.pilot_started_at and done(pilot):
            rollout.pilot_ended_at = self.clock()
            failed = {g: rollout.progress[g].reason for g in sorted(pilot)
                      if rollout.progress[g].status is ChStatus.FAILED}
            self._send(rollout.suppliers(), "pilot_ended", rollout.notification.image_id,
                       count=len(pilot), succeeded=len(pilot) - len(failed),
                       failed=len(failed), failures=dict(list(failed.items())[:MAX_LISTED]),
                       commentary=(f"pilot ended: {len(pilot) - len(failed)} of {len(pilot)} "
                                   "CHs activated" + (f", {len(failed)} failed"
                                                      if failed else "")))
            if rollout.state is RolloutState.PILOT:
                rollout.state = RolloutState.SAFE_LAUNCH
            elif rollout.resume_state is RolloutState.PILOT:
                rollout.resume_state = RolloutState.SAFE_LAUNCH
        if rollout.state is RolloutState.SAFE_LAUNCH and done(rollout.eligible):
            rollout.state = RolloutState.COMPLETE

    # -- Requirement 6: incidents and decisions ------------------------------------------

    def raise_incident(self, supplier: str, image_id: str, description: str,
                       emergency_stop: bool = False) -> Incident:
        """A Supplier raises an incident on deployed firmware, marked high priority,
        possibly requesting an emergency stop (SECMP0024 2.7). With
        :attr:`RolloutConfig.suspend_on_emergency_stop` an emergency stop suspends the
        roll-out at once, pending the DCC's decision, and every Supplier is told.

        Raises:
            RuleViolation: no such roll-out, or ``supplier`` has no CH in it.
        """
        rollout = self.rollout(image_id)
        if supplier not in rollout.suppliers():
            raise RuleViolation(Rule.NOT_RESPONSIBLE, f"the Supplier has no CH in {image_id}")
        incident = Incident(f"INC-{len(self.incidents) + 1}", supplier, image_id,
                            description[:2000], emergency_stop, self.clock())
        self.incidents[incident.incident_id] = incident
        self._send(["dcc"], "incident", image_id, incident_id=incident.incident_id,
                   priority=incident.priority.value, emergency_stop=emergency_stop,
                   description=incident.description)
        if (emergency_stop and self.config.suspend_on_emergency_stop
                and not halted(rollout.state)):
            rollout.resume_state, rollout.state = rollout.state, RolloutState.SUSPENDED
            self._tell_decision(rollout, "suspend", incident, None)
        return incident

    def decide(self, incident_id: str, decision: Decision,
               end_at: dt.datetime | None = None) -> None:
        """The DCC's decision after reviewing an incident (SECMP0024 2.7): proceed (also
        resumes a pause or suspension), pause, delay the end date (the automatic date
        moves to ``end_at``) or stop; every relevant Supplier is told, with what it means
        for its pending instructions.

        Raises:
            RuleViolation: unknown incident; a stopped or revoked roll-out; ``delay_end``
                without an ``end_at`` later than the current automatic date.
        """
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise RuleViolation(Rule.UNKNOWN_INCIDENT, f"no incident {incident_id!r}")
        rollout = self._open(incident.image_id)
        if rollout.state is RolloutState.STOPPED:
            raise RuleViolation(Rule.HALTED, f"roll-out {incident.image_id} is stopped")
        n = rollout.notification
        if decision is Decision.DELAY_END and (end_at is None or end_at <= n.automatic_at):
            raise RuleViolation(Rule.DATE_INVALID, "delay_end needs an end date later than "
                                f"the automatic date {iso(n.automatic_at)}")
        was_halted = rollout.state in {RolloutState.SUSPENDED, RolloutState.PAUSED}
        resume = rollout.resume_state if was_halted else rollout.state
        if decision is Decision.PAUSE:
            if not was_halted:
                rollout.resume_state = rollout.state
            rollout.state = RolloutState.PAUSED
        elif decision is Decision.STOP:
            rollout.state = RolloutState.STOPPED
        else:
            rollout.state = resume
            if decision is Decision.DELAY_END and end_at is not None:
                rollout.notification = replace(n, automatic_at=end_at)
        self._tell_decision(rollout, decision.value, incident, end_at)
        if decision is Decision.STOP:
            self._cancel_pending(rollout)
        else:
            self._advance(rollout)  # outcomes that came in while halted may end a phase

    def _tell_decision(self, rollout: _Rollout, decision: str, incident: Incident,
                       end_at: dt.datetime | None) -> None:
        image_id = rollout.notification.image_id
        for supplier in sorted(rollout.suppliers()):
            pending = [i for i in rollout.instructions if i.supplier == supplier
                       and any(rollout.progress.get(g, ChProgress()).status
                               is ChStatus.ELIGIBLE for g in i.guids)]
            self._send([supplier], "decision", image_id, decision=decision,
                       incident_id=incident.incident_id, state=rollout.state.value,
                       pending_instructions=len(pending),
                       meaning=pending_effect(decision, pending, end_at))

    # -- Requirement 5: reports and dashboards -------------------------------------------

    def status_report(self, supplier: str, *, limit: int = 10_000,
                      offset: int = 0) -> dict[str, object]:
        """The firmware status of the Supplier's whole estate (SECMP0024 2.6): per CH its
        role, firmware version in the SMI and, per roll-out, status and reason; counts
        per status. ``limit``/``offset`` page the CH list (sorted by GUID)."""
        mine = sorted(g for g, ch in self.inventory.items() if ch.role_of(supplier))
        counts: collections.Counter[str] = collections.Counter()
        rows = []
        for index, guid in enumerate(mine):
            ch = self.inventory[guid]
            row: dict[str, object] = {"guid": guid, "role": str(ch.role_of(supplier)),
                                      "firmware_version": ch.firmware_version, "rollouts": {}}
            for image_id, rollout in self._rollouts.items():
                if guid in rollout.eligible:
                    p = rollout.progress.get(guid, ChProgress())
                    counts[p.status.value] += 1
                    assert isinstance(row["rollouts"], dict)
                    row["rollouts"][image_id] = {
                        "status": p.status.value, "reason": p.reason,
                        "planned_activation_at": iso(self.planned(rollout, rollout.eligible[
                            guid])), "pilot": guid in rollout.pilot_guids}
            if offset <= index < offset + limit:
                rows.append(row)
        return {"supplier": supplier, "chs": len(mine), "counts": dict(counts),
                "offset": offset, "items": rows}

    def dashboard(self, actor: str) -> dict[str, object]:
        """The dashboard of one actor, a Supplier User or ``"dcc"`` (SECMP0024 2.6): per
        roll-out the upgrades in flight, the actor's outstanding actions, the next action
        date of the other actors, and the time left for each actor's tasks (seconds)."""
        now = self.clock()
        items = []
        for image_id, rollout in self._rollouts.items():
            n = rollout.notification
            if actor != "dcc" and actor not in rollout.suppliers():
                continue
            deadline = instruction_deadline(n.automatic_at, self.config)
            statuses = collections.Counter(
                rollout.progress.get(g, ChProgress()).status.value for g in rollout.eligible
                if actor == "dcc" or rollout.eligible[g].role_of(actor))
            outstanding = self._outstanding(rollout, actor, now, deadline)
            items.append({
                "image_id": image_id, "state": rollout.state.value,
                "in_flight": statuses.get(ChStatus.DEPLOYING.value, 0),
                "counts": dict(statuses), "outstanding_actions": outstanding,
                "next_action_of_others": self._next_of_others(rollout, actor, deadline),
                "time_left_s": {
                    "suppliers_instruct": max(0.0, (deadline - now).total_seconds()),
                    "dcc_automatic_deployment": max(0.0, (n.automatic_at - now)
                                                    .total_seconds())},
            })
        return {"actor": actor, "at": iso(now), "rollouts": items,
                "config_deviations": self.config.deviations(), "source": SEED}

    def _outstanding(self, rollout: _Rollout, actor: str, now: dt.datetime,
                     deadline: dt.datetime) -> list[str]:
        state, image_id = rollout.state, rollout.notification.image_id
        if actor == "dcc":
            out = [f"review incident {i.incident_id} (high priority)"
                   for i in self.incidents.values() if i.image_id == image_id
                   and state in {RolloutState.SUSPENDED, RolloutState.PAUSED}]
            if state is RolloutState.NOTIFIED and rollout.pilot:
                out.append("start the pilot group deployment")
            if state is RolloutState.SAFE_LAUNCH:
                out.append("deploy the safe launch group as instructed")
            return out
        out = []
        if state is RolloutState.NOTIFIED and actor not in rollout.pilot:
            out.append("select and submit a pilot group")
        awaiting = sum(1 for g, by in rollout.instructed.items()
                       if actor not in by and rollout.eligible[g].role_of(actor)
                       and rollout.eligible[g].split
                       and rollout.progress.get(g, ChProgress()).status is ChStatus.ELIGIBLE)
        if awaiting and now <= deadline:
            out.append(f"{awaiting} split-supply CHs await your instruction (the second "
                       "Supplier has instructed)")
        return out

    def _next_of_others(self, rollout: _Rollout, actor: str,
                        deadline: dt.datetime) -> dict[str, str | None]:
        n = rollout.notification
        pending = [self.planned(rollout, ch) for g, ch in rollout.eligible.items()
                   if rollout.progress.get(g, ChProgress()).status is ChStatus.ELIGIBLE]
        dcc_next = min(pending, default=None)
        if actor == "dcc":
            return {"suppliers_instruction_deadline": iso(deadline)}
        return {"dcc_next_deployment_at": iso(dcc_next), "dcc_automatic_at":
                iso(n.automatic_at), "second_suppliers_instruction_deadline": iso(deadline)}
