"""Usage errors of the installed ``hanlab`` console script (issue 14 item 1).

``CliRunner`` skips ``hanlab.cli.main`` (where usage errors become one line and exit
status 2), so these tests run the real console script as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _hanlab_command() -> list[str]:
    """The installed console script, or (without one) the same entry point via python -m."""
    script = shutil.which("hanlab")
    return [script] if script else [sys.executable, "-m", "hanlab.cli"]


def run_hanlab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``hanlab ARGS`` with this worktree's package first on the import path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    return subprocess.run([*_hanlab_command(), *args], capture_output=True, text=True,
                          check=False, timeout=120, cwd=cwd, env=env)


USAGE_ERRORS = {
    "missing option": (["scenario", "run", "meter-reading"], "--rig"),
    "missing argument": (["scenario", "run"], "Missing argument"),
    "unknown option": (["--bogus"], "--bogus"),
    "unknown sub-option": (["up", "--no-such-option"], "--no-such-option"),
    "bad number": (["up", "--duration", "abc"], "--duration"),
    "unknown command": (["nosuch"], "nosuch"),
    "unknown subcommand": (["rig", "nosuch"], "nosuch"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_is_one_line_exit_2(case: str) -> None:
    args, needle = USAGE_ERRORS[case]
    result = run_hanlab(*args)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hanlab: error: ") and needle in lines[0]
    assert "--help" in lines[0]


def test_bare_hanlab_shows_help() -> None:
    result = run_hanlab()
    assert result.returncode in (0, 2)
    assert "Traceback" not in result.stdout + result.stderr
    assert "Usage:" in result.stdout + result.stderr
    assert "decode" in result.stdout + result.stderr


def test_bad_input_error_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run_hanlab("decode", str(tmp_path / "missing.pcapng"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"hanlab: error: {tmp_path / 'missing.pcapng'}: file not found"]


def test_decode_of_two_files_decodes_each_in_order(captures_dir: Path, tmp_path: Path) -> None:
    """A glob matching two files (``hanlab decode a.pcapng b.pcapng``)."""
    one = captures_dir / "zbtk__examples_trace.pcap"
    alone = run_hanlab("decode", str(one), "--json")
    assert alone.returncode == 0, alone.stderr
    both = run_hanlab("decode", str(one), str(one), "--json")
    assert both.returncode == 0, both.stderr
    assert "Traceback" not in both.stderr
    single = alone.stdout.splitlines()
    assert single and both.stdout.splitlines() == single + single


def test_unknown_filter_field_lists_the_known_ones(captures_dir: Path) -> None:
    result = run_hanlab("decode", str(captures_dir / "zbtk__examples_trace.pcap"),
                        "--filter", "nwk.scr=0x0000")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "did you mean 'nwk.src'?" in line and "known fields:" in line
    assert "aps.cluster" in line
