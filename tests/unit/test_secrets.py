"""Secrets files (issue 14 item 17): the format and its loader, the keys file warning of
``hanlab decode --keys``, and errors that name a field but never echo a key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hanlab.config.secrets import load_secrets
from hanlab.errors import BadInputError, ConfigError
from hanlab.zigbee.keyring import Keyring

NETWORK_KEY = "60ccee07009651c60e1f8c1b05562f2c"
ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_secrets_file_has_mqtt_and_keys(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.yaml", f"mqtt: {{username: lab, password: pw}}\n"
                  f"network_keys:\n  - {{key: {NETWORK_KEY}, seq: 0, label: n}}\n")
    secrets = load_secrets(path)
    assert secrets.mqtt is not None and secrets.mqtt.password.get_secret_value() == "pw"
    assert "pw" not in repr(secrets) and "pw" not in secrets.model_dump_json()
    ring = Keyring.load(path)  # the keyring reads the same file, ignoring mqtt
    assert [e.key.hex() for e in ring.network_keys] == [NETWORK_KEY]


@pytest.mark.parametrize("text", [
    f"mqtt: {{password: [{NETWORK_KEY}]}}\n",           # wrong type
    f"mqtt: {{pasword: {NETWORK_KEY}}}\n",              # misspelt field
    f"network_keys: {NETWORK_KEY}\n",                   # not a list
])
def test_secrets_errors_name_the_field_not_the_value(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_secrets(_write(tmp_path / "s.yaml", text))
    assert "mqtt" in str(caught.value) or "network_keys" in str(caught.value)
    assert NETWORK_KEY not in str(caught.value)


@pytest.mark.parametrize("data", [
    {"link_keys": [{"key": NETWORK_KEY, "devices": [NETWORK_KEY]}]},  # key among devices
    {"install_codes": [{"code": "83FED3407A939723A5C6", "device": NETWORK_KEY}]},
    {NETWORK_KEY: 1},                                                 # a key as a field
    {"network_keys": [{"key": NETWORK_KEY[:-2]}]},                     # short key
])
def test_keyring_errors_never_echo_a_key(data: dict[str, object]) -> None:
    """Before: an EUI-64 error quoted the value, which may be a misplaced key."""
    with pytest.raises(BadInputError) as caught:
        Keyring.from_dict(data, source="k.yaml")
    message = str(caught.value)
    assert message.startswith("k.yaml: ")
    assert NETWORK_KEY[:16] not in message, message


def _hanlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hanlab.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120, cwd=ROOT)


def test_keys_file_readable_by_others_gets_one_warning_line(
    tmp_path: Path, corpus_dir: Path
) -> None:
    """``hanlab decode --keys`` (and ``keys export-wireshark``) on a keys file anyone can
    read: one ``warning:`` line on stderr with the fix, then the command does its job."""
    keys = _write(tmp_path / "k.yaml", f"network_keys: [{{key: {NETWORK_KEY}}}]\n", 0o644)
    capture = corpus_dir / "captures" / "zbtk__examples_trace.pcap"
    for args in (("decode", str(capture), "--keys", str(keys)),
                 ("keys", "export-wireshark", str(keys))):
        run = _hanlab(*args)
        assert run.returncode == 0, run.stderr
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("warning: ")
        assert f"chmod 600 {keys}" in lines[0] and NETWORK_KEY not in run.stderr
    keys.chmod(0o600)
    assert _hanlab("keys", "export-wireshark", str(keys)).stderr == ""
