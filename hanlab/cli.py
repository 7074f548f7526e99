"""The ``hanlab`` command line: one typer app, command groups registered from modules.

Errors: a :class:`~hanlab.errors.HanlabError` is printed as one line (cause and what to
do) on stderr and the process exits with its ``exit_status`` (2 for bad input).
"""

from __future__ import annotations

import gc
import importlib
import sys

import typer
import typer.main
from rich.console import Console
from typer import _click  # the click typer is built on (vendored since typer 0.2x)
from typer.core import TyperCommand, TyperGroup

from hanlab.errors import HanlabError

#: every command of ``hanlab``: name -> (module under hanlab.commands whose register(app)
#: adds it, the one-line help ``hanlab --help`` shows). A module is imported only when one
#: of its commands runs (or its own --help is asked for), so start-up pays for one command's
#: imports, never for all of them; tests/unit/test_cli_lazy.py checks this table against
#: what the modules register. Order: the order of ``hanlab --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("hanlab.commands.run",
           "Run every rig of a lab: capture, live correlation, MQTT, and the control API "
           "for jobs."),
    "capture": ("hanlab.commands.run",
                "Run one source through the capture pipeline into per-band TAP pcapng files."),
    "devices": ("hanlab.commands.devices", "List serial ports (USB VID:PID, serial number) "
                "and match them to configured sniffers."),
    "decode": ("hanlab.commands.decode",
               "Decode captures: one line (or JSON object) per frame, decrypting with KEYS."),
    "analyse": ("hanlab.commands.analyse",
                "Correlate captures with a DUIS log: one exchange per SR, timings per band."),
    "dutycycle": ("hanlab.commands.dutycycle",
                  "Duty cycle per sub-GHz transmitter and frequency agility (DIT.8) from "
                  "captures."),
    "rig": ("hanlab.commands.rig", "Rig files: check them before a run."),
    "udev": ("hanlab.commands.udev", "udev rules for stable sniffer and radio names."),
    "keys": ("hanlab.commands.decode", "Keys files: export them for other tools."),
    "scenarios": ("hanlab.commands.scenarios", "The scenario library (seed 000 business "
                  "scenarios, seed 001 Change of Supplier)."),
    "scenario": ("hanlab.commands.scenarios", "Run a business scenario on a rig."),
    "jobs": ("hanlab.commands.jobs", "Jobs on the lab's rigs: list, show, cancel, rerun."),
    "plan": ("hanlab.commands.campaign", "Test plans: what a plan runs."),
    "campaign": ("hanlab.commands.campaign",
                 "Campaigns: a plan's jobs over the lab's rigs, resumable."),
    "report": ("hanlab.commands.reports", "Campaign reports (HTML, JUnit, CSV, Parquet)."),
    "evidence": ("hanlab.commands.reports",
                 "Triage bundle of a step: its frames from every band (commented with "
                 "RequestID, SR\nand segment), the keys as Wireshark zigbee_pc_keys, the "
                 "DUIS documents, a timeline."),
    "annotate": ("hanlab.commands.reports",
                 "Write whole captures again with every exchange's frames commented "
                 "(RequestID, SR,\nsegment), for Wireshark's frame.comment."),
    "issues": ("hanlab.commands.reports",
               "The test issue log of a campaign (seed 000 Table 10)."),
    "firmware": ("hanlab.commands.firmware",
                 "OTA firmware images, the catalogue, transfers and SIP#7 tracking."),
    "rollout": ("hanlab.commands.rollout",
                "CH firmware roll-outs (SECMP0024): plan an estate, list the rules."),
    "rigs": ("hanlab.commands.rigs",
             "List every rig of the lab with its daemon's host and control URL."),
}

#: modules under hanlab.commands that add commands; each defines register(app).
COMMAND_MODULES: list[str] = list(dict.fromkeys(module for module, _ in COMMANDS.values()))


def load_command(name: str) -> _click.Command:
    """Import the module of command ``name`` and return its click command (or group).

    Raises:
        KeyError: ``name`` is not in :data:`COMMANDS`.
    """
    module = importlib.import_module(COMMANDS[name][0])
    sub = typer.Typer()
    module.register(sub)
    return typer.main.get_group(sub).commands[name]


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` without importing them, loads one on use."""

    _listing = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        """Every command name, in :data:`COMMANDS` order."""
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        """The command ``cmd_name``, imported now; only its name and help while listing."""
        cmd = self.commands.get(cmd_name)
        if cmd is None and cmd_name in COMMANDS:
            if self._listing:
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1])
            cmd = self.commands[cmd_name] = load_command(cmd_name)
        return cmd

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """``hanlab --help``: the command list from :data:`COMMANDS`, nothing imported."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="hanlab",
    help=(
        "Hardware-in-the-loop ZigBee HAN lab controller for GB smart metering.\n\n"
        "Start a lab with `hanlab up` (no file: the emulated default lab), convert a capture "
        "with `hanlab capture`, read one with `hanlab decode`, run a DIT business scenario "
        "with `hanlab scenario run`, get per-band timings with `hanlab analyse`, check rig "
        "files with `hanlab rig validate`. Every command has --help with examples."
    ),
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from hanlab import __version__, _compiled

        sys.stdout.write(f"hanlab {__version__} ({_compiled.status()})\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and whether the codec is compiled."),
) -> None:
    # a callback makes the app a group even though no command is registered up front
    pass


def _register() -> None:
    """Nothing to import up front: :class:`LazyGroup` loads each command when it is used."""


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


#: allocations of tracked objects between two collections of the cyclic garbage
#: collector's youngest generation (CPython 3.11's default: 700).
#: hanlab's hot paths allocate one tracked object per frame (its :class:`~hanlab.frames.Frame`)
#: that lives for a batch of hundreds of frames: at 700, nearly every frame survived a
#: young collection, and enough reached the oldest generation to set off full
#: collections of the whole heap. ``hanlab capture`` of Sinope ×10: 574 collections
#: taking 0.13 s, against 7 taking 0.01 s at 10,000 (issue 15).
GC_YOUNG_THRESHOLD = 10_000


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hanlab`` console script.

    Exit status: 0 on success (bare ``hanlab`` prints the help), 2 for bad input (every
    usage error and :class:`BadInputError`, one line on stderr, never a traceback; issue 14
    item 1), the error's own status for other :class:`HanlabError`, 130 when aborted.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
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
