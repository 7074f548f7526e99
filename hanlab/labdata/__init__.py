"""The lab and rig files shipped with hanlab (package data), so that ``hanlab up`` runs the
emulated default lab from any directory after ``pip install`` (issue 9, item 6).

``labs/default.yaml`` (two emulated rigs) and ``rigs/emulated-single-band.yaml``,
``rigs/emulated-dual-band.yaml``; the checkout's ``labs/`` and ``rigs/`` link to them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundled_rig", "bundled_rigs", "default_lab"]

_HERE = Path(__file__).resolve().parent


def default_lab() -> Path:
    """The bundled default lab file."""
    return _HERE / "labs" / "default.yaml"


def bundled_rigs() -> dict[str, Path]:
    """Bundled rig files by rig name (the file's stem is the rig's name)."""
    return {p.stem: p for p in sorted((_HERE / "rigs").glob("*.yaml"))}


def bundled_rig(name: str) -> Path | None:
    """The bundled rig file of rig ``name``, or ``None``."""
    return bundled_rigs().get(name)
