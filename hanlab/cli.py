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


def _framework_error(name: str) -> type[Exception]:
    """The class called ``name`` among the ancestors of ``typer.BadParameter``.

    typer ≥ 0.24 vendors click as ``typer._click`` and raises its own classes; older typer
    raises click's. Both keep click's names (``UsageError``, ``ClickException``), so the
    classes are found from the one public usage error instead of a private import.
    """
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name and issubclass(cls, Exception):
            return cls
    raise LookupError(name)  # pragma: no cover - typer without click's classes


_USAGE_ERROR = _framework_error("UsageError")
_CLICK_EXCEPTION = _framework_error("ClickException")


def _is_help_request(exc: BaseException) -> bool:
    """True for the error typer raises for a bare group (``no_args_is_help``)."""
    return any(cls.__name__ == "NoArgsIsHelpError" for cls in type(exc).__mro__)


def _message(exc: Exception) -> str:
    """The text click would show for ``exc`` (its ``format_message()``)."""
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if callable(format_message) else exc)


def usage_error_line(exc: Exception) -> str:
    """One line for a command-line usage error: the cause and the ``--help`` to read.

    Args:
        exc: a typer/click ``UsageError`` (missing argument, unknown option or command,
            bad value, extra argument).

    Returns:
        e.g. ``hanlab: error: Missing option '--rig'. (see 'hanlab scenario run --help')``.
    """
    message = " ".join(_message(exc).split())
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    return f"hanlab: error: {message}" + (f" (see '{path} --help')" if path else "")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hanlab`` console script.

    Exit status: 0 on success (bare ``hanlab`` prints the help), 2 for bad input (every
    usage error and :class:`BadInputError`, one line on stderr, never a traceback; issue 14
    item 1), the error's own status for other :class:`HanlabError`, 130 when aborted.
    """
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
    except _USAGE_ERROR as exc:
        if _is_help_request(exc):
            sys.stdout.write(_message(exc) + "\n")
            sys.exit(0)
        _err.print(usage_error_line(exc), markup=False)
        sys.exit(2)
    except _CLICK_EXCEPTION as exc:  # e.g. a file typer could not open
        _err.print(usage_error_line(exc), markup=False)
        sys.exit(getattr(exc, "exit_code", 1) or 1)


if __name__ == "__main__":
    main()
