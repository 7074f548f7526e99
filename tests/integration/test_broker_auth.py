"""MQTT access (issue 14 item 17), over real TCP on 127.0.0.1: the embedded broker with the
user of the lab's secrets file, anonymous clients that may watch but not fake a retained
``status``, the secrets loaded from a lab file into the publisher.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from hanlab.config.loader import load_lab
from hanlab.errors import BadInputError
from hanlab.events.broker import EmbeddedBroker
from hanlab.events.bus import EventBus
from hanlab.events.mqtt import MqttPublisher
from tests.integration.conftest import free_port

PASSWORD = "correct horse battery staple"
STATUS = "hanlab/v1/lab/rig-a/status"


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(free_port(), username="hanlab", password=PASSWORD) as started:
        yield started


async def _retained(port: int, topic: str, wait_s: float = 0.5) -> list[bytes]:
    """The retained messages of ``topic`` an anonymous subscriber gets."""
    got: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier="watcher") as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(wait_s):
                async for message in client.messages:
                    got.append(bytes(message.payload))  # type: ignore[arg-type]
        except TimeoutError:
            pass
    return got


async def test_anonymous_clients_watch_but_cannot_fake_the_status(
    broker: EmbeddedBroker,
) -> None:
    """Before: anyone on the host could publish a retained ``status`` to the embedded
    broker. Now only the secrets file's user publishes; anonymous clients still watch."""
    async with aiomqtt.Client("127.0.0.1", broker.port, username="hanlab",
                              password=PASSWORD, identifier="rig") as rig:
        await rig.publish(STATUS, b'{"state": "online"}', qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="intruder") as intruder:
        await intruder.publish(STATUS, b'{"state": "offline", "fake": true}', qos=1,
                               retain=True)
    assert await _retained(broker.port, STATUS) == [b'{"state": "online"}']


@pytest.mark.parametrize("password", ["wrong", ""])
async def test_wrong_password_is_refused(broker: EmbeddedBroker, password: str) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.port, username="hanlab",
                                  password=password, identifier="guess", timeout=5):
            pass


async def test_without_a_user_anonymous_clients_publish() -> None:
    """No user configured (no secrets): as before, anyone on loopback publishes, and a
    client that brings credentials is not turned away."""
    async with EmbeddedBroker(free_port()) as open_broker:
        async with aiomqtt.Client("127.0.0.1", open_broker.port, identifier="anon") as anon:
            await anon.publish(STATUS, b"anonymous", qos=1, retain=True)
        async with aiomqtt.Client("127.0.0.1", open_broker.port, username="hanlab",
                                  password="any", identifier="rig"):
            pass
        assert await _retained(open_broker.port, STATUS) == [b"anonymous"]


def test_anonymous_broker_only_on_loopback() -> None:
    with pytest.raises(BadInputError, match="loopback"):
        EmbeddedBroker(1883, "0.0.0.0")
    with pytest.raises(BadInputError, match="both"):
        EmbeddedBroker(1883, username="hanlab")
    EmbeddedBroker(1883, "0.0.0.0", username="hanlab", password=PASSWORD)


RIG = ("name: rig-a\nsniffers:\n  - {id: s1, driver: pcap, channel: 11, "
       "settings: {file: x.pcap}}\n")


async def test_lab_secrets_give_the_publisher_and_the_broker_their_password(
    tmp_path: Path,
) -> None:
    """A lab file naming a secrets file with ``mqtt: {username, password}``: the loader
    attaches the password to the broker settings (never dumped), the embedded broker
    requires it and the rig's publisher uses it."""
    port = free_port()
    (tmp_path / "rig.yaml").write_text(RIG)
    (tmp_path / "x.pcap").write_bytes(b"")  # the replay file must exist (rig validation)
    secrets = tmp_path / "lab.secrets.yaml"
    secrets.write_text(f"mqtt: {{username: hanlab, password: {json.dumps(PASSWORD)}}}\n"
                       "network_keys: []\n")
    secrets.chmod(0o600)
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(f"name: lab\nrigs: [rig.yaml]\nsecrets: lab.secrets.yaml\n"
                        f"broker: {{port: {port}}}\n")
    lab = load_lab(lab_file)
    assert lab.config.broker.username == "hanlab" and lab.config.broker.password == PASSWORD
    assert PASSWORD not in repr(lab.config) + lab.config.model_dump_json()
    bus = EventBus()
    publisher = MqttPublisher(bus.subscribe("mqtt", frames=False), lab.config.broker,
                              "lab", "rig-a")
    async with EmbeddedBroker.for_config(lab.config.broker):
        run = asyncio.create_task(publisher.run())
        await bus.close()
        async with asyncio.timeout(10):
            await run
        assert publisher.connects == 1 and publisher.published == 2
        retained = await _retained(port, STATUS)
    assert [json.loads(m)["state"] for m in retained] == ["offline"]


def test_username_without_a_password_is_a_config_error(tmp_path: Path) -> None:
    from hanlab.errors import ConfigError

    (tmp_path / "rig.yaml").write_text(RIG)
    (tmp_path / "x.pcap").write_bytes(b"")  # the replay file must exist (rig validation)
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text("name: lab\nrigs: [rig.yaml]\nbroker: {username: hanlab}\n")
    with pytest.raises(ConfigError, match=r"mqtt\.password"):
        load_lab(lab_file)
