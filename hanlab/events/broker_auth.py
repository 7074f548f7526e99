"""amqtt plugins of the embedded broker (:mod:`hanlab.events.broker`; issue 14 item 17).

Imported by amqtt only (by dotted path from the broker's configuration), so importing
:mod:`hanlab.events.broker` does not import amqtt.

* :class:`CredentialsAuthPlugin`: the one configured user with its password (compared in
  constant time), and anonymous clients only when allowed (the broker allows them only on
  loopback).
* :class:`AnonymousReadOnlyPlugin`: with a configured user, anonymous clients may
  subscribe (watch ``hanlab/#``) but not publish, so none can fake a retained ``status``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session


@dataclass
class CredentialsConfig:
    """The plugins' configuration (amqtt fills it from the broker configuration).

    Attributes:
        username, password: the one user; ``None``: no user (anonymous only).
        allow_anonymous: accept clients without a user name.
    """

    username: str | None = None
    password: str | None = None
    allow_anonymous: bool = False


def _is_user(session: Session | None, config: CredentialsConfig) -> bool:
    if session is None or config.username is None or config.password is None:
        return False
    password = session.password or ""
    return session.username == config.username and hmac.compare_digest(
        password.encode() if isinstance(password, str) else bytes(password),
        config.password.encode())


class CredentialsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Accept the configured user, and anonymous clients when allowed; refuse the rest."""

    Config = CredentialsConfig

    async def authenticate(self, *, session: Session) -> bool:
        """Whether ``session`` may connect (MQTT 3.1.1 section 3.1.2.9: user name and
        password of CONNECT)."""
        config: CredentialsConfig = self.config
        if config.username is None or (session.username is None and not session.password):
            return config.allow_anonymous  # no user: credentials given are not checked
        return _is_user(session, config)


class AnonymousReadOnlyPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Only the configured user may publish; everyone connected may subscribe."""

    Config = CredentialsConfig

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        """Whether ``session`` may do ``action`` on ``topic``."""
        return action != Action.PUBLISH or _is_user(session, self.config)
