"""``hanlab dutycycle CAPTURE… [--duis-log LOG] [--rig RIG] [--keys KEYS]``: DIT.8 duty
cycle per sub-GHz transmitter and frequency agility, offline from captures.

The same :class:`~hanlab.correlate.dit8.Dit8Monitor` the live rig runs (seed 000 DIT.8;
GBCS v2.0 §10.6.2.2 and §10.6.2.6). ``--rig`` names the CH's CHF and GPF (their frames count
as the CH's), ``--keys`` lets Mgmt_NWK_Update_req be read, ``--duis-log`` adds the CH's
alerts (0x8F26 …) to the moves. Thresholds: ``--sr628`` reads them from an SR 6.28 request,
the ``--*-pct`` options override. A capture damaged part way is used up to the damage and
named on stderr (exit status 1); a file that is no capture is bad input (exit status 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hanlab.commands import print_table
from hanlab.errors import BadInputError


def dutycycle(
    captures: Annotated[list[Path], typer.Argument(
        help="pcap or pcapng captures of the sub-GHz HAN (merged by time).")],
    duis_log: Annotated[Path | None, typer.Option(
        "--duis-log", help="DUIS log (JSON Lines): the CH's alerts.")] = None,
    rig: Annotated[Path | None, typer.Option(
        "--rig", help="Rig file: the CHF and GPF EUI-64s (their frames are the CH's).")] = None,
    keys: Annotated[Path | None, typer.Option(
        "--keys", help="YAML keys file: reads Mgmt_NWK_Update_req.")] = None,
    sr628: Annotated[Path | None, typer.Option(
        "--sr628", help="DUIS SR 6.28 request XML: its two duty-cycle thresholds.")] = None,
    window_s: Annotated[float, typer.Option(
        "--window-s", help="Rolling window, seconds.")] = 3600.0,
    normal_limited_pct: Annotated[float | None, typer.Option(
        "--normal-limited-pct", help="Normal-Limited threshold, % (default 1.3).")] = None,
    limited_critical_pct: Annotated[float | None, typer.Option(
        "--limited-critical-pct", help="Limited-Critical threshold, % (default 2.2).")] = None,
    critical_regulated_pct: Annotated[float, typer.Option(
        "--critical-regulated-pct", help="Critical-Regulated threshold, %.")] = 10.0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the result as JSON (with each transmitter's samples).")] = False,
) -> None:
    """Duty cycle per sub-GHz transmitter and frequency agility (DIT.8) from captures.

    Example:

      hanlab dutycycle run-subGHz.pcapng --rig rigs/emulated-dual-band.yaml \\
          --keys lab-keys.yaml --duis-log run.jsonl

      hanlab dutycycle run-subGHz.pcapng --window-s 600 --normal-limited-pct 0.5 --json

    Prints each transmitter's state, duty cycle now and at its peak (% of the window),
    its state changes with the Alert Code the CH raises for each, and the CH's channel
    moves (time to move, frames lost, alerts).
    """
    from hanlab.correlate.dit8 import monitor_captures
    from hanlab.correlate.dutycycle import DutyCycleThresholds
    from hanlab.zigbee.keyring import Keyring

    for path in [*captures, *(p for p in (duis_log, rig, keys, sr628) if p is not None)]:
        if not path.is_file():
            raise BadInputError(f"{path}: file not found", hint="check the path")
    base = DutyCycleThresholds(window_s, 1.3, 2.2, critical_regulated_pct)
    if sr628 is not None:
        base = base.from_sr628(sr628.read_bytes(), where=str(sr628))
    thresholds = DutyCycleThresholds(
        window_s, normal_limited_pct if normal_limited_pct is not None
        else base.normal_limited_pct,
        limited_critical_pct if limited_critical_pct is not None
        else base.limited_critical_pct, critical_regulated_pct)
    ch: list[str] = []
    if rig is not None:
        from hanlab.config.loader import load_rig

        rig_config, _ = load_rig(rig)
        ch = [d.eui64 for d in rig_config.devices if d.role.value in ("CHF", "GPF")]
    ring = Keyring.load(keys) if keys is not None else None
    result = monitor_captures(captures, duis_logs=[duis_log] if duis_log else [],
                              thresholds=thresholds,
                              ch_eui64s=ch, keyring=ring)
    view = result.monitor.snapshot(samples=None if as_json else 0)
    if as_json:
        sys.stdout.write(json.dumps(view, sort_keys=True) + "\n")
    else:
        _print(view)
    for warning in result.monitor.warnings:
        sys.stderr.write(f"hanlab: warning: {warning}\n")
    if result.damaged:
        for damage in result.damaged:
            sys.stderr.write(f"hanlab: warning: {damage.warning()}\n")
        raise typer.Exit(1)


def _print(view: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from hanlab.reports.dit8 import utc_ms

    console = Console(highlight=False, soft_wrap=True)
    th = view["thresholds"]
    table = Table(title=f"sub-GHz duty cycle, {th['window_s']:g} s window: Limited from "
                        f"{th['normal_limited_pct']} %, Critical from "
                        f"{th['limited_critical_pct']} %, Regulated from "
                        f"{th['critical_regulated_pct']} %")
    for col in ("transmitter", "state", "now %", "peak %", "frames", "airtime s", "changes"):
        table.add_column(col, justify="left" if col in ("transmitter", "state") else "right")
    for name, t in view["transmitters"].items():
        table.add_row(name, t["state"], f"{t['duty_cycle_pct']:.3f}", f"{t['peak_pct']:.3f}",
                      str(t["frames"]), f"{t['airtime_s']:.3f}", str(len(t["changes"])))
    print_table(console, table)
    for name, t in view["transmitters"].items():
        for c in t["changes"]:
            console.print(f"{utc_ms(c['ts_ns'])}  {name}: {c['old']} -> {c['new']} at "
                          f"{c['duty_cycle_pct']:.3f} % (alert {c['alert_code']})",
                          markup=False)
    for move in view["agility"]:
        alerts = ", ".join(a["alert_code"] for a in move["alerts"]) or "none"
        console.print(
            f"{utc_ms(move['first_new_ts_ns'])}  channel change page {move['old'][0]} channel "
            f"{move['old'][1]} -> page {move['new'][0]} channel {move['new'][1]}: "
            f"{move['time_to_move_s'] * 1000:.1f} ms to move, {move['frames_lost']} frames "
            f"lost, alerts {alerts}", markup=False)
    counts = view["counts"]
    console.print(f"{counts.get('frames', 0)} sub-GHz frames ({counts.get('duplicates', 0)} "
                  f"duplicates dropped, {counts.get('malformed', 0)} unreadable); CH on "
                  f"{view['channel'] or '-'}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``dutycycle`` to the hanlab CLI."""
    app.command("dutycycle")(dutycycle)
