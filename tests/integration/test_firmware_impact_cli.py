"""``hanlab firmware impact`` run as the installed console script: its error paths (one
line, exit status 2, no traceback) and a good run writing text, JSON and HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli_errors import run_hanlab
from tests.unit.test_firmware_impact import _jobs


def _write_jobs(folder: Path) -> tuple[Path, Path]:
    before, after = _jobs()
    paths = folder / "before.json", folder / "after.json"
    for path, record in zip(paths, (before, after), strict=True):
        path.write_text(json.dumps(record))
    return paths


@pytest.mark.parametrize("case", ["no jobs", "unknown job", "not a record", "both ways",
                                  "nothing to split", "bad segment", "bad alpha"])
def test_impact_errors_are_one_line_exit_2(case: str, tmp_path: Path) -> None:
    before, after = _write_jobs(tmp_path)
    (tmp_path / "junk.json").write_text("[1, 2")
    jobs = ["--jobs", str(tmp_path / "jobs")]
    args, needle = {
        "no jobs": ([*jobs], "no jobs before or after"),
        "unknown job": (["--before", "j-20990101T000000-000000", "--after", str(after),
                         *jobs], "j-20990101T000000-000000"),
        "not a record": (["--before", str(tmp_path / "junk.json"), "--after", str(after)],
                         "junk.json"),
        "both ways": (["--across", str(after), "--before", str(before)], "--across"),
        "nothing to split": (["--across", str(before)], "no job has a CH firmware upgrade"),
        "bad segment": (["--before", str(before), "--after", str(after), "--segment", "x"],
                        "unknown timing segment"),
        "bad alpha": (["--before", str(before), "--after", str(after), "--alpha", "2"],
                      "alpha"),
    }[case]
    result = run_hanlab("firmware", "impact", *args)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and needle in result.stderr, result.stderr


def test_impact_text_json_and_html(tmp_path: Path) -> None:
    before, after = _write_jobs(tmp_path)
    html = tmp_path / "impact.html"
    result = run_hanlab("firmware", "impact", "--before", str(before), "--after", str(after),
                        "--html", str(html))
    assert result.returncode == 0, result.stderr
    assert "slower" in result.stdout and "did not come back: GSME-D2-01" in result.stdout
    assert 'id="ch-impact"' in html.read_text()
    result = run_hanlab("firmware", "impact", "--before", str(before), "--after", str(after),
                        "--json")
    impact = json.loads(result.stdout)
    assert impact["before_jobs"] == ["j-before"] and impact["timings"][0]["p_value"] < 0.05
