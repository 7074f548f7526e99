"""The embedded MQTT broker (amqtt) that ``hanlab up`` starts when no broker is configured.

Access (issue 14 item 17):

* with a user (``mqtt: {username, password}`` in the lab's secrets file): only that user
  may publish; anonymous clients may connect on loopback to watch (subscribe) only, so
  no local process can fake a rig's retained ``status``;
* without one: anonymous clients may publish and subscribe, and the broker refuses to
  listen anywhere but loopback.

Any MQTT client on the lab PC (``mosquitto_sub -p 1883 -t 'hanlab/#' -v``) can watch.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from hanlab.config.models import BrokerConfig
from hanlab.errors import BadInputError, BrokerError
from hanlab.resources import StartStop

_PLUGINS = "hanlab.events.broker_auth"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedBroker(StartStop):
    """An in-process MQTT broker on ``host:port``; an async context manager.

    Args:
        port, host: where to listen (default loopback).
        username, password: the one user allowed to publish (both, or neither: then
            anonymous clients may publish, on loopback only). A secret: never logged.

    Raises:
        BadInputError: only one of username and password, or a host other than loopback
            without a user.
        BrokerError: the port is already in use or the broker cannot start.
    """

    def __init__(self, port: int = 1883, host: str = "127.0.0.1", *,
                 username: str | None = None, password: str | None = None) -> None:
        if (username is None) != (password is None):
            raise BadInputError("embedded MQTT broker: give both username and password, "
                                "or neither")
        if username is None and not _is_loopback(host):
            raise BadInputError(f"embedded MQTT broker on {host}: anonymous access is "
                                "for loopback only", hint="set mqtt: {username, password} "
                                "in the lab's secrets file, or listen on 127.0.0.1")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self._broker: Any = None

    @classmethod
    def for_config(cls, broker: BrokerConfig, host: str = "127.0.0.1") -> EmbeddedBroker:
        """The embedded broker of a lab's ``broker`` settings, with the user and password
        the loader attached from the lab's secrets file (if any)."""
        password = broker.password
        return cls(broker.port, host, username=None if password is None else broker.username,
                   password=password)

    def _plugins(self) -> dict[str, dict[str, object]]:
        """amqtt's plugin configuration (:mod:`hanlab.events.broker_auth`)."""
        config: dict[str, object] = {
            "username": self.username, "password": self._password,
            "allow_anonymous": _is_loopback(self.host)}
        plugins: dict[str, dict[str, object]] = {
            f"{_PLUGINS}.CredentialsAuthPlugin": config}
        if self.username is not None:
            plugins[f"{_PLUGINS}.AnonymousReadOnlyPlugin"] = config
        return plugins

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
            "plugins": self._plugins(),
        }
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as exc:  # never echo the configuration: it holds the password
            raise BrokerError("embedded MQTT broker failed to start: "
                              f"{type(exc).__name__}") from exc

    async def stop(self) -> None:
        """Stop the broker; safe to call twice."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
