"""The campaign report's DIT.8 section (seed 000 DIT.8: "the systems integrator will record
events from testing to evaluate the performance of the Communications Hub" in duty cycle
monitoring, GBCS v2.0 §10.6.2.2, and frequency agility, §10.6.2.6).

Per rig, from the sub-GHz captures and DUIS logs its job records name (so the figures are
reproducible with ``hanlab dutycycle``): every sub-GHz transmitter's duty cycle over time
with the thresholds and the state changes (an inline SVG, matplotlib), a table of the
changes with the Alert Code a CH raises for each, and the CH's channel moves.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from hanlab.correlate.dutycycle import DutyCycleThresholds
from hanlab.errors import HanlabError
from hanlab.reports.model import CampaignReportData

__all__ = ["dit8_section", "dutycycle_plot", "rig_dit8_views", "utc_ms"]

#: colour per state (Normal … Regulated) for change markers
_STATE_COLOURS = {"Normal": "#2e7d32", "Limited": "#f9a825", "Critical": "#ef6c00",
                  "Regulated": "#c62828"}
#: sampled points kept per transmitter in a plot
PLOT_POINTS = 2000


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def utc_ms(ts_ns: int | None) -> str:
    """``2026-12-01 10:15:00.123`` (UTC, to the ms) of ``ts_ns``, or ``–``."""
    import datetime as dt

    if ts_ns is None:
        return "–"
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _rig_inputs(data: CampaignReportData, rig: str) -> tuple[list[Path], list[Path], int]:
    """(sub-GHz captures, DUIS logs, files named but missing) of a rig's jobs."""
    captures: dict[Path, None] = {}
    logs: dict[Path, None] = {}
    missing = 0
    for job in data["jobs"]:
        record = job["record"]
        if record.get("rig") != rig:
            continue
        folder = Path(job.get("captures_dir") or ".")
        for name in record.get("captures") or []:
            path = Path(name) if Path(name).is_absolute() else folder / name
            if "_subGHz_" not in path.name:
                continue
            if path.is_file():
                captures[path] = None
            else:
                missing += 1
        log = record.get("duis_log")
        if log:
            path = Path(log) if Path(log).is_absolute() else folder / log
            if path.is_file():
                logs[path] = None
    return sorted(captures), list(logs), missing


def rig_dit8_views(data: CampaignReportData,
                   thresholds: DutyCycleThresholds | None = None) -> dict[str, dict[str, Any]]:
    """Rig name -> :meth:`~hanlab.correlate.dit8.Dit8Monitor.snapshot` (all samples) of
    its jobs' sub-GHz captures and DUIS logs, with ``missing`` (capture files named but
    absent) and ``error`` (why it could not be computed, or ``None``). Rigs without
    sub-GHz captures are left out. Never raises: a bad capture is reported in ``error``.

    ``thresholds``: the window and thresholds to start from (default
    :class:`~hanlab.correlate.dutycycle.DutyCycleThresholds`); an SR 6.28 in a DUIS log
    kept with its XML changes them from its time on."""
    from hanlab.correlate.dit8 import Dit8Monitor, monitor_captures

    out: dict[str, dict[str, Any]] = {}
    for rig in data["rigs"]:
        captures, logs, missing = _rig_inputs(data, rig["name"])
        if not captures and not missing:
            continue
        ch = [d["eui64"] for d in rig["devices"] if d["role"] in ("CHF", "GPF")]
        view: dict[str, Any]
        error = None
        try:
            result = monitor_captures(captures, duis_logs=logs, ch_eui64s=ch,
                                      thresholds=thresholds)
            view = result.monitor.snapshot(samples=None)
            if result.damaged:
                error = "; ".join(d.warning() for d in result.damaged)
        except HanlabError as exc:
            view, error = Dit8Monitor().snapshot(), str(exc)
        view["missing"] = missing
        view["error"] = error
        view["captures"] = [p.name for p in captures]
        out[rig["name"]] = view
    return out


def dutycycle_plot(view: dict[str, Any], *, title: str, id_prefix: str = "") -> str:
    """An SVG document (text): each transmitter's duty cycle (% of the window) over time,
    the thresholds as dashed lines, the state changes as markers coloured by the new
    state. Deterministic for the same view."""
    from matplotlib.figure import Figure

    from hanlab.reports.plots import BAND_COLOURS, plot_style, svg_text

    th = view["thresholds"]
    with plot_style():
        figure = Figure(figsize=(11.0, 3.2), layout="constrained")
        ax = figure.subplots()
        t0 = min((t["first_ts_ns"] for t in view["transmitters"].values()
                  if t["first_ts_ns"] is not None), default=0)
        for index, (name, t) in enumerate(view["transmitters"].items()):
            points = t.get("samples") or []
            step = max(1, len(points) // PLOT_POINTS)
            xs = [(p[0] - t0) / 60e9 for p in points[::step]]
            ys = [p[1] for p in points[::step]]
            colour = BAND_COLOURS["subGHz"] if name == "CH" else f"C{index % 10}"
            ax.plot(xs, ys, linewidth=1.3 if name == "CH" else 0.8, color=colour,
                    label=name, drawstyle="steps-post")
            for change in t["changes"]:
                ax.scatter([(change["ts_ns"] - t0) / 60e9], [change["duty_cycle_pct"]],
                           s=16, color=_STATE_COLOURS[change["new"]], zorder=3,
                           linewidths=0)
        peak = max([t["peak_pct"] for t in view["transmitters"].values()] + [0.0])
        top = max(peak, th["limited_critical_pct"]) * 1.25
        for label, key in (("Limited", "normal_limited_pct"),
                           ("Critical", "limited_critical_pct"),
                           ("Regulated", "critical_regulated_pct")):
            if th[key] > top:  # far above what was reached: named in the text, not drawn
                continue
            ax.axhline(th[key], color=_STATE_COLOURS[label], linewidth=0.9, linestyle="--")
            ax.text(0.995, th[key], f" {label} {th[key]:g} %",
                    transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                    color=_STATE_COLOURS[label], fontsize=7)
        ax.set_ylim(0, top)
        ax.set_xlabel("minutes from the first sub-GHz frame")
        ax.set_ylabel(f"% of {th['window_s']:g} s")
        ax.grid(color="#dddddd", linewidth=0.5)
        ax.legend(loc="upper left", fontsize=7, frameon=False)
        figure.suptitle(title, x=0.01, ha="left", fontsize=9.5, fontweight="bold")
        return svg_text(figure, id_prefix)


def dit8_section(data: CampaignReportData, number: int = 8,
                 thresholds: DutyCycleThresholds | None = None) -> str:
    """The report section (HTML text) for every rig with sub-GHz captures (``thresholds``
    as for :func:`rig_dit8_views`)."""
    views = rig_dit8_views(data, thresholds)
    out = [f'<section id="dit8"><h2>{number}. Sub-GHz duty cycle and frequency agility '
           "(DIT.8)</h2>",
           '<p class="note">Computed from the sub-GHz captures and DUIS logs of the jobs '
           "(<code>hanlab dutycycle</code> gives the same figures): airtime per frame = "
           "SHR + PHR + PSDU + FCS at 100 ksymbol/s, summed per transmitter over the "
           "rolling window; the CH is its CHF and GPF together. Alert Codes are those a CH "
           "raises for each change (GBCS 0x8F20–0x8F25, 0x8F26 channel changed).</p>"]
    if not views:
        out.append("<p>No sub-GHz captures in these jobs.</p></section>")
        return "\n".join(out)
    for rig, view in views.items():
        th = view["thresholds"]
        out.append(f'<h3 id="dit8-{_e(rig)}">{_e(rig)}</h3>')
        out.append(f'<p class="note">Window {th["window_s"]:g} s; Limited from '
                   f'{th["normal_limited_pct"]:g} %, Critical from '
                   f'{th["limited_critical_pct"]:g} %, Regulated from '
                   f'{th["critical_regulated_pct"]:g} %. Captures: '
                   f'{_e(", ".join(view["captures"]) or "none")}.</p>')
        if view["missing"]:
            out.append(f'<p class="note">{view["missing"]} capture file(s) named by the job '
                       "records were not found; the figures below miss them.</p>")
        if view["error"]:
            out.append(f'<p class="note">Not all frames could be read: {_e(view["error"])}</p>')
        if view["transmitters"]:
            out.append('<figure class="plot">' + dutycycle_plot(
                view, title=f"{rig}: sub-GHz duty cycle per transmitter",
                id_prefix=f"dit8-{re.sub(r'[^A-Za-z0-9]', '', rig)}-") + "</figure>")
        out.append('<table><tr><th>Transmitter</th><th>EUI-64</th><th>State at end</th>'
                   "<th>Peak %</th><th>Frames</th><th>Airtime s</th><th>State changes</th></tr>")
        for name, t in view["transmitters"].items():
            out.append(f"<tr><td>{_e(name)}</td><td>{_e(t.get('eui64') or '–')}</td>"
                       f"<td>{_e(t['state'])}</td>"
                       f"<td>{t['peak_pct']:.3f}</td><td>{t['frames']}</td>"
                       f"<td>{t['airtime_s']:.3f}</td><td>{len(t['changes'])}</td></tr>")
        out.append("</table>")
        changes = sorted((c["ts_ns"], name, c) for name, t in view["transmitters"].items()
                         for c in t["changes"])
        if changes:
            out.append('<table><tr><th>UTC</th><th>Transmitter</th><th>Change</th>'
                       "<th>Duty cycle %</th><th>Alert</th></tr>")
            for ts_ns, name, c in changes:
                out.append(f"<tr><td>{utc_ms(ts_ns)}</td><td>{_e(name)}</td>"
                           f"<td>{_e(c['old'])} → {_e(c['new'])}</td>"
                           f"<td>{c['duty_cycle_pct']:.3f}</td><td>{_e(c['alert_code'])}</td></tr>")
            out.append("</table>")
        else:
            out.append("<p>No duty-cycle state changed.</p>")
        if view["agility"]:
            out.append('<table><tr><th>UTC</th><th>From</th><th>To</th><th>Time to move ms'
                       "</th><th>Frames lost</th><th>Alerts</th></tr>")
            for move in view["agility"]:
                alerts = ", ".join(a["alert_code"] for a in move["alerts"]) or "none seen"
                out.append(
                    f"<tr><td>{utc_ms(move['first_new_ts_ns'])}</td>"
                    f"<td>page {move['old'][0]} ch {move['old'][1]}</td>"
                    f"<td>page {move['new'][0]} ch {move['new'][1]}</td>"
                    f"<td>{move['time_to_move_s'] * 1000:.1f}</td>"
                    f"<td>{move['frames_lost']}</td><td>{_e(alerts)}</td></tr>")
            out.append("</table>")
        else:
            out.append("<p>No sub-GHz channel change seen.</p>")
    out.append("</section>")
    return "\n".join(out)
