"""The CH firmware impact statistics (issue 12, item 2) on samples of known distributions,
and its view of job records: groups, failure rates, rejoins, devices not back, and the
split of a job across its upgrade step; the HTML section with its plot."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hanlab.errors import BadInputError
from hanlab.firmware.impact import ch_impact, compare, impact_text, split_across_upgrade
from hanlab.reports.impact_html import render_impact_report

ESME = "00-DB-12-00-00-00-D1-01"
GSME = "00-DB-12-00-00-00-D2-01"


def _lognormal_ns(rng: random.Random, n: int, median_ms: float, shift_ms: float = 0.0
                  ) -> list[int]:
    return [int((median_ms * rng.lognormvariate(0, 0.25) + shift_ms) * 1e6) for _ in range(n)]


def test_a_known_shift_is_found_with_its_interval() -> None:
    rng = random.Random(3)
    before = _lognormal_ns(rng, 60, 600)
    after = _lognormal_ns(rng, 60, 600, shift_ms=150)
    group = compare(before, after)
    assert group.verdict == "slower" and group.p_value is not None and group.p_value < 1e-3
    assert group.ci_low_ms is not None and group.ci_high_ms is not None
    assert group.ci_low_ms < 150 < group.ci_high_ms  # the true shift is inside
    assert group.hodges_lehmann_ms is not None and 100 < group.hodges_lehmann_ms < 200
    assert group.n_before == group.n_after == 60
    faster = compare(after, before)
    assert faster.verdict == "faster" and faster.diff_median_ms == pytest.approx(
        -(group.diff_median_ms or 0))


def test_same_distribution_is_no_change_and_few_samples_are_not_tested() -> None:
    rng = random.Random(5)
    same = compare(_lognormal_ns(rng, 40, 600), _lognormal_ns(rng, 40, 600))
    assert same.verdict == "no change" and (same.p_value or 0) > 0.05
    assert (same.ci_low_ms or 0) < 0 < (same.ci_high_ms or 0)
    few = compare([1_000_000, 2_000_000], [3_000_000, 4_000_000, 5_000_000])
    assert few.verdict == "too few" and few.p_value is None
    assert few.diff_median_ms == pytest.approx(2.5)
    with pytest.raises(BadInputError):
        compare([1], [2], alpha=1.5)


def _exchange(device: str, role: str, band: str, value_ns: int, rid: str,
              submitted_ns: int = 0) -> dict[str, Any]:
    return {"request_id": rid, "sr_variant": "4.1.1", "target": device, "device_role": role,
            "band": band, "submitted_ts_ns": submitted_ns,
            "segments_ns": {"end_to_end": value_ns, "turnaround": value_ns // 2}}


def _step(index: int, rid: str, device: str, status: str = "passed", *, start: int = 0,
          end: int = 0, variant: str = "v") -> dict[str, Any]:
    return {"kind": "sr", "index": index, "request_id": rid, "sr_variant": "4.1.1",
            "target_eui64": device, "status": status, "variant": variant, "repetition": 1,
            "started_ns": start, "ended_ns": end}


def _upgrade_step(start: int, end: int, *, back: bool = True) -> dict[str, Any]:
    devices = [{"device": "ESME-D1-01", "eui64": ESME, "role": "ESME", "band": "2.4GHz",
                "se_version": "1.4", "method": "nwk_rejoin", "attempts": 3, "back": True,
                "rejoin_s": 4.0, "resume_s": 4.1},
               {"device": "GSME-D2-01", "eui64": GSME, "role": "GSME", "band": "2.4GHz",
                "se_version": "1.2a", "method": "nwk_rejoin", "attempts": 7, "back": back,
                "rejoin_s": 9.0 if back else None, "resume_s": 9.5 if back else None}]
    return {"kind": "ch_firmware", "index": 50, "variant": "v", "repetition": 1,
            "started_ns": start, "ended_ns": end, "status": "passed" if back else "failed",
            "ch_upgrade": {"mode": "upgrade", "image": {"version": "CH-EMU-1.1.0"},
                           "devices": devices, "missing": [] if back else ["GSME-D2-01"]}}


def _jobs() -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(11)
    before = {"id": "j-before", "exchanges": [], "steps": []}
    after = {"id": "j-after", "exchanges": [], "steps": [_upgrade_step(0, 1, back=False)]}
    for n, value in enumerate(_lognormal_ns(rng, 20, 500)):
        before["exchanges"].append(_exchange(ESME, "ESME", "2.4GHz", value, f"b{n}"))
        before["steps"].append(_step(n, f"b{n}", ESME))
    for n, value in enumerate(_lognormal_ns(rng, 20, 500, shift_ms=300)):
        after["exchanges"].append(_exchange(ESME, "ESME", "2.4GHz", value, f"a{n}"))
        after["steps"].append(_step(n, f"a{n}", ESME, "failed" if n < 5 else "passed"))
    return before, after


def test_impact_of_job_records() -> None:
    before, after = _jobs()
    impact = ch_impact([before], [after])
    (row,) = impact["timings"]
    assert (row["band"], row["sr_variant"], row["device"], row["verdict"]) == (
        "2.4GHz", "4.1.1", ESME, "slower")
    assert row["n_before"] == row["n_after"] == 20 and len(row["after_ns"]) == 20
    (fail,) = impact["failures"]
    assert (fail["failed_before"], fail["sent_before"], fail["failed_after"],
            fail["rate_after"]) == (0, 20, 5, 0.25)
    rejoins = {r["eui64"]: r for r in impact["rejoins"]}
    assert rejoins[ESME]["back"] == 1 and rejoins[ESME]["rejoin_s_median"] == 4.0
    assert rejoins[GSME]["not_back"] == 1 and rejoins[GSME]["attempts_max"] == 7
    assert impact["not_back"] == [{"device": "GSME-D2-01", "eui64": GSME, "job": "j-after",
                                   "version": "CH-EMU-1.1.0"}]
    text = impact_text(impact)
    assert "slower" in text and "GSME-D2-01 (job j-after)" in text
    turnaround = ch_impact([before], [after], segment="turnaround")
    assert turnaround["timings"][0]["median_after_ms"] == pytest.approx(
        row["median_after_ms"] / 2, rel=0.01)
    with pytest.raises(BadInputError, match="segment"):
        ch_impact([before], [after], segment="nosuch")
    with pytest.raises(BadInputError):
        ch_impact([], [after])


def test_split_across_the_upgrade_step() -> None:
    steps = [_step(1, "r1", ESME, start=10, end=20), _upgrade_step(30, 40),
             _step(3, "r3", ESME, start=50, end=60), _step(4, "r4", ESME, start=61, end=70)]
    record = {"id": "j-1", "steps": steps,
              "exchanges": [_exchange(ESME, "ESME", "2.4GHz", 5_000_000, "r1", 11),
                            _exchange(ESME, "ESME", "2.4GHz", 7_000_000, "r3", 51),
                            _exchange(ESME, "ESME", "2.4GHz", 8_000_000, "r4", 62)]}
    (before,), (after,) = split_across_upgrade([record, {"id": "j-2", "steps": []}])
    assert [x["request_id"] for x in before["exchanges"]] == ["r1"]
    assert [x["request_id"] for x in after["exchanges"]] == ["r3", "r4"]
    assert [s["kind"] for s in after["steps"]] == ["ch_firmware", "sr", "sr"]
    with pytest.raises(BadInputError, match="no job has a CH firmware upgrade"):
        split_across_upgrade([{"id": "j-2", "steps": steps[:1]}])


def test_html_report_has_the_tables_and_a_plot() -> None:
    before, after = _jobs()
    page = render_impact_report(ch_impact([before], [after]))
    assert page.startswith("<!DOCTYPE html>") and 'id="ch-impact"' in page
    assert 'data-verdict="slower"' in page and '<figure class="impact-plot"' in page
    assert "<svg" in page and "GSME-D2-01 (job j-after)" in page


def test_campaign_report_carries_the_impact_section() -> None:
    from hanlab.reports.html import render_campaign_report
    from tests.unit.test_reports import _data

    before, after = _jobs()
    data = _data("dual_band", [])
    assert 'id="ch-impact"' not in render_campaign_report(data)
    page = render_campaign_report({**data, "ch_impact": ch_impact([before], [after])})
    assert page.index('id="timings"') < page.index('id="ch-impact"') < page.index('id="failed"')
