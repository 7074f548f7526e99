"""The mypyc-compiled codec against the pure-Python one (issue 15 item 3).

The same command prints the same octets compiled and pure (``HANLAB_PURE=1``), run as
the installed ``hanlab`` a user runs; CI runs the compiled build (a build that silently
fell back to pure Python fails there); and a build without a working C compiler still
installs, with the pure modules and a one-line notice.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hanlab import _compiled
from hanlab.capture.pcapng import PcapngWriter
from hanlab.correlate.simulate import simulate
from hanlab.frames import Band
from tests.conftest import need
from tests.integration.test_cli_errors import _hanlab_command, run_hanlab

ROOT = Path(__file__).resolve().parents[2]
SINOPE = "sinope-zha__TH1123ZB-G2-partie_00005.pcapng"
SINOPE_KEY = "60ccee07009651c60e1f8c1b05562f2c"


def _compiled_here() -> bool:
    """Whether this process runs the compiled modules."""
    return _compiled.pure_reason() is None


def _installed() -> bool:
    """Whether a fresh compiled build is installed (whatever HANLAB_PURE says)."""
    return _compiled.pure_reason(honour_env=False) is None


def test_the_modules_that_run_are_the_ones_status_names() -> None:
    """``pure_reason`` says what the import system really loaded, for every module."""
    compiled = _compiled_here()
    for name in _compiled.MODULES:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert module.__file__.endswith(".py") is not compiled, name
    version = run_hanlab("--version")
    assert version.returncode == 0
    assert ("codec: compiled (mypyc)" in version.stdout) is compiled, version.stdout


def test_ci_runs_the_compiled_codec() -> None:
    """In CI the install must have compiled the codec; its pure pass sets HANLAB_PURE."""
    need(_installed(), "the codec is not compiled here (pip install -e .)")
    if os.environ.get(_compiled.PURE_ENV):
        assert _compiled.pure_reason() == f"{_compiled.PURE_ENV}=1"
    else:
        assert _compiled.pure_reason() is None, _compiled.status()


def _both(*args: str) -> tuple[str, str]:
    """``hanlab ARGS`` compiled and pure: the two standard outputs (each must succeed)."""
    outputs = []
    for pure in ("0", "1"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), **{_compiled.PURE_ENV: pure})
        done = subprocess.run([*_hanlab_command(), *args], capture_output=True, text=True,
                              timeout=300, env=env, check=False, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert "running the pure-Python codec" not in done.stderr  # not a stale build
        outputs.append(done.stdout)
    return outputs[0], outputs[1]


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["one-line", "json"])
def test_compiled_and_pure_decode_print_the_same(captures_dir: Path, tmp_path: Path,
                                                 mode: list[str]) -> None:
    """A real capture with its network key: the same lines, octet for octet."""
    need(_installed(), "the codec is not compiled here (pip install -e .)")
    keys = tmp_path / "keys.yaml"
    keys.write_text(f'network_keys:\n  - {{key: "{SINOPE_KEY}", label: sinope}}\n')
    keys.chmod(0o600)
    compiled, pure = _both("decode", str(captures_dir / SINOPE), "--keys", str(keys), *mode)
    assert compiled.count("\n") == 38_350
    assert "decrypted" in compiled
    assert compiled == pure


def test_compiled_and_pure_agree_on_emulated_gbcs_and_analyse(tmp_path: Path) -> None:
    """APS link keys, fragments, GBCS tunnels and OTA: decode and analyse agree."""
    need(_installed(), "the codec is not compiled here (pip install -e .)")
    run = simulate(120.0, seed=11)
    writers = {band: PcapngWriter(tmp_path / f"{band.value}.pcapng") for band in Band}
    ifaces = {band: w.interface(f"emu-{band.value}", band.value) for band, w in writers.items()}
    for frame in run.frames:
        writers[frame.band].write(ifaces[frame.band], frame)
    for writer in writers.values():
        writer.close()
    keys = tmp_path / "keys.yaml"
    keys.write_text(run.keyring.dump_yaml())
    keys.chmod(0o600)
    files = [str(w.path) for w in writers.values()]
    compiled, pure = _both("decode", *files, "--keys", str(keys), "--json")
    assert '"gbcs.tunnel_command"' in compiled and '"aps.decrypted":true' in compiled
    assert compiled == pure
    log = tmp_path / "duis.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in run.duis_lines))
    compiled, pure = _both("analyse", *files, "--duis-log", str(log), "--keys", str(keys),
                           "--json")
    assert compiled == pure and compiled.strip()


def test_a_build_without_a_c_compiler_installs_the_pure_modules(tmp_path: Path) -> None:
    """``setup.py`` with a compiler that fails: exit 0, one notice, no compiled module."""
    need(importlib.util.find_spec("mypyc") is not None, "mypyc is not installed (pip install mypy)")
    tree = tmp_path / "src"
    tree.mkdir()
    shutil.copytree(ROOT / "hanlab", tree / "hanlab",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    env = dict(os.environ, CC="false", LDSHARED="false")
    env.pop(_compiled.PURE_ENV, None)
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    notices = [line for line in done.stderr.splitlines()
               if line.startswith("hanlab: compiling the codec failed")]
    assert len(notices) == 1, done.stderr[-2000:]
    assert not list((tree / "hanlab").rglob("*.so"))
    status = subprocess.run([sys.executable, "-c",
                             "import hanlab._compiled as c, hanlab.zigbee.mac as m; "
                             "print(c.status(), m.__file__)"],
                            cwd=tree, capture_output=True, text=True, timeout=60, check=True,
                            env={**env, "PYTHONPATH": str(tree)})
    assert status.stdout.startswith("codec: pure Python (not compiled)")
    assert status.stdout.strip().endswith("mac.py")
