"""``hanlab firmware`` as a user runs it (the installed console script, a subprocess):
good files verify; each malformed one gets one clear line and exit status 2."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hanlab.firmware.ota_file import MAX_IMAGE_SIZE_OCTETS, build_ota_file, emulated_payload


def _hanlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hanlab")
    assert exe is not None, "the hanlab console script is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          check=False)


def test_build_add_list_info_verify(tmp_path: Path) -> None:
    out = _hanlab("firmware", "build", "esme.ota", "--model", "emu-esme-a",
                  "--size-octets", "5000", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    added = _hanlab("firmware", "add", "esme.ota", "--model", "emu-esme-a", "--cpl",
                    "CPL-9", "--note", "first", "-c", "cat", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    listed = _hanlab("firmware", "list", "-c", "cat", "--json", cwd=tmp_path)
    entry = json.loads(listed.stdout)
    assert entry["device_model"] == "emu-esme-a" and entry["file_version"] == "0x01010000"
    assert entry["cpl_reference"] == "CPL-9" and entry["size_octets"] == 5000
    info = _hanlab("firmware", "info", "esme.ota", "--json", cwd=tmp_path)
    fields = json.loads(info.stdout)
    assert fields["manufacturer_code"] == "0x1DB1" and fields["signed"] is True
    assert [e["tag"] for e in fields["sub_elements"]] == ["0x0000", "0x0006", "0x0005"]
    ok = _hanlab("firmware", "verify", "-c", "cat", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "1 good, 0 bad"
    (tmp_path / "cat" / "esme.ota").write_bytes(b"\x1e\xf1\xee\x0b" + b"\x00" * 60)
    damaged = _hanlab("firmware", "verify", "-c", "cat", cwd=tmp_path)
    assert damaged.returncode == 2 and "esme.ota: at byte" in damaged.stderr


def _good() -> bytes:
    return build_ota_file(manufacturer_code=0x1DB1, image_type=0x0101,
                          file_version=0x01010000, payload=emulated_payload(600, "c"))


@pytest.mark.parametrize(("name", "data", "line"), [
    ("truncated.ota", _good()[:300], "at byte 52: truncated: Total Image Size 820 but the "
                                     "file has 300 octets"),
    ("magic.ota", b"\xde\xad\xbe\xef" + _good()[4:], "at byte 0: bad magic 0xEFBEADDE"),
    ("size.ota", _good() + b"\x00\x00", "at byte 52: wrong size: Total Image Size 820"),
    ("header.ota", _good()[:6] + struct.pack("<H", 2000) + _good()[8:],
     "at byte 6: truncated: OTA Header Length 2000"),
    ("tag.ota", build_ota_file(manufacturer_code=0x1DB1, image_type=0x0101,
                               file_version=0x01010000, payload=b"x" * 100, sign=False,
                               extra_elements=[(0x0077, b"??")]),
     "at byte 162: unknown sub-element tag 0x0077"),
    ("big.ota", build_ota_file(manufacturer_code=0x1DB1, image_type=0x0101,
                               file_version=0x01010000, sign=False,
                               payload=emulated_payload(MAX_IMAGE_SIZE_OCTETS, "b")),
     "at byte 52: too large"),
], ids=lambda v: v if isinstance(v, str) and v.endswith(".ota") else "")
def test_each_malformed_file_gets_one_line_and_exit_2(tmp_path: Path, name: str, data: bytes,
                                                      line: str) -> None:
    (tmp_path / name).write_bytes(data)
    out = _hanlab("firmware", "verify", name, cwd=tmp_path)
    assert out.returncode == 2
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"hanlab: error: {name}: ")
    assert line in errors[0], errors[0]
    info = _hanlab("firmware", "info", name, cwd=tmp_path)
    if name not in ("tag.ota", "big.ota"):  # those parse; only the checks refuse them
        assert info.returncode == 2 and len(info.stderr.strip().splitlines()) == 1


def test_wrong_device_and_unsigned(tmp_path: Path) -> None:
    (tmp_path / "u.ota").write_bytes(build_ota_file(
        manufacturer_code=0x1DB1, image_type=0x0201, file_version=0x01010000,
        payload=b"x" * 50, sign=False))
    out = _hanlab("firmware", "verify", "u.ota", "--model", "emu-gsme-a", cwd=tmp_path)
    assert out.returncode == 2 and "requires a signed image" in out.stderr
    add = _hanlab("firmware", "add", "u.ota", "--model", "emu-gsme-a", "-c", "c",
                  cwd=tmp_path)
    assert add.returncode == 2 and "no ECDSA signature" in add.stderr
