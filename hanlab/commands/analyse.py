"""``hanlab analyse CAPTURE… --duis-log LOG [--keys KEYS] [--rig RIG]``: exchanges and
timings offline.

Feeds the captures and the DUIS log to the same correlator the live run uses (issue 5
item 7; DESIGN.md "Live and offline share it all"), then prints the timing table and,
with ``--out DIR``, writes ``exchanges.jsonl`` (one exchange per line, keys sorted),
``timings.json`` and ``timings.csv``. ``--rig`` gives each device its role from the rig
file (as the live correlator has it), so the report's rows and the exchanges match the
live run's. Key material is never printed.

A capture damaged part way (truncated by a crash, a corrupt block) does not stop the
analysis (issue 14 item 6): every frame before the damage is used, the result is printed
and written as usual, one warning line per damaged file names it and the byte offset on
stderr, and the exit status is 1 (the report may miss exchanges). A file that is not a
capture at all is bad input (exit status 2).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hanlab.errors import BadInputError

if TYPE_CHECKING:
    from hanlab.correlate.offline import AnalyseResult


def analyse(
    captures: Annotated[list[Path], typer.Argument(
        help="pcap or pcapng captures (one per band or sniffer; merged by time).")],
    duis_log: Annotated[Path, typer.Option("--duis-log", help="DUIS log (JSON Lines).")],
    keys: Annotated[Path | None, typer.Option("--keys", help="YAML keys file.")] = None,
    rig: Annotated[Path | None, typer.Option(
        "--rig", help="Rig file: device roles (ESME, GSME …) by EUI-64.")] = None,
    targets: Annotated[Path | None, typer.Option(
        "--targets", help="YAML/JSON {SR variant, Service Reference or *: seconds}: "
                          "end-to-end target response times (none by default).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for exchanges.jsonl, timings.json and timings.csv.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the exchanges as JSON Lines instead of the table.")] = False,
) -> None:
    """Correlate captures with a DUIS log: one exchange per SR, timings per band.

    Example:

      hanlab analyse run-2.4GHz.pcapng run-subGHz.pcapng --duis-log run.jsonl \\
          --keys lab-keys.yaml --rig rigs/emulated-dual-band.yaml --out report/

    Give the captures in the order of the rig file's sniffers to reproduce a live run's
    exchanges byte for byte (ties on ts_ns go to the earlier capture).
    """
    from rich.console import Console

    from hanlab.correlate.exchange import exchange_json
    from hanlab.correlate.offline import analyse as run_analysis
    from hanlab.correlate.stats import load_targets
    from hanlab.zigbee.keyring import Keyring

    for path in [*captures, duis_log, *([rig] if rig is not None else [])]:
        if not path.is_file():
            raise BadInputError(f"{path}: file not found", hint="check the path")
    ring = Keyring.load(keys) if keys is not None else Keyring()
    roles = None
    if rig is not None:
        from hanlab.config.loader import load_rig

        rig_config, _ = load_rig(rig)
        roles = {d.eui64: d.role.value for d in rig_config.devices}
    result = run_analysis(captures, duis_log, keyring=ring, device_roles=roles,
                          targets=load_targets(targets) if targets is not None else None)
    # the JSON lines only where they are written (issue 15: a sixth of a table-only run)
    lines = ([exchange_json(exchange) for exchange in result.exchanges]
             if out is not None or as_json else [])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "exchanges.jsonl").write_text("".join(line + "\n" for line in lines),
                                             encoding="utf-8")
        (out / "timings.json").write_text(result.stats.to_json() + "\n", encoding="utf-8")
        (out / "timings.csv").write_text(result.stats.to_csv(), encoding="utf-8")
    if as_json:
        sys.stdout.write("".join(line + "\n" for line in lines))
    else:
        _print_report(result)
    if result.damaged:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for damage in result.damaged:
            err.print(f"hanlab: warning: {damage.warning()}", markup=False)
        raise typer.Exit(1)


def _print_report(result: AnalyseResult) -> None:
    """The timing table (plain text, at most 80 columns, no cell ever cut: the same in a
    terminal, a pipe and a saved report) and the frame accounting line."""
    from rich.console import Console

    from hanlab.correlate.stats import text_table

    console = Console(highlight=False, soft_wrap=True)
    console.print(text_table(result.stats.rows()), markup=False)
    levels: dict[str, int] = {}
    for exchange in result.exchanges:
        if exchange.kind == "sr":
            levels[exchange.match_level] = levels.get(exchange.match_level, 0) + 1
    counts = result.counts
    console.print(
        f"{sum(levels.values())} SR exchanges ("
        + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())) + f"); "
        f"{counts['frames']} frames: {counts['frames_matched']} tied to SRs or alerts, "
        f"{counts['frames_unmatched']} in untied messages, "
        f"{counts['frames_idle'] + counts['frames_tunnel_control']} polls and idle traffic, "
        f"{counts['frames_mac_other']} MAC ACKs and others, "
        f"{counts['frames_bad_fcs']} with a bad FCS"
        + (f", {counts['frames_malformed']} malformed" if counts["frames_malformed"] else ""),
        markup=False)


def register(app: typer.Typer) -> None:
    """Add ``analyse`` to the hanlab CLI."""
    app.command("analyse")(analyse)
