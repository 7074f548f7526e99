"""The campaign report: one self-contained HTML file (issue 10, item 5; seed 000 Table 9).

:func:`render_campaign_report` turns a :class:`~hanlab.reports.model.CampaignReportData`
into one HTML document that opens offline: CSS inline, plots as inline SVG (matplotlib),
no script, no font, image or style sheet from anywhere else. Sections, in order:

1. campaign metadata: id, plan, operator, dates; rigs with their CH variant; devices with
   manufacturer, model, firmware, SMETS/CHTS and GBCS versions, ZigBee stack, silicon
   vendor and CPL reference;
2. exit criteria (Table 9): DIT.EX.3 / EX.5 per CH variant and band with the pass rates
   and the business-critical scenarios (library priority High), and what the campaign's
   records say for EX.4, EX.6 (defect mask), EX.8 (evidence), EX.9 (issue log) and EX.10
   (traceability);
3. the heatmap of scenario variant × device per CH variant (footnote 7 of DIT.EX.3);
4. per band, timing tables per SR variant and device and box plots of each segment, with
   the end-to-end targets and over-target counts (DIT.11);
5. failed steps with links to their triage bundles;
6. the test issue log and the defect mask check (Table 10);
7. traceability from each plan line to its jobs (DIT.EX.10), and the jobs;
8. per rig with sub-GHz captures, DIT.8: each transmitter's duty cycle over time with the
   thresholds and state changes, and the CH's channel moves (:mod:`hanlab.reports.dit8`).

Ids for tools and tests: ``#verdicts``, ``#heatmap`` (a table per CH variant with class
``heatmap``), ``#timings`` (``table.timings`` rows carry ``data-band``, ``data-role``),
``figure.timing-plot``, ``#failed``, ``#issues``, ``#mask``, ``#traceability``, ``#dit8``.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections import defaultdict
from typing import Any

from hanlab import __version__
from hanlab.correlate.stats import SEGMENTS, percentile
from hanlab.reports.analysis import (
    BUSINESS_CRITICAL,
    EX5_NON_CRITICAL_PASS,
    Analysis,
    TestCell,
    analyse_campaign,
    format_ns,
)
from hanlab.reports.dit8 import dit8_section
from hanlab.reports.model import CampaignReportData, check_report_data

__all__ = ["device_label", "render_campaign_report", "timing_rows"]

BAND_NAMES = {"2.4GHz": "2.4 GHz", "subGHz": "sub-GHz"}
DEVICE_FIELDS = (("manufacturer", "Manufacturer"), ("model", "Model"),
                 ("firmware_version", "Firmware"), ("smets_chts_version", "SMETS/CHTS"),
                 ("gbcs_version", "GBCS"), ("zigbee_stack", "ZigBee stack"),
                 ("silicon_vendor", "Silicon"), ("cpl_reference", "CPL ref."))


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _band(band: str) -> str:
    return BAND_NAMES.get(band, band)


def device_label(role: str, eui64: str) -> str:
    """``GSME ·D2-02``: the role and the last two octets of the EUI-64."""
    return f"{role} ·{eui64[-5:]}" if len(eui64) >= 5 else f"{role} {eui64}"


def _ms(ns: float) -> str:
    return f"{ns / 1e6:,.1f}"


def _us_ms(us: float | None) -> str:
    return "" if us is None else f"{us / 1000:,.1f}"


def _pct(part: int, whole: int) -> str:
    return "—" if not whole else f"{100 * part / whole:.1f} % ({part}/{whole})"


def _badge(ok: bool | None, yes: str = "MET", no: str = "NOT MET",
           unknown: str = "NOT ASSESSED") -> str:
    cls, text = (("na", unknown) if ok is None else ("ok", yes) if ok else ("bad", no))
    return f'<span class="badge {cls}">{_e(text)}</span>'


def timing_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """One row per band × SR variant × device × segment with at least one value: count,
    min/p50/p90/p99/max in µs (nearest rank, as :class:`~hanlab.correlate.stats.
    TimingStats`), end-to-end target (s) and within/over-target counts."""
    groups: dict[tuple[str, str, str, str], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(list))
    for s in analysis.samples:
        group = groups[(s.band, s.sr_variant, s.role, s.device)]
        for name, value in s.segments_ns.items():
            if value is not None:
                group[name].append(int(value))
    rows: list[dict[str, Any]] = []
    for (band, variant, role, device) in sorted(groups, key=lambda k: (
            k[0] != "2.4GHz", k[0], k[1], k[2], k[3])):
        group = groups[(band, variant, role, device)]
        for name in SEGMENTS:
            values = sorted(group.get(name, []))
            if not values:
                continue
            target = analysis.target_for(variant) if name == "end_to_end" else None
            over = None if target is None else sum(1 for v in values if v > target * 1e9)
            rows.append({"band": band, "sr_variant": variant, "device_role": role,
                         "device": device, "segment": name, "count": len(values),
                         "min_us": round(values[0] / 1e3, 3),
                         "p50_us": round(percentile(values, 50) / 1e3, 3),
                         "p90_us": round(percentile(values, 90) / 1e3, 3),
                         "p99_us": round(percentile(values, 99) / 1e3, 3),
                         "max_us": round(values[-1] / 1e3, 3), "target_s": target,
                         "within_target": None if over is None else len(values) - over,
                         "over_target": over})
    return rows


_CSS = """
:root{--ink:#1b1f24;--mute:#5b6570;--line:#d0d5db;--ok:#1b7f3b;--bad:#b3261e;--na:#6b7280;
--warn:#a15c00;--head:#eef1f4;--sub:#b35806;--g24:#1f5f99}
*{box-sizing:border-box}
body{font:13px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif;color:var(--ink);
margin:0;background:#fff}main{max-width:1240px;margin:0 auto;padding:18px 28px 60px}
header.doc{border-bottom:3px solid var(--ink);padding-bottom:8px;margin-bottom:14px;display:flex;
justify-content:space-between;align-items:flex-end;gap:20px}
header.doc h1{font-size:22px;margin:0 0 2px}header.doc .sub{color:var(--mute)}
header.doc .stamp{text-align:right;color:var(--mute);font-size:12px}
h2{font-size:16px;border-bottom:1px solid var(--line);padding-bottom:3px;margin:26px 0 8px}
h3{font-size:14px;margin:16px 0 6px}h4{font-size:13px;margin:12px 0 4px}
table{border-collapse:collapse;margin:4px 0 10px;font-size:12px}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:190px}td.mono{white-space:nowrap}
td.rid{font-family:"DejaVu Sans Mono",Menlo,monospace;font-size:11px;word-break:break-all;
min-width:170px;max-width:230px}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,monospace;font-size:11.5px}
.badge{display:inline-block;padding:1px 7px;border-radius:3px;font-weight:700;font-size:11px;
letter-spacing:.03em;color:#fff}.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.badge.na{background:var(--na)}.crit{color:var(--bad);font-weight:700;font-size:11px}
.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px;
margin:8px 0}
.summary div{border:1px solid var(--line);border-left:4px solid var(--ink);padding:6px 9px}
.summary div.ok{border-left-color:var(--ok)}.summary div.bad{border-left-color:var(--bad)}
.summary b{display:block;font-size:18px}.summary span{color:var(--mute);font-size:11px}
table.heatmap td.cell{text-align:center;min-width:74px;font-weight:600}
td.passed{background:#cfe9d6;color:#0c4a1f}td.failed{background:#f6c9c5;color:#6d1710}
td.notrun{background:repeating-linear-gradient(45deg,#f3f4f6,#f3f4f6 5px,#e5e7eb 5px,#e5e7eb 10px);
color:var(--mute);font-weight:400}td.na{background:#fff;color:#c0c4c9}
th.band-2\\.4GHz{border-top:3px solid var(--g24)}th.band-subGHz{border-top:3px solid var(--sub)}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border:1px solid var(--line)}
figure.timing-plot{margin:6px 0 16px;border:1px solid var(--line);padding:6px}
figure.timing-plot svg{width:100%;height:auto}figure figcaption{color:var(--mute);font-size:11px}
.note{color:var(--mute);font-size:11.5px}.reasons{margin:0;padding-left:16px}
tr.over td.over{color:var(--bad);font-weight:700}
@media print{main{max-width:none;padding:0}h2{break-after:avoid}figure,table{break-inside:avoid}}
"""


def render_campaign_report(data: CampaignReportData | dict[str, Any], *,
                           quality_gate: dt.date | None = None) -> str:
    """The campaign report as one self-contained HTML document (text).

    Args:
        data: the report data (checked with :func:`~hanlab.reports.model.
            check_report_data`).
        quality_gate: the Quality Gate Meeting date the Table 10 work-off timescales
            count from (default: the campaign's ``quality_gate_date``, else the day the
            campaign ended, else today, UTC).

    Raises:
        BadInputError: ``data`` does not have the documented shape.
    """
    checked = check_report_data(data)
    analysis = analyse_campaign(checked)
    meta = checked["campaign"]
    gate = quality_gate or _quality_gate(checked)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>DIT campaign report {_e(meta['id'])}</title>",
        f'<meta name="generator" content="hanlab {_e(__version__)}">',
        f"<style>{_CSS}</style></head><body><main>",
        _header(analysis),
        _campaign_section(analysis),
        _verdict_section(analysis, gate),
        _heatmap_section(analysis),
        _timing_section(analysis),
        _impact(checked),
        _failed_section(analysis),
        _issue_section(analysis, gate),
        _trace_section(analysis),
        dit8_section(checked),
        '<p class="note">Generated by hanlab from the campaign\'s job records only: every '
        "figure can be reproduced from the captures and DUIS logs named in them "
        "(<code>hanlab analyse</code>). Times are UTC.</p>",
        "</main></body></html>"]
    return "\n".join(parts)


def _impact(data: CampaignReportData) -> str:
    """The CH firmware impact section when the data carries ``ch_impact`` (an ``IMPACT``
    of :func:`hanlab.firmware.impact.ch_impact`), else nothing."""
    impact: Any = dict(data).get("ch_impact")
    if not impact:
        return ""
    from hanlab.reports.impact_html import impact_section

    return impact_section(impact)


def _quality_gate(data: CampaignReportData) -> dt.date:
    meta = data["campaign"]
    text = meta.get("quality_gate_date")
    if text:
        try:
            return dt.date.fromisoformat(str(text))
        except ValueError:
            pass
    ended = meta.get("ended_ns")
    when = ended / 1e9 if ended else time.time()
    return dt.datetime.fromtimestamp(when, dt.UTC).date()


def _header(a: Analysis) -> str:
    meta = a.data["campaign"]
    met = all(v.met for v in a.verdicts) if a.verdicts else None
    generated = a.data.get("generated_ns") or time.time_ns()
    runs = sum(len(c.runs) for c in a.cells)
    return (
        '<header class="doc"><div><h1>Device Integration Testing — campaign report</h1>'
        f'<div class="sub">Campaign <b class="mono">{_e(meta["id"])}</b>'
        f'{" — " + _e(meta.get("name")) if meta.get("name") else ""} · plan '
        f'{_e(meta.get("plan_name") or "—")}</div></div>'
        f'<div class="stamp">generated {format_ns(generated)}<br>hanlab {_e(__version__)}'
        f"<br>exit criteria EX.3/EX.5: {_badge(met)}</div></header>"
        '<div class="summary">'
        f'<div><b>{len(a.data["jobs"])}</b><span>jobs</span></div>'
        f'<div><b>{runs}</b><span>variant runs</span></div>'
        f'<div><b>{sum(c.planned for c in a.cells)}</b><span>planned tests '
        f"(variant × device)</span></div>"
        f'<div class="{"ok" if not a.failed else "bad"}"><b>{len(a.failed)}</b>'
        "<span>failed steps</span></div>"
        f'<div><b>{len(a.samples)}</b><span>answered SR exchanges timed</span></div>'
        f'<div><b>{len(a.data.get("issues") or [])}</b><span>test issues logged</span></div>'
        "</div>")


def _campaign_section(a: Analysis) -> str:
    meta = a.data["campaign"]
    started, ended = meta.get("started_ns"), meta.get("ended_ns")
    duration = f"{(ended - started) / 1e9:,.1f} s" if started and ended else "—"
    rows = [("Campaign", meta["id"]), ("Name", meta.get("name")),
            ("Plan", meta.get("plan_name")), ("Plan file", meta.get("plan_path")),
            ("Operator", meta.get("operator")), ("Lab", meta.get("lab")),
            ("Created", format_ns(meta.get("created_ns"))),
            ("Started", format_ns(started)), ("Ended", format_ns(ended)),
            ("Duration", duration), ("Notes", meta.get("notes"))]
    out = ['<section id="campaign"><h2>1. Campaign</h2><table class="kv">']
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v) if v not in (None, '') else '—'}</td></tr>"
            for k, v in rows]
    out.append("</table><h3>Rigs and Communications Hub variants</h3><table><tr><th>Rig</th>"
               "<th>CH variant</th><th>Bands</th><th>Service provider</th><th>Exit criterion"
               "</th><th>Description</th></tr>")
    for rig in a.data["rigs"]:
        bands = sorted({str(d.get("band") or "2.4GHz") for d in rig["devices"]})
        criterion = "DIT.EX.5" if rig["ch_variant"] == "dual_band" else "DIT.EX.3"
        label = rig.get("ch_label") or rig["ch_variant"]
        out.append(f"<tr><td class=mono>{_e(rig['name'])}</td><td>{_e(label)}</td>"
                   f"<td>{_e(', '.join(_band(b) for b in bands))}</td>"
                   f"<td>{_e(rig.get('service_provider') or '—')}</td><td>{criterion}</td>"
                   f"<td>{_e(rig.get('description') or '')}</td></tr>")
    out.append("</table><h3>Devices</h3><table><tr><th>Rig</th><th>Role</th><th>EUI-64</th>"
               "<th>Band</th>" + "".join(f"<th>{t}</th>" for _, t in DEVICE_FIELDS) + "</tr>")
    for rig in a.data["rigs"]:
        for d in rig["devices"]:
            cells = "".join(f"<td>{_e(d.get(k) or '—')}</td>"
                            for k, _ in DEVICE_FIELDS)
            out.append(f"<tr><td class=mono>{_e(rig['name'])}</td><td>{_e(d['role'])}</td>"
                       f"<td class=mono>{_e(d['eui64'])}</td>"
                       f"<td>{_e(_band(str(d.get('band') or '2.4GHz')))}</td>{cells}</tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _verdict_section(a: Analysis, gate: dt.date) -> str:
    out = ['<section id="verdicts"><h2>2. Exit criteria (seed 000, Table 9)</h2>',
           '<p class="note">A test is one scenario variant against one device on one CH '
           "variant; its result is that of its latest completed run. DIT.EX.3 (single band): "
           "every planned test executed against all selected devices and every planned "
           "variant passed with some combination of the selected devices, remaining failures "
           "proved to be in the end device (a device-manufacturer issue). DIT.EX.5 (dual band):"
           f" every planned test executed, ≥ {100 * EX5_NON_CRITICAL_PASS:.0f} % of completed "
           "non-business-critical tests passed, 100 % of business-critical tests passed "
           f"(business critical = library priority {BUSINESS_CRITICAL}).</p>",
           '<table class="verdicts"><tr><th>Criterion</th><th>CH variant</th><th>Band</th>'
           '<th class=num>Planned</th><th class=num>Executed</th><th class=num>Passed</th>'
           "<th>Business critical passed</th><th>Non-critical passed</th><th>Verdict</th>"
           "<th>Why not</th></tr>"]
    for v in a.verdicts:
        reasons = ("<ul class=reasons>" + "".join(f"<li>{_e(r)}</li>" for r in v.reasons)
                   + "</ul>") if v.reasons else ""
        out.append(
            f'<tr data-criterion="{_e(v.criterion)}" data-band="{_e(v.band)}" '
            f'data-met="{str(v.met).lower()}"><td><b>{_e(v.criterion)}</b></td>'
            f"<td>{_e(v.ch_group)}</td><td>{_e(_band(v.band) if v.band != 'all' else 'all bands')}"
            f"</td><td class=num>{v.planned}</td><td class=num>{v.executed}</td>"
            f"<td class=num>{v.passed}</td>"
            f"<td>{_pct(v.critical_passed, v.critical_completed)}</td>"
            f"<td>{_pct(v.other_passed, v.other_completed)}</td><td>{_badge(v.met)}</td>"
            f"<td>{reasons}</td></tr>")
    out.append("</table>")
    critical = sorted({(c.scenario, c.variant, c.title) for c in a.cells if c.critical})
    out.append("<h3>Business-critical scenario variants in this campaign</h3>")
    if critical:
        out.append("<table><tr><th>Scenario</th><th>Variant</th><th>Title</th></tr>" + "".join(
            f"<tr><td>{_e(s)}</td><td class=mono>{_e(v)}</td><td>{_e(t)}</td></tr>"
            for s, v, t in critical) + "</table>")
    else:
        out.append('<p class="note">None (no variant of priority High was planned).</p>')
    out.append(_other_criteria(a, gate))
    out.append("</section>")
    return "\n".join(out)


def _other_criteria(a: Analysis, gate: dt.date) -> str:
    from hanlab.reports.issues import Issue, mask_check

    issues = [Issue.model_validate(i) for i in a.data.get("issues") or []]
    rows = mask_check(issues, gate)
    in_mask = all(r.within_count for r in rows)
    work_off = all(not r.late for r in rows)
    failed = a.failed
    with_evidence = sum(1 for f in failed if f.evidence)
    with_issue = sum(1 for f in failed if f.issues)
    lines = [line for line in a.trace if line.id != "(unplanned)"]
    traced = bool(lines) and all(line.jobs for line in lines)
    executed = all(j.get("state") not in ("missing",) for line in lines for j in line.jobs)
    captured = all(j["record"].get("captures") and j["record"].get("duis_log")
                   for j in a.data["jobs"])
    items = [
        ("DIT.EX.4", "No open defects against the DCC code base outside the defect mask",
         in_mask if issues or not failed else None,
         f"{sum(1 for i in issues if i.outstanding and i.in_mask)} outstanding DCC issues; "
         "see the defect mask below"),
        ("DIT.EX.6", "Every defect covered by a work-off plan within the mask timescales",
         work_off if issues else None,
         f"work-off counted from the Quality Gate Meeting {gate.isoformat()}"),
        ("DIT.EX.8", "Test results documented and evidence captured",
         captured and (with_evidence == len(failed)),
         f"every job names its captures and DUIS log: {'yes' if captured else 'no'}; "
         f"triage bundles for {with_evidence} of {len(failed)} failed steps"),
        ("DIT.EX.9", "A complete set of test issue logs",
         with_issue == len(failed) if failed else True,
         f"{with_issue} of {len(failed)} failed steps have an issue logged"),
        ("DIT.EX.10", "Full test traceability to the test plan",
         (traced and executed) if lines else None,
         f"{len(lines)} plan lines, {sum(1 for line in lines if line.jobs)} with jobs"
         if lines else "no plan given: jobs listed as unplanned"),
    ]
    out = ["<h3>Evidence, issues and traceability</h3><table><tr><th>Criterion</th>"
           "<th>Requirement</th><th>Status</th><th>From the records</th></tr>"]
    for ref, text, ok, why in items:
        out.append(f'<tr data-criterion="{ref}"><td><b>{ref}</b></td><td>{_e(text)}</td>'
                   f"<td>{_badge(ok)}</td><td>{_e(why)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _heatmap_section(a: Analysis) -> str:
    out = ['<section id="heatmap"><h2>3. Heatmap: scenario variant × device per CH variant'
           "</h2>", '<p class="note legend">Each cell is one test (its latest completed run '
           "decides; the number is passed runs / runs). <span class=\"passed\" "
           'style="background:#cfe9d6">passed</span><span style="background:#f6c9c5">failed'
           '</span><span style="background:#eceef1">planned, not run</span> '
           "<span class=crit>BC</span> = business critical.</p>"]
    for group in a.groups():
        cells = [c for c in a.cells if c.ch_group == group]
        if not cells:
            continue
        columns: dict[tuple[str, str], tuple[str, str]] = {}
        for rig in a.data["rigs"]:
            for d in rig["devices"]:
                key = (rig["name"], d["eui64"])
                if any(c.rig == key[0] and c.device == key[1] for c in cells):
                    columns[key] = (str(d["role"]), str(d.get("band") or "2.4GHz"))
        for c in cells:
            columns.setdefault((c.rig, c.device), (c.role, c.band))
        order = sorted(columns, key=lambda k: (columns[k][1] != "2.4GHz", columns[k][1],
                                               columns[k][0], k))
        rows = list(dict.fromkeys((c.scenario, c.variant) for c in cells))
        by_key = {(c.scenario, c.variant, c.rig, c.device): c for c in cells}
        out.append(f'<h3>CH variant {_e(group)}</h3><table class="heatmap" '
                   f'data-ch-variant="{_e(group)}"><tr><th>Scenario</th><th>Variant</th>')
        for key in order:
            role, band = columns[key]
            out.append(f'<th class="band-{_e(band)}" title="{_e(key[0])} {_e(key[1])}">'
                       f"{_e(device_label(role, key[1]))}<br><span class=note>"
                       f"{_e(_band(band))}</span></th>")
        out.append("</tr>")
        for scenario, variant in rows:
            sample = next(c for c in cells if (c.scenario, c.variant) == (scenario, variant))
            crit = " <span class=crit>BC</span>" if sample.critical else ""
            out.append(f"<tr><td>{_e(scenario)}</td><td><span class=mono>{_e(variant)}</span>"
                       f"{crit}<br><span class=note>{_e(sample.title)}</span></td>")
            for key in order:
                out.append(_heat_cell(by_key.get((scenario, variant, *key))))
            out.append("</tr>")
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def _heat_cell(c: TestCell | None) -> str:
    if c is None:
        return '<td class="cell na">·</td>'
    status = c.status
    css = {"passed": "passed", "failed": "failed"}.get(status, "notrun")
    passed_runs = sum(r.passed for r in c.runs)
    text = f"{passed_runs}/{len(c.runs)}" if c.runs else "not run"
    tip = f"{c.scenario}/{c.variant} on {c.device}: {status}"
    if c.runs:
        tip += "; jobs " + ", ".join(dict.fromkeys(r.job_id for r in c.runs))
    return (f'<td class="cell {css}" data-status="{_e(status)}" data-device="{_e(c.device)}"'
            f' title="{_e(tip)}">{_e(text)}</td>')


def _timing_section(a: Analysis) -> str:
    from hanlab.reports.plots import segment_boxplots

    rows = timing_rows(a)
    out = ['<section id="timings"><h2>4. HAN message and response timings per band (DIT.11)'
           "</h2>", '<p class="note">Answered SR exchanges only, as correlated live (match '
           "level in the exchange records). Segments: end to end = DUIS response − request; "
           "downstream = request → first command frame; HAN command = first command frame → "
           "end of its last frame; turnaround = end of command → first response frame; HAN "
           "response = first → end of last response frame; upstream = end of response on air "
           "→ DUIS response. Percentiles are nearest-rank (measured values). Times in ms. "
           "Box: quartiles and median; whiskers: 5th–95th percentile; dots: every exchange."
           "</p>"]
    if a.targets:
        out.append('<p class="note">End-to-end targets: ' + ", ".join(
            f"{_e(k)} ≤ {v:g} s" for k, v in sorted(a.targets.items())) + "</p>")
    else:
        out.append('<p class="note">No end-to-end targets were given for this campaign; '
                   "none are drawn (hanlab invents no target).</p>")
    bands = sorted({s.band for s in a.samples}, key=lambda b: (b != "2.4GHz", b))
    figures = 0
    if not bands:
        out.append("<p>No answered SR exchanges.</p>")
    for band in bands:
        out.append(f'<h3 id="timings-{_e(band)}">{_e(_band(band))}</h3>')
        out.append('<table class="timings"><tr><th rowspan=2>SR</th><th rowspan=2>Role</th>'
                   "<th rowspan=2>Device</th><th rowspan=2>CH variant</th>"
                   "<th class=num rowspan=2>n</th><th colspan=5>end to end (ms)</th>"
                   "<th colspan=5>p50 of each segment (ms)</th><th rowspan=2>Target</th>"
                   "<th class=num rowspan=2>Over target</th></tr><tr>"
                   + "".join(f"<th class=num>{k}</th>" for k in ("min", "p50", "p90", "p99",
                                                                 "max"))
                   + "".join(f"<th class=num>{k}</th>" for k in (
                       "down&shy;stream", "HAN cmd", "turn&shy;around", "HAN resp",
                       "up&shy;stream")) + "</tr>")
        groups: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        for r in (r for r in rows if r["band"] == band):
            groups.setdefault((r["sr_variant"], r["device_role"], r["device"]), {})[
                r["segment"]] = r
        for (variant, role, device), segs in groups.items():
            e2e = segs.get("end_to_end") or {}
            over = e2e.get("over_target")
            target = "" if e2e.get("target_s") is None else f"{e2e['target_s']:g} s"
            ch = next((c.ch_group for c in a.cells if c.device == device), "")
            out.append(
                f'<tr data-band="{_e(band)}" data-role="{_e(role)}" data-sr="{_e(variant)}"'
                f'{" class=over" if over else ""}><td>{_e(variant)}</td><td>{_e(role)}</td>'
                f"<td class=mono>{_e(device)}</td><td>{_e(ch)}</td>"
                f"<td class=num>{e2e.get('count', '')}</td>"
                + "".join(f"<td class=num>{_us_ms(e2e.get(k))}</td>"
                          for k in ("min_us", "p50_us", "p90_us", "p99_us", "max_us"))
                + "".join(f"<td class=num>{_us_ms((segs.get(k) or {}).get('p50_us'))}</td>"
                          for k in SEGMENTS[1:])
                + f"<td>{target}</td><td class='num over'>{'' if over is None else over}"
                "</td></tr>")
        out.append("</table>")
        variants = sorted({s.sr_variant for s in a.samples if s.band == band},
                          key=_sr_sort)
        for variant in variants:
            chosen = [s for s in a.samples if s.band == band and s.sr_variant == variant]
            samples: dict[str, dict[str, list[int]]] = {}
            for s in sorted(chosen, key=lambda s: (s.role, s.device)):
                label = device_label(s.role, s.device)
                group = samples.setdefault(label, defaultdict(list))
                for name, value in s.segments_ns.items():
                    if value is not None:
                        group[name].append(int(value))
            name = _sr_name(variant)
            figures += 1
            svg = segment_boxplots(samples, band=band, target_s=a.target_for(variant),
                                   id_prefix=f"f{figures}-",
                                   title=f"{_band(band)} · SR {variant} {name} · "
                                         f"{len(chosen)} exchanges")
            out.append(f'<figure class="timing-plot" data-band="{_e(band)}" '
                       f'data-sr="{_e(variant)}">{svg}<figcaption>{_e(_band(band))}, SR '
                       f"{_e(variant)} {_e(name)}: {len(chosen)} answered exchanges from "
                       f"{len({s.job_id for s in chosen})} jobs.</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def _sr_sort(variant: str) -> list[int]:
    return [int(p) if p.isdigit() else 0 for p in variant.split(".")]


def _sr_name(variant: str) -> str:
    from hanlab.duis.catalogue import sr
    from hanlab.errors import BadInputError

    try:
        return sr(variant).name
    except BadInputError:
        return ""


def _failed_section(a: Analysis) -> str:
    out = ['<section id="failed"><h2>5. Failed steps and their triage bundles</h2>']
    if not a.failed:
        out.append("<p>No mandatory step failed.</p></section>")
        return "\n".join(out)
    out.append("<table><tr><th>Job</th><th>Rig</th><th>Variant / step</th><th>SR</th>"
               "<th>Target</th><th>RequestID</th><th>Outcome</th><th>Detail</th>"
               "<th>Triage bundle</th><th>Issues</th></tr>")
    for f in a.failed:
        if f.evidence:
            bundle = f'<a href="{_e(f.evidence)}">{_e(f.evidence)}</a>'
        else:
            bundle = (f"<span class=note>none yet: <code>hanlab evidence {_e(f.job_id)} "
                      f"{_e(f.key)} -o DIR</code></span>")
        out.append(
            f'<tr class="failed-step" data-job="{_e(f.job_id)}" data-step="{_e(f.key)}">'
            f"<td class=mono>{_e(f.job_id)}</td><td class=mono>{_e(f.rig)}</td>"
            f"<td>{_e(f.scenario)}/<span class=mono>{_e(f.key)}</span><br>"
            f"<span class=note>{_e(format_ns(f.started_ns))}</span></td>"
            f"<td>{_e(f.sr_variant or f.kind)}<br><span class=note>{_e(f.sr_name or '')}"
            f"</span></td><td>{_e(f.target_role or '')}<br><span class=mono>"
            f"{_e(f.target or '')}</span></td><td class=mono>{_e(f.request_id or '—')}</td>"
            f"<td><b>{_e(f.outcome)}</b></td><td>{_e(f.detail)}</td><td>{bundle}</td>"
            f"<td>{_e(', '.join(f.issues) or '—')}</td></tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _issue_section(a: Analysis, gate: dt.date) -> str:
    from hanlab.reports.issues import MASK_LIMITS, Issue, mask_check

    issues = [Issue.model_validate(i) for i in a.data.get("issues") or []]
    out = ['<section id="issues"><h2>6. Test issue log and defect mask (Table 10)</h2>']
    if issues:
        out.append("<table><tr><th>Id</th><th>Sev.</th><th>Owner</th><th>Status</th>"
                   "<th>Title</th><th>Work-off</th><th>Job / step</th><th>Evidence</th></tr>")
        for i in issues:
            owner = i.owner + (f" ({i.manufacturer})" if i.manufacturer else "")
            evidence = (f'<a href="{_e(i.evidence)}">bundle</a>' if i.evidence else "—")
            out.append(f"<tr><td class=mono>{_e(i.id)}</td><td class=num>{i.severity}</td>"
                       f"<td>{_e(owner)}</td><td>{_e(i.status)}</td><td>{_e(i.title)}</td>"
                       f"<td>{_e(i.work_off_date or '—')}</td><td class=mono>"
                       f"{_e(i.job_id or '')} {_e(i.step or '')}</td><td>{evidence}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No test issues logged (<code>hanlab issues add</code>).</p>")
    rows = mask_check(issues, gate)
    out.append(f'<h3 id="mask">Defect mask per service provider (outstanding issues; work-off '
               f"from the Quality Gate Meeting {gate.isoformat()})</h3>")
    out.append('<table class="mask"><tr><th>Service provider</th>' + "".join(
        f"<th class=num>Sev. {s}<br><span class=note>≤ {MASK_LIMITS[s]}</span></th>"
        for s in range(1, 6)) + "<th>Within mask</th></tr>")
    for provider in dict.fromkeys(r.provider for r in rows):
        mine = [r for r in rows if r.provider == provider]
        cells = "".join(
            f'<td class="num{"" if r.within else " over"}" '
            f'style="{"" if r.within else "color:#b3261e;font-weight:700"}">'
            f"{r.outstanding}{' · late ' + ','.join(r.late) if r.late else ''}"
            + (f"<br><span class=note>by {r.work_off_by.isoformat()}</span>"
               if r.work_off_by else "") +
            "</td>" for r in mine)
        out.append(f"<tr><td>{_e(provider)}</td>{cells}<td>"
                   f"{_badge(all(r.within for r in mine), 'YES', 'NO')}</td></tr>")
    out.append("</table>")
    device = [i for i in issues if not i.in_mask and i.outstanding]
    out.append(f'<p class="note">Outside the mask (selected devices; reported as part of test '
               f"completion): {len(device)} outstanding device issue(s)"
               + (": " + ", ".join(f"{_e(i.id)} sev. {i.severity} {_e(i.manufacturer)}"
                                   for i in device) if device else "") + ".</p>")
    out.append("</section>")
    return "\n".join(out)


def _trace_section(a: Analysis) -> str:
    out = ['<section id="traceability"><h2>7. Traceability: plan lines → jobs (DIT.EX.10)'
           "</h2><table><tr><th>Plan line</th><th>Scenario / variants</th><th>Rig</th>"
           "<th>Job</th><th>State</th><th>Variant runs passed</th><th>Started</th>"
           "<th>Captures · DUIS log</th></tr>"]
    for line in a.trace:
        jobs = line.jobs or [{"id": "—", "state": "not run"}]
        for n, job in enumerate(jobs):
            runs = job.get("variant_runs") or []
            head = (f'<td rowspan="{len(jobs)}"><b>{_e(line.id)}</b><br><span class=note>'
                    f"{_e(line.title)}</span></td><td rowspan=\"{len(jobs)}\">"
                    f"{_e(line.scenario)}<br><span class=mono>{_e(', '.join(line.variants))}"
                    f"</span></td><td rowspan=\"{len(jobs)}\" class=mono>{_e(line.rig or '')}"
                    "</td>") if n == 0 else ""
            files = ", ".join(job.get("captures") or [])
            out.append(
                f'<tr data-plan-line="{_e(line.id)}" data-job="{_e(job.get("id"))}">{head}'
                f'<td class=mono>{_e(job.get("id"))}</td><td>{_e(job.get("state"))}</td>'
                f"<td>{_pct(sum(1 for r in runs if r.get('passed')), len(runs))}</td>"
                f"<td>{_e(format_ns(job.get('started_ns')))}</td>"
                f"<td class=note>{_e(files)}{' · ' if files else ''}"
                f"{_e(job.get('duis_log') or '')}</td></tr>")
    out.append("</table></section>")
    return "\n".join(out)
