"""Lazy command registration: ``hanlab --help`` lists every command without importing it."""

from __future__ import annotations

import subprocess
import sys

import typer
import typer.main

from hanlab.cli import COMMAND_MODULES, COMMANDS, load_command


def test_table_matches_what_the_modules_register() -> None:
    """Every command a module registers is in COMMANDS, with that module and its help."""
    import importlib

    registered = {}
    for module in COMMAND_MODULES:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            registered[name] = (module, (command.help or "").split("\n\n")[0].strip())
    assert registered == {name: (module, help_text.strip())
                          for name, (module, help_text) in COMMANDS.items()}
    assert load_command("decode").name == "decode"


def test_help_lists_every_command_and_imports_none() -> None:
    code = ("import sys\nfrom hanlab.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('hanlab.commands.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"COLUMNS": "200", "PATH": "", "PYTHONPATH":
                                           ":".join(sys.path)})
    *help_lines, imported = proc.stdout.rstrip("\n").splitlines()
    assert imported == "[]"
    text = "\n".join(help_lines)
    for name, (_, help_text) in COMMANDS.items():
        assert any(line.split()[1:2] == [name] and help_text[:40] in line
                   for line in help_lines), (name, text)
