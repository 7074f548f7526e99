"""DIT.8 monitoring (seed 000 DIT.8, footnote: "the systems integrator will record events
from testing to evaluate the performance of the Communications Hub"): sub-GHz duty cycle
per transmitter (GBCS v2.0 §10.6.2.2, :mod:`.dutycycle`) and frequency agility
(GBCS v2.0 §10.6.2.6, :mod:`.agility`), from the frames one rig's sniffers heard.

:class:`Dit8Monitor` is fed :class:`~hanlab.frames.Frame` s in time order (live from the
rig bus, offline from captures: :func:`monitor_captures`) and DUIS log lines (alerts).
Per sub-GHz frame it reads the MAC header only (IEEE 802.15.4-2015 §7.2), so it keeps up
with the live bus:

* the transmitter is the MAC source address; a MAC ACK (no source address) is the
  receiver of the frame that asked for it (same sequence number, same channel, within
  macAckWaitDuration); a data frame without a source address is from the PAN coordinator.
* the CH is one transmitter: its CHF is the coordinator (NWK and MAC short address 0x0000,
  ZigBee R22 §3.6.1.1) and the GPF shares its sub-GHz radio; the GPF's short address is
  learned from the NWK auxiliary security header (its EUI-64, ZigBee R22 §4.5.1) once
  ``ch_eui64s`` names it. Other transmitters are keyed by short address (``0x1a2b``) or
  EUI-64 (DUIS form).
* frames heard twice (two sniffers on one channel) count once: the same PSDU on the same
  channel within 1 ms is a duplicate.

It reports :class:`~hanlab.correlate.dutycycle.StateChange` s and
:class:`~hanlab.correlate.agility.AgilityEvent` s through callbacks, and a JSON snapshot
(:meth:`Dit8Monitor.snapshot`) for the API, MQTT, ``hanlab dutycycle`` and reports.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanlab.correlate.agility import (
    MGMT_NWK_UPDATE_REQ,
    AgilityEvent,
    AgilityTracker,
    decode_update_channel,
)
from hanlab.correlate.dutycycle import DutyCycleThresholds, RollingDutyCycle, StateChange
from hanlab.errors import BadInputError
from hanlab.frames import Band, Frame
from hanlab.gbcs.eui64 import Eui64
from hanlab.phy import FSK_SUBGHZ
from hanlab.zigbee.aps import PROFILE_ZDP
from hanlab.zigbee.frame import Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import ADDR_EXT, ADDR_SHORT, FRAME_TYPE_ACK, FRAME_TYPE_DATA

__all__ = ["CH", "Dit8Monitor", "Dit8Result", "monitor_captures"]

#: the name of the CH's transmitter (CHF and GPF share one sub-GHz radio)
CH = "CH"
#: a duplicate is the same PSDU on the same channel within this many ns
DUPLICATE_NS = 1_000_000
#: macAckWaitDuration on the sub-GHz PHY (IEEE 802.15.4-2015 §8.4.3.1), ns
ACK_WAIT_NS = FSK_SUBGHZ.ack_wait_ns
_BROADCASTS = frozenset({0xFFFC, 0xFFFD, 0xFFFF})


def _short(addr: int) -> str:
    return f"0x{addr:04x}"


class Dit8Monitor:
    """Duty cycle per sub-GHz transmitter and frequency agility of one rig.

    Args:
        thresholds: window and thresholds (SR 6.28 settable; defaults documented in
            :mod:`.dutycycle`).
        ch_eui64s: EUI-64s (DUIS text or int) of the CHF and GPF: their frames count as
            the CH's.
        keyring: network keys to read Mgmt_NWK_Update_req in broadcast NWK frames, or
            ``None`` (moves are still seen from the frames' channels).
        on_change: called with (transmitter, change) for every state change.
        on_agility: called with every completed move.
        history: state changes and moves kept per transmitter for the views.
    """

    def __init__(self, thresholds: DutyCycleThresholds | None = None, *,
                 ch_eui64s: Iterable[str | int] = (), keyring: Keyring | None = None,
                 on_change: Callable[[str, StateChange], None] | None = None,
                 on_agility: Callable[[AgilityEvent], None] | None = None,
                 history: int = 1000) -> None:
        self.thresholds = thresholds or DutyCycleThresholds()
        self.ch_eui64s = {Eui64.parse(e).value if isinstance(e, str) else int(e)
                          for e in ch_eui64s}
        self.keyring = keyring
        self.on_change = on_change
        self.on_agility = on_agility
        self.history = history
        self.transmitters: dict[str, RollingDutyCycle] = {}
        #: address text -> transmitter name (``CH`` or the address)
        self.names: dict[str, str] = {_short(0): CH}
        self.agility = AgilityTracker()
        self.counts: Counter[str] = Counter()
        #: what the monitor refused (an SR 6.28 out of range), one line each
        self.warnings: list[str] = []
        self._decoder = Decoder(keyring, learn_keys=False)
        self._recent: deque[tuple[int, int, int, bytes]] = deque(maxlen=16)
        #: (page, channel) -> (seq, receiver name, ts_ns) of the last frame asking an ACK
        self._pending: dict[tuple[int, int], tuple[int, str, int]] = {}
        self._now_ns = 0

    # -- feeding --------------------------------------------------------------------------

    def frames(self, batch: Sequence[Frame]) -> None:
        """:meth:`feed` every frame of a batch."""
        for frame in batch:
            self.feed(frame)

    def feed(self, frame: Frame) -> None:
        """One frame (2.4 GHz frames are ignored: duty cycle is a sub-GHz rule)."""
        if frame.band is not Band.SUB_GHZ:
            return
        ts_ns, psdu = frame.ts_ns, frame.psdu
        for other in self._recent:
            if (other[3] == psdu and abs(other[0] - ts_ns) <= DUPLICATE_NS
                    and other[1] == frame.page and other[2] == frame.channel):
                self.counts["duplicates"] += 1
                return
        self._recent.append((ts_ns, frame.page, frame.channel, psdu))
        self.counts["frames"] += 1
        where = (frame.page, frame.channel)
        sender = self._sender(frame, where)
        airtime_ns = FSK_SUBGHZ.airtime_ns(len(psdu))
        roller = self._roller(sender)
        for change in roller.add(ts_ns, airtime_ns):
            self._changed(sender, change)
        self._now_ns = max(self._now_ns, ts_ns + airtime_ns)
        self.agility.frame()
        if sender == CH:
            event = self.agility.ch_frame(ts_ns, *where)
            if event is not None and self.on_agility is not None:
                self.on_agility(event)

    def _sender(self, frame: Frame, where: tuple[int, int]) -> str:
        decoded = self._decoder.decode(frame.psdu, frame.ts_ns, fcs_ok=frame.fcs_ok)
        mac = decoded.mac
        if mac is None:
            self.counts["malformed"] += 1
            return "unknown"
        pending = self._pending.get(where)
        if mac.frame_type == FRAME_TYPE_ACK:
            if (pending is not None and pending[0] == mac.seq
                    and frame.ts_ns - pending[2] <= ACK_WAIT_NS + 10**7):
                del self._pending[where]
                return pending[1]
            return "unknown"
        if pending is not None:  # a new frame: the previous one asking an ACK got none
            del self._pending[where]
            self.agility.unacknowledged(pending[2])
            self.counts["unacknowledged"] += 1
        if mac.src_mode == ADDR_SHORT and mac.src_addr is not None:
            text = _short(mac.src_addr)
            if text not in self.names and mac.frame_type == FRAME_TYPE_DATA:
                self._learn(decoded, mac.src_addr)
            sender = self.names.get(text, text)
        elif mac.src_mode == ADDR_EXT and mac.src_addr is not None:
            sender = CH if mac.src_addr in self.ch_eui64s else Eui64(mac.src_addr).duis
        else:
            sender = CH  # no source address: the PAN coordinator (§7.2.1.8)
        if mac.ack_request and mac.dst_addr is not None:
            receiver = (self.names.get(_short(mac.dst_addr), _short(mac.dst_addr))
                        if mac.dst_mode == ADDR_SHORT else
                        CH if mac.dst_addr in self.ch_eui64s else Eui64(mac.dst_addr).duis)
            self._pending[where] = (mac.seq or 0, receiver, frame.ts_ns)
        if (sender == CH and mac.frame_type == FRAME_TYPE_DATA and self.keyring is not None
                and mac.dst_addr in _BROADCASTS):
            self._update_request(decoded, frame.ts_ns)
        return sender

    def _learn(self, decoded: Any, short: int) -> None:
        nwk = decoded.nwk
        eui = self._decoder.address_map.get(short)
        if nwk is None or eui is None:
            return
        text = _short(short)
        if eui in self.ch_eui64s:
            self.names[text] = CH
            own = self.transmitters.pop(text, None)
            if own is not None:
                self._merge(own)
        else:
            self.names[text] = text

    def _merge(self, own: RollingDutyCycle) -> None:
        """Frames heard from a GPF before its address was known join the CH's window."""
        for change in self._roller(CH).absorb(own):
            self._changed(CH, change)

    def _update_request(self, decoded: Any, ts_ns: int) -> None:
        aps = decoded.aps
        if aps is None or aps.profile != PROFILE_ZDP or aps.cluster != MGMT_NWK_UPDATE_REQ:
            return
        payload = decoded.aps_payload
        if payload:
            self.counts["mgmt_nwk_update_req"] += 1
            self.agility.update_request(ts_ns, decode_update_channel(payload))

    def _roller(self, name: str) -> RollingDutyCycle:
        roller = self.transmitters.get(name)
        if roller is None:
            roller = self.transmitters[name] = RollingDutyCycle(self.thresholds)
        return roller

    def _changed(self, name: str, change: StateChange) -> None:
        self.counts["state_changes"] += 1
        if self.on_change is not None:
            self.on_change(name, change)

    def advance(self, now_ns: int) -> None:
        """Let time pass without frames (live ticks): falls below thresholds are reported."""
        self._now_ns = max(self._now_ns, now_ns)
        for name, roller in self.transmitters.items():
            for change in roller.advance(now_ns):
                self._changed(name, change)

    def alert(self, ts_ns: int, alert_code: int) -> None:
        """A GBCS alert from the DUIS log (agility alerts join their move)."""
        self.counts["alerts"] += 1
        self.agility.alert(ts_ns, alert_code)

    def set_thresholds(self, thresholds: DutyCycleThresholds) -> None:
        """New thresholds from now on (SR 6.28); the window length stays the monitor's."""
        self.thresholds = DutyCycleThresholds(self.thresholds.window_s,
                                              *thresholds.pcts)
        for roller in self.transmitters.values():
            roller.thresholds = self.thresholds

    def duis_line(self, line: dict[str, Any]) -> None:
        """One DUIS log line as written (:class:`hanlab.duis.log.DuisLog`): alerts, and
        an SR 6.28 request logged with its XML sets the thresholds (one whose thresholds
        are out of their DUIS ranges is counted ``sr628_refused`` and named in
        :attr:`warnings`; the thresholds stay)."""
        code = line.get("alert_code")
        ts_ns = line.get("ts_ns")
        xml = line.get("xml")
        if (line.get("kind") == "request" and line.get("sr_variant") == "6.28"
                and isinstance(xml, str)):
            try:
                self.set_thresholds(self.thresholds.from_sr628(
                    xml, where=f"SR 6.28 at ts_ns {ts_ns} (DUIS log)"))
                self.counts["sr628"] += 1
            except BadInputError as error:  # the thresholds stay as they were
                self.counts["sr628_refused"] += 1
                self.warnings.append(str(error))
            return
        if line.get("kind") != "alert" or not isinstance(code, str) or not isinstance(
                ts_ns, int):
            return
        try:
            self.alert(ts_ns, int(code, 16))
        except ValueError:
            self.counts["alerts_unreadable"] += 1

    # -- views ----------------------------------------------------------------------------

    def _eui64_of(self, name: str) -> str | None:
        """The EUI-64 (DUIS form) of a transmitter named by short address, when learned;
        the name itself for one named by EUI-64; ``None`` for the CH and unknowns."""
        if name.startswith("0x"):
            eui = self._decoder.address_map.get(int(name, 16))
            return None if eui is None else Eui64(eui).duis
        return name if name.count("-") == 7 else None

    def snapshot(self, *, samples: int | None = 0) -> dict[str, Any]:
        """JSON shape: ``thresholds``, ``transmitters`` (name -> state, duty_cycle_pct,
        peak_pct, frames, airtime_s, window_airtime_s, first_ts_ns, last_ts_ns, changes,
        ``eui64`` (when known) and ``samples``: the newest ``samples`` ``[ts_ns, pct]``
        points, all with ``None``), ``channel`` (the CH's ``[page, channel]`` or
        ``None``), ``agility`` (moves), ``counts``, ``warnings``."""
        out: dict[str, Any] = {}
        for name, roller in sorted(self.transmitters.items(),
                                   key=lambda kv: (kv[0] != CH, kv[0])):
            view = roller.to_dict()
            view["eui64"] = self._eui64_of(name)
            view["changes"] = view["changes"][-self.history:]
            series = list(roller.samples)
            view["samples"] = [list(p) for p in (
                series if samples is None else series[-samples:] if samples else [])]
            out[name] = view
        return {"thresholds": self.thresholds.to_dict(), "transmitters": out,
                "channel": list(self.agility.channel) if self.agility.channel else None,
                "agility": [e.to_dict() for e in self.agility.events[-self.history:]],
                "counts": dict(sorted(self.counts.items())),
                "warnings": self.warnings[-self.history:]}


@dataclass
class Dit8Result:
    """What :func:`monitor_captures` found: the monitor and the damaged captures."""

    monitor: Dit8Monitor
    damaged: list[Any] = field(default_factory=list)


def monitor_captures(captures: Sequence[Path | str], *,
                     duis_logs: Sequence[Path | str] = (),
                     thresholds: DutyCycleThresholds | None = None,
                     ch_eui64s: Iterable[str | int] = (),
                     keyring: Keyring | None = None) -> Dit8Result:
    """DIT.8 monitoring offline: every frame of the captures and every line of the DUIS
    logs (alerts; an SR 6.28 logged with its XML sets the thresholds from then on), merged
    by ``ts_ns``, through one :class:`Dit8Monitor`, advanced to the last frame's time.

    A capture damaged part way gives every frame before the damage (listed in
    :attr:`Dit8Result.damaged`, as :func:`hanlab.correlate.offline.analyse` does).

    Raises:
        BadInputError: a capture that cannot be read at all, or an unreadable DUIS log.
    """
    import heapq

    from hanlab.correlate.offline import frames_until_damage
    from hanlab.duis.log import read_duis_log

    monitor = Dit8Monitor(thresholds, ch_eui64s=ch_eui64s, keyring=keyring)
    damaged: list[Any] = []
    lines = sorted((line for log in duis_logs for line in read_duis_log(log)),
                   key=lambda line: int(line.get("ts_ns") or 0))
    streams: list[Iterator[tuple[int, int, int, Frame | dict[str, Any]]]] = [
        ((int(line.get("ts_ns") or 0), 0, n, line) for n, line in enumerate(lines))]
    for rank, path in enumerate(captures, start=1):
        frames = frames_until_damage(path, damaged, Path(path).name)
        streams.append((frame.ts_ns, rank, n, frame) for n, frame in enumerate(frames))
    for _ts, _rank, _n, item in heapq.merge(*streams, key=lambda x: x[:3]):
        if isinstance(item, Frame):
            monitor.feed(item)
        else:
            monitor.duis_line(item)
    monitor.advance(monitor._now_ns)
    return Dit8Result(monitor, damaged)
