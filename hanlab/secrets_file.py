"""Checks of secrets files (keys, install codes, broker credentials) that cost no imports:
the mode check the loader and ``hanlab rig validate`` report, and the one-line warning
``hanlab decode --keys`` prints (issue 14 item 17).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from hanlab.zigbee.keyring import Keyring


def check_secrets_file(path: Path) -> list[str]:
    """Problems with a secrets file: missing, or readable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return [f"{path}: secrets file cannot be read: {exc.strerror}"]
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"{path}: secrets file is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"]
    return []


def load_keys_file(path: Path) -> Keyring:
    """A keys (or secrets) file as a :class:`Keyring`, after one ``warning:`` line on
    stderr if group or others can read it (``hanlab decode --keys``, ``hanlab keys
    export-wireshark``); a missing file is left to :meth:`Keyring.load` to report.

    Raises:
        BadInputError: unreadable file or invalid entry (field named, value never shown).
    """
    if path.exists():
        for problem in check_secrets_file(path):
            sys.stderr.write(f"warning: {problem}\n")
    return Keyring.load(path)
