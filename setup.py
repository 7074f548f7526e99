"""Build hook: compile the hot modules with mypyc where a C compiler is present (issue 15).

Everything else about the package is in ``pyproject.toml``. The modules listed in
``hanlab/_compiled.py`` are compiled as one mypyc group; when mypyc is missing or the C
compiler fails, the install goes on with the pure-Python modules and says so in one line.
``HANLAB_PURE=1`` at install time skips the compilation.
"""

from __future__ import annotations

import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
COMPILED: dict[str, Any] = runpy.run_path(str(HERE / "hanlab" / "_compiled.py"))
#: mypy settings for the build only: the project's own (strict, with the pydantic plugin)
#: need packages a build environment does not have; mypyc needs the annotations only.
MYPY_CONFIG = "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n" \
              "follow_imports = silent\n"


def notice(text: str) -> None:
    """One line on stderr (pip shows it with ``-v``; the runtime line is what users see)."""
    sys.stderr.write(f"hanlab: {text}\n")


#: the commands pip runs for a build's requirements and metadata, which need no C code
METADATA_COMMANDS = {"egg_info", "dist_info", "sdist"}


class OptionalBuildExt(build_ext):
    """``build_ext`` whose extensions mypyc generates when a build sets it up, and that
    falls back to the pure-Python modules when compiling fails.

    mypyc (type analysis and C generation, about half a minute) runs when this command
    is set up for a build rather than whenever ``setup.py`` is read: pip runs it three
    times for one install (build requirements, metadata, the build), and only the build
    needs the C code.
    """

    def finalize_options(self) -> None:
        # the mypyc extensions in place of the placeholder; none for a metadata step
        # (``egg_info`` sets this command up to list the extensions' sources)
        metadata_only = set(self.distribution.commands) <= METADATA_COMMANDS
        self.distribution.ext_modules = [] if metadata_only else ext_modules()
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers, a compiler error
            notice(f"compiling the codec failed ({exc.__class__.__name__}: {exc}); "
                   f"installing the pure-Python modules (slower)")
            self.extensions = []


def ext_modules() -> list[Any]:
    """The mypyc extensions, or none (pure fallback) with a one-line notice."""
    if os.environ.get(COMPILED["PURE_ENV"], "") not in ("", "0"):
        notice(f"{COMPILED['PURE_ENV']} is set: installing the pure-Python modules")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        notice("mypyc is not available: installing the pure-Python modules (slower)")
        return []
    paths = [str(Path(*m.split(".")).with_suffix(".py")) for m in COMPILED["MODULES"]]
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as config:
        config.write(MYPY_CONFIG)
    try:
        extensions: list[Any] = mypycify(["--config-file", config.name, *paths],
                                         opt_level="3", group_name=COMPILED["GROUP"])
        return extensions
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        notice(f"mypyc could not compile the codec ({exc}); installing the pure-Python "
               f"modules (slower)")
        return []
    finally:
        os.unlink(config.name)


#: stands for the mypyc extensions until ``build_ext`` runs (it makes setuptools run
#: ``build_ext`` at all); it is never built
PLACEHOLDER = Extension(f"{COMPILED['GROUP']}__placeholder", sources=[])

setup(ext_modules=[PLACEHOLDER], cmdclass={"build_ext": OptionalBuildExt})
