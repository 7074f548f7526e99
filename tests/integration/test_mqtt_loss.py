"""Events dropped from a full MQTT buffer are reported, against a real mosquitto
(issue 14 item 13): ``mqtt_dropped`` in every ``stats`` payload, one ``loss`` event once
the broker is back, and ``MqttPublisher.dropped`` for the exit summary."""

from __future__ import annotations

import asyncio

from hanlab.config.models import BrokerConfig
from hanlab.events.bus import BusEvent, EventBus
from hanlab.events.mqtt import MqttPublisher
from tests.integration.conftest import Mosquitto
from tests.integration.mqtt_watch import Received, Watcher

BUFFER_EVENTS = 10
STATS_EVENTS = 30


async def test_dropped_events_are_reported_once_the_broker_is_back(
        mosquitto: Mosquitto) -> None:
    watcher = await asyncio.to_thread(Watcher, mosquitto.port, "hanlab-test-loss")
    bus = EventBus()
    publisher = MqttPublisher(
        bus.subscribe("mqtt", frames=False),
        BrokerConfig(host="127.0.0.1", port=mosquitto.port, buffer_events=BUFFER_EVENTS,
                     reconnect_max_s=0.2),
        "testlab", "r1")
    task = asyncio.create_task(publisher.run())
    try:
        await asyncio.to_thread(watcher.wait_for, lambda msgs: any(
            m.payload.get("kind") == "status" for m in msgs))
        await asyncio.to_thread(mosquitto.stop)
        for i in range(STATS_EVENTS):
            bus.publish_nowait(BusEvent("stats", {"sniffer": "s1", "frames": i}))
        async with asyncio.timeout(10):
            while publisher.dropped < STATS_EVENTS - BUFFER_EVENTS:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        dropped_while_away = publisher.dropped
        assert publisher.dropped_reported == 0
        await asyncio.to_thread(mosquitto.start)

        def has_loss(msgs: list[Received]) -> bool:
            return any(m.payload.get("kind") == "loss" for m in msgs)

        await asyncio.to_thread(watcher.wait_for, has_loss)
        await bus.close()
        async with asyncio.timeout(20):
            await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(watcher.close)
    dropped = dropped_while_away
    assert publisher.dropped == dropped
    (loss,) = watcher.of_kind("loss")
    assert loss["mqtt_dropped"] == loss["mqtt_dropped_total"] == dropped
    assert loss["seq_last_lost"] - loss["seq_first_lost"] + 1 == dropped
    assert publisher.dropped_reported == publisher.dropped == dropped
    stats = watcher.of_kind("stats")
    assert stats and all("mqtt_dropped" in p for p in stats)
    assert stats[-1]["mqtt_dropped"] == dropped
    # every event not dropped arrived; the lost seq range is exactly what is missing
    seqs = {p["seq"] for p in (m.payload for m in watcher.messages) if "seq" in p}
    lost = set(range(loss["seq_first_lost"], loss["seq_last_lost"] + 1))
    assert seqs.isdisjoint(lost) and seqs | lost == set(range(1, max(seqs) + 1))
