"""The correlator: one deterministic state machine over frames and DUIS events.

DESIGN.md "The correlator" and issue 5 item 5. Fed one time-ordered stream (live: from the
bus; offline: :func:`hanlab.correlate.events.time_ordered` over captures and the DUIS log),
it ties the HAN messages to each DUIS Service Request at the best level the keys allow and
emits one :class:`~hanlab.correlate.exchange.Exchange` per SR and per device alert:

* **exact** (all keys): the APS payload decrypts and reassembles, the ZCL Tunneling
  TransferData carries a GBCS tunnel GET-RESPONSE or PUT (GBCS v5.x §7.2.4) whose GBCS
  message (or GBT block, §8.2) has CRA flag 1 and the SR's counter as Originator Counter or
  Supplementary Remote Party Counter (DUIS 5.4 §3.4.1.1, GBCS §4.3.1), or CRA flag 2 and
  its command's Originator Counter.
* **structural** (network key only): frames are grouped into APS messages by (band, NWK
  source, APS counter) with the APS fragmentation header (ZigBee §2.2.8.4.5); only ZCL
  Tunneling (cluster 0x0704) messages to or from the target device that are larger than a
  tunnel GET or an empty GET-RESPONSE count.
* **address and time** (no keys): NWK source and destination (the device's EUI-64 is
  learned from the clear NWK auxiliary header) and PSDU size; back-to-back large frames on
  one link form a message.

Below exact, a command message goes to the oldest SR of the device still waiting for its
command (the CHF/GPF queue is first in, first out), and a response message is chosen when
the DUIS response arrives: the first message from the device that started after the
command's end and ended before the DUIS response.

A command frame the CHF/GPF sent ``1 + macMaxFrameRetries`` times without a MAC ACK heard
after the last attempt (IEEE 802.15.4-2015 §6.7.4.3; attempts counted on the MAC header,
bad-FCS copies included) means the sender gave up: the message is delivered again whole at
the device's next GET, and the device answers it again. Below exact, the next command
message to that device with the same fragments and PSDU octets is that re-delivery, folded
into the first one (not the next SR's command), and a device message after it the size of
the SR's response is the repeated response.

The hot path decodes MAC and NWK only; APS, ZCL and GBCS only for frames to or from a
device with an SR outstanding. State is bounded: per device while it has SRs, messages
until tied or timed out, SRs until their response or ``sr_timeout_s``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hanlab.correlate.events import DuisEvent, StreamItem
from hanlab.correlate.exchange import MATCH_LEVEL_LABELS as LABELS
from hanlab.correlate.exchange import Exchange, MatchLevel
from hanlab.errors import BadInputError
from hanlab.frames import BAND_TEXT, MAX_PSDU_OCTETS, Band, Frame
from hanlab.gbcs.codes import message_code_use_case
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, GbtBlock
from hanlab.gbcs.tunnel import TunnelCommand, parse_tunnel_payload
from hanlab.phy import MAC_MAX_FRAME_RETRIES, PhyTiming, phy_for
from hanlab.zigbee.aps import APS_DATA, FRAGMENT_FIRST, FRAGMENT_NONE
from hanlab.zigbee.common import LayerError
from hanlab.zigbee.frame import DecodedFrame, Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import decode_mac, imm_ack_seq
from hanlab.zigbee.zcl_tables import CLUSTER_OTA_UPGRADE, CLUSTER_TUNNELING

__all__ = ["Correlator", "CorrelatorSettings"]

#: DUIS CommandVariants with no GBCS to a device over the HAN (DUIS 5.4 §3.2.3):
#: 4 transform only (a Pre-Command comes back), 8 non-device.
NO_HAN_COMMAND_VARIANTS = frozenset((4, 8))
#: DUIS CommandVariants returned for local delivery only (DUIS 5.4 XSD CommandVariant):
#: the HHT delivers the command over the HAN and no DUIS response follows, so the SR ends
#: when the device's response crosses the HAN (outcome ``responded_locally``).
LOCAL_ONLY_COMMAND_VARIANTS = frozenset((2, 6))
_CH_ROLES = frozenset(("CHF", "GPF"))
#: GBCS use case prefix -> device role (GBCS v5.x §13: ECS ESME, GCS GSME, PCS PPMID,
#: HCS HCALCS, CCS CHF).
USE_CASE_ROLES = (("ECS", "ESME"), ("GCS", "GSME"), ("PCS", "PPMID"), ("HCS", "HCALCS"),
                  ("CCS", "CHF"))
_NS = 1_000_000_000
#: a MAC ACK belongs to the data frame with its sequence number sent at most this long before
ACK_WINDOW_NS = 50_000_000
#: a MAC data frame's (source, destination, sequence number) sent again after this is a new
#: frame (MAC retries follow within macAckWaitDuration plus CSMA-CA backoffs)
ATTEMPT_WINDOW_NS = 500_000_000
#: a full APS fragment fills the PSDU: aMaxPhyPacketSize less the 2-octet FCS
FULL_FRAGMENT_OCTETS = MAX_PSDU_OCTETS - 2


@dataclass(frozen=True, slots=True)
class CorrelatorSettings:
    """Thresholds and time-outs of the correlator (seconds, octets).

    Attributes:
        min_carrying_psdu_octets: below exact, a tunnel frame smaller than this carries no
            GBCS message. A secured tunnel GET is 66 octets, an empty GET-RESPONSE 67, a
            RequestTunnel 69-71 (measured on the emulator, whose frames are built with
            hanlab's codec: MAC 9 + NWK 8 + NWK aux 14 + APS 8 + APS aux 5 + ZCL 3 +
            tunnel ID 2 + tunnel data + MIC 4 + 4); every fragment of a GBCS command or
            response seen is >= 80.
        fragment_gap_s: address-and-time level: frames on one link further apart than
            this start a new message (per band: a 127-octet PPDU takes 4.3 ms at 2.4 GHz,
            11.6 ms on sub-GHz, plus ACK and CSMA-CA backoffs).
        sr_timeout_s: an SR with no DUIS response after this is emitted as ``no_response``.
        candidate_timeout_s: an untied device message is counted as unmatched after this.
        alert_pairing_s: a device alert seen on the HAN waits this long for its DUIS alert.
        retry_window_s: a frame of an already complete APS message within this is a
            retransmission of it.
    """

    min_carrying_psdu_octets: int = 72
    fragment_gap_s: tuple[tuple[Band, float], ...] = ((Band.GHZ_2_4, 0.05),
                                                      (Band.SUB_GHZ, 0.15))
    sr_timeout_s: float = 3600.0
    candidate_timeout_s: float = 600.0
    alert_pairing_s: float = 60.0
    retry_window_s: float = 2.0


class _Msg:
    """One HAN message (a GBCS command, response or alert, maybe in fragments)."""

    __slots__ = ("band", "blocks", "channel", "counter", "cra", "done", "dst", "end_ts",
                 "first_ts", "frames", "last_ts", "level", "max_octets", "members",
                 "message_code", "nwk_seqs", "octets", "original_end_ts", "page", "retries",
                 "sink", "src", "suppl", "total", "tx", "unique_octets", "up")

    def __init__(self, frame: Frame, src: int, dst: int, up: bool, level: MatchLevel) -> None:
        self.band = frame.band
        self.page = frame.page
        self.channel = frame.channel
        self.src = src
        self.dst = dst
        self.up = up
        self.level = level
        self.first_ts = frame.ts_ns
        self.last_ts = frame.ts_ns
        self.end_ts = frame.ts_ns
        self.frames = 0
        self.retries = 0
        self.octets = 0
        self.unique_octets = 0
        self.max_octets = 0
        #: where this message's frames were counted once it was settled (``counts`` key)
        self.sink: str | None = None
        self.nwk_seqs: set[int] = set()
        #: MAC attempt states ([attempts, acked after the last, last ts]) of its frames
        self.tx: list[list[int]] = []
        #: end of the first delivery when a re-delivery was folded in
        self.original_end_ts: int | None = None
        self.done = False
        self.total: int | None = None
        self.blocks: set[int] = set()
        self.cra: int | None = None
        self.counter: int | None = None
        self.suppl: int | None = None
        self.message_code: int | None = None
        #: the frames of this message, kept only when the correlator has ``on_frames``
        self.members: list[Frame] | None = None

    def gave_up(self) -> bool:
        """A frame was sent 1 + macMaxFrameRetries times and no ACK followed the last."""
        return any(state[0] > MAC_MAX_FRAME_RETRIES and not state[1] for state in self.tx)

    def merge(self, other: _Msg) -> None:
        """Fold ``other`` (another part or a retransmission of the same GBCS message) in."""
        self.first_ts = min(self.first_ts, other.first_ts)
        if other.last_ts >= self.last_ts:
            self.last_ts = other.last_ts
        self.end_ts = max(self.end_ts, other.end_ts)
        self.frames += other.frames
        self.retries += other.retries
        self.octets += other.octets
        self.unique_octets += other.unique_octets
        self.level = min(self.level, other.level)
        other.sink = "frames_late_retransmissions"  # frames of ``other`` from now on
        if other.members is not None:  # frame membership (``on_frames``): one shared list
            self.members = (self.members or []) + other.members
            other.members = self.members


class _Sr:
    """One Service Request in flight."""

    __slots__ = ("ack_code", "ack_ts", "command", "command_variant", "counter",
                 "expects_han", "gbcs_counter", "request_id", "response", "response_code",
                 "response_ts", "role", "sr_variant", "submitted_ts", "target", "target_int")

    def __init__(self, event: DuisEvent, target_int: int) -> None:
        self.request_id = event.request_id or ""
        self.target = event.target
        self.target_int = target_int
        self.counter = event.counter
        self.sr_variant = event.sr_variant
        self.command_variant = event.command_variant
        self.gbcs_counter: int | None = event.gbcs_originator_counter
        self.submitted_ts = event.ts_ns
        self.ack_ts: int | None = None
        self.ack_code: str | None = None
        self.response_ts: int | None = None
        self.response_code: str | None = None
        self.command: _Msg | None = None
        self.response: _Msg | None = None
        self.expects_han = _expects_han(event)
        self.role: str | None = None


def _expects_han(event: DuisEvent) -> bool:
    if event.command_variant in NO_HAN_COMMAND_VARIANTS:
        return False
    variant = event.sr_variant
    if not variant:
        return True
    expects = _EXPECTS_HAN.get(variant)
    if expects is None:
        from hanlab.duis.catalogue import sr as catalogue_sr

        try:
            expects = not catalogue_sr(variant).non_device
        except BadInputError:
            expects = True
        _EXPECTS_HAN[variant] = expects
    return expects


#: SR variant -> whether it sends GBCS to a device (the catalogue, read once per variant)
_EXPECTS_HAN: dict[str, bool] = {}


class _Device:
    """Per-device state, held while the device has an SR outstanding."""

    __slots__ = ("closed", "eui", "last_command", "open", "srs", "up_candidates")

    def __init__(self, eui: int) -> None:
        self.eui = eui
        #: the last command message tied below exact (a re-delivery of it may follow)
        self.last_command: _Msg | None = None
        self.srs: list[_Sr] = []
        self.up_candidates: deque[_Msg] = deque()
        self.open: dict[tuple[int, int], _Msg] = {}
        self.closed: dict[tuple[int, int], _Msg] = {}


class Correlator:
    """The correlator (see the module docstring). Feed it in time order; read exchanges.

    Args:
        keyring: keys for decryption (none: address-and-time level only).
        settings: thresholds and time-outs.
        device_roles: EUI-64 (DUIS form) -> role (``ESME``, ``GSME`` …), e.g. from the rig
            file; otherwise the role is read from the GBCS use case of an exact match, or
            ``unknown``.
        on_exchange: called with each exchange as it is emitted (live: publish it);
            exchanges are also kept for :meth:`pop_exchanges` unless ``keep`` is false.
        keep: keep emitted exchanges until :meth:`pop_exchanges`.
        on_frames: frame membership (triage bundles, ``hanlab annotate``): called with
            each exchange as it is emitted and the frames tied to it, ``(exchange,
            command_frames, response_frames)`` (each list in feed order, retransmissions
            included; an alert's frames are its response frames). ``None`` (the default):
            no frame is kept.
        on_ota: called with ``(frame, decoded frame)`` for each APS frame of the OTA
            Upgrade cluster (0x0019, ZCL 07-5123 §11), whichever devices it is between: the
            rig's live firmware transfers (:class:`hanlab.firmware.transfers.
            TransferTracker`). ``None``: such frames are only counted.

    Usage::

        correlator = Correlator(keyring)
        for item in time_ordered(frame_streams, duis_events):
            correlator.feed(item)
        exchanges = correlator.close()

    The same inputs in the same order give the same exchanges, in the same order.
    Attributes ``counts`` (frames and messages by fate) account for every frame fed.
    """

    def __init__(self, keyring: Keyring | None = None, *,
                 settings: CorrelatorSettings | None = None,
                 device_roles: Mapping[str, str] | None = None,
                 on_exchange: Callable[[Exchange], None] | None = None,
                 keep: bool = True,
                 on_frames: Callable[[Exchange, list[Frame], list[Frame]], None]
                 | None = None,
                 on_ota: Callable[[Frame, DecodedFrame], None] | None = None) -> None:
        self.settings = settings or CorrelatorSettings()
        self.decoder = Decoder(keyring)
        self._counts: Counter[str] = Counter()
        # the per-frame fates as native ints (a Counter update costs ~1,500 instructions
        # compiled; these are added to :attr:`counts` when it is read)
        self._frames = 0
        self._bad_fcs = 0
        self._mac_other = 0
        self._nwk_other = 0
        self._idle = 0
        self._roles = {Eui64.parse(k).value: v.upper() for k, v in (device_roles or {}).items()}
        self._on_exchange = on_exchange
        self._keep = keep
        self._on_frames = on_frames
        self._on_ota = on_ota
        self._out: list[Exchange] = []
        self._srs: dict[str, _Sr] = {}
        self._by_counter: dict[int, list[_Sr]] = {}
        self._devices: dict[int, _Device] = {}
        self._groups: dict[tuple[Band, int, int], _Msg] = {}
        self._open: list[tuple[_Device, tuple[int, int], _Msg]] = []
        self._han_alerts: dict[tuple[int, int], _Msg] = {}
        self._local_done: list[tuple[_Sr, int]] = []
        #: (SR variant, device) -> PSDU octets of its last unambiguous response message
        self._response_octets: dict[tuple[str | None, int], int] = {}
        self._phy: dict[tuple[int, int], PhyTiming] = {}
        self._gap_ns = {band: int(s * _NS) for band, s in self.settings.fragment_gap_s}
        self._min_octets = self.settings.min_carrying_psdu_octets
        self._retry_ns = int(self.settings.retry_window_s * _NS)
        #: MAC (source, destination, sequence number) -> [attempts, acked, last ts]
        self._attempts: dict[tuple[int | None, int | None, int], list[int]] = {}
        #: MAC sequence number -> the attempt state of the last data frame with it
        self._by_mac_seq: dict[int, list[int]] = {}
        self._next_tick = 0
        self._now = 0
        self._closed = False
        #: the first frame that could not be read, ``"ts_ns N: reason"`` (or ``None``)
        self.first_malformed: str | None = None

    @property
    def counts(self) -> Counter[str]:
        """Frames and messages by fate (``frames``, ``frames_bad_fcs``, ``frames_idle``,
        ``frames_matched`` …, ``exchanges``, ``duis_request`` …); missing keys count 0.
        Every frame fed is counted once under ``frames`` and once under its fate."""
        counts = self._counts
        for name, value in (("frames", self._frames), ("frames_bad_fcs", self._bad_fcs),
                            ("frames_mac_other", self._mac_other),
                            ("frames_nwk_other", self._nwk_other),
                            ("frames_idle", self._idle)):
            if value:
                counts[name] = value
        return counts

    # -- feeding ------------------------------------------------------------------------

    def feed(self, item: StreamItem) -> None:
        """Feed one frame or DUIS event (in ``ts_ns`` order)."""
        if isinstance(item, DuisEvent):
            self.feed_duis(item)
        else:
            self.feed_frame(item)

    def feed_all(self, items: Iterable[StreamItem]) -> None:
        """Feed every item of a time-ordered stream."""
        feed_frame, feed_duis = self.feed_frame, self.feed_duis
        for item in items:
            if isinstance(item, DuisEvent):
                feed_duis(item)
            else:
                feed_frame(item)

    def feed_frame(self, frame: Frame) -> None:
        """Feed one sniffed frame (hot path: MAC and NWK first, deeper only if needed).

        Never raises for the frame's content (issue 14 item 9; DESIGN.md "it never raises
        out of the pipeline"): a frame no layer parser can read, or one that trips any
        other error, is counted in ``counts["frames_malformed"]`` (besides the count of its
        fate, e.g. ``frames_bad_fcs``) and the first such error is kept in
        :attr:`first_malformed` (``"ts_ns N: reason"``).
        """
        try:
            self._feed_frame(frame)
        except Exception as exc:  # one unreadable frame must not stop a run
            self._malformed(frame.ts_ns, exc)
        if self._local_done:
            self._finish_local()

    def _malformed(self, ts_ns: int, exc: Exception) -> None:
        self._counts["frames_malformed"] += 1
        if self.first_malformed is None:
            self.first_malformed = f"ts_ns {ts_ns}: {exc.__class__.__name__}: {exc}"

    def _feed_frame(self, frame: Frame) -> None:
        ts = frame.ts_ns
        self._frames += 1
        self._now = ts
        if ts >= self._next_tick:
            self._tick(ts)
        if self._open:
            self._close_gaps(ts)
        if frame.fcs_ok is False:
            self._bad_fcs += 1
            try:
                bad = decode_mac(frame.psdu)
            except (LayerError, BadInputError, ValueError, IndexError) as exc:
                self._malformed(ts, exc)
                return
            if bad.frame_type == 1 and bad.seq is not None and bad.ack_request:
                self._attempt(bad.src_addr, bad.dst_addr, bad.seq, ts)
            return
        ack_seq = imm_ack_seq(frame.psdu)
        if ack_seq >= 0:  # a MAC ACK: no frame object (what the general path does below)
            self.decoder.skip()
            self._acked(ack_seq, ts)
            self._mac_other += 1
            return
        d = self.decoder.decode(frame.psdu, ts)
        mac = d.mac
        if mac is None or mac.frame_type != 1:
            if mac is not None and mac.frame_type == 2 and mac.seq is not None:
                self._acked(mac.seq, ts)
            if mac is not None:
                self._mac_other += 1
            else:
                self._counts["frames_unreadable"] += 1
            return
        tx = (self._attempt(mac.src_addr, mac.dst_addr, mac.seq, ts)
              if mac.seq is not None and mac.ack_request else None)
        nwk = d.nwk
        if nwk is None or nwk.frame_type != 0 or nwk.src is None or nwk.dst is None:
            self._nwk_other += 1
            return
        if self._on_ota is not None:  # live only: every data frame's APS header is read
            ota = d.aps
            if ota is not None and ota.cluster == CLUSTER_OTA_UPGRADE:
                self._on_ota(frame, d)
        amap = self.decoder.address_map
        src, dst = nwk.src, nwk.dst
        src64 = amap.get(src)
        dev = self._devices.get(src64) if src64 is not None else None
        up = True
        if dev is None:
            dst64 = amap.get(dst)
            dev = self._devices.get(dst64) if dst64 is not None else None
            up = False
        if dev is None:
            if not nwk.security:
                d.aps_payload  # noqa: B018 - learn keys from Transport Key commands
            self._idle += 1
            return
        if nwk.payload is None:
            self._address_time(dev, frame, src, dst, up, nwk.seq, tx)
            return
        aps = d.aps
        if aps is None or aps.frame_type != APS_DATA or aps.cluster != CLUSTER_TUNNELING \
                or aps.counter is None:
            if not nwk.security:
                d.aps_payload  # noqa: B018 - key learning
            self._counts["frames_not_tunnel"] += 1
            return
        key = (frame.band, src, aps.counter)
        msg = self._groups.get(key)
        if msg is not None and msg.done and ts - msg.last_ts > self._retry_ns:
            msg = None
        if msg is None:
            level = MatchLevel.EXACT if aps.payload is not None else MatchLevel.STRUCTURAL
            msg = self._groups[key] = _Msg(frame, src, dst, up, level)
        self._add(msg, frame, nwk.seq, tx)
        if msg.done:
            return
        if aps.payload is not None:
            payload = d.aps_payload
            if payload is None:
                return  # a fragment; the message completes with its last fragment
            msg.done = True
            self._fold_incomplete(key, msg)
            zcl = d.zcl
            data = zcl.tunnel_data if zcl is not None else None
            if data is None:
                self._discard(msg, "frames_not_tunnel")
                return
            tunnel = parse_tunnel_payload(data)
            message = tunnel.message
            if (tunnel.command not in (TunnelCommand.GET_RESPONSE, TunnelCommand.PUT)
                    or not isinstance(message, GbcsMessage | GbtBlock)):
                self._discard(msg, "frames_tunnel_control")
                return
            msg.cra = message.cra_flag
            msg.counter = message.originator_counter
            msg.message_code = message.message_code
            if isinstance(message, GbcsMessage):
                msg.suppl = message.supplementary_remote_party_counter
            self._route_exact(dev, msg)
            return
        frag = aps.fragmentation
        if frag == FRAGMENT_NONE:
            msg.total = 1
            msg.blocks.add(0)
        elif frag == FRAGMENT_FIRST:
            msg.total = max(aps.block or 1, 1)
            msg.blocks.add(0)
        elif aps.block is not None:
            msg.blocks.add(aps.block)
        if msg.total is not None and len(msg.blocks) >= msg.total:
            msg.done = True
            self._fold_incomplete(key, msg)
            if msg.total > 1 or msg.max_octets >= self._min_octets:
                self._route_heuristic(dev, msg)
            else:
                self._discard(msg, "frames_tunnel_control")

    def _acked(self, seq: int, ts: int) -> None:
        """A MAC ACK with sequence number ``seq``: the last data frame sent with it within
        :data:`ACK_WINDOW_NS` was acknowledged (IEEE 802.15.4-2015 §6.7.4.2)."""
        state = self._by_mac_seq.get(seq)
        if state is not None and ts - state[2] <= ACK_WINDOW_NS:
            state[1] = 1

    def _fold_incomplete(self, key: tuple[Band, int, int], msg: _Msg) -> None:
        """An APS message that lost a block is sent again whole under a new APS counter
        (ZigBee §2.2.8.4.5; GBCS tunnel re-GET or PUT retry): fold the incomplete earlier
        attempts on the same link into the complete one, as retransmissions."""
        folded = [k for k, m in self._groups.items()
                  if not m.done and k != key and k[0] == key[0] and m.src == msg.src
                  and m.dst == msg.dst and m.first_ts < msg.first_ts
                  and msg.first_ts - m.last_ts <= 10 * _NS]
        for k in folded:
            old = self._groups.pop(k)
            old.retries += old.frames
            msg.merge(old)

    def _attempt(self, src: int | None, dst: int | None, seq: int, ts: int) -> list[int]:
        """Count one transmission attempt of a MAC data frame (good or bad FCS)."""
        key = (src, dst, seq)
        state = self._attempts.get(key)
        if state is None or ts - state[2] > ATTEMPT_WINDOW_NS:
            state = self._attempts[key] = [0, 0, ts]
        state[0] += 1
        state[1] = 0
        state[2] = ts
        self._by_mac_seq[seq] = state
        return state

    def _add(self, msg: _Msg, frame: Frame, nwk_seq: int | None,
             tx: list[int] | None = None) -> None:
        octets = len(frame.psdu)
        if tx is not None and not any(state is tx for state in msg.tx):
            msg.tx.append(tx)
        if msg.sink is not None:
            self._counts[msg.sink] += 1
        msg.frames += 1
        if self._on_frames is not None:
            if msg.members is None:
                msg.members = []
            msg.members.append(frame)
        msg.octets += octets
        if octets > msg.max_octets:
            msg.max_octets = octets
        if nwk_seq is not None:
            if nwk_seq in msg.nwk_seqs:
                msg.retries += 1
            else:
                msg.nwk_seqs.add(nwk_seq)
                msg.unique_octets += octets
        msg.last_ts = frame.ts_ns
        end = frame.ts_ns + self._airtime_ns(frame.page, frame.channel, octets)
        if end > msg.end_ts:
            msg.end_ts = end

    def _airtime_ns(self, page: int, channel: int, octets: int) -> int:
        phy = self._phy.get((page, channel))
        if phy is None:
            try:
                phy = phy_for(page, channel)
            except BadInputError:
                return 0
            self._phy[(page, channel)] = phy
        return phy.airtime_ns(octets)

    def _discard(self, msg: _Msg, why: str) -> None:
        self._settle(msg, why)

    def _settle(self, msg: _Msg, sink: str) -> None:
        """Count ``msg``'s frames under ``sink``; later retransmissions follow them."""
        if msg.sink is None:
            msg.sink = sink
            self._counts[sink] += msg.frames

    def _address_time(self, dev: _Device, frame: Frame, src: int, dst: int, up: bool,
                      nwk_seq: int | None, tx: list[int] | None) -> None:
        link = (src, dst)
        if len(frame.psdu) < self._min_octets:
            self._counts["frames_tunnel_control"] += 1
            for key in (link, (dst, src)):
                msg = dev.open.get(key)
                if msg is not None:
                    self._close_open(dev, key, msg)
            return
        msg = dev.open.get(link)
        if msg is not None and frame.ts_ns - msg.last_ts > self._gap_ns.get(frame.band, 0):
            self._close_open(dev, link, msg)
            msg = None
        if msg is None:
            last = dev.closed.get(link)
            if (last is not None and nwk_seq in last.nwk_seqs
                    and frame.ts_ns - last.last_ts <= self._retry_ns):
                self._add(last, frame, nwk_seq, tx)  # a retransmission of its last frame
                return
            msg = dev.open[link] = _Msg(frame, src, dst, up, MatchLevel.ADDRESS_TIME)
            self._open.append((dev, link, msg))
        retries = msg.retries
        self._add(msg, frame, nwk_seq, tx)
        if len(frame.psdu) < FULL_FRAGMENT_OCTETS and msg.retries == retries:
            # only the last APS fragment of a message is short (ZigBee §2.2.8.4.5)
            self._close_open(dev, link, msg)

    def _close_open(self, dev: _Device, link: tuple[int, int], msg: _Msg) -> None:
        if dev.open.get(link) is msg:
            del dev.open[link]
        dev.closed[link] = msg
        self._open = [entry for entry in self._open if entry[2] is not msg]
        msg.done = True
        self._route_heuristic(dev, msg)

    def _close_gaps(self, now: int) -> None:
        for dev, link, msg in list(self._open):
            if now - msg.last_ts > self._gap_ns.get(msg.band, 0):
                self._close_open(dev, link, msg)

    # -- tying messages to SRs ----------------------------------------------------------

    def _route_heuristic(self, dev: _Device, msg: _Msg) -> None:
        if msg.up:
            dev.up_candidates.append(msg)
            return
        last = dev.last_command
        if (last is not None and last.original_end_ts is None and last.gave_up()
                and msg.unique_octets == last.unique_octets and msg.total == last.total
                and len(msg.nwk_seqs) == len(last.nwk_seqs)):
            # the CHF/GPF gave up on a frame of ``last`` and delivered it again whole
            dev.last_command = None
            last.original_end_ts = last.end_ts
            msg.retries += msg.frames
            last.merge(msg)
            return
        for sr in dev.srs:
            if sr.command is None and sr.expects_han and sr.submitted_ts <= msg.first_ts:
                sr.command = msg
                dev.last_command = msg
                return
        self._unmatched(msg)

    def _route_exact(self, dev: _Device, msg: _Msg) -> None:
        cra, counter = msg.cra, msg.counter
        if cra == 3:
            if counter is not None:
                previous = self._han_alerts.get((dev.eui, counter))
                if previous is not None:
                    previous.merge(msg)
                else:
                    self._han_alerts[(dev.eui, counter)] = msg
            return
        sr = self._sr_for(dev, counter)
        if sr is None and cra == 1 and msg.suppl is not None:
            sr = self._sr_for(dev, msg.suppl)
            if sr is not None:
                # the DCC originated the command (its own Originator Counter, the User's
                # as Supplementary Remote Party Counter, GBCS §4.3.1): the device's
                # response (CRA 2) carries the command's Originator Counter
                self._index_gbcs(sr, counter)
        if sr is None or cra not in (1, 2):
            self._unmatched(msg)
            return
        if sr.role is None and msg.message_code is not None:
            sr.role = _role_of(msg.message_code)
        if cra == 1:
            if sr.command is None or sr.command.level < MatchLevel.EXACT:
                if sr.command is not None:
                    self._unmatched(sr.command)
                sr.command = msg
            else:
                sr.command.merge(msg)
        else:
            if sr.response is None or sr.response.level < MatchLevel.EXACT:
                sr.response = msg
            else:
                sr.response.merge(msg)
            if sr.command_variant in LOCAL_ONLY_COMMAND_VARIANTS and sr.ack_code == "I0":
                self._local_done.append((sr, msg.last_ts))  # finished after this item

    def _sr_for(self, dev: _Device, counter: int | None) -> _Sr | None:
        if counter is None:
            return None
        for sr in self._by_counter.get(counter, ()):
            if sr.target_int == dev.eui:
                return sr
        return None

    def _unmatched(self, msg: _Msg) -> None:
        self._counts["messages_unmatched"] += 1
        self._settle(msg, "frames_unmatched")

    def _pick_response(self, dev: _Device, sr: _Sr, until_ts: int) -> None:
        command = sr.command
        if command is None or sr.response is not None:
            return
        candidates = dev.up_candidates
        command_end = command.original_end_ts or command.end_ts
        while candidates and candidates[0].first_ts < command_end:
            self._unmatched(candidates.popleft())
        eligible = [m for m in candidates if m.end_ts <= until_ts]
        if not eligible:
            return
        key = (sr.sr_variant, sr.target_int)
        if len(eligible) == 1:
            best = eligible[0]
            self._response_octets[key] = best.unique_octets
        else:
            expected = self._response_octets.get(key)
            best = eligible[0]
            if expected is not None:
                best = min(eligible, key=lambda m: abs(m.unique_octets - expected))
        candidates.remove(best)
        sr.response = best
        if command.original_end_ts is not None:
            # the device answered the re-delivered command again: the same response
            for repeat in [m for m in candidates if m.end_ts <= until_ts
                           and m.first_ts >= command.end_ts
                           and m.unique_octets == best.unique_octets]:
                candidates.remove(repeat)
                repeat.retries += repeat.frames
                best.merge(repeat)

    # -- DUIS events ----------------------------------------------------------------------

    def feed_duis(self, event: DuisEvent) -> None:
        """Feed one DUIS event (request, acknowledgement, response or alert).

        Never raises for the event's content: one that trips an error is counted in
        ``counts["duis_malformed"]`` (issue 14 item 9).
        """
        try:
            self._feed_duis(event)
        except Exception:  # one odd DUIS log line must not stop a run
            self._counts["duis_malformed"] += 1
        if self._local_done:
            self._finish_local()

    def _finish_local(self) -> None:
        """End the locally delivered SRs whose device response crossed the HAN."""
        done, self._local_done = self._local_done, []
        for sr, ts in done:
            if self._srs.get(sr.request_id) is sr:
                self._finish(sr, "responded_locally", ts)

    def _feed_duis(self, event: DuisEvent) -> None:
        self._now = event.ts_ns
        if event.ts_ns >= self._next_tick:
            self._tick(event.ts_ns)
        self._counts[f"duis_{event.kind}"] += 1
        if event.kind == "alert":
            self._duis_alert(event)
            return
        rid = event.request_id
        if rid is None:
            self._counts["duis_without_request_id"] += 1
            return
        sr = self._srs.get(rid)
        if event.kind == "request":
            if sr is None:
                self._new_sr(event)
            else:  # e.g. the Signed Pre-Command of a Critical SR (CommandVariant 4 first)
                if _expects_han(event):
                    sr.expects_han = True
                if event.command_variant is not None:
                    sr.command_variant = event.command_variant
                self._index_gbcs(sr, event.gbcs_originator_counter)
            return
        if sr is None:
            self._counts[f"duis_{event.kind}_unmatched"] += 1
            return
        self._index_gbcs(sr, event.gbcs_originator_counter)
        if event.kind == "ack":
            if sr.ack_ts is None:
                sr.ack_ts = event.ts_ns
            sr.ack_code = event.response_code
            code = event.response_code or ""
            if code not in ("I0", "I99"):
                self._finish(sr, "rejected", event.ts_ns)
            elif code == "I0" and not sr.expects_han and sr.command_variant != 4:
                self._finish(sr, "completed", event.ts_ns)
            elif (code == "I0" and sr.command_variant in LOCAL_ONLY_COMMAND_VARIANTS
                  and sr.role in _CH_ROLES):
                # delivered locally to the CH itself: nothing of it crosses the HAN
                self._finish(sr, "completed", event.ts_ns)
        elif event.kind == "response":
            sr.response_ts = event.ts_ns
            sr.response_code = event.response_code
            self._finish(sr, "responded", event.ts_ns)

    def _new_sr(self, event: DuisEvent) -> None:
        target_int = 0
        if event.target:
            try:
                target_int = Eui64.parse(event.target).value
            except BadInputError:
                self._counts["duis_bad_target"] += 1
        sr = _Sr(event, target_int)
        sr.role = self._roles.get(target_int)
        self._srs[sr.request_id] = sr
        if sr.counter is not None:
            self._by_counter.setdefault(sr.counter, []).append(sr)
        self._index_gbcs(sr, sr.gbcs_counter)
        dev = self._devices.get(target_int)
        if dev is None:
            dev = self._devices[target_int] = _Device(target_int)
        dev.srs.append(sr)

    def _index_gbcs(self, sr: _Sr, counter: int | None) -> None:
        if counter is None or counter == sr.counter:
            return
        listed = self._by_counter.setdefault(counter, [])
        if sr not in listed:
            listed.append(sr)
        sr.gbcs_counter = counter

    def _duis_alert(self, event: DuisEvent) -> None:
        device = counter = None
        if event.response_id:
            parts = event.response_id.split(":")
            if len(parts) == 3 and parts[2].isdigit():
                try:
                    device = Eui64.parse(parts[0]).value
                except BadInputError:
                    device = None
                counter = int(parts[2])
        msg = None
        if device is not None and counter is not None:
            msg = self._han_alerts.pop((device, counter), None)
        self._emit_alert(msg, device, event)

    # -- emitting -------------------------------------------------------------------------

    def _finish(self, sr: _Sr, outcome: str, ts: int) -> None:
        dev = self._devices.get(sr.target_int)
        if dev is not None:
            for link, msg in list(dev.open.items()):
                self._close_open(dev, link, msg)
            if outcome == "responded":
                self._pick_response(dev, sr, ts)
        self._emit_sr(sr, outcome)
        self._srs.pop(sr.request_id, None)
        for counter in {sr.counter, sr.gbcs_counter}:
            if counter is None:
                continue
            listed = self._by_counter.get(counter)
            if listed is not None and sr in listed:
                listed.remove(sr)
                if not listed:
                    del self._by_counter[counter]
        if dev is not None:
            dev.srs.remove(sr)
            if not dev.srs:
                for msg in dev.up_candidates:
                    self._unmatched(msg)
                del self._devices[dev.eui]

    def _emit(self, exchange: Exchange, *messages: _Msg | None) -> None:
        self._counts["exchanges"] += 1
        for msg in messages:
            if msg is not None:
                self._settle(msg, "frames_matched")
        if self._keep:
            self._out.append(exchange)
        if self._on_exchange is not None:
            self._on_exchange(exchange)
        if self._on_frames is not None:
            command, response = messages
            self._on_frames(exchange, list(command.members or ()) if command else [],
                            list(response.members or ()) if response else [])

    def _emit_sr(self, sr: _Sr, outcome: str) -> None:
        command, response = sr.command, sr.response
        levels = [m.level for m in (command, response) if m is not None]
        where = command or response
        counter = None
        code = None
        for m in (command, response):
            if m is not None and m.level == MatchLevel.EXACT:
                counter, code = m.counter, m.message_code
                break
        frames = sum(m.frames for m in (command, response) if m is not None)
        self._emit(Exchange(
            kind="sr", request_id=sr.request_id, sr_variant=sr.sr_variant,
            command_variant=sr.command_variant, target=sr.target,
            device_role=sr.role or "unknown", outcome=outcome,
            match_level=LABELS[min(levels) if levels else 0],
            command_level=LABELS[command.level if command else 0],
            response_level=LABELS[response.level if response else 0],
            submitted_ts_ns=sr.submitted_ts, ack_ts_ns=sr.ack_ts, ack_code=sr.ack_code,
            response_ts_ns=sr.response_ts, response_code=sr.response_code,
            command_first_ts_ns=command.first_ts if command else None,
            command_last_ts_ns=command.last_ts if command else None,
            command_end_ts_ns=command.end_ts if command else None,
            response_first_ts_ns=response.first_ts if response else None,
            response_last_ts_ns=response.last_ts if response else None,
            response_end_ts_ns=response.end_ts if response else None,
            band=BAND_TEXT[where.band] if where else None, page=where.page if where else None,
            channel=where.channel if where else None, frames=frames,
            retries=sum(m.retries for m in (command, response) if m is not None),
            octets=sum(m.octets for m in (command, response) if m is not None),
            gbcs_originator_counter=counter,
            message_code=None if code is None else f"0x{code:04X}",
        ), command, response)

    def _emit_alert(self, msg: _Msg | None, device: int | None,
                    event: DuisEvent | None) -> None:
        alert_code = event.alert_code if event is not None else None
        target = Eui64(device).duis if device is not None else None
        self._emit(Exchange(
            kind="alert", request_id=event.response_id if event else None, sr_variant=None,
            command_variant=None, target=target,
            device_role=(self._roles.get(device, "unknown") if device is not None
                         else "unknown"),
            outcome="alert", match_level=LABELS[msg.level if msg else 0],
            command_level=LABELS[0],
            response_level=LABELS[msg.level if msg else 0],
            submitted_ts_ns=None, ack_ts_ns=None, ack_code=None,
            response_ts_ns=event.ts_ns if event else None, response_code=None,
            command_first_ts_ns=None, command_last_ts_ns=None, command_end_ts_ns=None,
            response_first_ts_ns=msg.first_ts if msg else None,
            response_last_ts_ns=msg.last_ts if msg else None,
            response_end_ts_ns=msg.end_ts if msg else None,
            band=BAND_TEXT[msg.band] if msg else None, page=msg.page if msg else None,
            channel=msg.channel if msg else None, frames=msg.frames if msg else 0,
            retries=msg.retries if msg else 0, octets=msg.octets if msg else 0,
            gbcs_originator_counter=msg.counter if msg else None,
            message_code=None if msg is None or msg.message_code is None
            else f"0x{msg.message_code:04X}",
            alert_code=alert_code,
        ), None, msg)

    # -- time-outs ----------------------------------------------------------------------

    def _tick(self, now: int) -> None:
        """Once per second of stream time: time out SRs, candidates, alerts, groups."""
        self._next_tick = now + _NS
        settings = self.settings
        sr_cut = now - int(settings.sr_timeout_s * _NS)
        expired = []
        for sr in self._srs.values():
            if sr.submitted_ts >= sr_cut:
                break
            expired.append(sr)
        for sr in expired:
            self._finish(sr, "no_response", now)
        cand_cut = now - int(settings.candidate_timeout_s * _NS)
        for dev in self._devices.values():
            while dev.up_candidates and dev.up_candidates[0].end_ts < cand_cut:
                self._unmatched(dev.up_candidates.popleft())
        alert_cut = now - int(settings.alert_pairing_s * _NS)
        for key in [k for k, m in self._han_alerts.items() if m.end_ts < alert_cut]:
            self._emit_alert(self._han_alerts.pop(key), key[0], None)
        attempt_cut = now - ATTEMPT_WINDOW_NS
        self._attempts = {k: v for k, v in self._attempts.items() if v[2] >= attempt_cut}
        group_cut = now - max(self._retry_ns, 30 * _NS)
        stale = [k for k, m in self._groups.items()
                 if (m.done and m.last_ts < now - self._retry_ns) or m.last_ts < group_cut]
        for group_key in stale:
            msg = self._groups.pop(group_key)
            if not msg.done:
                self._counts["messages_incomplete"] += 1
                self._unmatched(msg)

    # -- reading out --------------------------------------------------------------------

    def pop_exchanges(self) -> list[Exchange]:
        """The exchanges emitted since the last call, in emission order."""
        out, self._out = self._out, []
        return out

    def close(self) -> list[Exchange]:
        """End of stream: close open messages, emit every SR still open as
        ``no_response`` (in submission order) and pending alerts; return
        :meth:`pop_exchanges`. Safe to call twice."""
        if not self._closed:
            self._closed = True
            for dev, link, msg in list(self._open):
                self._close_open(dev, link, msg)
            self._finish_local()
            for sr in list(self._srs.values()):
                self._finish(sr, "no_response", self._now)
            for key in sorted(self._han_alerts):
                self._emit_alert(self._han_alerts.pop(key), key[0], None)
            for msg in self._groups.values():
                if not msg.done:
                    self._counts["messages_incomplete"] += 1
                    self._unmatched(msg)
            self._groups.clear()
        return self.pop_exchanges()


def _role_of(message_code: int) -> str | None:
    use_case = message_code_use_case(message_code)
    for prefix, role in USE_CASE_ROLES:
        if use_case.startswith(prefix):
            return role
    return None
