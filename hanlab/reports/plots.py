"""Timing plots as inline SVG (matplotlib, no pyplot state, text kept as text), for the
campaign report (issue 10, item 5; DIT.11 "message and response timings across home area
networks for both HAN radio frequencies").

:func:`segment_boxplots` draws, for one band and one SR variant, one panel per timing
segment (:data:`hanlab.correlate.stats.SEGMENTS`) with a horizontal box plot per device
(whiskers at the 5th and 95th percentiles, every sample drawn as a point), times in ms,
and the end-to-end target as a red line with the over-target count where one is given.
The SVG is deterministic for the same samples (fixed hash salt, no date).
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from hanlab.correlate.stats import SEGMENTS

__all__ = ["SEGMENT_TITLES", "before_after_boxplots", "plot_style", "segment_boxplots",
           "svg_text"]

SEGMENT_TITLES = {
    "end_to_end": "end to end (DUIS request → response)",
    "downstream": "downstream (request → first HAN frame)",
    "han_command": "HAN command delivery",
    "turnaround": "device turnaround",
    "han_response": "HAN response delivery",
    "upstream": "upstream (response on air → DUIS)",
}
_RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "hanlab", "font.size": 8.0,
       "font.family": ["DejaVu Sans", "sans-serif"], "axes.titlesize": 8.5,
       "axes.edgecolor": "#555555", "axes.linewidth": 0.6, "xtick.major.width": 0.6,
       "ytick.major.width": 0.6}
BAND_COLOURS = {"2.4GHz": "#1f5f99", "subGHz": "#b35806"}


def segment_boxplots(samples: Mapping[str, Mapping[str, Sequence[int]]], *, band: str,
                     title: str, target_s: float | None = None, id_prefix: str = "") -> str:
    """An SVG document (text) of the segments of one band and SR variant.

    Args:
        samples: device label -> segment name -> values in ns (missing or empty segments
            are left blank for that device).
        band: ``2.4GHz`` or ``subGHz`` (the colour).
        title: the figure's title.
        target_s: the end-to-end target in seconds, or ``None``.
        id_prefix: prefix of every element id of the SVG (unique per figure when several
            are inlined in one HTML document).
    """
    devices = list(samples)
    rows = max(1, len(devices))
    colour = BAND_COLOURS.get(band, "#444444")
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        figure = Figure(figsize=(11.0, 1.25 + 0.95 * rows), layout="constrained")
        axes = figure.subplots(2, 3, sharey=True, squeeze=False).ravel()
        jitter = random.Random(7)
        for ax, segment in zip(axes, SEGMENTS, strict=True):
            data = [[v / 1e6 for v in samples[d].get(segment, ())] for d in devices]
            positions = [i for i, values in enumerate(data) if values]
            if positions:
                ax.boxplot([data[i] for i in positions], positions=positions,
                           orientation="horizontal", whis=(5, 95), widths=0.55,
                           showfliers=False, patch_artist=True,
                           boxprops={"facecolor": colour + "33", "edgecolor": colour,
                                     "linewidth": 0.8},
                           medianprops={"color": colour, "linewidth": 1.6},
                           whiskerprops={"color": colour, "linewidth": 0.8},
                           capprops={"color": colour, "linewidth": 0.8})
                for i in positions:
                    ys = [i + jitter.uniform(-0.18, 0.18) for _ in data[i]]
                    ax.scatter(data[i], ys, s=7, color=colour, alpha=0.75, linewidths=0,
                               zorder=3)
            if segment == "end_to_end" and target_s is not None:
                limit_ms = target_s * 1000.0
                ax.axvline(limit_ms, color="#c62828", linewidth=1.1, linestyle="--")
                over = sum(1 for values in data for v in values if v > limit_ms)
                total = sum(len(values) for values in data)
                ax.text(0.98, 0.02, f"target {target_s:g} s: {over}/{total} over",
                        transform=ax.transAxes, ha="right", va="bottom", color="#c62828",
                        fontsize=7.5)
            ax.set_title(SEGMENT_TITLES[segment], loc="left")
            if ax.get_xscale() != "log":
                ax.set_xlabel("ms")
            top = max([v for values in data for v in values]
                      + ([target_s * 1000.0] if segment == "end_to_end" and target_s else [])
                      + [1e-3])
            low = min([v for values in data for v in values if v > 0] or [top])
            if top / low > 100:  # an outlier would squash the rest: log scale
                ax.set_xscale("log")
                ax.set_xlim(low / 1.5, top * 1.5)
                ax.set_xlabel("ms (log scale)")
            else:
                ax.set_xlim(0, top * 1.08)
                ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.6g}"))
            ax.grid(axis="x", color="#dddddd", linewidth=0.5)
            ax.set_axisbelow(True)
            ax.set_yticks(range(len(devices)), devices)
            ax.set_ylim(len(devices) - 0.5, -0.5)
        figure.suptitle(title, x=0.01, ha="left", fontsize=9.5, fontweight="bold")
        return svg_text(figure, id_prefix)


def before_after_boxplots(groups: Sequence[tuple[str, Sequence[int], Sequence[int]]], *,
                          band: str, title: str, xlabel: str = "ms",
                          id_prefix: str = "") -> str:
    """An SVG document (text): per group (e.g. SR variant and device) a horizontal box
    plot of its samples before (grey) and after (the band's colour) a CH firmware upgrade
    (:mod:`hanlab.firmware.impact`), whiskers at the 5th and 95th percentiles, every
    sample drawn as a point.

    Args:
        groups: ``(label, before values in ns, after values in ns)``.
        band: ``2.4GHz`` or ``subGHz`` (the colour).
        title: the figure's title.
        xlabel: the axis label (values are drawn in ms).
        id_prefix: prefix of every element id of the SVG.
    """
    colour = BAND_COLOURS.get(band, "#444444")
    sides = (("before", "#8a8a8a"), ("after", colour))
    with plot_style():
        figure = Figure(figsize=(8.0, 1.0 + 0.6 * max(1, len(groups))), layout="constrained")
        ax = figure.subplots()
        jitter = random.Random(7)
        labels = []
        for index, (label, before, after) in enumerate(groups):
            labels.append(label)
            for offset, (side, tint), values in ((-0.18, sides[0], before),
                                                  (0.18, sides[1], after)):
                data = [v / 1e6 for v in values]
                if not data:
                    continue
                ax.boxplot([data], positions=[index + offset], orientation="horizontal",
                           whis=(5, 95), widths=0.3, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": tint + "33", "edgecolor": tint,
                                     "linewidth": 0.8},
                           medianprops={"color": tint, "linewidth": 1.6},
                           whiskerprops={"color": tint, "linewidth": 0.8},
                           capprops={"color": tint, "linewidth": 0.8})
                ax.scatter(data, [index + offset + jitter.uniform(-0.08, 0.08) for _ in data],
                           s=6, color=tint, alpha=0.75, linewidths=0, zorder=3,
                           label=side if index == 0 else None)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel(xlabel)
        ax.set_xlim(left=0)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        if groups:
            ax.legend(loc="lower right", fontsize=7.5, frameon=False)
        figure.suptitle(title, x=0.01, ha="left", fontsize=9.5, fontweight="bold")
        return svg_text(figure, id_prefix)



def plot_style() -> Any:
    """The report's matplotlib style as a context manager (text kept as text, fixed hash
    salt): draw every report figure inside it."""
    return matplotlib.rc_context(_RC)  # type: ignore[arg-type]


def svg_text(figure: Figure, id_prefix: str = "") -> str:
    """``figure`` as an inline SVG element (text): no XML prolog, no RDF metadata, no
    date, every element id prefixed with ``id_prefix`` (unique per figure in a page)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate
    if id_prefix:
        text = (text.replace(' id="', f' id="{id_prefix}').replace('href="#', f'href="#{id_prefix}')
                .replace("url(#", f"url(#{id_prefix}"))
    return text
