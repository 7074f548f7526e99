"""``hanlab up labs/emulated-duis.yaml`` (issues 5 and 9): the lab runtime runs the
emulated DCC and the DUIS client of the rig on its emulated HAN, a job submitted to it
runs there, the rig's live correlator is fed the rig's frames and the DUIS log, and
``job`` / ``exchange`` / ``timings`` go out on MQTT (a real mosquitto)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hanlab.config.loader import load_lab
from hanlab.config.models import BrokerConfig
from tests.integration.conftest import Mosquitto
from tests.integration.lab_util import finished, running_lab
from tests.integration.mqtt_watch import Watcher

LAB = Path(__file__).resolve().parents[2] / "labs" / "emulated-duis.yaml"


async def test_up_with_emulated_duis_publishes_exchanges(mosquitto: Mosquitto,
                                                         tmp_path: Path) -> None:
    lab = load_lab(LAB)
    duis = lab.config.duis
    assert duis is not None and duis.endpoint == "emulated"
    config = lab.config.model_copy(update={
        "broker": BrokerConfig(host="127.0.0.1", port=mosquitto.port),
        "duis": duis.model_copy(update={"log": tmp_path / "duis.jsonl",
                                        "counter_state_folder": tmp_path / "counters"})})
    lab = lab.model_copy(update={"config": config})
    watcher = Watcher(mosquitto.port)
    try:
        async with running_lab(lab, tmp_path / "captures", mqtt=True) as runtime:
            job = runtime.submit({"rig": "emulated-dual-band", "scenario": "meter-reading",
                                  "variants": ["electricity-instantaneous"]})
            record = await finished(runtime, job["id"])
            assert record["state"] == "passed"
            sent = [s["request_id"] for s in record["steps"] if s["request_id"]]
            assert len(sent) == 2
            # each step got its exchange from the rig's correlator, exact (all keys)
            assert all(s["match_level"] == "exact" for s in record["steps"]
                       if s["request_id"])
            await asyncio.to_thread(watcher.wait_for, lambda messages: {
                m.payload.get("request_id") for m in messages
                if m.topic.endswith("/exchange")} >= set(sent), 30)
        await asyncio.to_thread(watcher.wait_for, lambda messages: any(
            m.topic == "hanlab/v1/emulated-duis/emulated-dual-band/timings"
            and m.payload.get("exchanges", 0) >= 2 for m in messages), 30)
        jobs = [m.payload for m in watcher.messages
                if m.topic == "hanlab/v1/emulated-duis/emulated-dual-band/job"]
        assert jobs[0]["state"] == "queued" and jobs[-1]["state"] == "passed"
        assert {j["id"] for j in jobs} == {job["id"]}
        assert any(j.get("step", {}).get("request_id") == sent[0] for j in jobs)
    finally:
        watcher.close()
    assert (tmp_path / "duis-emulated-dual-band.jsonl").stat().st_size > 0
    assert {p.name.split("_")[1] for p in (tmp_path / "captures").glob("*.pcapng")} == {
        "2.4GHz", "subGHz"}
