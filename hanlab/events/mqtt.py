"""MQTT publishing of one rig's events (aiomqtt), with buffering and reconnection.

Topics are ``hanlab/v1/<lab>/<rig>/<kind>`` (DESIGN.md, Conventions). Every payload is a
JSON object with the envelope ``schema`` (1), ``kind``, ``lab``, ``rig``, ``seq`` (per rig,
strictly increasing from 1: a consumer detects loss by a gap and duplicates by a repeat)
and ``ts_ns`` (publish time), plus the event's own fields (which never override the
envelope). ``status`` is retained; the connection's last
will publishes a retained ``status`` with ``state: offline`` if hanlab dies.

Events are queued (bounded by ``BrokerConfig.buffer_events``; the oldest is dropped and
counted when full) and published in order with QoS 1. The loss is reported (issue 14 item
13): every ``stats`` payload carries ``mqtt_dropped`` (events dropped so far), and once the
broker is back one ``loss`` event says how many were dropped while it was away
(``mqtt_dropped``), the total (``mqtt_dropped_total``) and the ``seq`` range lost.
An event leaves the queue only once the broker acknowledged it, so a broker that goes
away loses nothing beyond the buffer: the publisher reconnects with exponential
backoff and resumes from the first unacknowledged event (which the broker may then see
twice). Reconnection is this class's explicit loop,
not hidden in the client (STYLE.md §8).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

import aiomqtt

from hanlab.config.models import BrokerConfig
from hanlab.events.bus import CLOSED, BusEvent, Subscription
from hanlab.sources.base import SourceEvent

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: source events published on a topic of their own kind rather than ``source``.
OWN_TOPIC_EVENTS = frozenset({"energy", "clock"})
TOPIC_ROOT = "hanlab/v1"
#: kinds queued even when the buffer is full (they say what state the rig and buffer are in)
_CONTROL_KINDS = frozenset({"status", "loss"})


def topic(lab: str, rig: str, kind: str) -> str:
    """The MQTT topic of ``kind`` events of ``rig`` in ``lab``."""
    return f"{TOPIC_ROOT}/{lab}/{rig}/{kind}"


def source_payload(event: SourceEvent) -> dict[str, Any]:
    """The MQTT ``source`` payload of a source event: ``event`` (started, stopped,
    finished, failed, gap, damaged …), ``sniffer``, ``event_ts_ns`` and the details."""
    return {**event.detail, "event": event.kind, "sniffer": event.sniffer_id,
            "event_ts_ns": event.ts_ns}


class MqttPublisher:
    """Publishes the events of one rig's bus to MQTT.

    Args:
        subscription: the bus subscription (events only).
        broker: broker settings; ``host`` ``None`` means the embedded broker on 127.0.0.1.
        lab, rig: names used in topics and payloads.
        status: extra fields of the retained ``online`` status (e.g. the sniffer list).
        password: broker password, or ``None``: the one the loader attached to
            ``broker`` from the lab's secrets file (:attr:`BrokerConfig.password`), if any.
    """

    def __init__(
        self,
        subscription: Subscription,
        broker: BrokerConfig,
        lab: str,
        rig: str,
        status: dict[str, Any] | None = None,
        password: str | None = None,
    ) -> None:
        self.subscription = subscription
        self.broker = broker
        self.lab = lab
        self.rig = rig
        self.status_fields = status or {}
        self.password = password if password is not None else broker.password
        self.pending: deque[tuple[str, bytes, bool]] = deque()
        #: ``seq`` of each event in :attr:`pending`, in the same order
        self._pending_seqs: deque[int] = deque()
        self.seq = 0
        self.published = 0
        #: events dropped from the full buffer since start (for the exit summary)
        self.dropped = 0
        #: of :attr:`dropped`, those already reported in a ``loss`` event
        self.dropped_reported = 0
        self._lost_seqs: tuple[int, int] | None = None
        self.connects = 0
        self.connected = False
        self._wake = asyncio.Event()
        self._closing = False

    def _envelope(self, kind: str, payload: dict[str, Any]) -> bytes:
        self.seq += 1
        body = {**payload, "schema": SCHEMA_VERSION, "kind": kind, "lab": self.lab,
                "rig": self.rig, "seq": self.seq, "ts_ns": time.time_ns()}
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    def enqueue(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        """Queue one event for publishing (never blocks; drops the oldest when full).

        ``stats`` payloads get ``mqtt_dropped``, the events dropped so far. ``status`` and
        ``loss`` events never push another out (the buffer may exceed its size by them).
        """
        if len(self.pending) >= self.broker.buffer_events and kind not in _CONTROL_KINDS:
            self.pending.popleft()
            lost = self._pending_seqs.popleft()
            first = self._lost_seqs[0] if self._lost_seqs is not None else lost
            self._lost_seqs = (first, lost)
            self.dropped += 1
        if kind == "stats":
            payload = {**payload, "mqtt_dropped": self.dropped}
        self.pending.append((topic(self.lab, self.rig, kind),
                             self._envelope(kind, payload), retain))
        self._pending_seqs.append(self.seq)
        self._wake.set()

    def _report_loss(self) -> None:
        """Queue one ``loss`` event for the drops not yet reported (none: nothing)."""
        unreported = self.dropped - self.dropped_reported
        if unreported <= 0:
            return
        first, last = self._lost_seqs or (0, 0)
        self.dropped_reported = self.dropped
        self._lost_seqs = None
        log.warning("rig %s: %d MQTT events dropped while the broker was away (buffer of "
                    "%d full)", self.rig, unreported, self.broker.buffer_events)
        self.enqueue("loss", {"mqtt_dropped": unreported, "mqtt_dropped_total": self.dropped,
                              "seq_first_lost": first, "seq_last_lost": last,
                              "buffer_events": self.broker.buffer_events})

    def _status(self, state: str, **extra: Any) -> dict[str, Any]:
        return {"state": state, **self.status_fields, **extra}

    async def _consume(self) -> None:
        while True:
            item = await self.subscription.get()
            if item is CLOSED:
                break
            if isinstance(item, SourceEvent):
                kind = item.kind if item.kind in OWN_TOPIC_EVENTS else "source"
                self.enqueue(kind, source_payload(item))
            elif isinstance(item, BusEvent):
                self.enqueue(item.kind, item.payload, item.retain)
        self.enqueue("status", self._status("offline", reason="stopped"), retain=True)
        self._closing = True
        self._wake.set()

    def _client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(
            topic(self.lab, self.rig, "status"),
            json.dumps({"schema": SCHEMA_VERSION, "kind": "status", "lab": self.lab,
                        "rig": self.rig, **self._status("offline", reason="connection lost")}),
            qos=1, retain=True,
        )
        return aiomqtt.Client(
            self.broker.host or "127.0.0.1", self.broker.port,
            identifier=f"hanlab-{self.lab}-{self.rig}", username=self.broker.username,
            password=self.password, keepalive=self.broker.keepalive_s, will=will,
            timeout=10,
        )

    async def _drain(self, client: aiomqtt.Client) -> bool:
        """Publish until closing and empty (True) — raises MqttError if the link fails."""
        while True:
            while self.pending:
                name, body, retain = self.pending[0]
                await client.publish(name, body, qos=1, retain=retain)
                self.pending.popleft()
                self._pending_seqs.popleft()
                self.published += 1
            if self._closing:
                return True
            self._wake.clear()
            if not self.pending:
                await self._wake.wait()

    async def run(self, give_up_after_close_s: float = 5.0) -> None:
        """Publish until the bus closes and every event is out (or the broker stays away
        for ``give_up_after_close_s`` after closing)."""
        consumer = asyncio.create_task(self._consume(), name=f"mqtt-consume-{self.rig}")
        self.enqueue("status", self._status("online"), retain=True)
        backoff_s = 0.1
        closed_at: float | None = None
        try:
            while True:
                try:
                    async with self._client() as client:
                        self.connected = True
                        self.connects += 1
                        backoff_s = 0.1
                        if self.connects > 1:
                            self.enqueue("status", self._status("online"), retain=True)
                        self._report_loss()
                        if await self._drain(client):
                            return
                except aiomqtt.MqttError as exc:
                    self.connected = False
                    if self.connects == 0 or backoff_s >= self.broker.reconnect_max_s:
                        log.warning("rig %s: MQTT broker %s:%s unavailable (%s); capture goes "
                                    "on, %d events buffered until it is back", self.rig,
                                    self.broker.host or "127.0.0.1", self.broker.port, exc,
                                    len(self.pending))
                if self._closing:
                    closed_at = closed_at or time.monotonic()
                    if time.monotonic() - closed_at > give_up_after_close_s:
                        log.warning("rig %s: %d MQTT events not delivered at stop (broker "
                                    "unavailable)", self.rig, len(self.pending))
                        return
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self.broker.reconnect_max_s)
        finally:
            self.connected = False
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
