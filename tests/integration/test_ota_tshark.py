"""The OTA Upgrade cluster as ``hanlab decode`` shows it agrees with tshark's
``zbee_zcl_general.ota.*`` fields, frame by frame, on an emulated transfer to an ESME
(2.4 GHz) and a GSME (sub-GHz); the Image Block Responses cover the whole image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hanlab.frames import Band
from tests.integration.ota_util import run_ota_capture, tshark_rows

TSHARK = ["frame.number", "zbee_zcl_general.ota.cmd.srv_tx.id",
          "zbee_zcl_general.ota.cmd.srv_rx.id", "zbee_zcl_general.ota.status",
          "zbee_zcl_general.ota.manufacturer_code", "zbee_zcl_general.ota.image.type",
          "zbee_zcl_general.ota.file.version", "zbee_zcl_general.ota.file.offset",
          "zbee_zcl_general.ota.data_size", "zbee_zcl_general.ota.max_data_size",
          "zbee_zcl_general.ota.image.size"]


def _num(text: str) -> int | None:
    return None if text == "" else int(text.split(",")[0], 0)


def _hanlab_rows(capture: Path, keys: Path) -> dict[int, dict[str, object]]:
    out = subprocess.run([sys.executable, "-m", "hanlab.cli", "decode", str(capture),
                          "--keys", str(keys), "--json", "--filter", "aps.cluster=0x0019"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return {int(str(r["index"])) + 1: r for r in rows if "ota.command" in r}


def test_decode_agrees_with_tshark(tshark: str, tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path)
    for band in Band:
        theirs = tshark_rows(tshark, run.captures[band], run.wireshark_dir,
                             "zbee_aps.cluster==0x0019", *TSHARK)
        fragments = [r for r in theirs if not (r[1] or r[2])]  # first APS fragments
        theirs = [r for r in theirs if r[1] or r[2]]
        assert fragments, "a 64-octet block does not fit one PSDU: APS-fragmented"
        ours = _hanlab_rows(run.captures[band], run.keys)
        assert len(theirs) == len(ours) > 60, band
        offsets = []
        for row in theirs:
            number, tx, rx, status, mfr, itype, version, offset, size, max_size, image = row
            mine = ours[int(number)]
            assert _num(tx if tx else rx) == mine["zcl.cmd"], row
            for value, key in ((status, "ota.status"), (offset, "ota.file_offset"),
                               (size, "ota.data_size_octets"),
                               (max_size, "ota.max_data_size_octets"),
                               (image, "ota.image_size_octets")):
                assert _num(value) == mine.get(key), (row, key, mine)
            for value, key in ((mfr, "ota.manufacturer_code"), (itype, "ota.image_type"),
                               (version, "ota.file_version")):
                have = mine.get(key)
                assert _num(value) == (None if have is None else int(str(have), 16)), (row, key)
            if mine["ota.command"] == "ImageBlockResponse":
                offsets.append((int(offset), int(size)))
        # The blocks tshark shows cover the image, in order, without a gap.
        image_octets = {int(str(r["ota.image_size_octets"])) for r in ours.values()
                        if "ota.image_size_octets" in r}
        assert len(image_octets) == 1
        covered = 0
        for offset, size in offsets:
            assert offset <= covered
            covered = max(covered, offset + size)
        assert covered == image_octets.pop()
