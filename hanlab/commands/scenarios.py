"""``hanlab scenarios list|show`` and ``hanlab scenario run`` (issue 5, items 3 and 4).

The library is seed 000's business scenarios (18 scenarios, 80 variants) and seed 001's
Change of Supplier process (:mod:`hanlab.scenarios`); ``run`` sends a variant's Service
Requests to a rig's devices through the DUIS client and shows each step's outcome.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hanlab.commands import print_table
from hanlab.duis.catalogue import sr
from hanlab.scenarios.loader import get_scenario, load_library
from hanlab.scenarios.models import (
    ChFirmwareStep,
    ExternalStep,
    PauseStep,
    Scenario,
    SrStep,
    Step,
)

scenarios_app = typer.Typer(help="The scenario library (seed 000 business scenarios, seed "
                            "001 Change of Supplier).", no_args_is_help=True)
scenario_app = typer.Typer(help="Run a business scenario on a rig.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

FolderOption = Annotated[
    list[Path] | None,
    typer.Option("--folder", help="Extra folder of scenario YAML files (repeatable)."),
]


@scenarios_app.command("list")
def list_scenarios(folder: FolderOption = None) -> None:
    """List the scenarios: name, seed, variants, Service Requests.

    Example:

      hanlab scenarios list
    """
    library = load_library(folder or [])
    table = Table(title="Scenario library", show_lines=False)
    for column in ("name", "seed", "variants", "SRs", "title"):
        table.add_column(column, justify="right" if column in ("variants", "SRs") else "left")
    variants = srs = 0
    for scenario in library.values():
        count = sum(isinstance(s, SrStep) for v in scenario.variants
                    for s in scenario.steps_of(v))
        variants += len(scenario.variants)
        srs += count
        table.add_row(scenario.name, scenario.seed, str(len(scenario.variants)), str(count),
                      scenario.title)
    print_table(console, table)
    console.print(f"{len(library)} scenarios, {variants} variants, {srs} SR steps",
                  markup=False)


def _describe(step: Step) -> tuple[str, str, str, str, str]:
    """(kind, what, target, user / CV, comment) of one step for display."""
    flag = " (optional)" if step.optional else ""
    if isinstance(step, SrStep):
        entry = sr(step.sr)
        crit = " [critical]" if entry.critical else ""
        cv = f" CV{step.command_variant}" if step.command_variant else ""
        return (f"SR{flag}", f"{step.sr} {entry.name}{crit}", step.target or "DCC",
                f"{step.user or ''}{cv}", step.comment)
    if isinstance(step, PauseStep):
        return f"pause{flag}", f"{step.pause_s} s", "", "", step.comment
    if isinstance(step, ExternalStep):
        return f"external{flag}", step.external, "", "", step.comment
    if isinstance(step, ChFirmwareStep):
        connect = f"then connect {', '.join(step.connect)}" if step.connect else ""
        return (f"CH firmware{flag}", f"{step.mode} {step.ch_firmware.describe()}", "CHF",
                connect, step.comment)
    codes = "/".join(step.wait_alert)
    stimulus = ", ".join(f"{r}: {c}" for r, c in (step.stimulus or {}).items())
    return (f"wait{flag}", f"alert {codes} within {step.timeout_s:g} s", step.source or "",
            f"stimulus {stimulus}" if stimulus else "", step.comment)


def show_table(scenario: Scenario, variant_id: str | None = None) -> list[Table]:
    """Rich tables of a scenario's variants and their steps."""
    tables = []
    for variant in scenario.variants:
        if variant_id is not None and variant.id != variant_id:
            continue
        aliases = ", ".join(f"{a}={r}" for a, r in variant.roles.items())
        consumes = ", ".join(
            f"{'spare ' if c.spare else ''}{c.role}{'=' + c.alias if c.alias else ''}"
            for c in variant.consumes)
        title = (f"{scenario.name} / {variant.id}: {variant.title} (User {variant.user_role}"
                 f"{'; ' + aliases if aliases else ''}"
                 f"{'; consumes ' + consumes if consumes else ''})")
        table = Table(title=title, title_justify="left")
        for column in ("#", "step", "what", "target", "user / CV", "comment"):
            table.add_column(column)
        for index, step in enumerate(scenario.steps_of(variant), 1):
            table.add_row(str(index), *_describe(step))
        tables.append(table)
    return tables


@scenarios_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Scenario name, e.g. install-and-commission.")],
    variant: Annotated[str | None, typer.Option(help="Only this variant.")] = None,
    folder: FolderOption = None,
) -> None:
    """Show a scenario: its source, alerts and every variant's steps.

    Example:

      hanlab scenarios show change-of-supplier --variant gain-electricity-credit
    """
    scenario = get_scenario(name, load_library(folder or []))
    if variant is not None:
        from hanlab.scenarios.loader import get_variant
        get_variant(scenario, variant)
    console.print(f"{scenario.title} ({scenario.name}) - {scenario.source}", markup=False)
    if scenario.description:
        console.print(scenario.description.strip(), markup=False)
    for line in scenario.prerequisites:
        console.print(f"  pre-requisite: {line}", markup=False)
    for alert in scenario.alerts:
        console.print(f"  alert {alert.code} ({alert.type}): {alert.trigger}", markup=False)
    for table in show_table(scenario, variant):
        print_table(console, table)


def _devices(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        role, sep, eui64 = value.partition("=")
        if not sep or not role or not eui64:
            from hanlab.errors import BadInputError

            raise BadInputError(f"--device {value!r}: expected ROLE=EUI-64, e.g. "
                                "GSME=00-DB-12-00-00-00-D2-02")
        out[role] = eui64
    return out


@scenario_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Scenario name, e.g. meter-reading.")],
    rig: Annotated[str, typer.Option(
        "--rig", help="Rig name (as a running daemon serves it) or rig file.")],
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="Variant id (repeatable); default: every variant.")] = None,
    repeat: Annotated[int, typer.Option(min=1, max=1000,
                                        help="Run each variant N times.")] = 1,
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="ROLE=EUI-64: the device the job targets for ROLE (repeatable); "
                         "default: the first of each role in the rig file.")] = None,
    lab: Annotated[Path | None, typer.Option(
        help="In-process: the lab file (its duis: section: DCC endpoint, Users, keys).")
    ] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="In-process: folder for captures and jobs/ records.")
    ] = Path("captures"),
    time_scale: Annotated[float | None, typer.Option(
        help="In-process, emulated rigs: emulated seconds per host second.")] = None,
    skip_optional: Annotated[bool, typer.Option(
        help="Do not run optional steps.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Queue the job even if a sniffer of the rig is down now.")] = False,
    daemon: Annotated[str | None, typer.Option(
        "--daemon", help="The daemon's control URL (default: found from its state file; "
                         "token from HANLAB_TOKEN or its tokens file).")] = None,
    no_daemon: Annotated[bool, typer.Option(
        "--no-daemon", help="Start the rig's runtime in this process instead.")] = False,
) -> None:
    """Run a scenario's variants as a job on a rig; exit status 1 if any fails.

    With a running `hanlab up` that serves the rig, the job is submitted to it (queued
    behind the rig's other jobs) and its steps are streamed here; without one (or with
    --no-daemon) the same rig runtime starts in this process for the run. Either way
    the rig captures both bands, correlates every SR live and the per-band timing report
    (DIT.11) is printed at the end; the job's record, DUIS log and capture names stay
    under jobs/<job id>/.

    Examples:

      hanlab scenario run meter-reading --rig emulated-dual-band

      hanlab scenario run meter-reading --rig emulated-dual-band \\
          --device GSME=00-DB-12-00-00-00-D2-02

      hanlab scenario run meter-reading --rig rigs/emulated-dual-band.yaml --no-daemon
    """
    from hanlab.scenarios.cli_run import run_command

    get_scenario(name, load_library())
    passed = asyncio.run(run_command(
        name, rig=rig, variants=variant or [], repeat=repeat, devices=_devices(device or []),
        include_optional=not skip_optional, wait=wait, lab_path=lab, out=out,
        time_scale=time_scale, daemon_url=daemon, no_daemon=no_daemon, console=console))
    if not passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``scenarios`` (list, show) and ``scenario`` (run) command groups."""
    app.add_typer(scenarios_app, name="scenarios")
    app.add_typer(scenario_app, name="scenario")
