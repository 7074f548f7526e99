"""Reading captures with the real tshark, as an independent check of what hanlab writes."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class TsharkFrame:
    """What tshark says of one frame: the 802.15.4 bytes and the TAP header fields."""

    wpan: bytes
    fcs_ok: bool | None
    tap_fcs_type: int | None
    tap_channel: int | None
    tap_page: int | None
    epoch_s: str


def _first(layer: dict[str, Any], name: str) -> Any:
    value = layer.get(name)
    if isinstance(value, list):
        return value[0]
    return value


def _walk(node: Any, key: str) -> Any:
    """Depth-first search of a tshark JSON layer for ``key``."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for value in node.values():
            found = _walk(value, key)
            if found is not None:
                return found
    return None


def read_with_tshark(tshark: str, path: Path, *extra: str) -> list[TsharkFrame]:
    """Every frame of ``path`` as tshark dissects it (``tshark -T json -x``).

    Raises AssertionError if tshark reports any error reading the file.
    """
    proc = subprocess.run(
        [tshark, "-r", str(path), "-T", "json", "-x", "-J", "frame wpan wpan-tap", *extra],
        capture_output=True, text=True, check=False,
    )
    errors = [line for line in proc.stderr.splitlines() if "Running as user" not in line
              and "dangerous" not in line and line.strip()]
    assert proc.returncode == 0 and not errors, f"tshark failed on {path}: {proc.stderr}"
    frames = []
    for packet in json.loads(proc.stdout or "[]"):
        layers = packet["_source"]["layers"]
        raw = layers.get("wpan_raw")
        wpan = bytes.fromhex(raw[0]) if raw else b""
        tap = layers.get("wpan-tap", {})
        fcs_ok = _walk(layers.get("wpan", {}), "wpan.fcs_ok")
        fcs_type = _walk(tap, "wpan-tap.fcs_type")
        channel = _walk(tap, "wpan-tap.ch_num")
        page = _walk(tap, "wpan-tap.ch_page")
        frames.append(TsharkFrame(
            wpan=wpan,
            fcs_ok=None if fcs_ok is None else fcs_ok in ("1", "True", True),
            tap_fcs_type=None if fcs_type is None else int(fcs_type),
            tap_channel=None if channel is None else int(channel),
            tap_page=None if page is None else int(page),
            epoch_s=str(_walk(layers.get("frame", {}), "frame.time_epoch")),
        ))
    return frames


def tshark_count(tshark: str, path: Path) -> int:
    """Number of frames tshark reads from ``path`` (asserting it reads it cleanly)."""
    proc = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"tshark failed on {path}: {proc.stderr}"
    return len(proc.stdout.split())
