"""The HAN impact of a Communications Hub firmware upgrade (issue 12, item 2).

SECMP0024 (seeds 002/004), requirement 6: Suppliers "assess the impact this is having on
devices connected to the Home Area Network". From job records (the one record every report
reads, :class:`hanlab.runtime.jobs.JobRecord` as a dict) taken before and after an upgrade,
:func:`ch_impact` gives:

* per band × SR variant × device, a timing segment's distribution before and after (n,
  median, p90 in ms), the difference of medians (after − before) with a percentile
  bootstrap confidence interval, the Hodges–Lehmann shift estimate, and the two-sided
  Mann–Whitney U test (``scipy.stats.mannwhitneyu``: no normality assumed; HAN timings are
  skewed) with its p-value and a verdict at ``alpha``;
* per SR variant × device, the failure rate of SR steps before and after;
* per device, its rejoins after the CH reboots recorded in the after jobs'
  ``ch_firmware`` steps (:mod:`hanlab.emulator.han.ch_upgrade`): method, attempts, rejoin
  and resume times after the CH came back, and the devices that did not come back.

Alternatively :func:`split_across_upgrade` splits jobs that contain an upgrade (the
``ch-firmware-upgrade`` scenario) into the exchanges before and after it.

Shapes: :func:`ch_impact` returns ``IMPACT``::

    {"schema": 1, "segment": "end_to_end", "alpha": 0.05, "confidence": 0.95,
     "before_jobs": [id, ...], "after_jobs": [id, ...],
     "timings": [{"band", "sr_variant", "device", "device_role", "n_before", "n_after",
                  "median_before_ms", "median_after_ms", "p90_before_ms", "p90_after_ms",
                  "diff_median_ms", "ci_low_ms", "ci_high_ms", "hodges_lehmann_ms",
                  "mann_whitney_u", "p_value", "verdict",
                  "before_ns": [...], "after_ns": [...]}],
     "failures": [{"sr_variant", "device", "sent_before", "failed_before",
                   "sent_after", "failed_after", "rate_before", "rate_after"}],
     "rejoins": [{"device", "eui64", "role", "band", "se_version", "upgrades", "back",
                  "not_back", "methods", "attempts_max", "rejoin_s_median",
                  "rejoin_s_max", "resume_s_median", "resume_s_max"}],
     "not_back": [{"device", "eui64", "job", "version"}]}

``verdict``: ``slower`` / ``faster`` (p < alpha), ``no change`` (p ≥ alpha) or
``too few`` (fewer than :data:`MIN_SAMPLES` either side).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanlab.correlate.stats import SEGMENTS, percentile
from hanlab.errors import BadInputError

__all__ = ["MIN_SAMPLES", "ImpactGroup", "ch_impact", "compare", "impact_json",
           "impact_text", "split_across_upgrade"]

SCHEMA = 1
#: fewer samples than this on either side: no test (``too few``)
MIN_SAMPLES = 3
#: bootstrap resamples for the confidence interval of the difference of medians
BOOTSTRAP_RESAMPLES = 2000
#: beyond this many before × after pairs the Hodges–Lehmann shift uses a random sample
MAX_PAIRS = 1_000_000


@dataclass(frozen=True, slots=True)
class ImpactGroup:
    """The comparison of one group's samples (values in ns; results in ms).

    Attributes:
        n_before, n_after: sample counts.
        median_before_ms, median_after_ms, p90_before_ms, p90_after_ms: per side.
        diff_median_ms: median after − median before.
        ci_low_ms, ci_high_ms: its percentile-bootstrap confidence interval.
        hodges_lehmann_ms: median of all after − before pairwise differences.
        mann_whitney_u, p_value: two-sided Mann–Whitney U test (after vs before).
        verdict: ``slower``, ``faster``, ``no change`` or ``too few``.
    """

    n_before: int
    n_after: int
    median_before_ms: float | None
    median_after_ms: float | None
    p90_before_ms: float | None
    p90_after_ms: float | None
    diff_median_ms: float | None
    ci_low_ms: float | None
    ci_high_ms: float | None
    hodges_lehmann_ms: float | None
    mann_whitney_u: float | None
    p_value: float | None
    verdict: str


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def compare(before_ns: Sequence[int], after_ns: Sequence[int], *, alpha: float = 0.05,
            confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = 12) -> ImpactGroup:
    """Compare two samples of a timing (ns): difference of medians with a percentile
    bootstrap CI (``resamples`` resamples, deterministic for ``seed``), Hodges–Lehmann
    shift, two-sided Mann–Whitney U (Mann & Whitney 1947; ``scipy.stats.mannwhitneyu``,
    exact for small samples without ties, else the normal approximation).

    Raises:
        BadInputError: ``alpha`` or ``confidence`` outside (0, 1).
    """
    if not 0 < alpha < 1 or not 0 < confidence < 1:
        raise BadInputError(f"alpha {alpha} and confidence {confidence} must be in (0, 1)")
    b, a = sorted(before_ns), sorted(after_ns)
    med_b = statistics.median(b) if b else None
    med_a = statistics.median(a) if a else None
    p90_b = percentile(b, 90) if b else None
    p90_a = percentile(a, 90) if a else None
    if len(b) < MIN_SAMPLES or len(a) < MIN_SAMPLES or med_a is None or med_b is None:
        diff = None if med_a is None or med_b is None else med_a - med_b
        return ImpactGroup(len(b), len(a), _ms(med_b), _ms(med_a), _ms(p90_b), _ms(p90_a),
                           _ms(diff), None, None, None, None, None, "too few")
    import numpy as np
    from scipy.stats import mannwhitneyu

    test = mannwhitneyu(a, b, alternative="two-sided")
    p_value = float(test.pvalue)
    rng = np.random.default_rng(seed)
    arr_a, arr_b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diffs = np.sort(
        np.median(arr_a[rng.integers(0, len(a), (resamples, len(a)))], axis=1)
        - np.median(arr_b[rng.integers(0, len(b), (resamples, len(b)))], axis=1))
    tail = (1 - confidence) / 2
    low = float(diffs[int(tail * (resamples - 1))])
    high = float(diffs[round((1 - tail) * (resamples - 1))])
    if len(a) * len(b) <= MAX_PAIRS:
        pairs = np.subtract.outer(arr_a, arr_b).ravel()
    else:  # a random sample of the pairs bounds memory for long runs
        pairs = (arr_a[rng.integers(0, len(a), MAX_PAIRS)]
                 - arr_b[rng.integers(0, len(b), MAX_PAIRS)])
    shift = float(np.median(pairs))
    diff = med_a - med_b
    verdict = ("no change" if p_value >= alpha else "slower" if shift > 0 else "faster")
    return ImpactGroup(len(b), len(a), _ms(med_b), _ms(med_a), _ms(p90_b), _ms(p90_a),
                       _ms(diff), _ms(low), _ms(high), _ms(shift),
                       float(test.statistic), round(p_value, 6), verdict)


# -- reading job records ------------------------------------------------------------------

Key = tuple[str, str, str, str]  # band, SR variant, device EUI-64, device role


def _samples(exchanges: Iterable[Mapping[str, Any]], segment: str) -> dict[Key, list[int]]:
    out: dict[Key, list[int]] = defaultdict(list)
    for exchange in exchanges:
        value = (exchange.get("segments_ns") or {}).get(segment)
        if value is None or exchange.get("band") is None:
            continue
        key = (str(exchange["band"]), str(exchange.get("sr_variant") or "?"),
               str(exchange.get("target") or "?"), str(exchange.get("device_role") or "?"))
        out[key].append(int(value))
    return out


def _sr_steps(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[bool]]:
    out: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for record in records:
        for step in record.get("steps") or []:
            if step.get("kind") == "sr" and step.get("request_id") and step.get("target_eui64"):
                out[(str(step["sr_variant"]), str(step["target_eui64"]))].append(
                    step.get("status") == "passed")
    return out


def split_across_upgrade(records: Iterable[Mapping[str, Any]]
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Jobs that contain CH upgrades (``ch_firmware`` steps of mode ``upgrade``) split, per
    variant run, into a "before" part (exchanges submitted before the run's upgrade step
    started) and an "after" part (after it ended, with its upgrade steps), as job-record
    shaped dicts for :func:`ch_impact`. Runs without an upgrade are left out.

    Raises:
        BadInputError: no job has an upgrade step.
    """
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for record in records:
        cuts: dict[tuple[str, int], tuple[int, int]] = {}
        for step in record.get("steps") or []:
            upgrade = step.get("ch_upgrade") or {}
            if step.get("kind") == "ch_firmware" and upgrade.get("mode") == "upgrade":
                cuts[(step["variant"], int(step.get("repetition") or 1))] = (
                    int(step["started_ns"]), int(step["ended_ns"]))
        if not cuts:
            continue
        runs = [(v, r, s, e) for (v, r), (s, e) in cuts.items()]
        part_b: dict[str, Any] = {"id": record.get("id"), "steps": [], "exchanges": []}
        part_a: dict[str, Any] = {"id": record.get("id"), "steps": [], "exchanges": []}
        for step in record.get("steps") or []:
            cut = cuts.get((step.get("variant", ""), int(step.get("repetition") or 1)))
            if cut is None:
                continue
            if int(step.get("ended_ns") or 0) <= cut[0]:
                part_b["steps"].append(step)
            elif int(step.get("started_ns") or 0) >= cut[0]:
                part_a["steps"].append(step)
        step_of = {s.get("request_id"): s for s in record.get("steps") or []}
        for exchange in record.get("exchanges") or []:
            step = step_of.get(exchange.get("request_id"))
            submitted = exchange.get("submitted_ts_ns")
            if step is None or submitted is None:
                continue
            for variant, repetition, start_ns, end_ns in runs:
                if (step.get("variant"), int(step.get("repetition") or 1)) != (
                        variant, repetition):
                    continue
                if int(step["ended_ns"]) <= start_ns:
                    part_b["exchanges"].append(exchange)
                elif int(step["started_ns"]) >= end_ns:
                    part_a["exchanges"].append(exchange)
        before.append(part_b)
        after.append(part_a)
    if not after:
        raise BadInputError("no job has a CH firmware upgrade step (ch_firmware, mode "
                            "upgrade) to split across",
                            hint="give --before and --after jobs instead")
    return before, after


def _rejoins(records: Iterable[Mapping[str, Any]]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    not_back: list[dict[str, Any]] = []
    for record in records:
        for step in record.get("steps") or []:
            upgrade = step.get("ch_upgrade")
            if step.get("kind") != "ch_firmware" or not upgrade or upgrade.get("requested"):
                continue
            for device in upgrade.get("devices") or []:
                per[device["eui64"]].append(device)
                if not device.get("back"):
                    not_back.append({"device": device.get("device"), "eui64": device["eui64"],
                                     "job": record.get("id"),
                                     "version": (upgrade.get("image") or {}).get("version")})
    rows = []
    for eui64, entries in sorted(per.items()):
        first = entries[0]
        rejoin = sorted(e["rejoin_s"] for e in entries if e.get("rejoin_s") is not None)
        resume = sorted(e["resume_s"] for e in entries if e.get("resume_s") is not None)
        back = sum(1 for e in entries if e.get("back"))
        rows.append({
            "device": first.get("device"), "eui64": eui64, "role": first.get("role"),
            "band": first.get("band"), "se_version": first.get("se_version"),
            "upgrades": len(entries), "back": back, "not_back": len(entries) - back,
            "methods": sorted({str(e.get("method")) for e in entries}),
            "attempts_max": max(int(e.get("attempts") or 0) for e in entries),
            "rejoin_s_median": statistics.median(rejoin) if rejoin else None,
            "rejoin_s_max": rejoin[-1] if rejoin else None,
            "resume_s_median": statistics.median(resume) if resume else None,
            "resume_s_max": resume[-1] if resume else None})
    return rows, not_back


def ch_impact(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], *,
              segment: str = "end_to_end", alpha: float = 0.05,
              confidence: float = 0.95) -> dict[str, Any]:
    """``IMPACT`` (module docstring) of the ``after`` job records against ``before``.

    Raises:
        BadInputError: an unknown ``segment``, ``alpha`` / ``confidence`` outside (0, 1),
            or no job on one side.
    """
    if segment not in SEGMENTS:
        raise BadInputError(f"unknown timing segment {segment!r}",
                            hint="one of " + ", ".join(SEGMENTS))
    if not before or not after:
        raise BadInputError("give job records both before and after the upgrade")
    samples_b = _samples((x for r in before for x in r.get("exchanges") or []), segment)
    samples_a = _samples((x for r in after for x in r.get("exchanges") or []), segment)
    timings = []
    for key in sorted(set(samples_b) | set(samples_a)):
        band, variant, device, role = key
        group = compare(samples_b.get(key, []), samples_a.get(key, []), alpha=alpha,
                        confidence=confidence)
        timings.append({"band": band, "sr_variant": variant, "device": device,
                        "device_role": role, **_group_dict(group),
                        "before_ns": sorted(samples_b.get(key, [])),
                        "after_ns": sorted(samples_a.get(key, []))})
    steps_b, steps_a = _sr_steps(before), _sr_steps(after)
    failures = []
    for variant, device in sorted(set(steps_b) | set(steps_a)):
        ok_b, ok_a = steps_b.get((variant, device), []), steps_a.get((variant, device), [])
        failures.append({
            "sr_variant": variant, "device": device, "sent_before": len(ok_b),
            "failed_before": ok_b.count(False), "sent_after": len(ok_a),
            "failed_after": ok_a.count(False),
            "rate_before": round(ok_b.count(False) / len(ok_b), 4) if ok_b else None,
            "rate_after": round(ok_a.count(False) / len(ok_a), 4) if ok_a else None})
    rejoins, not_back = _rejoins(after)
    return {"schema": SCHEMA, "segment": segment, "alpha": alpha, "confidence": confidence,
            "before_jobs": [r.get("id") for r in before],
            "after_jobs": [r.get("id") for r in after],
            "timings": timings, "failures": failures, "rejoins": rejoins,
            "not_back": not_back}


def _group_dict(group: ImpactGroup) -> dict[str, Any]:
    return {name: getattr(group, name) for name in ImpactGroup.__slots__}


def impact_json(impact: Mapping[str, Any]) -> str:
    """``IMPACT`` as indented JSON text."""
    return json.dumps(impact, indent=2, sort_keys=False) + "\n"


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def impact_text(impact: Mapping[str, Any]) -> str:
    """``IMPACT`` as plain-text tables (ms), one line per group."""
    segment = impact["segment"]
    conf = round(impact["confidence"] * 100)
    lines = [f"CH firmware impact on the HAN: {segment} (ms), after - before; "
             f"Mann-Whitney U two-sided, alpha {impact['alpha']:g}; "
             f"{conf}% bootstrap CI of the difference of medians",
             f"{'band':7} {'SR':7} {'device':23} {'n b/a':>7} {'med b':>8} {'med a':>8} "
             f"{'diff':>8} {'CI':>19} {'p':>7}  verdict"]
    for row in impact["timings"]:
        ci = (f"[{_fmt(row['ci_low_ms'])}, {_fmt(row['ci_high_ms'])}]"
              if row["ci_low_ms"] is not None else "-")
        lines.append(
            f"{row['band']:7} {row['sr_variant']:7} {row['device']:23} "
            f"{row['n_before']:>3}/{row['n_after']:<3} {_fmt(row['median_before_ms']):>8} "
            f"{_fmt(row['median_after_ms']):>8} {_fmt(row['diff_median_ms']):>8} "
            f"{ci:>19} {_fmt(row['p_value'], '.3g'):>7}  {row['verdict']}")
    if not impact["timings"]:
        lines.append("(no answered SR exchanges on either side)")
    lines.append("")
    lines.append("SR failures (failed/sent) before -> after")
    for row in impact["failures"]:
        lines.append(f"  {row['sr_variant']:7} {row['device']:23} "
                     f"{row['failed_before']}/{row['sent_before']} -> "
                     f"{row['failed_after']}/{row['sent_after']}")
    lines.append("")
    lines.append("Rejoins after the CH reboots (s after the CH came back)")
    for row in impact["rejoins"]:
        lines.append(f"  {row['device'] or row['eui64']:14} SE {row['se_version'] or '?':4} "
                     f"{','.join(row['methods']):22} back {row['back']}/{row['upgrades']} "
                     f"rejoin median {_fmt(row['rejoin_s_median'], '.2f')} max "
                     f"{_fmt(row['rejoin_s_max'], '.2f')} attempts max {row['attempts_max']}")
    if not impact["rejoins"]:
        lines.append("  (no CH firmware step in the after jobs)")
    not_back = impact["not_back"]
    lines.append("Devices that did not come back: " + (", ".join(
        f"{d['device'] or d['eui64']} (job {d['job']})" for d in not_back) or "none"))
    return "\n".join(lines) + "\n"
