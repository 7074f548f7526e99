"""The CH firmware impact section of the HTML report (issue 12, item 2; SECMP0024 req. 6).

:func:`impact_section` renders an ``IMPACT`` (:func:`hanlab.firmware.impact.ch_impact`) as
one ``<section id="ch-impact">`` with the campaign report's styles: per band a table of
SR variant × device with the medians before and after, the difference with its confidence
interval, the Mann–Whitney p-value and verdict (rows carry ``data-band``,
``data-verdict``), a before/after box plot per band (``figure.impact-plot``), the SR failure
rates, each device's rejoins, and the devices that did not come back. The campaign report
includes it when its data has ``ch_impact``; :func:`render_impact_report` makes it a
document of its own (``hanlab firmware impact --html``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hanlab import __version__
from hanlab.reports.html import _CSS, _band, _e

__all__ = ["impact_section", "render_impact_report"]


def _num(value: Any, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def impact_section(impact: Mapping[str, Any]) -> str:
    """The ``<section id="ch-impact">`` of ``impact`` (HTML text)."""
    from hanlab.reports.plots import SEGMENT_TITLES, before_after_boxplots

    segment = str(impact.get("segment", "end_to_end"))
    conf = round(float(impact.get("confidence", 0.95)) * 100)
    out = ['<section id="ch-impact"><h2>CH firmware upgrade: impact on HAN devices '
           "(SECMP0024)</h2>",
           f'<p class="note">{_e(SEGMENT_TITLES.get(segment, segment))}, in ms, jobs before '
           f"({_e(', '.join(str(j) for j in impact.get('before_jobs') or []))}) and after "
           f"({_e(', '.join(str(j) for j in impact.get('after_jobs') or []))}) the upgrade. "
           f"Difference = median after − median before, with its {conf}% percentile "
           "bootstrap interval; Hodges–Lehmann shift; two-sided Mann–Whitney U test at "
           f"alpha {_e(impact.get('alpha'))}.</p>"]
    timings = list(impact.get("timings") or [])
    bands = sorted({str(r["band"]) for r in timings}, key=lambda b: (b != "2.4GHz", b))
    if not timings:
        out.append("<p>No answered SR exchanges on either side.</p>")
    for n, band in enumerate(bands):
        rows = [r for r in timings if r["band"] == band]
        out.append(f'<h3 id="ch-impact-{_e(band)}">{_e(_band(band))}</h3>')
        out.append('<table class="impact"><tr><th>SR</th><th>Device</th><th>n before / '
                   "after</th><th>Median before</th><th>Median after</th><th>Difference</th>"
                   f"<th>{conf}% CI</th><th>HL shift</th><th>p</th><th>Verdict</th></tr>")
        for r in rows:
            ci = ("—" if r.get("ci_low_ms") is None
                  else f"[{_num(r['ci_low_ms'])}, {_num(r['ci_high_ms'])}]")
            out.append(
                f'<tr data-band="{_e(band)}" data-verdict="{_e(r["verdict"])}">'
                f"<td>{_e(r['sr_variant'])}</td><td class=mono>{_e(r['device_role'])} "
                f"{_e(r['device'])}</td><td>{r['n_before']} / {r['n_after']}</td>"
                f"<td>{_num(r['median_before_ms'])}</td><td>{_num(r['median_after_ms'])}</td>"
                f"<td>{_num(r['diff_median_ms'])}</td><td>{ci}</td>"
                f"<td>{_num(r['hodges_lehmann_ms'])}</td><td>{_num(r['p_value'], '.3g')}</td>"
                f"<td>{_e(r['verdict'])}</td></tr>")
        out.append("</table>")
        groups = [(f"{r['sr_variant']} {r['device_role']} {str(r['device'])[-5:]}",
                   r.get("before_ns") or [], r.get("after_ns") or []) for r in rows]
        svg = before_after_boxplots(groups, band=band, id_prefix=f"impact{n}-",
                                    title=f"{_band(band)}: before and after the upgrade")
        out.append(f'<figure class="impact-plot" data-band="{_e(band)}">{svg}</figure>')
    out.append("<h3>SR failures (failed / sent)</h3><table><tr><th>SR</th><th>Device</th>"
               "<th>Before</th><th>After</th></tr>")
    for r in impact.get("failures") or []:
        out.append(f"<tr><td>{_e(r['sr_variant'])}</td><td class=mono>{_e(r['device'])}</td>"
                   f"<td>{r['failed_before']} / {r['sent_before']}</td>"
                   f"<td>{r['failed_after']} / {r['sent_after']}</td></tr>")
    out.append("</table><h3>Rejoins after the CH reboots</h3><table><tr><th>Device</th>"
               "<th>SE</th><th>Band</th><th>How</th><th>Back</th><th>Rejoin s (median / "
               "max)</th><th>Polling resumed s (median / max)</th><th>Attempts (max)</th>"
               "</tr>")
    for r in impact.get("rejoins") or []:
        out.append(
            f'<tr data-device="{_e(r["eui64"])}"><td>{_e(r["device"])}</td>'
            f"<td>{_e(r['se_version'])}</td><td>{_e(_band(str(r['band'])))}</td>"
            f"<td>{_e(', '.join(r['methods']))}</td><td>{r['back']} / {r['upgrades']}</td>"
            f"<td>{_num(r['rejoin_s_median'], '.2f')} / {_num(r['rejoin_s_max'], '.2f')}</td>"
            f"<td>{_num(r['resume_s_median'], '.2f')} / {_num(r['resume_s_max'], '.2f')}</td>"
            f"<td>{r['attempts_max']}</td></tr>")
    out.append("</table>")
    not_back = impact.get("not_back") or []
    out.append('<p id="ch-impact-not-back">Devices that did not come back: ' + (", ".join(
        f"{_e(d.get('device') or d.get('eui64'))} (job {_e(d.get('job'))})"
        for d in not_back) or "none") + ".</p></section>")
    return "\n".join(out)


def render_impact_report(impact: Mapping[str, Any]) -> str:
    """A self-contained HTML document holding :func:`impact_section` only."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>CH firmware impact</title>",
        f'<meta name="generator" content="hanlab {_e(__version__)}">',
        f"<style>{_CSS}</style></head><body><main>", impact_section(impact),
        "</main></body></html>"])
