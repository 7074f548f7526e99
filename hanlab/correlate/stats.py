"""Timing statistics per band × SR variant × device role (issue 5 item 6; DIT.11 "message
and response timings across home area networks for both HAN radio frequencies").

For every exchange of an SR that got its DUIS response, the segments of
:meth:`~hanlab.correlate.exchange.Exchange.segments_ns` (end-to-end, downstream, HAN command
delivery, device turnaround, HAN response delivery, upstream remainder) are added to the
group of its band, SR variant and device role. Each group and segment gives count, min,
p50, p90, p99 and max in µs (nearest-rank percentiles: every figure is a measured value,
so the same exchanges give the same figures on every run). Values are held as 8-octet
integers: memory grows with the number of SRs, never with the number of frames.

Target response times: end-to-end is compared with a target per SR class when one is
configured (``targets``: SR variant ``4.1.1``, Service Reference ``4.1`` or ``*``, in
seconds). There is no default: the shared material (DESIGN.md, the seeds) names DIT.11
timings but no target figures, so hanlab does not invent one.
"""

from __future__ import annotations

import csv
import io
import json
from array import array
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hanlab.correlate.exchange import Exchange
from hanlab.errors import BadInputError, os_error_text

__all__ = ["SEGMENTS", "TimingStats", "load_targets", "percentile", "target_for",
           "text_table"]

#: Segment names, in the order they happen.
SEGMENTS = ("end_to_end", "downstream", "han_command", "turnaround", "han_response",
            "upstream")
#: Percentiles reported.
PERCENTILES = (50, 90, 99)
_FIELDS = ("band", "sr_variant", "device_role", "segment", "count", "min_us", "p50_us",
           "p90_us", "p99_us", "max_us", "target_s", "within_target", "over_target")


def percentile(sorted_values: list[int], pct: int) -> int:
    """Nearest-rank percentile ``pct`` (1-100) of non-empty ascending ``sorted_values``."""
    rank = max(1, -(-pct * len(sorted_values) // 100))
    return sorted_values[rank - 1]


def _us(ns: int) -> float:
    return round(ns / 1000.0, 3)


def load_targets(path: Path | str) -> dict[str, float]:
    """Target response times from a YAML or JSON file ``{SR variant or class: seconds}``.

    Raises:
        BadInputError: unreadable file, not a mapping, or a value that is not a positive
            number of seconds.
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise BadInputError(os_error_text(path, error)) from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BadInputError(f"cannot read targets {path}: {error}") from error
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: targets must map an SR variant (e.g. 4.1.1), a "
                            f"Service Reference (4.1) or * to seconds")
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BadInputError(f"{path}: target for {key!r} must be seconds > 0, "
                                f"got {value!r}")
        out[str(key)] = float(value)
    return out


def target_for(targets: Mapping[str, float], sr_variant: str) -> float | None:
    """The end-to-end target (s) of ``sr_variant`` in ``targets``: the variant's own
    (``4.1.1``), else its Service Reference's (``4.1``), else ``*``; ``None`` without."""
    parts = sr_variant.split(".")
    for key in (sr_variant, ".".join(parts[:2]), "*"):
        if key in targets:
            return targets[key]
    return None


class TimingStats:
    """Segment timings grouped by (band, SR variant, device role).

    Args:
        targets: end-to-end target seconds per SR variant, Service Reference or ``*``
            (see the module docstring); none by default.
    """

    def __init__(self, targets: Mapping[str, float] | None = None) -> None:
        self.targets = dict(targets or {})
        self._values: dict[tuple[str, str, str], dict[str, array[int]]] = {}
        self.exchanges = 0

    def add(self, exchange: Exchange) -> None:
        """Add the segments of one SR exchange that was answered (others are ignored)."""
        if exchange.kind != "sr" or exchange.outcome != "responded":
            return
        self.exchanges += 1
        key = (exchange.band or "none", exchange.sr_variant or "unknown",
               exchange.device_role)
        group = self._values.get(key)
        if group is None:
            group = self._values[key] = {name: array("q") for name in SEGMENTS}
        for name, value in exchange.segments_ns().items():
            if value is not None:
                group[name].append(value)

    def add_all(self, exchanges: Iterable[Exchange]) -> None:
        """:meth:`add` each exchange."""
        for exchange in exchanges:
            self.add(exchange)

    def target_for(self, sr_variant: str) -> float | None:
        """The end-to-end target in seconds of ``sr_variant``, or ``None``."""
        return target_for(self.targets, sr_variant)

    def rows(self) -> list[dict[str, Any]]:
        """One row per group and segment with at least one value, sorted by group and
        segment order; times in µs (``*_us``), targets in s."""
        rows: list[dict[str, Any]] = []
        for (band, variant, role) in sorted(self._values):
            group = self._values[(band, variant, role)]
            for name in SEGMENTS:
                values = sorted(group[name])
                if not values:
                    continue
                row: dict[str, Any] = {
                    "band": band, "sr_variant": variant, "device_role": role, "segment": name,
                    "count": len(values), "min_us": _us(values[0]),
                    **{f"p{p}_us": _us(percentile(values, p)) for p in PERCENTILES},
                    "max_us": _us(values[-1]), "target_s": None, "within_target": None,
                    "over_target": None,
                }
                target = self.target_for(variant) if name == "end_to_end" else None
                if target is not None:
                    limit = int(target * 1e9)
                    within = sum(1 for v in values if v <= limit)
                    row.update(target_s=target, within_target=within,
                               over_target=len(values) - within)
                rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        """The JSON document (and MQTT ``timings`` payload): schema, counts, rows."""
        return {"schema": 1, "exchanges": self.exchanges, "targets": self.targets,
                "rows": self.rows()}

    def to_json(self) -> str:
        """:meth:`summary` as JSON with sorted keys (stable byte for byte)."""
        return json.dumps(self.summary(), sort_keys=True, indent=1)

    def to_csv(self) -> str:
        """:meth:`rows` as CSV with a header line."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow(row)
        return buffer.getvalue()


_TEXT_COLUMNS = (("band", "band", 6, "<"), ("SR", "sr_variant", 7, "<"),
                 ("role", "device_role", 7, "<"), ("segment", "segment", 12, "<"),
                 ("n", "count", 5, ">"), ("p50", "p50_us", 8, ">"), ("p90", "p90_us", 8, ">"),
                 ("p99", "p99_us", 8, ">"), ("max", "max_us", 8, ">"))


def text_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """:meth:`TimingStats.rows` as a plain-text table in ms, at most 80 columns, that
    reads the same in a terminal and through a pipe (no cell is ever cut); a line per
    row with an over-target count appended where a target is set."""
    rows = list(rows)
    if not rows:
        return "HAN timings: no answered SR exchanges"
    head = " ".join(f"{title:{align}{width}}" for title, _, width, align in _TEXT_COLUMNS)
    lines = ["HAN timings (ms) per band x SR variant x device role", head.rstrip(),
             "-" * len(head.rstrip())]
    for row in rows:
        cells = []
        for _, key, width, align in _TEXT_COLUMNS:
            value = row[key]
            text = f"{value / 1000:.1f}" if key.endswith("_us") else str(value)
            cells.append(f"{text:{align}{width}}")
        line = " ".join(cells).rstrip()
        if row.get("target_s") is not None:
            line += f"  {row['over_target']} over {row['target_s']:g} s"
        lines.append(line)
    return "\n".join(lines)
