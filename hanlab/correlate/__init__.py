"""Correlation of HAN frames with DUIS Service Requests, exchanges and timing statistics
(DESIGN.md "The correlator"; issue 5 items 5-7)."""

from hanlab.correlate.correlator import Correlator, CorrelatorSettings
from hanlab.correlate.events import DuisEvent, StreamItem, time_ordered
from hanlab.correlate.exchange import Exchange, MatchLevel, exchange_json

__all__ = [
    "Correlator",
    "CorrelatorSettings",
    "DuisEvent",
    "Exchange",
    "MatchLevel",
    "StreamItem",
    "exchange_json",
    "time_ordered",
]
