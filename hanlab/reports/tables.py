"""CSV and Parquet exports of a campaign's exchanges and timings (issue 10, item 5).

Two tables, the same columns in both formats (Parquet types in brackets; times are int64
ns since the UNIX epoch, UTC; durations int64 ns; empty CSV cell / Parquet null where
unknown):

``exchanges`` — one row per SR exchange of every job (:data:`EXCHANGE_COLUMNS`):
campaign_id, job_id, rig, ch_variant, scenario, variant, repetition, step (the step key
``variant#rep/index``) [string/int64]; request_id, sr_variant, command_variant [int64],
target (EUI-64), device_role, band, page [int64], channel [int64], outcome, match_level,
command_level, response_level, ack_code, response_code; submitted_ts_ns, ack_ts_ns,
response_ts_ns, command_first_ts_ns, command_end_ts_ns, response_first_ts_ns,
response_end_ts_ns [int64]; frames, retries, octets [int64]; gbcs_originator_counter
[uint64]; message_code; the segments end_to_end_ns, downstream_ns, han_command_ns,
turnaround_ns, han_response_ns, upstream_ns [int64]; target_s [float64] and over_target
[bool] (end to end against the SR's target).

``timings`` — one row per band × SR variant × device × segment (:data:`TIMING_COLUMNS`;
:func:`hanlab.reports.html.timing_rows`): campaign_id, band, sr_variant, device_role,
device, segment, count [int64], min_us, p50_us, p90_us, p99_us, max_us [float64, µs,
nearest-rank], target_s [float64], within_target, over_target [int64].

Files: ``exchanges.csv`` / ``timings.csv`` (header line, UTF-8, ``\\n``) and
``exchanges.parquet`` / ``timings.parquet`` (the schema below, zstd).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from hanlab.correlate.stats import SEGMENTS
from hanlab.reports.analysis import Analysis, analyse_campaign
from hanlab.reports.model import CampaignReportData, check_report_data, step_key

__all__ = ["EXCHANGE_COLUMNS", "TIMING_COLUMNS", "exchange_rows", "write_csv",
           "write_parquet"]

_S, _I, _U, _F, _B = "string", "int64", "uint64", "float64", "bool"
EXCHANGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("campaign_id", _S), ("job_id", _S), ("rig", _S), ("ch_variant", _S), ("scenario", _S),
    ("variant", _S), ("repetition", _I), ("step", _S), ("request_id", _S),
    ("sr_variant", _S), ("command_variant", _I), ("target", _S), ("device_role", _S),
    ("band", _S), ("page", _I), ("channel", _I), ("outcome", _S), ("match_level", _S),
    ("command_level", _S), ("response_level", _S), ("ack_code", _S), ("response_code", _S),
    ("submitted_ts_ns", _I), ("ack_ts_ns", _I), ("response_ts_ns", _I),
    ("command_first_ts_ns", _I), ("command_end_ts_ns", _I), ("response_first_ts_ns", _I),
    ("response_end_ts_ns", _I), ("frames", _I), ("retries", _I), ("octets", _I),
    ("gbcs_originator_counter", _U), ("message_code", _S),
    *((f"{name}_ns", _I) for name in SEGMENTS), ("target_s", _F), ("over_target", _B))
TIMING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("campaign_id", _S), ("band", _S), ("sr_variant", _S), ("device_role", _S),
    ("device", _S), ("segment", _S), ("count", _I), ("min_us", _F), ("p50_us", _F),
    ("p90_us", _F), ("p99_us", _F), ("max_us", _F), ("target_s", _F),
    ("within_target", _I), ("over_target", _I))


def exchange_rows(a: Analysis) -> list[dict[str, Any]]:
    """The ``exchanges`` table (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    campaign = a.data["campaign"]["id"]
    for entry in a.data["jobs"]:
        record = entry["record"]
        rig = a.rigs.get(record["rig"])
        steps = {s.get("request_id"): s for s in record["steps"] if s.get("request_id")}
        for e in record.get("exchanges") or []:
            step = steps.get(e.get("request_id")) or {}
            segments = e.get("segments_ns") or {}
            target = a.target_for(str(e.get("sr_variant") or ""))
            end_to_end = segments.get("end_to_end")
            row: dict[str, Any] = {
                "campaign_id": campaign, "job_id": record["id"], "rig": record["rig"],
                "ch_variant": rig["ch_variant"] if rig else None,
                "scenario": step.get("scenario", record.get("scenario")),
                "variant": step.get("variant"), "repetition": step.get("repetition"),
                "step": step_key(step) if step else None, "target": e.get("target"),
                **{k: e.get(k) for k, _ in EXCHANGE_COLUMNS
                   if k in e and k not in ("target",)},
                **{f"{name}_ns": segments.get(name) for name in SEGMENTS},
                "target_s": target,
                "over_target": (None if target is None or end_to_end is None
                                else end_to_end > target * 1e9)}
            rows.append({k: row.get(k) for k, _ in EXCHANGE_COLUMNS})
    return rows


def _tables(data: CampaignReportData | dict[str, Any]) -> dict[str, tuple[
        tuple[tuple[str, str], ...], list[dict[str, Any]]]]:
    from hanlab.reports.html import timing_rows

    a = analyse_campaign(check_report_data(data))
    campaign = a.data["campaign"]["id"]
    timings = [{"campaign_id": campaign, **r} for r in timing_rows(a)]
    return {"exchanges": (EXCHANGE_COLUMNS, exchange_rows(a)),
            "timings": (TIMING_COLUMNS, timings)}


def write_csv(data: CampaignReportData | dict[str, Any], folder: Path | str) -> list[Path]:
    """``exchanges.csv`` and ``timings.csv`` into ``folder`` (created); the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (columns, rows) in _tables(data).items():
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[c for c, _ in columns],
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        path = folder / f"{name}.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        out.append(path)
    return out


def write_parquet(data: CampaignReportData | dict[str, Any], folder: Path | str) -> list[Path]:
    """``exchanges.parquet`` and ``timings.parquet`` into ``folder`` (created); the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {_S: pa.string(), _I: pa.int64(), _U: pa.uint64(), _F: pa.float64(),
             _B: pa.bool_()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (columns, rows) in _tables(data).items():
        schema = pa.schema([(c, types[t]) for c, t in columns])
        table = pa.table({c: pa.array([r.get(c) for r in rows], type=types[t])
                          for c, t in columns}, schema=schema)
        path = folder / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        out.append(path)
    return out
