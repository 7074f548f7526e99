"""Rig and lab files: validation with file, line and field; secrets permissions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hanlab.config import load_lab, load_rig, normalise_eui64
from hanlab.errors import ConfigError
from hanlab.frames import Band
from hanlab.sources.pcap_replay import PcapReplaySettings

GOOD = """\
name: rig-a
ch_variant: dual_band
devices:
  - role: ESME
    eui64: 00:0d:6f:00:0a:bc:de:f0
  - role: GSME
    eui64: 000D6F000ABCDEF1
    band: subGHz
sniffers:
  - id: s24
    driver: pcap
    channel: 15
    settings: {file: cap.pcapng, pace: fast}
  - id: s868
    driver: pcap
    page: 28
    channel: 3
    settings: {file: ABS/cap.pcapng}
capture:
  folder: out
"""


def write(tmp_path: Path, text: str, name: str = "rig.yaml") -> Path:
    """Write a rig file; the captures GOOD replays (relative and absolute) exist."""
    (tmp_path / "abs").mkdir(exist_ok=True)
    for capture in (tmp_path / "cap.pcapng", tmp_path / "abs" / "cap.pcapng"):
        capture.touch()
    path = tmp_path / name
    path.write_text(text.replace("ABS/", f"{tmp_path / 'abs'}/"))
    return path


def test_good_rig_loads_with_resolved_paths(tmp_path: Path) -> None:
    rig, settings = load_rig(write(tmp_path, GOOD))
    assert rig.devices[0].eui64 == "00-0D-6F-00-0A-BC-DE-F0"
    assert rig.devices[1].band is Band.SUB_GHZ
    assert [s.band for s in rig.sniffers] == [Band.GHZ_2_4, Band.SUB_GHZ]
    assert rig.capture.folder == tmp_path / "out"
    s24 = settings["s24"]
    assert isinstance(s24, PcapReplaySettings)
    assert s24.file == tmp_path / "cap.pcapng" and s24.pace == "fast"
    assert settings["s868"].file == tmp_path / "abs" / "cap.pcapng"


def test_every_problem_is_reported_with_line_and_field(tmp_path: Path) -> None:
    bad = (GOOD.replace("channel: 15", "channel: 40")
           .replace("role: GSME", "role: GASMETER")
           .replace("pace: fast", "pace: quick"))
    with pytest.raises(ConfigError) as info:
        load_rig(write(tmp_path, bad))
    problems = info.value.problems
    path = tmp_path / "rig.yaml"
    assert any(p.startswith(f"{path}:6: devices.1.role:") for p in problems), problems
    assert any(p.startswith(f"{path}:10: sniffers.0:") and "channel 40" in p
               for p in problems), problems


def test_driver_settings_errors_name_the_setting(tmp_path: Path) -> None:
    bad = GOOD.replace("pace: fast", "pace: quick")
    with pytest.raises(ConfigError) as info:
        load_rig(write(tmp_path, bad))
    assert any("sniffers.0.settings.pace" in p and ":13:" in p for p in info.value.problems)


def test_single_band_rig_refuses_sub_ghz_devices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="single band"):
        load_rig(write(tmp_path, GOOD.replace("dual_band", "single_band")))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rig.yaml:3: invalid YAML: found character"):
        load_rig(write(tmp_path, "name: x\nsniffers:\n\t- id: a\n"))


def test_unknown_driver_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sniffers.0.driver: unknown sniffer driver 'usrp'"):
        load_rig(write(tmp_path, GOOD.replace("driver: pcap", "driver: usrp", 1)))


def test_secrets_file_must_be_private(tmp_path: Path) -> None:
    secrets = tmp_path / "rig.keys.yaml"
    secrets.write_text("network_keys: []\n")
    secrets.chmod(0o644)
    path = write(tmp_path, GOOD + "secrets: rig.keys.yaml\n")
    with pytest.raises(ConfigError, match="chmod 600"):
        load_rig(path)
    secrets.chmod(0o600)
    rig, _ = load_rig(path)
    assert rig.secrets == secrets


def test_lab_collects_problems_of_every_rig(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("rig-a", "rig-b").replace("channel: 15", "channel: 9"), "b.yaml")
    lab_path = write(tmp_path, "name: lab1\nrigs: [a.yaml, b.yaml, c.yaml]\n", "lab.yaml")
    with pytest.raises(ConfigError) as info:
        load_lab(lab_path)
    text = "\n".join(info.value.problems)
    assert "b.yaml:10" in text and "c.yaml: file not found" in text
    lab = load_lab(write(tmp_path, "name: lab1\nrigs: [a.yaml]\n", "lab.yaml"))
    assert [r.name for r in lab.rigs] == ["rig-a"] and lab.config.broker.embedded


def test_eui64_forms() -> None:
    assert normalise_eui64("90b3d51f30010000") == "90-B3-D5-1F-30-01-00-00"
    with pytest.raises(ValueError, match="not an EUI-64"):
        normalise_eui64("90-B3-D5")


def test_cli_validate_exit_status_and_lines(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD, "good.yaml")
    bad = write(tmp_path, GOOD.replace("channel: 15", "channel: 99"), "bad.yaml")
    ok = subprocess.run([sys.executable, "-m", "hanlab.cli", "rig", "validate", str(good)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "rig rig-a: 2 devices, 2 sniffers: OK" in ok.stdout
    proc = subprocess.run([sys.executable, "-m", "hanlab.cli", "rig", "validate", str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{bad}:10: sniffers.0: ")


def test_repository_rigs_validate() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "rigs").glob("*.yaml")):
        load_lab(path)


def test_lab_duis_section_resolves_paths(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    lab = load_lab(write(tmp_path, (
        "name: lab1\nrigs: [a.yaml]\nduis:\n  endpoint: emulated\n"
        "  xsd: xsd/DUIS.xsd\n  log: out/duis.jsonl\n"
        "  users:\n    - {name: is1, eui64: 90b3d51f30010000, role: IS,\n"
        "       key_file: k/is.key, certificate_file: /pki/is.pem}\n"), "lab.yaml"))
    assert lab.config.duis is not None
    assert lab.config.duis.xsd == tmp_path / "xsd/DUIS.xsd"
    assert lab.config.duis.log == tmp_path / "out/duis.jsonl"
    (user,) = lab.config.duis.users
    assert user.key_file == tmp_path / "k/is.key"
    assert user.certificate_file == Path("/pki/is.pem")


def test_misspelt_fields_in_plain_words_with_did_you_mean(tmp_path: Path) -> None:
    """Issue 14 item 7: no pydantic wording; the closest known field is named."""
    bad = (GOOD.replace("    channel: 15", "    chanel: 15")
           .replace("  folder: out", "  folder: out\n  rotate_sise_mb: 3")
           + "secret: x.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_rig(write(tmp_path, bad))
    path = tmp_path / "rig.yaml"
    assert info.value.problems == [
        f"{path}:12: sniffers.0.chanel: unknown field (did you mean 'channel'?)",
        f"{path}:21: capture.rotate_sise_mb: unknown field (did you mean 'rotate_size_mb'?)",
        f"{path}:22: secret: unknown field (did you mean 'secrets'?)",
    ]
    settings_bad = GOOD.replace("pace: fast", "pase: fast, scale: -1")
    with pytest.raises(ConfigError) as info:
        load_rig(write(tmp_path, settings_bad))
    assert sorted(p.split(": ", 1)[1] for p in info.value.problems) == [
        "sniffers.0.settings.pase: unknown field (did you mean 'pace'?)",
        "sniffers.0.settings.scale: must be greater than 0",
    ]
    text = "\n".join(info.value.problems)
    assert "Extra inputs" not in text and "Value error" not in text
    assert "Input should" not in text


def test_replay_file_must_exist(tmp_path: Path) -> None:
    """Issue 14 item 3: a replay rig whose file does not exist fails to load."""
    path = write(tmp_path, GOOD.replace("file: cap.pcapng", "file: missing.pcapng"))
    with pytest.raises(ConfigError) as info:
        load_rig(path)
    assert info.value.problems == [
        f"{path}:13: sniffers.0.settings.file: {tmp_path / 'missing.pcapng'}: file not found"]
    proc = subprocess.run([sys.executable, "-m", "hanlab.cli", "rig", "validate", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == info.value.problems[0]
