"""Shared helpers of the benchmarks: where the corpus is, and printing figures side by side."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT.parent / "shared" / "corpus"
SINOPE = CORPUS / "captures" / "sinope-zha__TH1123ZB-G2-partie_00005.pcapng"


def need_corpus() -> None:
    """Exit with a clear message if the corpus is not beside the repository."""
    if not SINOPE.exists():
        sys.exit(f"benchmark needs the corpus: {SINOPE} not found")


def report(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print ``(figure, hanlab, baseline)`` rows as a table."""
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    print(f"  {'':<{width}}  {'hanlab':>16}  {'baseline':>16}")
    for name, ours, base in rows:
        print(f"  {name:<{width}}  {ours:>16}  {base:>16}")
