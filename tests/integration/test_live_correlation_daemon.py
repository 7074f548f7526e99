"""``hanlab up labs/emulated-duis.yaml`` (issue 5): the supervisor runs the emulated DCC
and DUIS client on the rig's emulated HAN, the rig runner's live correlator is fed the
rig's frames and the DUIS log, and ``exchange`` / ``timings`` go out on MQTT (a real
mosquitto)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hanlab.config.loader import load_lab
from hanlab.config.models import BrokerConfig
from hanlab.daemon.supervisor import LabSupervisor
from hanlab.scenarios import get_scenario
from tests.integration.conftest import Mosquitto
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
    supervisor = LabSupervisor(lab, capture_folder=tmp_path / "captures")
    watcher = Watcher(mosquitto.port)
    ready = asyncio.Event()
    task = asyncio.create_task(supervisor.run(on_duis=lambda _: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        assert supervisor.duis_labs is not None
        emulated = supervisor.duis_labs.labs["emulated-dual-band"]
        async with emulated.runner(lab=config.name) as runner:
            (result,) = await runner.run(get_scenario("meter-reading"),
                                         ["electricity-instantaneous"])
        assert result.passed
        sent = [s.request_id for s in result.steps if s.request_id is not None]
        assert len(sent) == 2
        # each step got its exchange from the rig runner's correlator, exact (all keys)
        assert all(s.match_level == "exact" for s in result.steps if s.request_id)
        await asyncio.to_thread(watcher.wait_for, lambda messages: {
            m.payload.get("request_id") for m in messages
            if m.topic.endswith("/exchange")} >= set(sent), 30)
        supervisor.stop()
        await asyncio.wait_for(task, 60)
        await asyncio.to_thread(watcher.wait_for, lambda messages: any(
            m.topic == "hanlab/v1/emulated-duis/emulated-dual-band/timings"
            and m.payload.get("exchanges", 0) >= 2 for m in messages), 30)
    finally:
        supervisor.stop()
        await asyncio.gather(task, return_exceptions=True)
        watcher.close()
    assert (tmp_path / "duis-emulated-dual-band.jsonl").stat().st_size > 0
    assert {p.name.split("_")[1] for p in (tmp_path / "captures").glob("*.pcapng")} == {
        "2.4GHz", "subGHz"}
