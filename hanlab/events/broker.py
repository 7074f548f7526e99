"""The embedded MQTT broker (amqtt) that ``hanlab up`` starts when no broker is configured.

It listens on 127.0.0.1 only and allows anonymous clients, so any MQTT client on the lab
PC (``mosquitto_sub -p 1883 -t 'hanlab/#' -v``) can watch.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from hanlab.errors import BrokerError
from hanlab.resources import StartStop


class EmbeddedBroker(StartStop):
    """An in-process MQTT broker on ``127.0.0.1:port``; an async context manager.

    Raises:
        BrokerError: the port is already in use or the broker cannot start.
    """

    def __init__(self, port: int = 1883, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    async def start(self) -> None:
        """Start listening."""
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise BrokerError(
                    f"embedded MQTT broker cannot listen on {self.host}:{self.port}: "
                    f"{exc.strerror}",
                    hint="another broker runs there: set broker.host/port in the lab file "
                    "to use it, or choose another broker.port",
                ) from exc
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as exc:
            raise BrokerError(f"embedded MQTT broker failed to start: {exc}") from exc

    async def stop(self) -> None:
        """Stop the broker; safe to call twice."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
