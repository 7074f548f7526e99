"""The firmware-management scenario (seed 000, Firmware Update and Activation, electricity
and gas) passes on both emulated rigs as jobs of the lab runtime, with a real OTA transfer
on air: SR 11.1 puts the image on the CH, the device pulls it block by block and raises
0x8F72 itself (no stimulus), SR 11.3 activates it (0x8F66) and SR 11.2 reads the new
version back. tshark, with the keys of ``hanlab keys
emulated`` exported by ``hanlab keys export-wireshark``, sees Image Block Responses whose
offsets cover each whole image."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from hanlab.events.bus import BusEvent
from tests.integration.lab_util import DUAL, SINGLE, lab_of, run_job, running_lab
from tests.integration.ota_util import tshark_rows


def _hanlab(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "hanlab.cli", *args], capture_output=True,
                          text=True, check=True, timeout=120).stdout


@pytest.mark.parametrize("rig_file", [DUAL, SINGLE], ids=["dual", "single"])
async def test_firmware_management_with_a_real_transfer(tshark: str, tmp_path: Path,
                                                        rig_file: Path) -> None:
    async with running_lab(lab_of(rig_file), tmp_path) as lab:
        rig = next(iter(lab.runtimes))
        watch = lab.runtimes[rig].bus.subscribe("test-ota", maxsize=200_000, frames=False)
        job = await run_job(lab, 240, rig=rig, scenario="firmware-management")
        side = lab.runtimes[rig].duis
        assert side.dcc.invalid_documents == []
        live = lab.ota(rig)  # the transfers as the rig's live bus saw them
        events = []
        while not watch.queue.empty():
            item = watch.queue.get_nowait()
            if isinstance(item, BusEvent) and item.kind == "ota":
                events.append(item.payload)
    steps = job["steps"]
    assert job["state"] == "passed", [(s["variant"], s["outcome"], s["detail"]) for s in steps]
    waits = [s for s in steps if s["kind"] == "wait"]
    assert [s["outcome"] for s in waits] == ["0x8F72", "0x8F66"] * 2
    assert all(s["stimulus"] is None for s in waits)
    # SR 11.2 after activation reads the version SR 11.1 distributed (the catalogue's).
    reads = [s for s in steps if s.get("sr_variant") == "11.2"]
    assert [(s["status"], s["outcome"]) for s in reads] == [("passed", "I0")] * 2, reads
    keys = tmp_path / "keys.yaml"
    _hanlab("keys", "emulated", str(rig_file), "-o", str(keys))
    config = tmp_path / "wireshark"
    config.mkdir()
    (config / "zigbee_pc_keys").write_text(_hanlab("keys", "export-wireshark", str(keys)))
    sizes: dict[str, int] = {}
    blocks: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for capture in job["captures"]:
        rows = tshark_rows(tshark, tmp_path / capture, config, "zbee_aps.cluster==0x0019",
                           "wpan.dst16", "zbee_zcl_general.ota.cmd.srv_tx.id",
                           "zbee_zcl_general.ota.image.size",
                           "zbee_zcl_general.ota.file.offset",
                           "zbee_zcl_general.ota.data_size")
        for dst, cmd, size, offset, data_size in rows:
            if cmd == "0x02" and size:
                sizes[dst] = int(size)
            elif cmd == "0x05" and offset:
                blocks[dst].append((int(offset), int(data_size)))
    assert len(sizes) == 2, sizes  # an ESME and a GSME
    for dst, image_octets in sizes.items():
        covered = 0
        for offset, size in sorted(blocks[dst]):
            assert offset <= covered
            covered = max(covered, offset + size)
        assert covered == image_octets, dst
    # Live (MQTT ota events, GET /api/v1/rigs/{rig}/ota): each transfer started, went on in
    # 5 % steps and ended SUCCESS with every octet, as tshark saw it afterwards.
    assert sorted(t["device_short"] for t in live) == sorted(sizes)
    for transfer in live:
        assert transfer["event"] == "ended" and transfer["upgrade_end_status"] == 0
        assert transfer["progress"] == 1.0
        assert transfer["image_size_octets"] == sizes[transfer["device_short"]]
        mine = [e for e in events if e["device_short"] == transfer["device_short"]]
        assert mine[0]["event"] == "started" and mine[-1]["event"] == "ended"
        steps_seen = [e["progress"] for e in mine if e["event"] == "progress"]
        assert len(steps_seen) >= 19 and steps_seen == sorted(steps_seen)
    # The same run as SIP#7 Firmware Distribution Tracking: both requests Complete.
    store = tmp_path / "tracking.json"
    _hanlab("firmware", "tracking", "update", "--duis-log", str(tmp_path / job["duis_log"])
            if not Path(job["duis_log"]).is_absolute() else job["duis_log"],
            "--store", str(store), "--keys", str(keys), "--rig", str(rig_file),
            *[str(tmp_path / c) for c in job["captures"]])
    requests = {s["request_id"] for s in steps if s.get("sr_variant") == "11.1"}
    for rid in requests:
        text = _hanlab("firmware", "tracking", "search", "--store", str(store), "--sr-id",
                       rid, "--csv").splitlines()
        row = text[1].split(",")
        assert len(text) == 2 and row[3] == "Firmware Activated" and row[-1] == "Complete"
