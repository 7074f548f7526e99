"""Sub-GHz frequency agility events of a CH (seed 000 DIT.8; GBCS v2.0 §10.6.2.6
"Frequency Agility").

A CH moves its sub-GHz HAN by broadcasting a ZDO Mgmt_NWK_Update_req (ZigBee R22
§2.4.3.3.9: ScanChannels with the new channel page in bits 27-31 and one channel bit,
ScanDuration 0xFE "change channel") and retuning, then raises Alert 0x8F26 "Sub GHz Channel
Changed" (GBCS Table 16.2). :class:`AgilityTracker` sees that as: the request (when the
keys let the NWK payload be read), the CH's last frame on the old channel, its first on the
new one, the alerts around it, and the acknowledged-delivery frames lost during the move
(sent with an ACK request and never acknowledged).

Page-relative channel bits of ScanChannels for GB sub-GHz: page 28 and 31 bits 0-26 are
channels 0-26, page 29 bits 0-7 are channels 27-34, page 30 bits 0-26 are channels 35-61
(ZigBee R22 §3.6.1.2 / Annex D.10 channel pages; :data:`hanlab.frames.PAGE_CHANNELS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hanlab.frames import PAGE_CHANNELS

__all__ = ["ALERT_CHANNEL_CHANGED", "AgilityEvent", "AgilityTracker",
           "decode_update_channel"]

#: GBCS Alert Code "Sub GHz Channel Changed".
ALERT_CHANNEL_CHANGED = 0x8F26
#: other frequency-agility Alert Codes reported with a move (GBCS Table 16.2): channel scan
#: initiated, scan assessment outcome, configuration changed, channel not changed.
AGILITY_ALERTS = frozenset({0x8F26, 0x8F27, 0x8F28, 0x8F2A, 0x8F2B})
#: ZDO Mgmt_NWK_Update_req cluster (ZigBee R22 §2.4.3.3.9) and ScanDuration "change channel".
MGMT_NWK_UPDATE_REQ = 0x0038
SCAN_DURATION_CHANGE_CHANNEL = 0xFE
#: alerts this long before or after a move are reported with it
ALERT_WINDOW_NS = 120 * 10**9


def decode_update_channel(zdp_payload: bytes) -> tuple[int, int] | None:
    """(page, channel) a Mgmt_NWK_Update_req payload (TSN, ScanChannels 4 octets LE,
    ScanDuration, …) moves the network to, or ``None`` when it is no channel change (a
    scan, several channel bits, a page hanlab does not know)."""
    if len(zdp_payload) < 6 or zdp_payload[5] != SCAN_DURATION_CHANGE_CHANNEL:
        return None
    mask = int.from_bytes(zdp_payload[1:5], "little")
    page, bits = mask >> 27, mask & ((1 << 27) - 1)
    if bits == 0 or bits & (bits - 1):
        return None
    channels = PAGE_CHANNELS.get(page)
    if channels is None:
        return None
    channel = (0 if page == 0 else channels.start) + bits.bit_length() - 1
    return (page, channel) if channel in channels else None


@dataclass(slots=True)
class AgilityEvent:
    """One move of the CH's sub-GHz HAN.

    Attributes:
        old, new: (page, channel) before and after.
        last_old_ts_ns: the CH's last frame heard on the old channel (ns since the epoch).
        first_new_ts_ns: the CH's first frame heard on the new channel.
        request_ts_ns: the Mgmt_NWK_Update_req (``None`` when not read: no keys).
        requested: the (page, channel) the request named, or ``None``.
        alerts: ``(ts_ns, alert_code)`` within 120 s of the move.
        frames_lost: frames sent with an ACK request during the move (request, or last
            old frame, to first new frame) that no ACK answered.
        frames_during_move: frames of any transmitter heard during the move.
    """

    old: tuple[int, int]
    new: tuple[int, int]
    last_old_ts_ns: int
    first_new_ts_ns: int
    request_ts_ns: int | None = None
    requested: tuple[int, int] | None = None
    alerts: list[tuple[int, int]] = field(default_factory=list)
    frames_lost: int = 0
    frames_during_move: int = 0

    @property
    def move_start_ns(self) -> int:
        """Start of the move: the request when read, else the last frame on the old one."""
        return self.request_ts_ns if self.request_ts_ns is not None else self.last_old_ts_ns

    @property
    def time_to_move_s(self) -> float:
        """Seconds from the move's start to the CH's first frame on the new channel."""
        return (self.first_new_ts_ns - self.move_start_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (pairs as ``[page, channel]``, alerts as ``{ts_ns, alert_code}``)."""
        return {"old": list(self.old), "new": list(self.new),
                "request_ts_ns": self.request_ts_ns,
                "requested": list(self.requested) if self.requested else None,
                "last_old_ts_ns": self.last_old_ts_ns, "first_new_ts_ns": self.first_new_ts_ns,
                "time_to_move_s": round(self.time_to_move_s, 6),
                "frames_lost": self.frames_lost, "frames_during_move": self.frames_during_move,
                "alerts": [{"ts_ns": ts, "alert_code": f"0x{code:04X}"}
                           for ts, code in self.alerts]}


class AgilityTracker:
    """Follows the CH's sub-GHz channel and reports each move (see the module docstring).

    Feed it in time order: :meth:`ch_frame` for every CH frame, :meth:`frame` for every
    sub-GHz frame, :meth:`update_request`, :meth:`unacknowledged` and :meth:`alert`.
    """

    def __init__(self) -> None:
        self.channel: tuple[int, int] | None = None
        self.last_ch_ns = 0
        self.events: list[AgilityEvent] = []
        self._request: tuple[int, tuple[int, int] | None] | None = None
        self._lost = 0
        self._during = 0
        self._alerts: list[tuple[int, int]] = []

    def update_request(self, ts_ns: int, target: tuple[int, int] | None) -> None:
        """The CH broadcast a Mgmt_NWK_Update_req (``target``: its new page/channel)."""
        self._request = (ts_ns, target)
        self._lost = self._during = 0

    def frame(self) -> None:
        """Any sub-GHz frame heard (counted while a move is under way)."""
        if self._request is not None:
            self._during += 1

    def unacknowledged(self, ts_ns: int) -> None:
        """A frame sent at ``ts_ns`` with an ACK request got no ACK."""
        if self._request is not None and ts_ns >= self._request[0]:
            self._lost += 1

    def ch_frame(self, ts_ns: int, page: int, channel: int) -> AgilityEvent | None:
        """A frame the CH sent; returns the move it completes, if any."""
        where = (page, channel)
        old = self.channel
        event = None
        if old is not None and where != old:
            request = self._request
            event = AgilityEvent(
                old, where, self.last_ch_ns, ts_ns,
                request_ts_ns=request[0] if request else None,
                requested=request[1] if request else None,
                frames_lost=self._lost, frames_during_move=max(0, self._during - 1),
                alerts=[a for a in self._alerts if a[0] >= ts_ns - ALERT_WINDOW_NS])
            self.events.append(event)
            self._request = None
            self._lost = self._during = 0
        self.channel = where
        self.last_ch_ns = ts_ns
        return event

    def alert(self, ts_ns: int, alert_code: int) -> None:
        """A frequency-agility alert (:data:`AGILITY_ALERTS`) from the DUIS log; one within
        120 s after a move is added to that move."""
        if alert_code not in AGILITY_ALERTS:
            return
        last = self.events[-1] if self.events else None
        if last is not None and ts_ns - last.first_new_ts_ns <= ALERT_WINDOW_NS:
            last.alerts.append((ts_ns, alert_code))
            return
        self._alerts = [a for a in self._alerts if a[0] >= ts_ns - ALERT_WINDOW_NS]
        self._alerts.append((ts_ns, alert_code))
