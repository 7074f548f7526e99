"""Tables printed through a pipe keep every cell whole (``hanlab.commands.print_table``).

Rich assumes 80 columns where stdout is no terminal and cuts what does not fit to
``name…``: a saved listing then held scenario names nobody could paste into
``hanlab scenarios show``.
"""

from __future__ import annotations

from hanlab.scenarios.loader import load_library
from tests.integration.test_cli_errors import run_hanlab


def test_scenario_list_through_a_pipe_keeps_every_name_whole() -> None:
    proc = run_hanlab("scenarios", "list")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    cells = {cell.strip() for line in proc.stdout.splitlines() for cell in line.split("│")}
    names = set(load_library([]))
    assert len(names) >= 20
    assert names <= cells, sorted(names - cells)
    # wider than the 80 columns rich assumes, as wide as the longest title needs
    assert max(map(len, proc.stdout.splitlines())) > 80


def test_scenario_show_through_a_pipe_keeps_every_step_whole() -> None:
    proc = run_hanlab("scenarios", "show", "no-wan-installation")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
