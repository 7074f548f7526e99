"""Every corpus capture through ``hanlab capture``: tshark reads the output without error,
with the same frames, byte-identical PSDUs and the right TAP channel and page (issue 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS_DIR
from tests.tshark_util import read_with_tshark

CAPTURES = sorted(
    p.name for p in (CORPUS_DIR / "captures").glob("*.pcap*")
    if p.name != "zigator__00-wrong-data-link-type.pcap"
) if (CORPUS_DIR / "captures").is_dir() else ["(corpus missing)"]


def run_capture(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``hanlab`` CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "hanlab.cli", "capture", *args],
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_tshark_reading_of_input(
    name: str, captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    source = captures_dir / name
    proc = run_capture("--source", f"pcap:{source}", "--out", str(tmp_path), "--rig", "t")
    assert proc.returncode == 0, proc.stderr
    outputs = sorted(tmp_path.glob("*.pcapng"))
    assert len(outputs) == 1, outputs
    assert outputs[0].name.startswith("t_2.4GHz_")

    expected = [f for f in read_with_tshark(tshark, source) if f.wpan]
    got = read_with_tshark(tshark, outputs[0])
    assert len(got) == len(expected)
    input_is_tap = any(f.tap_channel is not None for f in expected)
    for i, (inp, out) in enumerate(zip(expected, got, strict=True)):
        # tshark's wpan bytes are the MAC frame without the FCS: the PSDU
        assert out.wpan == inp.wpan, f"frame {i + 1}: {out.wpan.hex()} != {inp.wpan.hex()}"
        if inp.fcs_ok is not None:
            assert out.fcs_ok == inp.fcs_ok, f"frame {i + 1}: FCS status differs"
        if input_is_tap:
            assert (out.tap_channel, out.tap_page) == (inp.tap_channel, inp.tap_page)
        elif name.startswith("zbtk"):
            assert out.tap_page == 0 and out.tap_channel == 19  # from the ZEP header
        else:
            assert (out.tap_channel, out.tap_page) == (11, 0)  # the CLI's defaults
        assert out.epoch_s == inp.epoch_s, f"frame {i + 1}: timestamp differs"


def test_configured_channel_and_page_reach_the_tap_header(
    captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    source = captures_dir / "attify__hue.pcap"
    proc = run_capture("--source", f"pcap:{source}", "--out", str(tmp_path), "--rig", "sub",
                       "--page", "28", "--channel", "5")
    assert proc.returncode == 0, proc.stderr
    (output,) = tmp_path.glob("sub_subGHz_*.pcapng")
    frames = read_with_tshark(tshark, output)
    assert len(frames) == 14
    assert {(f.tap_page, f.tap_channel) for f in frames} == {(28, 5)}


def test_ethernet_capture_without_802154_is_refused(captures_dir: Path, tmp_path: Path) -> None:
    source = captures_dir / "zigator__00-wrong-data-link-type.pcap"
    proc = run_capture("--source", f"pcap:{source}", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "zigator__00-wrong-data-link-type.pcap" in proc.stderr
    assert "no IEEE 802.15.4 frames" in proc.stderr
    assert proc.stderr.count("\n") <= 3


def test_truncated_capture_keeps_every_frame_before_the_damage(
    captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    whole = (captures_dir / "killerbee__sample_control4-sample.pcap").read_bytes()
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    proc = run_capture("--source", f"pcap:{damaged}", "--out", str(out))
    assert proc.returncode == 2
    assert "damaged.pcap: at byte" in proc.stderr and "truncated" in proc.stderr
    (output,) = out.glob("*.pcapng")
    complete = tshark_frames_before_damage = len(read_with_tshark(tshark, output))
    assert complete > 0
    # tshark reads the damaged input up to the same record and then complains
    tsh = subprocess.run([tshark, "-r", str(damaged), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=False)
    assert len(tsh.stdout.split()) == tshark_frames_before_damage


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_capture("--source", f"pcap:{tmp_path / 'nope.pcap'}", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hanlab: error: {tmp_path / 'nope.pcap'}: file not found"
