"""``hanlab firmware transfers`` on emulated captures: per device and image, blocks,
bytes, retries, gaps, missing ranges and throughput per band, the image reassembled and
matched to the catalogue; without keys nothing is claimed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hanlab.emulator.han.ota import OtaSettings
from hanlab.firmware.catalogue import Catalogue
from hanlab.firmware.emulated import emulated_image
from tests.integration.ota_util import ESME, GSME, run_ota_capture


def _transfers(*args: str) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-m", "hanlab.cli", "firmware", "transfers",
                          *args, "--json"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_transfers_reassemble_and_match_the_catalogue(tmp_path: Path) -> None:
    esme_image = emulated_image("emu-esme-a", size_octets=4000)
    gsme_image = emulated_image("emu-gsme-a", size_octets=3000)
    cat_dir = tmp_path / "cat"
    for name, data, model in (("e.ota", esme_image, "emu-esme-a"),
                              ("g.ota", gsme_image, "emu-gsme-a")):
        (tmp_path / name).write_bytes(data)
        Catalogue(cat_dir).add(tmp_path / name, device_model=model)
    run = run_ota_capture(tmp_path, images={ESME: esme_image, GSME: gsme_image},
                          ota=OtaSettings(gsme_window_s=0.5), faults=[
                              {"at_s": 10.5, "kind": "brick", "device": ESME},
                              {"at_s": 18.0, "kind": "unbrick", "device": ESME}])
    found = _transfers(*map(str, run.captures.values()), "--keys", str(run.keys),
                       "-c", str(cat_dir))
    by_device = {t["device_eui64"]: t for t in found}
    assert set(by_device) == {ESME, GSME}
    esme, gsme = by_device[ESME], by_device[GSME]
    assert esme["band"] == "2.4GHz" and gsme["band"] == "subGHz"
    for t, image in ((esme, esme_image), (gsme, gsme_image)):
        assert t["complete"] and t["missing_ranges"] == [] and t["bytes"] == len(image)
        assert t["catalogue_match"] in ("e.ota", "g.ota") and t["upgrade_end_status"] == 0
        assert t["blocks"] == -(-len(image) // 64) and float(str(t["throughput_bps"])) > 0
    assert len(esme["gaps"]) >= 1  # the device went silent mid-transfer (brick)
    truth_blocks = [e for e in run.truth.events if e["event"] == "ota_block"
                    and e["target"] == "GSME-02-02"]
    assert gsme["blocks"] == len({e["file_offset"] for e in truth_blocks})


def test_without_keys_and_incomplete(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path, images={ESME: None}, duration_s=1.0)
    assert _transfers(*map(str, run.captures.values())) == []
    partial = _transfers(*map(str, run.captures.values()), "--keys", str(run.keys))
    assert len(partial) == 1 and not partial[0]["complete"]
    missing = partial[0]["missing_ranges"]
    assert missing and missing[-1][1] == partial[0]["image_size_octets"]  # type: ignore[index]
