"""The correlator's MQTT events (issue 5 item 6): one ``exchange`` per SR or alert and
``timings`` summaries, as :class:`~hanlab.events.bus.BusEvent` for the rig's bus, published
as ``hanlab/v1/<lab>/<rig>/exchange`` and ``…/timings`` (DESIGN.md, Conventions)."""

from __future__ import annotations

from hanlab.correlate.exchange import Exchange
from hanlab.correlate.stats import TimingStats
from hanlab.events.bus import BusEvent

__all__ = ["SCHEMA_VERSION", "exchange_event", "timings_event"]

#: ``schema`` field of both payloads.
SCHEMA_VERSION = 1


def exchange_event(exchange: Exchange) -> BusEvent:
    """The ``exchange`` event of one exchange (payload: :meth:`Exchange.to_dict`)."""
    return BusEvent("exchange", {"schema": SCHEMA_VERSION, **exchange.to_dict()})


def timings_event(stats: TimingStats) -> BusEvent:
    """The ``timings`` summary (payload: :meth:`TimingStats.summary`), retained."""
    return BusEvent("timings", stats.summary(), retain=True)
