"""An independent MQTT client for tests: collects every message of ``hanlab/#`` in a thread.

It uses a persistent session (clean_session False, QoS 1), so messages published while it
is reconnecting after a broker restart are queued for it by the broker.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool
    at: float  # time.monotonic() on receipt


@dataclass
class Watcher:
    """Subscribes to ``hanlab/#`` on 127.0.0.1:port until :meth:`close`."""

    port: int
    client_id: str = "hanlab-test-watch"
    messages: list[Received] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "watcher could not connect"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.client_id,
                                          clean_session=False) as client:
                    await client.subscribe("hanlab/#", qos=1)
                    self.connected.set()
                    async for msg in client.messages:
                        self.messages.append(Received(
                            str(msg.topic), json.loads(bytes(msg.payload)),
                            bool(msg.retain), time.monotonic()))
                        if self._stop.is_set():
                            return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                return

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.messages):
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout_s} s; got {len(self.messages)} "
                             f"messages, last: {[m.payload for m in self.messages[-3:]]}")

    def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "watcher thread did not stop"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages if m.payload.get("kind") == kind]
