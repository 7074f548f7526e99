"""CLI command groups. Each module defines ``register(app: typer.Typer) -> None``.

Also here: :func:`print_table`, how every command prints a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: widest table printed through a pipe (columns); rich fits a wider one to this width, as it
#: would fit it to a terminal of this width
PIPE_WIDTH_MAX = 400


def print_table(console: Console, table: Table) -> None:
    """Print ``table``. In a terminal, rich fits it to the terminal. Through a pipe or
    into a file (where rich would assume 80 columns and cut cells to ``name…``) it is
    printed as wide as its content needs (never narrower than the console), up to
    :data:`PIPE_WIDTH_MAX` columns, so saved output keeps every name and number whole."""
    if console.is_terminal:
        console.print(table)
        return
    wide = console.options.update_width(PIPE_WIDTH_MAX)
    natural = console.measure(table, options=wide).maximum
    width = console.width  # print(width=) only narrows: widen the console for this table
    console.width = max(width, min(natural, PIPE_WIDTH_MAX))
    try:
        console.print(table)
    finally:
        console.width = width
