"""How a client on the same host finds a running daemon (issue 9, item 4: discovery).

Each daemon writes one state file while it runs, mode 600::

    $XDG_RUNTIME_DIR/hanlab/daemons/<lab>-<pid>.json   (else ~/.local/state/hanlab/daemons/)
    {"schema": 1, "lab": "default", "pid": 1234, "host": "pc-3",
     "url": "http://127.0.0.1:8470", "rigs": ["emulated-single-band", ...],
     "tokens_file": "/home/u/.local/state/hanlab/api-tokens.json", "started_ns": ...}

and removes it on a clean stop. :func:`find_daemons` skips (and deletes) the files of
processes that are gone, so a crashed daemon leaves nothing behind for long. Hosts of one
lab find each other's daemons from the broker's retained ``status`` instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hanlab.errors import HanlabError

__all__ = ["DaemonInfo", "daemon_for_rig", "find_daemons", "pid_alive", "remove_state",
           "state_folder", "write_state"]

_log = logging.getLogger(__name__)

SCHEMA: Final = 1
_MAX_FILE_BYTES: Final = 1 << 20


class _StateModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_: int = Field(SCHEMA, alias="schema")
    lab: str = Field(min_length=1, max_length=200)
    pid: int = Field(gt=0)
    host: str = Field(max_length=255)
    url: str = Field(min_length=1, max_length=2000)
    rigs: list[str] = Field(default_factory=list, max_length=10000)
    tokens_file: str | None = None
    started_ns: int = Field(ge=0)


@dataclass(frozen=True)
class DaemonInfo:
    """A running daemon as its state file says.

    Attributes:
        lab: the lab's name.
        pid: the daemon's process id (on this host).
        host: the host name it runs on.
        url: its control API, e.g. ``http://127.0.0.1:8470``.
        rigs: the names of its rigs.
        tokens_file: its API tokens file, or ``None`` if the daemon did not say.
        started_ns: when it started, ns since the UNIX epoch.
        path: the state file.
    """

    lab: str
    pid: int
    host: str
    url: str
    rigs: tuple[str, ...]
    tokens_file: Path | None
    started_ns: int
    path: Path


def state_folder() -> Path:
    """``$XDG_RUNTIME_DIR/hanlab/daemons`` where that is set to a folder, else
    ``~/.local/state/hanlab/daemons``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute() and Path(runtime).is_dir():
        return Path(runtime) / "hanlab" / "daemons"
    return Path.home() / ".local" / "state" / "hanlab" / "daemons"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (``os.kill(pid, 0)``; a process of
    another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def write_state(lab: str, url: str, rigs: Sequence[str], tokens_file: Path | None, *,
                started_ns: int | None = None, folder: Path | None = None) -> Path:
    """Write this process's state file (atomically, mode 600; the folder is created
    mode 700); its path, to give to :func:`remove_state` on stop.

    Args:
        lab: the lab's name; url: the bound control API URL (``ApiServer.url``);
        rigs: rig names; tokens_file: the API tokens file;
        started_ns: when the daemon started (default now), ns since the UNIX epoch;
        folder: default :func:`state_folder`.

    Raises:
        HanlabError: the folder or file cannot be written.
    """
    folder = folder if folder is not None else state_folder()
    pid = os.getpid()
    document = {
        "schema": SCHEMA, "lab": lab, "pid": pid, "host": socket.gethostname(), "url": url,
        "rigs": list(rigs), "tokens_file": str(tokens_file) if tokens_file else None,
        "started_ns": started_ns if started_ns is not None else time.time_ns(),
    }
    safe_lab = "".join(c if c.isalnum() or c in "._-" else "_" for c in lab)[:100] or "lab"
    path = folder / f"{safe_lab}-{pid}.json"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{safe_lab}-{pid}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:  # mkstemp: mode 600
                json.dump(document, file, indent=1)
                file.write("\n")
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as error:
        raise HanlabError(f"cannot write the daemon state file in {folder}: {error}",
                          hint="set XDG_RUNTIME_DIR to a writable folder") from error
    return path


def remove_state(path: Path) -> None:
    """Delete a state file; nothing if it is already gone."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _read(path: Path) -> DaemonInfo | None:
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise ValueError("larger than 1 MiB")
        model = _StateModel.model_validate(json.loads(data.decode("utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError, ValidationError) as error:
        detail = (f"{len(error.errors())} invalid field(s)" if isinstance(error, ValidationError)
                  else str(error))
        _log.warning("skipping unreadable daemon state file %s: %s", path, detail)
        return None
    return DaemonInfo(
        lab=model.lab, pid=model.pid, host=model.host, url=model.url, rigs=tuple(model.rigs),
        tokens_file=Path(model.tokens_file) if model.tokens_file else None,
        started_ns=model.started_ns, path=path)


def find_daemons(folder: Path | None = None) -> list[DaemonInfo]:
    """The daemons running on this host, oldest first; state files of processes that
    are gone are deleted, unreadable ones skipped (with a warning in the log).

    Args:
        folder: default :func:`state_folder`.
    """
    folder = folder if folder is not None else state_folder()
    try:
        paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    except OSError:
        return []
    found: list[DaemonInfo] = []
    for path in paths:
        info = _read(path)
        if info is None:
            continue
        if not pid_alive(info.pid):
            _log.info("removing the state file of daemon pid %d (gone): %s", info.pid, path)
            remove_state(path)
            continue
        found.append(info)
    found.sort(key=lambda d: (d.started_ns, d.pid))
    return found


def daemon_for_rig(rig: str, folder: Path | None = None) -> DaemonInfo | None:
    """The running daemon on this host that has rig ``rig`` (the newest if several
    claim it), or ``None``."""
    matches = [d for d in find_daemons(folder) if rig in d.rigs]
    return matches[-1] if matches else None
