"""``hanlab rollout``: CH firmware roll-outs as the emulated DCC runs them (SECMP0024).

* ``plan`` plans a roll-out over a synthetic estate of any size in DuckDB: eligibility,
  pilot groups, deployment dates (split supply included) and batches, with the time each
  step took; ``--out`` writes the per-CH plan as Parquet;
* ``rules`` lists every rule the portal and the planner enforce, with its seed clause.

The portal itself is served by the emulated DCC (``/rollout/v1``, see docs/rollout.md).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hanlab.commands import print_table
from hanlab.errors import BadInputError

app = typer.Typer(help="CH firmware roll-outs (SECMP0024): plan an estate, list the rules.",
                  no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


def _when(text: str | None, what: str) -> dt.datetime:
    from hanlab.emulator.dcc.rollout.model import parse_iso

    if text is None:
        today = dt.datetime.now(dt.UTC).date()
        return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)
    return parse_iso(text, what)


@app.command("plan")
def plan_command(
    chs: Annotated[int, typer.Option("--chs", min=1, help="CHs in the synthetic estate.")
                   ] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Estate and pilot sampling seed.")] = 1,
    suppliers: Annotated[int, typer.Option("--suppliers", min=2, max=1000,
                                           help="Supplier Users (Zipf market shares).")
                         ] = 20,
    split_share: Annotated[float, typer.Option(
        "--split-share", min=0, max=1, help="Share of CHs with gas whose Gas Supplier is "
                                            "another Party.")] = 0.20,
    model: Annotated[str, typer.Option("--model", help="CH Device Model notified.")
                     ] = "CH-DUAL-A",
    version: Annotated[str, typer.Option("--version", help="New firmware version.")
                       ] = "2.2",
    notified: Annotated[str | None, typer.Option(
        "--notified", help="Notification date, ISO 8601 with zone (default: today 00:00Z)."
    )] = None,
    pilot_max: Annotated[int, typer.Option(
        "--pilot-max", min=1, help="Pilot maximum per Supplier (seed 2.1: 200-300).")] = 300,
    batch_min: Annotated[int, typer.Option(
        "--batch-min", min=1, help="Minimum batch (seed 2.4: 50,000; lower it only for a "
                                   "lab rehearsal).")] = 50_000,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="Safe-launch batch size (default: the minimum).")
                          ] = None,
    instructing_share: Annotated[float, typer.Option(
        "--instructing-share", min=0, max=1,
        help="Share of Suppliers (largest first) instructing an earlier time.")] = 0.5,
    memory_limit: Annotated[str, typer.Option(
        "--memory-limit", help="DuckDB memory limit; past it DuckDB spills to disk.")
                            ] = "4GB",
    threads: Annotated[int, typer.Option("--threads", min=1, help="DuckDB threads.")] = 2,
    temp_dir: Annotated[Path | None, typer.Option(
        "--temp-dir", help="Where DuckDB spills (default: its own).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the per-CH plan (guid, grp, planned_at, batch) as Parquet.")
                   ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")
                       ] = False,
) -> None:
    """Plan a CH firmware roll-out over a synthetic estate in DuckDB (SECMP0024).

    Eligibility, each Supplier's pilot group, deployment dates (each instructing
    Supplier's earlier time; split supply: the later of both, else the DCC's automatic
    date six months after notification) and batches of the safe launch group. Settings
    away from the seed (a lab rehearsal's smaller batches) are printed with the plan.

    Examples:

      hanlab rollout plan --chs 10000000 --memory-limit 8GB

      hanlab rollout plan --chs 40 --pilot-max 2 --batch-min 5 --json

      hanlab rollout plan --chs 1000000 --out /tmp/plan.parquet
    """
    from hanlab.emulator.dcc.rollout import estate
    from hanlab.emulator.dcc.rollout.model import Notification, Priority, Severity
    from hanlab.emulator.dcc.rollout.rules import RolloutConfig, automatic_date
    from hanlab.emulator.dcc.rollout.service import PilotRules

    config = RolloutConfig(pilot_max_size=pilot_max, batch_min_size=batch_min)
    spec = estate.EstateSpec(chs, seed=seed, suppliers=suppliers, split_share=split_share)
    notified_at = _when(notified, "--notified")
    notification = Notification("cli-plan", model, version, "(synthetic)", Severity.MEDIUM,
                                Priority.NORMAL, notified_at,
                                automatic_date(notified_at, config))
    if out is not None and not out.parent.is_dir():
        raise BadInputError(f"--out {out}: folder {out.parent} does not exist")
    con = estate.connect(memory_limit, threads, temp_dir)
    try:
        started = time.perf_counter()
        estate.generate(con, spec)
        generate_s = round(time.perf_counter() - started, 3)
        result = estate.plan(
            con, notification, config, pilot_rules=PilotRules(pilot_max, seed=seed),
            pilot_activation_at=notified_at + dt.timedelta(days=21),
            pilot_received_at=notified_at + dt.timedelta(days=7),
            instructions=estate.synthetic_instructions(spec, notification,
                                                       instructing_share),
            batch_size=batch_size, out=out)
    finally:
        con.close()
    result.steps_s = {"generate estate": generate_s, **result.steps_s}
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), indent=1) + "\n")
        return
    for line in result.deviations:
        console.print(f"[bold yellow]not the seed:[/] {line}")
    console.print(f"{result.chs} CHs, {result.eligible} eligible for {model} {version}: "
                  f"pilot {result.pilot}, safe launch {result.safe_launch} in "
                  f"{result.batches} batches of up to {result.batch_size}")
    console.print(f"split supply: {result.split} (both Suppliers instructed "
                  f"{result.split_both}, one {result.split_one} -> automatic date, none "
                  f"{result.split_none})")
    table = Table("planned activation", "CHs", "batches")
    for day, (count, batches) in result.dates.items():
        table.add_row(day, str(count), str(batches))
    print_table(console, table)
    console.print("steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.steps_s.items()))


@app.command("rules")
def rules_command() -> None:
    """List the roll-out rules with the SECMP0024 clause each enforces.

    Example:

      hanlab rollout rules
    """
    from hanlab.emulator.dcc.rollout.rules import CLAUSES

    table = Table("rule", "SECMP0024 clause")
    for rule, clause in CLAUSES.items():
        table.add_row(rule.value, clause)
    print_table(console, table)


def register(root: typer.Typer) -> None:
    """Add the ``rollout`` group to the hanlab CLI."""
    root.add_typer(app, name="rollout")
