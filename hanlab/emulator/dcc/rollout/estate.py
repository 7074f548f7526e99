"""The roll-out rules at estate scale: a synthetic estate of millions of CH GUIDs and its
roll-out plan, computed in DuckDB (columnar, vectorised, spilling to disk past its memory
limit) rather than in Python loops (issue 12 item 4).

The plan applies the same rules as :class:`~hanlab.emulator.dcc.rollout.service.
RolloutService` (SECMP0024, seed 004), and takes its parameters from the same
:class:`~hanlab.emulator.dcc.rollout.rules.RolloutConfig`:

* eligibility: the notified CH Device Model, not yet on the new version, on one of the
  ``from_versions`` if given (section 2.2);
* pilot: per Supplier the first :attr:`PilotRules.size` (at most the pilot maximum, 2.1)
  of its single-supply eligible CHs in :func:`~.rules.pilot_rank` order (2.3); the safe
  launch group is the rest (2.1);
* deployment dates: each Supplier's instruction (checked by :func:`~.rules.check_timing`
  first: a refused one refuses the plan, 2.4); split supply takes the later of both
  Suppliers' times, or the automatic date without both (2.5);
* batches: the safe-launch CHs of each deployment date in batches of ``batch_size`` (at
  least :attr:`RolloutConfig.batch_min_size`, 2.4; the last of a date holds the rest).

The synthetic estate's shares are assumptions, not published figures (see
:class:`EstateSpec`): 20 Suppliers with Zipf market shares; 65 % of CHs with gas; 20 % of
those with a Gas Supplier other than the Import Supplier (13 % split supply overall).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb

from hanlab.emulator.dcc.rollout.model import ChRecord, Notification, iso
from hanlab.emulator.dcc.rollout.rules import (
    RANK_ROUNDS,
    RANK_SEED_MULTIPLIER,
    RolloutConfig,
    Rule,
    RuleViolation,
    check_timing,
)
from hanlab.emulator.dcc.rollout.service import PilotRules
from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

GUID_BASE: Final = 0x00DB_1200_0000_0000
"""The synthetic CH GUIDs are ``GUID_BASE + n``."""
_UNIT: Final = 1_000_003
"""Uniform draws are ``hash(...) % _UNIT / _UNIT``."""
_MASK64: Final = (1 << 64) - 1


def supplier_id(index: int) -> str:
    """The User ID of synthetic Supplier ``index`` (DUIS EUI-64 form)."""
    return Eui64(0x90B3_D51F_3000_0000 + index).duis


@dataclass(frozen=True, slots=True)
class EstateSpec:
    """The synthetic estate (shares are assumptions for load, not published figures).

    Attributes:
        chs: how many CHs.
        seed: the generator's seed (same seed, same estate).
        suppliers: how many Supplier Users; market shares follow Zipf (1/k).
        gas_share: the share of CHs with a gas meter too.
        split_share: the share of those whose Gas Supplier is another Party (split supply,
            SECMP0024 2.5).
        models: (CH Device Model, current firmware version, share), shares summing to 1.
        old_version_share: the share of a model's CHs on an older version (``"old"``).
        regions: (CSP region, share).

    Raises:
        BadInputError: a share outside 0..1, shares not summing to 1, or no CH.
    """

    chs: int
    seed: int = 1
    suppliers: int = 20
    gas_share: float = 0.65
    split_share: float = 0.20
    models: tuple[tuple[str, str, float], ...] = (
        ("CH-DUAL-A", "2.1", 0.45), ("CH-DUAL-B", "1.9", 0.35), ("CH-SINGLE-C", "3.0", 0.20))
    old_version_share: float = 0.05
    regions: tuple[tuple[str, float], ...] = (("north", 0.30), ("central", 0.35),
                                               ("south", 0.35))

    def __post_init__(self) -> None:
        if self.chs < 1 or not 2 <= self.suppliers <= 1000:
            raise BadInputError("estate: chs must be >= 1 and suppliers 2..1000")
        for name in ("gas_share", "split_share", "old_version_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise BadInputError(f"estate: {name} must be within 0..1")
        for what, shares in (("models", [m[2] for m in self.models]),
                             ("regions", [r[1] for r in self.regions])):
            if not shares or abs(sum(shares) - 1) > 1e-9:
                raise BadInputError(f"estate: the {what} shares must sum to 1")

    def supplier_shares(self) -> list[float]:
        """Zipf market shares of the Suppliers, largest first."""
        weights = [1 / (k + 1) for k in range(self.suppliers)]
        return [w / sum(weights) for w in weights]


def _uniform(seed: int, stream: int) -> str:
    return f"(hash(i, {seed}, {stream}) % {_UNIT}) / {_UNIT}.0"


def _pick(u: str, values: Sequence[str], shares: Sequence[float]) -> str:
    """A CASE choosing ``values[k]`` with probability ``shares[k]`` from uniform ``u``."""
    arms, cumulative = [], 0.0
    for value, share in zip(values[:-1], shares[:-1], strict=True):
        cumulative += share
        arms.append(f"WHEN {u} < {cumulative!r} THEN {value}")
    return f"CASE {' '.join(arms)} ELSE {values[-1]} END"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(memory_limit: str = "4GB", threads: int = 2,
            temp_directory: Path | None = None, database: Path | None = None,
            ) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with bounded memory: past ``memory_limit`` it spills to
    ``temp_directory`` (default: DuckDB's ``.tmp`` beside the database, or its own).

    Raises:
        BadInputError: DuckDB refuses a setting (e.g. ``memory_limit="lots"``).
    """
    con = duckdb.connect(str(database) if database else ":memory:")
    try:
        con.execute(f"SET memory_limit = {_quote(memory_limit)}")
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        if temp_directory is not None:
            con.execute(f"SET temp_directory = {_quote(str(temp_directory))}")
    except duckdb.Error as error:
        con.close()
        raise BadInputError(f"DuckDB settings: {error}") from None
    return con


def generate(con: duckdb.DuckDBPyConnection, spec: EstateSpec) -> None:
    """Create table ``ch`` (guid UBIGINT, model, version, import_supplier, gas_supplier
    (NULL: no gas), region) holding the synthetic estate, in one vectorised statement."""
    shares = spec.supplier_shares()
    ids = [str(k) for k in range(spec.suppliers)]
    models = [_quote(m[0]) for m in spec.models]
    versions = [_quote(m[1]) for m in spec.models]
    model_shares = [m[2] for m in spec.models]
    regions = [_quote(r[0]) for r in spec.regions]
    seed = spec.seed
    con.execute(f"""
        CREATE OR REPLACE TABLE ch AS
        SELECT guid, model, CASE WHEN u_old < {spec.old_version_share!r} THEN 'old'
                                 ELSE version END AS version,
               imp AS import_supplier,
               CASE WHEN u_gas >= {spec.gas_share!r} THEN NULL
                    WHEN u_split < {spec.split_share!r}
                    THEN CASE WHEN other = imp THEN (imp + 1) % {spec.suppliers}
                              ELSE other END
                    ELSE imp END::USMALLINT AS gas_supplier,
               region
        FROM (
            SELECT ({GUID_BASE} + i)::UBIGINT AS guid,
                   {_pick(_uniform(seed, 1), models, model_shares)} AS model,
                   {_pick(_uniform(seed, 1), versions, model_shares)} AS version,
                   {_pick(_uniform(seed, 2), ids, shares)}::USMALLINT AS imp,
                   {_pick(_uniform(seed, 3), ids, shares)}::USMALLINT AS other,
                   {_uniform(seed, 4)} AS u_gas, {_uniform(seed, 5)} AS u_split,
                   {_uniform(seed, 6)} AS u_old,
                   {_pick(_uniform(seed, 7), regions, [r[1] for r in spec.regions])}
                       AS region
            FROM range({spec.chs}) r(i))
    """)


def records(con: duckdb.DuckDBPyConnection, limit: int = 100_000) -> list[ChRecord]:
    """The estate's CHs as :class:`ChRecord` (for the in-memory service; small estates)."""
    rows = con.execute("SELECT guid, model, version, import_supplier, gas_supplier, region "
                       f"FROM ch ORDER BY guid LIMIT {int(limit)}").fetchall()
    return [ChRecord(Eui64(g).duis, m, v, supplier_id(i),
                     None if gs is None else supplier_id(gs), r)
            for g, m, v, i, gs, r in rows]


def ranked(source: str, seed: int) -> str:
    """``source`` (a SELECT with a ``guid`` column) with a ``rank`` column holding
    :func:`~.rules.pilot_rank` of the GUID, in UBIGINT: one subquery per round, so each
    round's input is computed once."""
    start = (seed * RANK_SEED_MULTIPLIER) & _MASK64
    query = f"SELECT *, xor(guid, {start}::UBIGINT) AS rank FROM ({source})"
    for a, b in RANK_ROUNDS:
        query = (f"SELECT * REPLACE (xor((rank & 4294967295) * {a}::UBIGINT, "
                 f"(rank >> 32) * {b}::UBIGINT) AS rank) FROM ({query})")
    return query


@dataclass(frozen=True, slots=True)
class SupplierInstruction:
    """One Supplier's instruction for all its safe-launch CHs (SECMP0024 2.4: "select all
    of the relevant CHs for which it is responsible").

    Attributes:
        supplier: the Supplier's index in the estate (:func:`supplier_id`).
        activation_at: the time instructed; received_at: when the DCC received it.
    """

    supplier: int
    activation_at: dt.datetime
    received_at: dt.datetime


def synthetic_instructions(spec: EstateSpec, notification: Notification,
                           share: float) -> list[SupplierInstruction]:
    """Instructions from the first ``share`` of the Suppliers (largest first), received
    two weeks after notification, for two months after notification plus a week per
    Supplier index (always earlier than the automatic date)."""
    count = round(spec.suppliers * share)
    out = []
    for k in range(count):
        activation = notification.notified_at + dt.timedelta(days=61 + 7 * (k % 8))
        if activation >= notification.automatic_at:
            activation = notification.automatic_at - dt.timedelta(days=1)
        out.append(SupplierInstruction(k, activation,
                                       notification.notified_at + dt.timedelta(days=14)))
    return out


@dataclass
class EstatePlan:
    """The figures of one plan (all counts are CHs unless named otherwise).

    Attributes:
        chs, eligible, pilot, safe_launch, split: counts.
        split_both, split_one, split_none: split-supply eligible CHs whose Suppliers
            both instructed, one did, none did.
        dates: planned activation date (ISO) -> (CHs, batches).
        suppliers: Supplier User ID -> {import, gas, pilot, instructed} counts.
        batch_size: the safe-launch batch size; batches: how many batches in all.
        steps_s: the wall time of each step (s).
        deviations: the config's departures from the seed (:meth:`RolloutConfig.deviations`).
    """

    chs: int = 0
    eligible: int = 0
    pilot: int = 0
    safe_launch: int = 0
    split: int = 0
    split_both: int = 0
    split_one: int = 0
    split_none: int = 0
    batch_size: int = 0
    batches: int = 0
    dates: dict[str, tuple[int, int]] = field(default_factory=dict)
    suppliers: dict[str, dict[str, int]] = field(default_factory=dict)
    steps_s: dict[str, float] = field(default_factory=dict)
    deviations: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The plan as JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def plan(con: duckdb.DuckDBPyConnection, notification: Notification, config: RolloutConfig,
         *, pilot_rules: PilotRules, pilot_activation_at: dt.datetime,
         pilot_received_at: dt.datetime,
         instructions: Sequence[SupplierInstruction] = (), batch_size: int | None = None,
         out: Path | None = None) -> EstatePlan:
    """Plan the roll-out of ``notification`` over table ``ch`` (see the module docstring).

    Args:
        pilot_rules: the business rules every Supplier selects its pilot with (split-supply
            CHs are left out of estate pilots: their pilot needs the second Supplier too).
        pilot_activation_at, pilot_received_at: the pilot instruction's times (2.4).
        instructions: each instructing Supplier's instruction for its safe-launch CHs.
        batch_size: safe-launch batch size (default: the configured minimum).
        out: write the per-CH plan (guid, group, planned_at, batch) to this Parquet file.

    Returns:
        the :class:`EstatePlan` figures; tables ``eligible``, ``pilot``, ``planned``
        stay on the connection.

    Raises:
        RuleViolation: an instruction breaks a timing rule, or ``batch_size`` is below the
            minimum; nothing was computed.
    """
    size = batch_size if batch_size is not None else config.batch_min_size
    if size < config.batch_min_size:
        raise RuleViolation(Rule.BATCH_TOO_SMALL, f"batch size {size} is below the "
                            f"minimum of {config.batch_min_size}")
    check_timing(notification, pilot_activation_at, pilot_received_at, config)
    for instruction in instructions:
        try:
            check_timing(notification, instruction.activation_at, instruction.received_at,
                         config)
        except RuleViolation as violation:
            raise RuleViolation(violation.rule, f"Supplier {supplier_id(instruction.supplier)}"
                                f": {violation.message}") from None
    result = EstatePlan(deviations=config.deviations(), batch_size=size)
    steps: dict[str, float] = {}

    def step(name: str, sql: str, params: Sequence[object] = ()) -> None:
        started = time.perf_counter()
        con.execute(sql, list(params))
        steps[name] = round(time.perf_counter() - started, 3)

    n = notification
    versions = (f" AND version IN ({', '.join(_quote(v) for v in n.from_versions)})"
                if n.from_versions else "")
    step("eligibility", "CREATE OR REPLACE TEMP TABLE eligible AS " + ranked(
        "SELECT guid, import_supplier AS imp, gas_supplier AS gas, region, "
        "(gas_supplier IS NOT NULL AND gas_supplier <> import_supplier) AS split "
        f"FROM ch WHERE model = {_quote(n.device_model)} "
        f"AND version <> {_quote(n.firmware_version)}{versions}", pilot_rules.seed))
    regions = (f" AND region IN ({', '.join(_quote(r) for r in pilot_rules.regions)})"
               if pilot_rules.regions else "")
    step("pilot", "CREATE OR REPLACE TEMP TABLE pilot AS SELECT guid, imp AS supplier "
         f"FROM eligible WHERE NOT split{regions} QUALIFY row_number() OVER "
         "(PARTITION BY imp ORDER BY rank, guid) <= "
         f"{min(pilot_rules.size, config.pilot_max_size)}")
    con.execute("CREATE OR REPLACE TEMP TABLE instr (supplier USMALLINT, activation_at TIMESTAMP)")
    if instructions:
        con.executemany("INSERT INTO instr VALUES (?, ?)", [
            (i.supplier, i.activation_at.astimezone(dt.UTC).replace(tzinfo=None))
            for i in instructions])
    automatic = n.automatic_at.astimezone(dt.UTC).replace(tzinfo=None)
    pilot_at = pilot_activation_at.astimezone(dt.UTC).replace(tzinfo=None)
    step("deployment dates", """
        CREATE OR REPLACE TEMP TABLE planned AS
        SELECT e.guid, e.imp, e.gas, e.split, e.rank, p.guid IS NOT NULL AS in_pilot,
               i1.activation_at IS NOT NULL AS imp_instructed,
               i2.activation_at IS NOT NULL AND e.split AS gas_instructed,
               CASE WHEN p.guid IS NOT NULL THEN $1
                    WHEN NOT e.split THEN least(coalesce(i1.activation_at, $2), $2)
                    WHEN i1.activation_at IS NOT NULL AND i2.activation_at IS NOT NULL
                    THEN least(greatest(i1.activation_at, i2.activation_at), $2)
                    ELSE $2 END AS planned_at
        FROM eligible e LEFT JOIN pilot p ON p.guid = e.guid
             LEFT JOIN instr i1 ON i1.supplier = e.imp
             LEFT JOIN instr i2 ON i2.supplier = e.gas
    """, [pilot_at, automatic])
    step("batches", "CREATE OR REPLACE TEMP TABLE batches AS SELECT guid, planned_at, "
         "(row_number() OVER (PARTITION BY planned_at ORDER BY rank, guid) - 1) "
         f"// {size} AS batch FROM planned WHERE NOT in_pilot")
    started = time.perf_counter()
    (result.chs,) = _one(con, "SELECT count(*) FROM ch")
    (result.eligible, result.pilot, result.split, result.split_both,
     result.split_one) = _one(con, """
        SELECT count(*), count(*) FILTER (in_pilot), count(*) FILTER (split),
               count(*) FILTER (split AND imp_instructed AND gas_instructed),
               count(*) FILTER (split AND imp_instructed <> gas_instructed) FROM planned""")
    result.safe_launch = result.eligible - result.pilot
    result.split_none = result.split - result.split_both - result.split_one
    for day, chs, batches in con.execute(
            "SELECT planned_at, count(*), count(DISTINCT batch) FROM batches "
            "GROUP BY ALL ORDER BY 1").fetchall():
        result.dates[iso(day.replace(tzinfo=dt.UTC)) or ""] = (chs, batches)
        result.batches += batches
    for sup, role, chs in con.execute("""
            SELECT imp, 'import', count(*) FROM eligible GROUP BY ALL
            UNION ALL SELECT gas, 'gas', count(*) FROM eligible WHERE gas IS NOT NULL
            GROUP BY ALL UNION ALL SELECT supplier, 'pilot', count(*) FROM pilot GROUP BY ALL
            ORDER BY 1""").fetchall():
        result.suppliers.setdefault(supplier_id(sup), {})[role] = chs
    instructing = {i.supplier for i in instructions}
    for index in instructing:
        entry = result.suppliers.get(supplier_id(index))
        if entry is not None:
            entry["instructed"] = 1
    steps["summary"] = round(time.perf_counter() - started, 3)
    if out is not None:
        started = time.perf_counter()
        con.execute(f"COPY (SELECT p.guid, CASE WHEN p.in_pilot THEN 'pilot' ELSE "
                    "'safe_launch' END AS grp, p.planned_at, b.batch FROM planned p "
                    "LEFT JOIN batches b ON b.guid = p.guid) TO "
                    f"{_quote(str(out))} (FORMAT parquet)")
        steps["parquet"] = round(time.perf_counter() - started, 3)
    result.steps_s = steps
    return result


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None
    return tuple(row)
