"""The roll-out rules at estate scale in DuckDB (issue 12 item 4): the plan of a small
synthetic estate equals what the in-memory portal service decides CH by CH (SECMP0024
2.1 pilot/safe launch, 2.3 pilot rules, 2.4 dates and batches, 2.5 split supply), and a
rule-breaking instruction refuses the plan."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hanlab.emulator.dcc.rollout import estate
from hanlab.emulator.dcc.rollout.model import Notification, Priority, Severity
from hanlab.emulator.dcc.rollout.rules import (
    RolloutConfig,
    Rule,
    RuleViolation,
    automatic_date,
    pilot_rank,
)
from hanlab.emulator.dcc.rollout.service import PilotRules, RolloutService
from hanlab.gbcs.eui64 import Eui64

T0 = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
CONFIG = RolloutConfig(pilot_max_size=5, batch_min_size=40)
SPEC = estate.EstateSpec(3000, seed=3, suppliers=6)


def notification() -> Notification:
    return Notification("img", "CH-DUAL-A", "2.2", "RN", Severity.MEDIUM, Priority.NORMAL,
                        T0, automatic_date(T0, CONFIG))


@dataclass
class Planned:
    result: estate.EstatePlan
    dates: dict[str, dt.datetime]
    pilot: set[str]
    instructions: list[estate.SupplierInstruction]
    out: Path


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Planned:
    con = estate.connect("1GB", 1)
    estate.generate(con, SPEC)
    instructions = estate.synthetic_instructions(SPEC, notification(), 0.5)
    out = tmp_path_factory.mktemp("plan") / "plan.parquet"
    result = estate.plan(con, notification(), CONFIG, pilot_rules=PilotRules(5, seed=3),
                         pilot_activation_at=T0 + 21 * DAY, pilot_received_at=T0 + 7 * DAY,
                         instructions=instructions, out=out)
    dates = {Eui64(g).duis: t.replace(tzinfo=dt.UTC) for g, t in con.execute(
        "SELECT guid, planned_at FROM planned").fetchall()}
    pilot = {Eui64(g).duis for (g,) in con.execute("SELECT guid FROM pilot").fetchall()}
    sizes = con.execute("SELECT planned_at, batch, count(*) FROM batches GROUP BY ALL "
                        "ORDER BY 1, 2").fetchall()
    by_date: dict[object, list[int]] = {}
    for day, _, count in sizes:
        by_date.setdefault(day, []).append(count)
    # 2.4: every batch of a date holds the minimum, but the last (the rest)
    assert all(c == CONFIG.batch_min_size for counts in by_date.values()
               for c in counts[:-1])
    con.close()
    return Planned(result, dates, pilot, instructions, out)


def test_estate_shares(planned: Planned) -> None:
    result = planned.result
    assert result.chs == 3000 and 1000 < result.eligible < 1800
    assert 0.07 < result.split / result.eligible < 0.2  # 65 % gas x 20 % split
    assert result.pilot == 6 * 5 and result.safe_launch == result.eligible - result.pilot
    assert result.split == result.split_both + result.split_one + result.split_none
    assert result.deviations  # the smaller sizes are stated


def test_estate_plan_equals_the_portal_service(planned: Planned) -> None:
    """The DuckDB plan and the in-memory service agree on every eligible CH."""
    con = estate.connect("1GB", 1)
    estate.generate(con, SPEC)
    records = estate.records(con)
    con.close()
    clock = [T0]
    service = RolloutService(records, CONFIG, clock=lambda: clock[0])
    service.notify("img", "CH-DUAL-A", "2.2", release_note="RN", severity=Severity.MEDIUM,
                   priority=Priority.NORMAL)
    clock[0] = T0 + 7 * DAY
    chosen: set[str] = set()
    for index in range(SPEC.suppliers):
        user = estate.supplier_id(index)
        guids = service.select_pilot(user, "img", PilotRules(5, single_supplier_only=True,
                                                             seed=3))
        service.submit_pilot(user, "img", guids, T0 + 21 * DAY)
        chosen |= set(guids)
    assert chosen == planned.pilot  # 2.3: the same business rules pick the same pilot
    clock[0] = T0 + 14 * DAY
    for instruction in planned.instructions:
        user = estate.supplier_id(instruction.supplier)
        service.instruct(user, "img", service.remaining_safe_launch(user, "img"),
                         instruction.activation_at)
    rollout = service.rollout("img")
    ours = {g: service.planned(rollout, ch) for g, ch in rollout.eligible.items()}
    assert ours == planned.dates


def test_plan_parquet(planned: Planned) -> None:
    table = pq.read_table(planned.out)
    assert table.num_rows == len(planned.dates)
    assert set(table.column("grp").to_pylist()) == {"pilot", "safe_launch"}


@pytest.mark.parametrize(("instruction", "rule"), [
    (estate.SupplierInstruction(0, T0 + 200 * DAY, T0 + DAY), Rule.NOT_EARLIER),
    (estate.SupplierInstruction(1, T0 + 170 * DAY, T0 + 160 * DAY), Rule.TOO_LATE),
], ids=["2.4-later-than-automatic", "2.4-received-too-late"])
def test_bad_instruction_refuses_the_plan(instruction: estate.SupplierInstruction,
                                          rule: Rule) -> None:
    con = estate.connect("1GB", 1)
    estate.generate(con, estate.EstateSpec(100))
    with pytest.raises(RuleViolation) as caught:
        estate.plan(con, notification(), CONFIG, pilot_rules=PilotRules(),
                    pilot_activation_at=T0 + 21 * DAY, pilot_received_at=T0 + 7 * DAY,
                    instructions=[instruction])
    assert caught.value.rule is rule and estate.supplier_id(instruction.supplier) in str(
        caught.value)
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"ch"}  # nothing planned
    with pytest.raises(RuleViolation) as small:
        estate.plan(con, notification(), CONFIG, pilot_rules=PilotRules(),
                    pilot_activation_at=T0 + 21 * DAY, pilot_received_at=T0 + 7 * DAY,
                    batch_size=10)
    assert small.value.rule is Rule.BATCH_TOO_SMALL
    con.close()


def test_pilot_rank_in_duckdb_equals_python() -> None:
    con = estate.connect("256MB", 1)
    got = con.execute("SELECT guid, rank FROM (" + estate.ranked(
        f"SELECT ({estate.GUID_BASE} + i)::UBIGINT AS guid FROM range(50) r(i)", 9) + ")"
    ).fetchall()
    con.close()
    assert all(rank == pilot_rank(g, 9) for g, rank in got)
