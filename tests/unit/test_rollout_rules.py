"""SECMP0024 (seed 004) roll-out rules, table-driven: each case names the clause it checks.

The estate: Supplier A alone on CHs 0-9 (import, no gas), A for both fuels on 10-19, split
supply (A import, B gas) on 20-29, B alone on 30-39, and CH 40 on another model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hanlab.emulator.dcc.rollout.model import (
    ChRecord,
    ChStatus,
    Decision,
    DeployOrder,
    Priority,
    RolloutState,
    Severity,
)
from hanlab.emulator.dcc.rollout.rules import (
    RolloutConfig,
    Rule,
    RuleViolation,
    add_months,
    planned_activation,
)
from hanlab.emulator.dcc.rollout.service import PilotRules, RolloutService
from hanlab.errors import BadInputError

A, B = "90-B3-D5-1F-30-00-00-0A", "90-B3-D5-1F-30-00-00-0B"
T0 = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
IMAGE = "CHF-2.2"


def guid(n: int) -> str:
    return f"00-DB-12-00-00-00-00-{n:02X}"


SINGLE, BOTH_FUELS, SPLIT, B_ONLY = ([guid(n) for n in range(k, k + 10)]
                                     for k in (0, 10, 20, 30))


def estate() -> list[ChRecord]:
    out = [ChRecord(g, "CH-A", "2.1", A, None, "north") for g in SINGLE]
    out += [ChRecord(g, "CH-A", "2.1", A, A, "south") for g in BOTH_FUELS]
    out += [ChRecord(g, "CH-A", "2.1", A, B) for g in SPLIT]
    out += [ChRecord(g, "CH-A", "2.1", B, B) for g in B_ONLY]
    return [*out, ChRecord(guid(40), "CH-OTHER", "1.0", A, None)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Lab:
    service: RolloutService
    clock: Clock
    orders: list[DeployOrder]


def lab(**config: int) -> Lab:
    clock, orders = Clock(), []
    service = RolloutService(estate(), RolloutConfig(**{"pilot_max_size": 4,
                                                        "batch_min_size": 5, **config}),
                             clock=clock, deploy=orders.append)
    service.notify(IMAGE, "CH-A", "2.2", release_note="RN-CHF-2.2", severity=Severity.HIGH,
                   priority=Priority.NORMAL)
    return Lab(service, clock, orders)


def refused(rule: Rule, action: Callable[[], object]) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        action()
    assert caught.value.rule is rule
    assert caught.value.clause.startswith("SECMP0024")
    assert rule.value in str(caught.value)
    return caught.value


def snapshot(service: RolloutService) -> object:
    r = service.rollout(IMAGE)
    return (r.state, dict(r.pilot), {g: dict(v) for g, v in r.instructed.items()},
            len(r.instructions), {g: (p.status, p.reason) for g, p in r.progress.items()},
            r.notification, len(service.notices_for(A)), len(service.notices_for(B)))


# -- Requirement 1 (section 2.2) --------------------------------------------------------


def test_2_2_notification_content_and_six_month_default() -> None:
    """2.2: model and version as on the CPL, release note, severity, priority, automatic
    date six months after notification; each Supplier gets its GUIDs and its role."""
    t = lab()
    (note,) = t.service.notifications()
    assert note["automatic_at"] == "2027-07-04T00:00:00Z"
    assert (note["device_model"], note["firmware_version"], note["release_note"],
            note["severity"], note["priority"]) == ("CH-A", "2.2", "RN-CHF-2.2", "high",
                                                    "normal")
    reports = {n.body["count"]: n.body for n in t.service.notices_for(A)
               if n.kind == "eligible_report"}
    assert set(reports) == {30}
    assert reports[30]["import_count"] == 30 and reports[30]["gas_count"] == 10
    roles = {e["guid"]: e["role"] for e in t.service.eligible_for(B, IMAGE)}
    assert roles[SPLIT[0]] == "gas" and roles[B_ONLY[0]] == "import+gas"
    assert guid(40) not in roles and len(roles) == 20


@pytest.mark.parametrize(("when", "months", "expected"), [
    (dt.datetime(2027, 8, 31, tzinfo=dt.UTC), 6, dt.datetime(2028, 2, 29, tzinfo=dt.UTC)),
    (dt.datetime(2027, 7, 31, tzinfo=dt.UTC), -1, dt.datetime(2027, 6, 30, tzinfo=dt.UTC)),
    (dt.datetime(2027, 1, 15, tzinfo=dt.UTC), 12, dt.datetime(2028, 1, 15, tzinfo=dt.UTC)),
], ids=["2.2-six-months-clamped", "2.4-one-month-before-clamped", "year"])
def test_calendar_months(when: dt.datetime, months: int, expected: dt.datetime) -> None:
    assert add_months(when, months) == expected


def test_2_2_dcc_moves_the_date_and_revokes() -> None:
    """2.2: the DCC sets the automatic date earlier or later; it may revoke."""
    t = lab()
    t.service.move_automatic_date(IMAGE, T0 + 90 * DAY)
    assert t.service.rollout(IMAGE).notification.automatic_at == T0 + 90 * DAY
    assert any(n.kind == "date_moved" for n in t.service.notices_for(B))
    before = snapshot(t.service)
    refused(Rule.DATE_INVALID, lambda: t.service.move_automatic_date(IMAGE, T0 - DAY))
    assert snapshot(t.service) == before
    t.service.revoke(IMAGE, "defect found in test")
    assert t.service.rollout(IMAGE).state is RolloutState.REVOKED
    refused(Rule.REVOKED, lambda: t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 9 * DAY))


# -- refusals: every rule, nothing of the plan changes ----------------------------------

SOON = T0 + 30 * DAY

REFUSALS: list[tuple[str, Rule, Callable[[Lab], object]]] = [
    ("2.4-instruction-too-late", Rule.TOO_LATE, lambda t: (
        setattr(t.clock, "now", T0 + 155 * DAY),
        t.service.instruct(A, IMAGE, SINGLE[2:], T0 + 160 * DAY))),
    ("2.4-not-earlier-than-automatic", Rule.NOT_EARLIER,
     lambda t: t.service.instruct(A, IMAGE, SINGLE[2:], T0 + 200 * DAY)),
    ("2.4-activation-in-the-past", Rule.IN_THE_PAST,
     lambda t: t.service.instruct(A, IMAGE, SINGLE[2:], T0 - DAY)),
    ("2.1-pilot-over-the-maximum", Rule.PILOT_TOO_LARGE,
     lambda t: t.service.submit_pilot(A, IMAGE, SINGLE[:5], SOON)),
    ("2.3-pilot-empty", Rule.PILOT_EMPTY, lambda t: t.service.submit_pilot(A, IMAGE, [], SOON)),
    ("2.6-unknown-guid", Rule.UNKNOWN_GUID,
     lambda t: t.service.instruct(A, IMAGE, [*SINGLE[2:], "00-DB-12-FF-FF-FF-FF-FF"], SOON)),
    ("2.2-supplier-not-responsible", Rule.NOT_RESPONSIBLE,
     lambda t: t.service.instruct(A, IMAGE, B_ONLY[:5], SOON)),
    ("2.3-guid-not-eligible", Rule.NOT_ELIGIBLE,
     lambda t: t.service.instruct(A, IMAGE, [guid(40), *SINGLE[2:]], SOON)),
    ("2.4-batch-below-minimum", Rule.BATCH_TOO_SMALL,
     lambda t: t.service.instruct(A, IMAGE, SINGLE[2:6], SOON)),
    ("2.1-safe-launch-excludes-pilot", Rule.IN_PILOT,
     lambda t: t.service.instruct(A, IMAGE, SINGLE[:6], SOON)),
    ("2.3-pilot-instruction-outside-pilot", Rule.NOT_IN_PILOT,
     lambda t: t.service.instruct(B, IMAGE, SPLIT[5:7], SOON, scope="pilot")),
    ("2.4-split-pilot-one-supplier-alone", Rule.SPLIT_NEEDS_BOTH,
     lambda t: t.service.start_pilot(IMAGE)),
    ("req2-pilot-before-mass-deployment", Rule.PILOT_FIRST,
     lambda t: t.service.deploy_due(IMAGE)),
    ("2.6-outcome-for-undeployed-ch", Rule.OUTCOME_UNEXPECTED,
     lambda t: t.service.report_outcome(IMAGE, B_ONLY[0], True)),
    ("2.7-unknown-incident", Rule.UNKNOWN_INCIDENT,
     lambda t: t.service.decide("INC-99", Decision.PROCEED)),
    ("2.2-not-notified", Rule.NOT_NOTIFIED,
     lambda t: t.service.instruct(A, "no-such-image", SINGLE, SOON)),
]


@pytest.mark.parametrize(("rule", "action"), [(r, a) for _, r, a in REFUSALS],
                         ids=[i for i, _, _ in REFUSALS])
def test_refusal_names_the_rule_and_changes_nothing(
        rule: Rule, action: Callable[[Lab], object]) -> None:
    """Every rule refuses with its name and clause; the plan, the orders and the notices
    are as they were."""
    t = lab()
    # a pilot of two of A's single-supply CHs and one split CH (B has not instructed it)
    t.service.submit_pilot(A, IMAGE, [SINGLE[0], SINGLE[1], SPLIT[0]], T0 + 21 * DAY)
    before, orders = snapshot(t.service), len(t.orders)
    violation = refused(rule, lambda: action(t))
    assert snapshot(t.service) == before
    assert len(t.orders) == orders
    if rule in {Rule.UNKNOWN_GUID, Rule.NOT_RESPONSIBLE, Rule.NOT_ELIGIBLE}:
        assert violation.failures and all(violation.failures.values())


def test_2_6_validation_failures_listed_per_guid() -> None:
    """2.6: every GUID that failed validation is listed with the reason for it."""
    t = lab()
    bad = refused(Rule.UNKNOWN_GUID, lambda: t.service.instruct(
        A, IMAGE, [SINGLE[0], "00-DB-12-FF-FF-FF-FF-FF", B_ONLY[0], guid(40)], SOON))
    assert set(bad.failures) == {"00-DB-12-FF-FF-FF-FF-FF", B_ONLY[0], guid(40)}
    assert "Inventory" in bad.failures["00-DB-12-FF-FF-FF-FF-FF"]
    assert "responsible" in bad.failures[B_ONLY[0]]
    assert "not eligible" in bad.failures[guid(40)]


# -- Requirement 2 (section 2.3) --------------------------------------------------------


@pytest.mark.parametrize(("rules", "check"), [
    (PilotRules(size=3), lambda g: len(g) == 3),
    (PilotRules(size=99), lambda g: len(g) == 4),  # capped at the configured maximum
    (PilotRules(size=4, regions=("south",)), lambda g: set(g) <= set(BOTH_FUELS)),
    (PilotRules(size=4, single_supplier_only=True), lambda g: not set(g) & set(SPLIT)),
], ids=["2.3-size", "2.1-capped-at-maximum", "2.3-rule-region", "2.3-rule-single-supply"])
def test_2_3_pilot_selected_by_business_rules(rules: PilotRules,
                                              check: Callable[[list[str]], bool]) -> None:
    t = lab()
    chosen = t.service.select_pilot(A, IMAGE, rules)
    assert check(chosen)
    assert chosen == t.service.select_pilot(A, IMAGE, rules)  # repeatable
    assert t.service.rollout(IMAGE).pilot == {}  # selecting submits nothing


def test_2_3_pilot_start_progress_end_and_safe_launch_group() -> None:
    """2.3: start notice, per-CH success/fail with reason, end notice with commentary;
    2.1: the safe launch group is the eligible set less the pilot."""
    t = lab()
    t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 21 * DAY)
    t.service.submit_pilot(B, IMAGE, B_ONLY[:2], T0 + 28 * DAY)
    orders = t.service.start_pilot(IMAGE)
    assert {o.guid: o.activation_at for o in orders} == {
        SINGLE[0]: T0 + 21 * DAY, SINGLE[1]: T0 + 21 * DAY,
        B_ONLY[0]: T0 + 28 * DAY, B_ONLY[1]: T0 + 28 * DAY}
    assert t.orders == orders and {o.group for o in orders} == {"pilot"}
    t.service.report_outcome(IMAGE, SINGLE[0], True)
    t.service.report_outcome(IMAGE, SINGLE[1], False, "image rejected: bad signature")
    assert t.service.rollout(IMAGE).state is RolloutState.PILOT
    t.service.report_outcome(IMAGE, B_ONLY[0], True)
    t.service.report_outcome(IMAGE, B_ONLY[1], True)
    kinds = [n.kind for n in t.service.notices_for(A)]
    assert kinds.index("pilot_started") < kinds.index("progress") < kinds.index("pilot_ended")
    (end,) = [n.body for n in t.service.notices_for(B) if n.kind == "pilot_ended"]
    assert end["failed"] == 1 and end["failures"] == {
        SINGLE[1]: "image rejected: bad signature"}
    assert "3 of 4" in str(end["commentary"])
    assert t.service.rollout(IMAGE).state is RolloutState.SAFE_LAUNCH
    remaining = t.service.remaining_safe_launch(A, IMAGE)
    assert len(remaining) == 28 and not set(remaining) & {SINGLE[0], SINGLE[1]}


# -- Requirements 3 and 4 (sections 2.4, 2.5): split supply ------------------------------

T_A, T_B, AUTO = T0 + 60 * DAY, T0 + 75 * DAY, add_months(T0, 6)
SPLIT_CH = ChRecord(SPLIT[0], "CH-A", "2.1", A, B)
SAME_PARTY = ChRecord(BOTH_FUELS[0], "CH-A", "2.1", A, A)


@pytest.mark.parametrize(("ch", "instructed", "expected"), [
    (ChRecord(SINGLE[0], "CH-A", "2.1", A, None), {A: T_A}, T_A),
    (SAME_PARTY, {A: T_A}, T_A),
    (SPLIT_CH, {}, AUTO),
    (SPLIT_CH, {A: T_A}, AUTO),
    (SPLIT_CH, {B: T_B}, AUTO),
    (SPLIT_CH, {A: T_A, B: T_B}, T_B),
    (SPLIT_CH, {A: T_B, B: T_A}, T_B),
], ids=["2.4-one-supplier", "2.4-import-and-gas-same-party", "2.4-no-instruction-dcc-date",
        "2.5-split-import-alone-dcc-date", "2.5-split-gas-alone-dcc-date",
        "2.5-split-both-later-applies", "2.5-split-both-later-applies-either-way"])
def test_planned_activation(ch: ChRecord, instructed: dict[str, dt.datetime],
                            expected: dt.datetime) -> None:
    assert planned_activation(ch, AUTO, instructed) == expected


def test_2_4_split_second_supplier_told_exists_not_who() -> None:
    """2.4: each Supplier is told there is a second Supplier (not who) and whether it
    has instructed; 2.6: the requesting Supplier is told its instruction was received."""
    t = lab()
    t.service.instruct(A, IMAGE, t.service.remaining_safe_launch(A, IMAGE), T_A)
    assert t.service.second_supplier(B, IMAGE, SPLIT[0]) == {
        "guid": SPLIT[0], "second_supplier_exists": True,
        "second_supplier_instructed": True,
        "planned_activation_at": "2027-07-04T00:00:00Z"}  # only A: the DCC date stands
    assert t.service.second_supplier(A, IMAGE, SPLIT[0])["second_supplier_instructed"] is False
    assert t.service.second_supplier(A, IMAGE, SINGLE[0])["second_supplier_exists"] is False
    kinds = {n.kind: n.body for n in t.service.notices_for(A)}
    assert kinds["instruction_received"]["count"] == 30
    assert kinds["second_supplier"]["awaiting_count"] == 10
    told_b = [n.body for n in t.service.notices_for(B) if n.kind == "second_supplier"]
    assert told_b and told_b[0]["count"] == 10
    assert all(A not in str(n.body) for n in t.service.notices_for(B))  # never who
    dash = t.service.dashboard(B)["rollouts"]
    assert isinstance(dash, list)
    assert "10 split-supply CHs await your instruction" in " ".join(
        dash[0]["outstanding_actions"])
    t.service.instruct(B, IMAGE, t.service.remaining_safe_launch(B, IMAGE), T_B)
    assert t.service.second_supplier(A, IMAGE, SPLIT[0])["planned_activation_at"] == (
        "2027-03-20T00:00:00Z")  # the later of the two


def test_2_4_split_pilot_needs_both_then_starts() -> None:
    """2.4: with separate Suppliers the DCC must receive both instructions before
    deploying: the pilot starts once the Gas Supplier instructs its pilot CH too."""
    t = lab()
    t.service.submit_pilot(A, IMAGE, [SINGLE[0], SPLIT[0]], T0 + 21 * DAY)
    bad = refused(Rule.SPLIT_NEEDS_BOTH, lambda: t.service.start_pilot(IMAGE))
    assert list(bad.failures) == [SPLIT[0]]
    t.service.instruct(B, IMAGE, [SPLIT[0]], T0 + 25 * DAY, scope="pilot")
    orders = {o.guid: o.activation_at for o in t.service.start_pilot(IMAGE)}
    assert orders == {SINGLE[0]: T0 + 21 * DAY, SPLIT[0]: T0 + 25 * DAY}


def test_2_4_batches_and_automatic_deployment() -> None:
    """2.4: safe launch in batches (at least the minimum, or the rest); uninstructed CHs
    deploy at the automatic date; an activation confirmed updates the SMI and the current
    Suppliers are told (2.6)."""
    t = lab()
    t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 21 * DAY)
    for o in t.service.start_pilot(IMAGE):
        t.service.report_outcome(IMAGE, o.guid, True)
    t.service.instruct(A, IMAGE, SINGLE[2:7], T0 + 40 * DAY)  # a batch of the minimum, 5
    t.service.instruct(A, IMAGE, BOTH_FUELS, T0 + 50 * DAY)
    t.clock.now = T0 + 40 * DAY
    assert {o.guid for o in t.service.deploy_due(IMAGE)} == set(SINGLE[2:7])
    t.clock.now = AUTO
    due = t.service.deploy_due(IMAGE)
    assert len(due) == 40 - 7  # everything left, at the automatic date
    assert t.service.inventory[SPLIT[0]].firmware_version == "2.1"
    t.service.report_outcome(IMAGE, SPLIT[0], True)
    assert t.service.inventory[SPLIT[0]].firmware_version == "2.2"
    for who in (A, B):
        assert any(n.kind == "activated" and n.body["guid"] == SPLIT[0]
                   for n in t.service.notices_for(who))


def test_2_4_dcc_deploys_in_batches_and_deployed_chs_take_no_instruction() -> None:
    """2.4/2.7: the DCC rolls the safe launch out in batches (at least the minimum); a CH
    already distributed takes no further instruction."""
    t = lab()
    t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 21 * DAY)
    for o in t.service.start_pilot(IMAGE):
        t.service.report_outcome(IMAGE, o.guid, True)
    t.clock.now = AUTO
    refused(Rule.BATCH_TOO_SMALL, lambda: t.service.deploy_due(IMAGE, batch_size=4))
    sizes = []
    while batch := t.service.deploy_due(IMAGE, batch_size=15):
        sizes.append(len(batch))
    assert sizes == [15, 15, 8]
    t.clock.now = T0
    bad = refused(Rule.ALREADY_DEPLOYED,
                  lambda: t.service.instruct(A, IMAGE, SINGLE[:7], T0 + 40 * DAY))
    assert bad.failures[SINGLE[0]] == "already activated"


def test_2_4_small_batch_allowed_only_as_the_rest() -> None:
    t = lab(batch_min_size=50)
    t.service.instruct(A, IMAGE, t.service.remaining_safe_launch(A, IMAGE), SOON)
    refused(Rule.BATCH_TOO_SMALL, lambda: t.service.instruct(B, IMAGE, B_ONLY, SOON))


# -- Requirement 5 (section 2.6) --------------------------------------------------------


def test_2_6_status_report_and_dashboards() -> None:
    t = lab()
    t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 21 * DAY)
    t.service.start_pilot(IMAGE)
    t.service.report_outcome(IMAGE, SINGLE[0], False, "HAN: CH did not reboot")
    report = t.service.status_report(A)
    assert report["chs"] == 31 and report["counts"] == {"failed": 1, "deploying": 1,
                                                        "eligible": 28}
    items = {i["guid"]: i for i in report["items"]}  # type: ignore[union-attr]
    assert items[SINGLE[0]]["rollouts"][IMAGE]["reason"] == "HAN: CH did not reboot"
    dash_a, dash_dcc = t.service.dashboard(A), t.service.dashboard("dcc")
    (ra,), (rd,) = dash_a["rollouts"], dash_dcc["rollouts"]  # type: ignore[misc]
    assert ra["in_flight"] == 1 and rd["in_flight"] == 1
    assert ra["next_action_of_others"]["dcc_automatic_at"] == "2027-07-04T00:00:00Z"
    assert ra["time_left_s"]["suppliers_instruct"] == (
        add_months(AUTO, -1) - T0).total_seconds()
    assert dash_a["config_deviations"]  # the lab rehearsal's sizes are stated


# -- Requirement 6 (section 2.7) --------------------------------------------------------


@pytest.mark.parametrize(("decision", "state", "meaning"), [
    (Decision.PROCEED, RolloutState.SAFE_LAUNCH, "stand"),
    (Decision.PAUSE, RolloutState.PAUSED, "held"),
    (Decision.DELAY_END, RolloutState.SAFE_LAUNCH, "automatic date moves"),
    (Decision.STOP, RolloutState.STOPPED, "cancelled"),
], ids=["2.7-proceed", "2.7-pause", "2.7-delay-end", "2.7-stop"])
def test_2_7_incident_emergency_stop_and_decision(decision: Decision, state: RolloutState,
                                                  meaning: str) -> None:
    t = lab()
    t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 21 * DAY)
    for o in t.service.start_pilot(IMAGE):
        t.service.report_outcome(IMAGE, o.guid, True)
    t.service.instruct(B, IMAGE, B_ONLY, T0 + 40 * DAY)
    incident = t.service.raise_incident(A, IMAGE, "IHDs lose the HAN", emergency_stop=True)
    assert incident.priority is Priority.HIGH
    assert t.service.rollout(IMAGE).state is RolloutState.SUSPENDED
    refused(Rule.HALTED, lambda: t.service.deploy_due(IMAGE))
    end_at = AUTO + 30 * DAY if decision is Decision.DELAY_END else None
    t.service.decide(incident.incident_id, decision, end_at)
    assert t.service.rollout(IMAGE).state is state
    told = [n.body for n in t.service.notices_for(B) if n.kind == "decision"]
    assert told[-1]["decision"] == decision.value and meaning in str(told[-1]["meaning"])
    assert told[-1]["pending_instructions"] == 1
    if decision is Decision.STOP:
        assert t.service.rollout(IMAGE).progress[B_ONLY[0]].status is ChStatus.CANCELLED
    if decision is Decision.DELAY_END:
        assert t.service.rollout(IMAGE).notification.automatic_at == end_at


def test_deploy_hook_failure_fails_one_ch_only() -> None:
    """One CH whose deployment raises fails with the reason; the others deploy."""
    clock = Clock()

    def hook(order: DeployOrder) -> None:
        if order.guid == SINGLE[1]:
            raise OSError("rig offline")

    service = RolloutService(estate(), RolloutConfig(pilot_max_size=4, batch_min_size=5),
                             clock=clock, deploy=hook)
    service.notify(IMAGE, "CH-A", "2.2", release_note="RN", severity=Severity.LOW,
                   priority=Priority.LOW)
    service.submit_pilot(A, IMAGE, SINGLE[:3], T0 + 21 * DAY)
    service.start_pilot(IMAGE)
    progress = service.rollout(IMAGE).progress
    assert progress[SINGLE[1]].status is ChStatus.FAILED
    assert "rig offline" in progress[SINGLE[1]].reason
    assert progress[SINGLE[0]].status is ChStatus.DEPLOYING


def test_inventory_guids_checked_and_normalised() -> None:
    service = RolloutService([ChRecord("00db120000000001", "CH-A", "2.1", A, None)])
    assert list(service.inventory) == ["00-DB-12-00-00-00-00-01"]
    with pytest.raises(BadInputError, match="inventory: CH GUID: not an EUI-64"):
        RolloutService([ChRecord("hub-1", "CH-A", "2.1", A, None)])
    with pytest.raises(BadInputError, match="listed twice"):
        RolloutService([ChRecord(SINGLE[0], "CH-A", "2.1", A, None)] * 2)


def test_2_7_outcomes_while_paused_end_the_pilot_on_resume() -> None:
    """2.7: a pause holds new deployments; outcomes of CHs already deployed still count,
    and the pilot ends when the DCC proceeds."""
    t = lab()
    t.service.submit_pilot(A, IMAGE, SINGLE[:2], T0 + 21 * DAY)
    t.service.start_pilot(IMAGE)
    incident = t.service.raise_incident(A, IMAGE, "ESME reboots", emergency_stop=False)
    assert t.service.rollout(IMAGE).state is RolloutState.PILOT  # no stop asked
    t.service.decide(incident.incident_id, Decision.PAUSE)
    for g in SINGLE[:2]:
        t.service.report_outcome(IMAGE, g, True)
    assert t.service.rollout(IMAGE).state is RolloutState.PAUSED
    refused(Rule.HALTED, lambda: t.service.instruct(A, IMAGE, SINGLE[2:], SOON))
    t.service.decide(incident.incident_id, Decision.PROCEED)
    assert t.service.rollout(IMAGE).state is RolloutState.SAFE_LAUNCH
    assert [n.body["decision"] for n in t.service.notices_for(B)
            if n.kind == "decision"] == ["pause", "proceed"]
