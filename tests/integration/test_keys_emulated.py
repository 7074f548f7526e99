"""``hanlab keys emulated``: the keys of an emulated rig decrypt its own capture."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hanlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hanlab.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120, cwd=ROOT)


def test_emulated_rig_keys_decrypt_its_capture(tmp_path: Path) -> None:
    rig = ROOT / "rigs" / "emulated-single-band.yaml"
    run = hanlab("up", str(rig), "--no-mqtt", "--quiet", "--duration", "4",
                 "--out", str(tmp_path / "caps"))
    assert run.returncode == 0, run.stderr
    (capture,) = (tmp_path / "caps").glob("emulated-single-band_2.4GHz_*.pcapng")
    keys = tmp_path / "rig.keys.yaml"
    made = hanlab("keys", "emulated", str(rig), "--out", str(keys))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    without = hanlab("decode", str(capture))
    with_keys = hanlab("decode", str(capture), "--keys", str(keys))
    assert without.returncode == 0 and with_keys.returncode == 0, with_keys.stderr
    assert "nwk:decrypted" not in without.stdout
    assert "nwk:decrypted" in with_keys.stdout and "GBCS" in with_keys.stdout
    uat = hanlab("keys", "export-wireshark", str(keys))
    assert uat.returncode == 0 and uat.stdout.count('"Normal"') >= 1
