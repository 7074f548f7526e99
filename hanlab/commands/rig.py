"""``hanlab rig validate``: check rig and lab files, reporting every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hanlab.config import load_lab
from hanlab.errors import ConfigError

rig_app = typer.Typer(help="Rig files: check them before a run.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


@rig_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="Rig or lab files to check.")],
) -> None:
    """Check rig or lab files: YAML, fields, devices, sniffers, driver settings, secrets.

    Every problem is printed as FILE:LINE: FIELD: MESSAGE; exit status 2 if any.

    Example:

      hanlab rig validate rigs/*.yaml
    """
    problems: list[str] = []
    for path in files:
        try:
            lab = load_lab(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for rig in lab.rigs:
            console.print(f"{path}: rig {rig.name}: {len(rig.devices)} devices, "
                          f"{len(rig.sniffers)} sniffers: OK", markup=False)
    if problems:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for line in problems:
            err.print(line, markup=False)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add the ``rig`` command group."""
    app.add_typer(rig_app, name="rig")
