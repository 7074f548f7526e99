"""The rules of a CH firmware roll-out, pure (no I/O, no state): SECMP0024 business
requirements 1-6 and their considerations (seed 004 sections 2.1-2.7), each function
citing its clause.

Every refusal is a :class:`RuleViolation` naming the rule (:class:`Rule`) and the clause;
a caller checks every rule before changing anything, so a refused request changes nothing.

Readings where the seed leaves a choice (stated so a lab can disagree and configure):

* "six months" and "one month" are calendar months (:func:`add_months`);
* "batches of at least 50,000" (section 2.4) is a minimum batch size; a batch smaller than
  it is taken only when it is all that is left of the Supplier's safe-launch group. The
  minimum is :attr:`RolloutConfig.batch_min_size`; a lab rehearsal on a few rigs lowers it
  and every plan says so (:meth:`RolloutConfig.deviations`);
* the pilot maximum (section 2.1, "assumed ... 200-300") applies to each Supplier's pilot
  submission; the default is 300.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hanlab.emulator.dcc.rollout.model import (
    ChRecord,
    Instruction,
    Notification,
    RolloutState,
)
from hanlab.errors import BadInputError

SEED_PILOT_MAX: Final = 300
"""SECMP0024 section 2.1: the pilot group "assumed for the time being to be 200-300"."""
SEED_BATCH_MIN: Final = 50_000
"""SECMP0024 section 2.4: "batches of at least 50,000"."""
SEED_NOTICE_MONTHS: Final = 6
"""SECMP0024 section 2.2: automatic deployment "normally six months from the date of
notification"."""
SEED_LEAD_MONTHS: Final = 1
"""SECMP0024 section 2.4: instructions received "no later than one month before" the
automatic activation time."""


class Rule(enum.StrEnum):
    """Every rule a request can break, with the clause of seed 004 it comes from
    (:data:`CLAUSES`)."""

    NOT_NOTIFIED = "notification-exists"
    REVOKED = "notification-revoked"
    NOT_DCC = "dcc-only"
    UNKNOWN_GUID = "guid-known"
    NOT_ELIGIBLE = "guid-eligible"
    NOT_RESPONSIBLE = "supplier-responsible"
    PILOT_TOO_LARGE = "pilot-max-size"
    PILOT_EMPTY = "pilot-not-empty"
    PILOT_STARTED = "pilot-not-started"
    NOT_EARLIER = "instruction-earlier-than-automatic"
    TOO_LATE = "instruction-one-month-before"
    IN_THE_PAST = "instruction-in-future"
    BATCH_TOO_SMALL = "batch-min-size"
    IN_PILOT = "safe-launch-excludes-pilot"
    NOT_IN_PILOT = "pilot-instruction-for-pilot-ch"
    SPLIT_NEEDS_BOTH = "split-supply-both-instruct"
    PILOT_FIRST = "pilot-before-mass-deployment"
    HALTED = "rollout-halted"
    ALREADY_DEPLOYED = "ch-not-yet-deployed"
    DATE_INVALID = "automatic-date-after-notification"
    UNKNOWN_INCIDENT = "incident-known"
    OUTCOME_UNEXPECTED = "outcome-for-deployed-ch"


CLAUSES: Final[Mapping[Rule, str]] = {
    Rule.NOT_NOTIFIED: "SECMP0024 2.2 (Requirement 1): only a notified image is rolled out",
    Rule.REVOKED: "SECMP0024 2.2 (Requirement 1): the DCC may revoke a notification",
    Rule.NOT_DCC: "SECMP0024 2.2 / 2.7: only the DCC notifies, moves the automatic date, "
                  "deploys and decides; only Suppliers select, instruct and raise incidents",
    Rule.UNKNOWN_GUID: "SECMP0024 2.6 (Requirement 5): GUIDs failing the DCC's validation "
                       "checks are listed with reasons",
    Rule.NOT_ELIGIBLE: "SECMP0024 2.3 (Requirement 2): GUIDs from the published list to "
                       "which the image may be applied",
    Rule.NOT_RESPONSIBLE: "SECMP0024 2.2 (Requirement 1): the CH GUIDs the Supplier User "
                          "is responsible for, as Import and/or Gas Supplier",
    Rule.PILOT_TOO_LARGE: "SECMP0024 2.1: the pilot group's maximum size (assumed 200-300)",
    Rule.PILOT_EMPTY: "SECMP0024 2.3 (Requirement 2): the Supplier submits a pilot list",
    Rule.PILOT_STARTED: "SECMP0024 2.3 (Requirement 2): the pilot is chosen before the DCC "
                        "triggers it",
    Rule.NOT_EARLIER: "SECMP0024 2.4 (Requirement 3): instructions must specify an earlier "
                      "time than the DCC automatic activation time",
    Rule.TOO_LATE: "SECMP0024 2.4 (Requirement 3): instructions must be received no later "
                   "than one month before the DCC's automatic activation time",
    Rule.IN_THE_PAST: "SECMP0024 2.4 (Requirement 3): activation takes place during the "
                      "specified date and time, which must be ahead",
    Rule.BATCH_TOO_SMALL: "SECMP0024 2.4 (Requirement 3): batches of at least 50,000 "
                          "(configurable; lab rehearsals lower it)",
    Rule.IN_PILOT: "SECMP0024 2.1: the safe launch group is the eligible set less the "
                   "pilot group",
    Rule.NOT_IN_PILOT: "SECMP0024 2.3 / 2.4: a 'pilot group' instruction covers CHs of the "
                       "submitted pilot group",
    Rule.SPLIT_NEEDS_BOTH: "SECMP0024 2.4 / 2.5 (Requirements 3, 4): with separate Import "
                           "and Gas Suppliers the DCC must receive instruction from both",
    Rule.PILOT_FIRST: "SECMP0024 Requirement 2: the pilot group is updated prior to mass "
                      "deployment",
    Rule.HALTED: "SECMP0024 2.7 (Requirement 6): the roll-out is paused, suspended, "
                 "stopped or revoked",
    Rule.ALREADY_DEPLOYED: "SECMP0024 2.4 (Requirement 3): an instruction precedes the "
                           "DCC distributing the update to the CH",
    Rule.DATE_INVALID: "SECMP0024 2.2 (Requirement 1): the DCC sets the automatic date "
                       "earlier or later than six months, after notification",
    Rule.UNKNOWN_INCIDENT: "SECMP0024 2.7 (Requirement 6): the DCC reviews incidents "
                           "raised by Suppliers",
    Rule.OUTCOME_UNEXPECTED: "SECMP0024 2.3 / 2.6: progress is reported for CHs deployed",
}


class RuleViolation(BadInputError):
    """A request refused because it breaks a roll-out rule; nothing changed.

    Attributes:
        rule: the :class:`Rule` broken.
        clause: the seed clause (:data:`CLAUSES`).
        failures: GUID -> reason, for the GUIDs that failed (SECMP0024 2.6), possibly empty.
    """

    def __init__(self, rule: Rule, detail: str, *,
                 failures: Mapping[str, str] | None = None) -> None:
        self.rule = rule
        self.clause = CLAUSES[rule]
        self.failures = dict(failures or {})
        super().__init__(f"refused by rule {rule.value}: {detail} [{self.clause}]")

    def as_json(self) -> dict[str, object]:
        """The refusal as the portal answers it."""
        return {"error": "rule", "rule": self.rule.value, "clause": self.clause,
                "message": self.message, "failures": self.failures}


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """The configurable parameters of the rules; defaults are the seed's.

    Attributes:
        pilot_max_size: most CHs in one Supplier's pilot (SECMP0024 2.1: 200-300).
        batch_min_size: least CHs in a safe-launch batch (SECMP0024 2.4: 50,000).
        notice_months: automatic date after notification (SECMP0024 2.2: six months).
        lead_months: instructions received at least this long before the automatic date
            (SECMP0024 2.4: one month).
        suspend_on_emergency_stop: the DCC halts deployments at once when an incident
            requests an emergency stop, pending its review (SECMP0024 2.7: "they may
            suspend the roll-out pending the outcome").

    Raises:
        BadInputError: a size below 1 or a negative number of months.
    """

    pilot_max_size: int = SEED_PILOT_MAX
    batch_min_size: int = SEED_BATCH_MIN
    notice_months: int = SEED_NOTICE_MONTHS
    lead_months: int = SEED_LEAD_MONTHS
    suspend_on_emergency_stop: bool = True

    def __post_init__(self) -> None:
        if self.pilot_max_size < 1 or self.batch_min_size < 1:
            raise BadInputError("roll-out config: pilot_max_size and batch_min_size must "
                                "be >= 1")
        if self.notice_months < 0 or self.lead_months < 0:
            raise BadInputError("roll-out config: notice_months and lead_months must be "
                                ">= 0")

    def deviations(self) -> list[str]:
        """One line per parameter set away from the seed (printed with every plan, so a
        lab rehearsal's output says it is one)."""
        seed = RolloutConfig()
        out = []
        for name, clause in (("pilot_max_size", "2.1"), ("batch_min_size", "2.4"),
                             ("notice_months", "2.2"), ("lead_months", "2.4")):
            ours, theirs = getattr(self, name), getattr(seed, name)
            if ours != theirs:
                out.append(f"{name} = {ours} (SECMP0024 {clause} default {theirs}: "
                           "lab rehearsal override)")
        return out


RANK_SEED_MULTIPLIER: Final = 0x9E3779B1
RANK_ROUNDS: Final = ((0x9E3779B1, 0x85EBCA77), (0xC2B2AE3D, 0x27D4EB2F),
                      (0x165667B1, 0xD3A2646C))
"""The rounds of :func:`pilot_rank`: each ``x = lo32(x) * a XOR hi32(x) * b``, which stays
within 64 bits, so DuckDB computes it in UBIGINT (:mod:`.estate`) exactly as Python does."""
_MASK64: Final = (1 << 64) - 1


def pilot_rank(guid_value: int, seed: int) -> int:
    """The order pilot business rules sample CHs in (SECMP0024 2.3: a Supplier's "configurable
    business rules"): a 64-bit mix of the GUID (as an integer) and ``seed``, so a pilot is
    spread over the estate, repeatable, and the same in memory and in DuckDB."""
    x = guid_value ^ ((seed * RANK_SEED_MULTIPLIER) & _MASK64)
    for a, b in RANK_ROUNDS:
        x = ((x & 0xFFFFFFFF) * a) ^ ((x >> 32) * b)
    return x


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """``when`` plus ``months`` calendar months (negative: earlier), the day clamped to the
    month's last (31 August + 6 months = 28/29 February)."""
    index = when.year * 12 + (when.month - 1) + months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def automatic_date(notified_at: dt.datetime, config: RolloutConfig,
                   override: dt.datetime | None = None) -> dt.datetime:
    """The date the DCC deploys automatically: ``override`` if the DCC set one, else
    ``notified_at`` plus :attr:`RolloutConfig.notice_months` (SECMP0024 2.2, Requirement 1).

    Raises:
        RuleViolation: ``override`` is not after ``notified_at`` (:attr:`Rule.DATE_INVALID`).
    """
    if override is None:
        return add_months(notified_at, config.notice_months)
    if override <= notified_at:
        raise RuleViolation(Rule.DATE_INVALID, f"automatic date {override.isoformat()} is "
                            f"not after the notification {notified_at.isoformat()}")
    return override


def instruction_deadline(automatic_at: dt.datetime, config: RolloutConfig) -> dt.datetime:
    """The last time the DCC takes an instruction: :attr:`RolloutConfig.lead_months`
    before the automatic activation time (SECMP0024 2.4, Requirement 3)."""
    return add_months(automatic_at, -config.lead_months)


def check_timing(notification: Notification, activation_at: dt.datetime,
                 received_at: dt.datetime, config: RolloutConfig) -> None:
    """An instruction's times (SECMP0024 2.4, Requirement 3): received no later than one
    month before the automatic time, for a time earlier than it and not before receipt.

    Raises:
        RuleViolation: :attr:`Rule.TOO_LATE`, :attr:`Rule.NOT_EARLIER` or
            :attr:`Rule.IN_THE_PAST`.
    """
    automatic_at = notification.automatic_at
    deadline = instruction_deadline(automatic_at, config)
    if received_at > deadline:
        raise RuleViolation(Rule.TOO_LATE, f"received {received_at.isoformat()}, after the "
                            f"deadline {deadline.isoformat()} ({config.lead_months} month(s) "
                            f"before the automatic date {automatic_at.isoformat()})")
    if activation_at >= automatic_at:
        raise RuleViolation(Rule.NOT_EARLIER, f"activation {activation_at.isoformat()} is "
                            f"not earlier than the automatic date {automatic_at.isoformat()}")
    if activation_at < received_at:
        raise RuleViolation(Rule.IN_THE_PAST, f"activation {activation_at.isoformat()} is "
                            f"before the instruction was received ({received_at.isoformat()})")


def check_guids(supplier: str, guids: Sequence[str], inventory: Mapping[str, ChRecord],
                notification: Notification, eligible: Container[str]) -> list[ChRecord]:
    """The CHs of ``guids``, each in the ``inventory``, one the Supplier is responsible
    for and in the ``eligible`` list published for ``notification`` (SECMP0024 2.2, 2.3;
    failures listed per GUID with the reason, 2.6).

    Raises:
        RuleViolation: :attr:`Rule.UNKNOWN_GUID` (some GUID unknown), else
            :attr:`Rule.NOT_RESPONSIBLE`, else :attr:`Rule.NOT_ELIGIBLE`; ``failures``
            lists every failing GUID with its reason.
    """
    failures: dict[str, tuple[Rule, str]] = {}
    found: list[ChRecord] = []
    for guid in guids:
        ch = inventory.get(guid)
        if ch is None:
            failures[guid] = (Rule.UNKNOWN_GUID, "not a CH GUID in the Smart Metering "
                              "Inventory")
        elif ch.role_of(supplier) is None:
            failures[guid] = (Rule.NOT_RESPONSIBLE, "not a CH this Supplier is responsible "
                              "for")
        elif guid not in eligible:
            failures[guid] = (Rule.NOT_ELIGIBLE, f"CH {ch.device_model} on "
                              f"{ch.firmware_version} is not eligible for "
                              f"{notification.device_model} {notification.firmware_version}")
        else:
            found.append(ch)
    if failures:
        rules = [rule for rule, _ in failures.values()]
        rule = next(r for r in (Rule.UNKNOWN_GUID, Rule.NOT_RESPONSIBLE, Rule.NOT_ELIGIBLE)
                    if r in rules)
        raise RuleViolation(rule, f"{len(failures)} of {len(guids)} GUIDs failed "
                            "validation", failures={g: why for g, (_, why) in failures.items()})
    return found


def check_pilot(guids: Sequence[str], config: RolloutConfig) -> None:
    """A pilot submission's size: 1 to :attr:`RolloutConfig.pilot_max_size` CHs
    (SECMP0024 2.1, 2.3).

    Raises:
        RuleViolation: :attr:`Rule.PILOT_EMPTY` or :attr:`Rule.PILOT_TOO_LARGE`.
    """
    if not guids:
        raise RuleViolation(Rule.PILOT_EMPTY, "the pilot list is empty")
    if len(set(guids)) > config.pilot_max_size:
        raise RuleViolation(Rule.PILOT_TOO_LARGE, f"{len(set(guids))} CHs exceed the "
                            f"pilot maximum of {config.pilot_max_size}")


def check_batch(batch: Iterable[str], remaining: Iterable[str], pilot: Iterable[str],
                config: RolloutConfig) -> None:
    """A safe-launch batch (SECMP0024 2.1, 2.4): none of its CHs in the pilot group, and
    at least :attr:`RolloutConfig.batch_min_size` CHs unless it is all that remains of
    the Supplier's safe-launch group.

    Args:
        batch: the GUIDs instructed.
        remaining: the Supplier's safe-launch GUIDs not yet instructed nor deployed.
        pilot: the pilot group's GUIDs.

    Raises:
        RuleViolation: :attr:`Rule.IN_PILOT` or :attr:`Rule.BATCH_TOO_SMALL`.
    """
    chosen, pilot_set = set(batch), set(pilot)
    in_pilot = sorted(chosen & pilot_set)
    if in_pilot:
        raise RuleViolation(Rule.IN_PILOT, f"{len(in_pilot)} GUIDs are in the pilot group",
                            failures={g: "in the pilot group" for g in in_pilot})
    left = set(remaining) - pilot_set
    if len(chosen) < config.batch_min_size and not left <= chosen:
        raise RuleViolation(Rule.BATCH_TOO_SMALL, f"a batch of {len(chosen)} CHs is below "
                            f"the minimum of {config.batch_min_size} and leaves "
                            f"{len(left - chosen)} of the safe-launch group")


def planned_activation(ch: ChRecord, automatic_at: dt.datetime,
                       instructed: Mapping[str, dt.datetime]) -> dt.datetime:
    """The planned activation time of one CH (SECMP0024 2.4 and 2.5, Requirements 3, 4).

    Args:
        ch: the CH.
        automatic_at: the DCC's automatic date.
        instructed: Supplier User -> the activation time it instructed for this CH.

    Returns:
        with one Supplier (or Import and Gas the same Party) its instructed time; with
        separate Suppliers the later of both instructed times when both instructed, else
        the automatic date ("both Suppliers do not agree"); with no instruction the
        automatic date.
    """
    times = [instructed[s] for s in ch.suppliers if s in instructed]
    if not times or len(times) < len(ch.suppliers):
        return automatic_at
    return min(max(times), automatic_at)


def halted(state: RolloutState) -> bool:
    """True when no deployment may start (SECMP0024 2.7: paused, suspended pending
    review, stopped; 2.2: revoked)."""
    return state in {RolloutState.SUSPENDED, RolloutState.PAUSED, RolloutState.STOPPED,
                     RolloutState.REVOKED}


def pending_effect(decision: str, instructions: Sequence[Instruction],
                   end_at: dt.datetime | None) -> str:
    """What a DCC decision means for a Supplier's pending instructions (SECMP0024 2.7:
    "including what this means for any pending update requests")."""
    n = len(instructions)
    if decision == "proceed":
        return f"{n} pending instruction(s) stand; deployments continue as planned"
    if decision == "pause":
        return (f"{n} pending instruction(s) are held: nothing is deployed until the DCC "
                "resumes; instructed times that pass while paused are deployed on resume")
    if decision == "delay_end":
        return (f"{n} pending instruction(s) stand; the automatic date moves to "
                f"{end_at.isoformat() if end_at else '?'} for CHs not instructed")
    if decision == "suspend":
        return (f"{n} pending instruction(s) are held pending the DCC's review of an "
                "emergency stop request")
    return f"{n} pending instruction(s) are cancelled; no further CH is deployed"

