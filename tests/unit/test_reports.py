"""Unit tests of hanlab.reports: the input check, the issue log and the Table 10 defect mask
(seed 000: 0/0/15/30/60 outstanding per provider, work-off 20/40/60 working days), step
keys and a synthetic campaign's verdicts (DIT.EX.3 attribution, DIT.EX.5 85 % / 100 %)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hanlab.cli import main
from hanlab.errors import BadInputError
from hanlab.reports.analysis import analyse_campaign
from hanlab.reports.issues import IssueLog, add_working_days, mask_check
from hanlab.reports.model import check_report_data


def test_check_report_data_names_the_field() -> None:
    with pytest.raises(BadInputError, match=r"campaign\.id"):
        check_report_data({"campaign": {}, "rigs": [], "plan": [], "jobs": []})
    with pytest.raises(BadInputError, match=r"jobs\.0\.record: no 'steps'"):
        check_report_data({"campaign": {"id": "c"}, "rigs": [], "plan": [],
                           "jobs": [{"record": {"id": "j", "rig": "r", "scenario": "s",
                                                "state": "passed"}}]})


def test_working_days_skip_weekends_and_holidays() -> None:
    friday = dt.date(2026, 12, 11)
    assert add_working_days(friday, 1) == dt.date(2026, 12, 14)
    assert add_working_days(friday, 20) == dt.date(2027, 1, 8)
    assert add_working_days(friday, 1, [dt.date(2026, 12, 14)]) == dt.date(2026, 12, 15)


def test_defect_mask_per_provider(tmp_path: Path) -> None:
    log = IssueLog(tmp_path / "issues.yaml", "c-1")
    gate = dt.date(2026, 12, 14)
    for _ in range(16):
        log.add(title="sev 3", severity=3, owner="DSP",
                work_off_date=add_working_days(gate, 20))
    log.add(title="late", severity=4, owner="CSP N", work_off_date=dt.date(2027, 6, 1))
    log.add(title="sev 2", severity=2, owner="CSP C/S", status="closed")
    log.add(title="device", severity=1, owner="device manufacturer", manufacturer="Acme")
    log.save()
    rows = {(r.provider, r.severity): r for r in mask_check(IssueLog(log.path).issues, gate)}
    assert rows[("DSP", 3)].outstanding == 16 and not rows[("DSP", 3)].within_count
    assert rows[("DSP", 3)].late == []
    assert rows[("CSP N", 4)].within_count and rows[("CSP N", 4)].late == ["TI-0017"]
    assert rows[("CSP C/S", 2)].outstanding == 0  # closed
    assert all(r.outstanding == 0 for k, r in rows.items() if k[1] == 1)  # device: outside
    with pytest.raises(BadInputError, match="severity"):
        log.add(title="x", severity=6, owner="DSP")
    with pytest.raises(BadInputError, match="owner"):
        log.add(title="x", severity=3, owner="nobody")


def _record(job: str, variant: str, passed: bool, eui: str, role: str) -> dict[str, Any]:
    step = {"scenario": "meter-reading", "variant": variant, "repetition": 1, "index": 1,
            "kind": "sr", "status": "passed" if passed else "failed", "optional": False,
            "sr_variant": "4.1.1", "target_role": role, "target_eui64": eui,
            "request_id": f"90-B3-D5-1F-30-01-00-00:{eui}:1", "outcome": "I0" if passed
            else "timeout", "detail": "", "started_ns": 1, "ended_ns": 2}
    return {"id": job, "rig": "r", "scenario": "meter-reading", "state":
            "passed" if passed else "failed", "steps": [step], "exchanges": [],
            "variant_runs": [{"scenario": "meter-reading", "variant": variant,
                              "repetition": 1, "passed": passed, "ended_ns": 2,
                              "duration_s": 1.0, "failed_steps": [] if passed else [1]}],
            "captures": ["a.pcapng"], "duis_log": "d.jsonl", "devices": {role: eui}}


def _data(ch_variant: str, issues: list[dict[str, Any]]) -> dict[str, Any]:
    esme1, esme2 = "00-DB-12-00-00-00-E1-01", "00-DB-12-00-00-00-E1-02"
    jobs = [_record("j-1", "electricity-instantaneous", True, esme1, "ESME"),
            _record("j-2", "electricity-instantaneous", False, esme2, "ESME")]
    return {"campaign": {"id": "c-1"}, "issues": issues,
            "rigs": [{"name": "r", "ch_variant": ch_variant, "devices": [
                {"eui64": esme1, "role": "ESME"}, {"eui64": esme2, "role": "ESME"}]}],
            "plan": [{"id": "L1", "scenario": "meter-reading", "rig": "r",
                      "variants": ["electricity-instantaneous"], "job_ids": ["j-1", "j-2"]}],
            "jobs": [{"record": r} for r in jobs]}


def test_ex3_any_combination_of_devices_with_device_issues() -> None:
    # one ESME passed, the other failed: EX.3 only with the failure proved in the device
    (verdict,) = analyse_campaign(check_report_data(_data("single_band", []))).verdicts
    assert verdict.criterion == "DIT.EX.3" and not verdict.met
    assert "not proved to be in the end device" in verdict.reasons[0]
    issue = {"id": "TI-0001", "owner": "device manufacturer", "job_id": "j-2"}
    (verdict,) = analyse_campaign(check_report_data(_data("single_band", [issue]))).verdicts
    assert verdict.met, verdict.reasons


def test_ex5_needs_85_percent_non_critical() -> None:
    (verdict,) = analyse_campaign(check_report_data(_data("dual_band", []))).verdicts
    assert verdict.criterion == "DIT.EX.5" and not verdict.met
    assert verdict.other_completed == 2 and verdict.other_passed == 1
    assert "50.0 % < 85 %" in verdict.reasons[0]


def test_issues_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "issues.yaml"
    main(["issues", "add", str(log), "--campaign", "c-1", "--title", "GSME silent",
          "--severity", "3", "--owner", "CSP N", "--work-off", "2027-01-08"])
    main(["issues", "update", str(log), "TI-0001", "--status", "fixed"])
    main(["issues", "list", str(log), "--quality-gate", "2026-12-14"])
    out = capsys.readouterr().out
    assert "TI-0001" in out and "fixed" in out and "CSP N" in out
    main(["issues", "export", str(log), "-o", str(tmp_path / "issues.csv")])
    lines = (tmp_path / "issues.csv").read_text().splitlines()
    assert lines[0].startswith("campaign_id,id,title,severity,owner")
    assert lines[1].startswith("c-1,TI-0001,GSME silent,3,CSP N")


def test_prepayment_top_up_is_business_critical() -> None:
    from hanlab.scenarios.loader import get_scenario

    scenario = get_scenario("prepayment-top-up")
    assert {v.id: v.priority for v in scenario.variants} == {"via-wan": "High",
                                                             "local": "High"}
