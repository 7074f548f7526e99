"""The ``hanlab`` command line: one typer app, command groups registered from modules.

Errors: a :class:`~hanlab.errors.HanlabError` is printed as one line (cause and what to
do) on stderr and the process exits with its ``exit_status`` (2 for bad input).
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from hanlab.errors import HanlabError

#: modules under hanlab.commands that add commands; each defines register(app).
COMMAND_MODULES: list[str] = [
    "hanlab.commands.run",
    "hanlab.commands.rig",
    "hanlab.commands.devices",
    "hanlab.commands.udev",
    "hanlab.commands.decode",
    "hanlab.commands.analyse",
    "hanlab.commands.scenarios",
    "hanlab.commands.jobs",
    "hanlab.commands.reports",
]

app = typer.Typer(
    name="hanlab",
    help=(
        "Hardware-in-the-loop ZigBee HAN lab controller for GB smart metering.\n\n"
        "Start a lab with `hanlab up` (no file: the emulated default lab), convert a capture "
        "with `hanlab capture`, read one with `hanlab decode`, run a DIT business scenario "
        "with `hanlab scenario run`, get per-band timings with `hanlab analyse`, check rig "
        "files with `hanlab rig validate`. Every command has --help with examples."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hanlab`` console script."""
    _register()
    try:
        result = app(args=argv, standalone_mode=False)
        if isinstance(result, int) and result:
            sys.exit(result)  # typer.Exit(code) is returned, not raised, here
    except HanlabError as exc:
        _err.print(f"hanlab: error: {exc}", markup=False)
        sys.exit(exc.exit_status)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err.print("hanlab: aborted", markup=False)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
