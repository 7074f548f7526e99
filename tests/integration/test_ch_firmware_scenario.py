"""The ch-firmware-upgrade scenario (seed 000 DIT.9: the three cases) passes on the emulated
dual-band rig as a job of the lab runtime, and the capture across each CH reboot shows, to
the real tshark with the rig's keys, every device rejoining (NWK Rejoin Request from it and
Rejoin Response to it, or, joining afresh, its Association Request and the APS Transport
Key to it) and its ZCL Tunneling traffic after it; ``hanlab firmware impact --across`` on
the job reads its timings before and after and every device's rejoins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hanlab.emulator.han.nodes import short_address
from hanlab.gbcs.eui64 import Eui64
from tests.integration.lab_util import DUAL, lab_of, run_job, running_lab
from tests.integration.ota_util import tshark_rows

FIELDS = ("frame.time_epoch", "wpan.src16", "wpan.src64", "wpan.dst16", "zbee_nwk.src64",
          "zbee_nwk.dst64", "zbee_nwk.cmd.id", "wpan.cmd", "zbee_aps.cmd.id",
          "zbee_aps.cluster", "zbee_nwk.src", "zbee_nwk.dst")


def _hanlab(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "hanlab.cli", *args], capture_output=True,
                          text=True, check=True, timeout=120).stdout


def _ns(epoch_s: str) -> int:
    whole, _, frac = epoch_s.partition(".")
    return int(whole) * 10**9 + int((frac + "000000000")[:9])


def _eui(text: str) -> str:
    return text.replace(":", "-").upper()


async def test_three_dit9_variants_with_every_rejoin_on_air(tshark: str,
                                                             tmp_path: Path) -> None:
    async with running_lab(lab_of(DUAL), tmp_path) as lab:
        rig = next(iter(lab.runtimes))
        job = await run_job(lab, 300, rig=rig, scenario="ch-firmware-upgrade")
    steps = job["steps"]
    assert job["state"] == "passed", [(s["variant"], s["index"], s["outcome"], s["detail"])
                                      for s in steps if s["status"] != "passed"]
    upgrades = [s for s in steps if s["kind"] == "ch_firmware"]
    assert [(s["variant"], s["ch_upgrade"]["mode"]) for s in upgrades] == [
        ("upgrade-with-devices-connected", "install"),
        ("upgrade-with-devices-connected", "upgrade"),
        ("upgrade-then-new-device", "install"), ("upgrade-then-new-device", "upgrade"),
        ("v11-installed", "install")]
    # the SR 11.2 reads and meter reads after every upgrade were answered
    assert all(s["outcome"] == "I0" for s in steps if s["kind"] == "sr")
    keys = tmp_path / "keys.yaml"
    _hanlab("keys", "emulated", str(DUAL), "-o", str(keys))
    config = tmp_path / "wireshark"
    config.mkdir()
    (config / "zigbee_pc_keys").write_text(_hanlab("keys", "export-wireshark", str(keys)))
    rows = []
    for capture in job["captures"]:
        rows += [dict(zip(FIELDS, row, strict=False)) for row in tshark_rows(
            tshark, tmp_path / capture, config,
            "zbee_nwk.cmd.id == 6 || zbee_nwk.cmd.id == 7 || wpan.cmd == 1 || zbee_aps.cmd.id == 5 "
            "|| zbee_aps.cluster == 0x0704", *FIELDS)]
    assert rows
    rows.sort(key=lambda r: _ns(r["frame.time_epoch"]))
    for record in (s["ch_upgrade"] for s in upgrades):
        ready_ns = record["ready_ns"]
        assert ready_ns is not None and record["missing"] == []
        after = [r for r in rows if _ns(r["frame.time_epoch"]) >= ready_ns]
        for device in record["devices"]:
            eui = device["eui64"]
            short = f"0x{short_address(Eui64.parse(eui).value):04x}"
            assert device["back"] and device["rejoined_ns"] is not None, device
            if device["method"] == "nwk_rejoin":
                request = [r for r in after if r["zbee_nwk.cmd.id"] == "0x06"
                           and _eui(r["zbee_nwk.src64"]) == eui]
                response = [r for r in after if r["zbee_nwk.cmd.id"] == "0x07"
                            and _eui(r["zbee_nwk.dst64"]) == eui]
                assert request and response, (record["mode"], device["device"])
                assert request[0]["zbee_nwk.src"] == short
                rejoin_ns = _ns(response[0]["frame.time_epoch"])
            else:
                assoc = [r for r in after if r["wpan.cmd"] == "0x01"
                         and _eui(r["wpan.src64"]) == eui]
                assert assoc, (record["mode"], device["device"])
                transport = [r for r in after if r["zbee_aps.cmd.id"] == "0x05"
                             and r["zbee_nwk.dst"] == short]
                assert transport, (record["mode"], device["device"])
                rejoin_ns = _ns(transport[0]["frame.time_epoch"])
            tunnel = [r for r in after if r["zbee_aps.cluster"] == "0x0704"
                      and _ns(r["frame.time_epoch"]) > rejoin_ns and r["zbee_nwk.src"] == short]
            assert tunnel, (record["mode"], device["device"], "no tunnel traffic after")
    # the SE 1.4 ESME verified its trust-centre link key with the R22 CH; 1.2a ones did not
    upgraded = [s["ch_upgrade"] for s in upgrades if s["ch_upgrade"]["mode"] == "upgrade"]
    for record in upgraded:
        verified = {d["se_version"]: d["key_verified"] for d in record["devices"]
                    if d["method"] == "nwk_rejoin"}
        assert verified == {"1.4": True, "1.2a": None}, verified
    # the impact report of the job, split across its upgrades, from the results store
    impact = json.loads(_hanlab("firmware", "impact", "--across", job["id"], "--jobs",
                                str(tmp_path / "jobs"), "--json"))
    assert len(impact["rejoins"]) == 7 and impact["not_back"] == []
    assert all(r["back"] == r["upgrades"] == 2 for r in impact["rejoins"])
    assert {(r["sr_variant"], r["device_role"]) for r in impact["timings"]} == {
        ("4.1.1", "ESME"), ("4.1.1", "GSME")}
