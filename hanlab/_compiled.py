"""Which modules are compiled with mypyc, and whether this process runs them (issue 15).

The hot path (the 802.15.4/ZigBee codec, the capture reader and writer, the decode
listing) is plain, fully typed Python. ``pip install`` compiles these modules with mypyc
where a C compiler is present (``setup.py``); the ``.py`` files stay the source, and
where nothing could be compiled they are what runs.

The compiled modules are one mypyc group: they call each other's native code, so a
process runs either all of them compiled or all of them from source. It runs the source
(:class:`SourceFinder`) when ``HANLAB_PURE=1`` is set (how CI tests the pure modules
against the compiled ones), or when a compiled module is missing or older than its
``.py`` (an edited checkout): then one line on stderr says so and how to rebuild.

This module is read by ``setup.py`` without importing :mod:`hanlab`; it uses the standard
library only and is never compiled itself.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: the modules compiled by mypyc, as one group (``setup.py``).
MODULES: tuple[str, ...] = (
    "hanlab.fcs",
    "hanlab.frames",
    "hanlab.phy",
    "hanlab.capture.linktypes",
    "hanlab.capture.pcapng",
    "hanlab.capture.reader",
    "hanlab.zigbee.common",
    "hanlab.zigbee.mac",
    "hanlab.zigbee.nwk",
    "hanlab.zigbee.security",
    "hanlab.zigbee.aps",
    "hanlab.zigbee.zcl",
    "hanlab.zigbee.zcl_tables",
    "hanlab.zigbee.ota",
    "hanlab.zigbee.keyring",
    "hanlab.zigbee.frame",
    "hanlab.zigbee.listing",
    "hanlab.gbcs.eui64",
    "hanlab.gbcs.codes",
    "hanlab.gbcs.message",
    "hanlab.gbcs.tunnel",
    "hanlab.correlate.exchange",
    "hanlab.correlate.events",
    "hanlab.correlate.stats",
    "hanlab.correlate.correlator",
    "hanlab.correlate.offline",
)
#: the mypyc group's shared library (``hanlab/codec__mypyc.*.so``).
GROUP = "hanlab.codec"
#: set to ``1`` to run the pure-Python modules even where compiled ones are installed.
PURE_ENV = "HANLAB_PURE"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _paths(module: str) -> tuple[str, list[str]]:
    """The ``.py`` of ``module`` and the paths its compiled form may have."""
    base = os.path.join(_PACKAGE_DIR, *module.split(".")[1:])
    return base + ".py", [base + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES]


def _built(module: str) -> float | None:
    """The modification time of ``module``'s compiled file, ``None`` if there is none."""
    for path in _paths(module)[1]:
        try:
            return os.stat(path).st_mtime
        except OSError:
            continue
    return None


def pure_reason(*, honour_env: bool = True) -> str | None:
    """Why this process runs the pure-Python modules, or ``None`` when it runs the
    compiled ones.

    The build's time is that of the group's shared library (:data:`GROUP`), which holds
    the code of every module and is rebuilt whenever one changes; each module's own
    compiled file is a small loader that may be older.

    Args:
        honour_env: ``False`` to ignore :data:`PURE_ENV` (is a fresh build installed?).

    Returns:
        ``"HANLAB_PURE=1"``, ``"not compiled"`` (no compiled module installed: a machine
        without a C compiler), or which module is missing or newer than the build.
    """
    if honour_env and os.environ.get(PURE_ENV, "") not in ("", "0"):
        return f"{PURE_ENV}=1"
    built = [_built(m) for m in MODULES]
    if all(t is None for t in built):
        return "not compiled"
    group = _built(GROUP + "__mypyc")
    for module, mtime in zip(MODULES, built, strict=True):
        if mtime is None or group is None:
            return f"{module} was not compiled"
        source = _paths(module)[0]
        try:
            if os.stat(source).st_mtime > group:
                return f"{os.path.relpath(source, os.path.dirname(_PACKAGE_DIR))} changed " \
                       f"after the build"
        except OSError:
            continue
    return None


def status() -> str:
    """One line for ``hanlab --version``: compiled, or pure Python and why."""
    reason = _REASON
    return "codec: compiled (mypyc)" if reason is None else f"codec: pure Python ({reason})"


class SourceFinder:
    """A meta-path finder that loads the compiled modules from their ``.py`` files.

    Installed first on ``sys.meta_path`` by :func:`install` when :func:`pure_reason` is
    not ``None``; every other module is left to the normal finders.
    """

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        """The source spec of a compiled module, ``None`` for any other module."""
        if name not in _MODULE_SET:
            return None
        source = _paths(name)[0]
        if not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(name, source)


_MODULE_SET = frozenset(MODULES)
_REASON: str | None = "not compiled"


def install() -> None:
    """Decide once per process which modules run (called by ``hanlab/__init__.py``).

    A stale or incomplete build (not ``HANLAB_PURE``, not "not compiled") is reported in
    one line on stderr.
    """
    global _REASON
    _REASON = pure_reason()
    if _REASON is None or _REASON == "not compiled":
        return  # the normal finders load the compiled modules, or the only ones there are
    if not any(isinstance(f, SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder())
    if _REASON != "not compiled" and not _REASON.startswith(PURE_ENV):
        sys.stderr.write(f"hanlab: running the pure-Python codec: {_REASON} "
                         f"(rebuild with: pip install -e .)\n")
