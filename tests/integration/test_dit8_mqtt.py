"""DIT.8 live (issue 13 item 4): ``hanlab up`` on the emulated dual-band rig with low
duty-cycle thresholds publishes ``dutycycle`` events to a real mosquitto, each at the
instant and with the Alert Code of a CH state change, retained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.conftest import Mosquitto
from tests.integration.mqtt_watch import Watcher

ROOT = Path(__file__).resolve().parents[2]


def test_up_publishes_dutycycle_state_changes(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rig = yaml.safe_load((ROOT / "rigs" / "emulated-dual-band.yaml").read_text())
    han = rig["sniffers"][0]["settings"]["han"]
    han["duty_cycle"] = {"window_s": 4.0, "limited_pct": 0.2, "critical_pct": 0.4,
                         "regulated_pct": 50.0}
    han["traffic"]["interval_s"] = 0.2
    for sniffer in rig["sniffers"]:
        sniffer["settings"] = rig["sniffers"][0]["settings"]
    rig["capture"] = {"folder": str(tmp_path / "out")}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig))
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: dit8lab\nrigs: [rig.yaml]\n"
                   f"broker: {{host: 127.0.0.1, port: {mosquitto.port}}}\n")
    watcher = Watcher(mosquitto.port)
    try:
        proc = subprocess.run([sys.executable, "-m", "hanlab.cli", "up", str(lab), "--quiet",
                               "--duration", "8"], capture_output=True, text=True,
                              timeout=90, check=False, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        watcher.wait_for(lambda msgs: any(
            m.payload.get("kind") == "status" and m.payload["state"] == "offline"
            for m in msgs))
    finally:
        watcher.close()
    changes = [p for p in watcher.of_kind("dutycycle") if p["transmitter"] == "CH"]
    assert changes, [p.get("kind") for p in watcher.messages[:20]]
    first = changes[0]
    assert (first["old"], first["new"], first["alert_code"]) == ("Normal", "Limited", "0x8F20")
    assert first["thresholds"]["window_s"] == 4.0 and first["schema"] == 1
    assert first["lab"] == "dit8lab" and first["rig"] == "emulated-dual-band"
    ups = {"Limited": "0x8F20", "Critical": "0x8F22", "Regulated": "0x8F24"}
    downs = {"Limited": "0x8F21", "Critical": "0x8F23", "Regulated": "0x8F25"}
    for change in changes:
        rank = ["Normal", "Limited", "Critical", "Regulated"]
        rising = rank.index(change["new"]) > rank.index(change["old"])
        assert change["alert_code"] == (ups[change["new"]] if rising
                                        else downs[change["old"]])
