"""``hanlab rollout`` run as the installed console script: a lab-rehearsal plan states its
overrides of the seed; rule breaks and bad values exit 2 with one line naming them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli_errors import run_hanlab


def test_plan_json_and_rehearsal_overrides_stated(tmp_path: Path) -> None:
    out = tmp_path / "plan.parquet"
    proc = run_hanlab("rollout", "plan", "--chs", "400", "--pilot-max", "2", "--batch-min",
                      "10", "--notified", "2027-01-04T00:00:00Z", "--out", str(out),
                      "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["chs"] == 400 and plan["pilot"] <= 2 * 20
    assert ("batch_min_size = 10 (SECMP0024 2.4 default 50000: lab rehearsal override)"
            in plan["deviations"])
    assert out.stat().st_size > 0
    text = run_hanlab("rollout", "plan", "--chs", "100", "--batch-min", "5",
                      "--pilot-max", "2")
    assert text.returncode == 0 and "lab rehearsal override" in text.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["--batch-size", "10"], "refused by rule batch-min-size"),
    (["--notified", "2027-01-04"], "--notified: 2027-01-04T00:00:00 has no timezone"),
    (["--memory-limit", "lots"], "DuckDB settings"),
    (["--out", "/no/such/folder/plan.parquet"], "does not exist"),
], ids=["2.4-batch-below-minimum", "naive-date", "memory-limit", "out-folder"])
def test_plan_errors_exit_2(args: list[str], expected: str) -> None:
    proc = run_hanlab("rollout", "plan", "--chs", "50", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hanlab: error:") and expected in lines[0]


def test_rules_lists_every_rule_with_its_clause() -> None:
    proc = run_hanlab("rollout", "rules")
    assert proc.returncode == 0
    assert "split-supply-both-instruct" in proc.stdout and "SECMP0024" in proc.stdout
