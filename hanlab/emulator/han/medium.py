"""The emulated radio medium of one channel, and each node's MAC on it.

A :class:`Medium` is one channel page and channel of one rig. Frames occupy it for their
real airtime (:mod:`.phy`); a frame that starts while another is on the air collides with
it and neither is received (both are still heard by the sniffers, with a bad FCS). Each
receiver also loses a frame with the link's loss probability.

A :class:`Radio` is a node's IEEE 802.15.4 MAC on one medium: a FIFO of frames to send,
unslotted CSMA-CA (IEEE 802.15.4-2015 §6.2.5.1: random backoff of 0..2^BE-1 unit backoff
periods, CCA for aCcaTime, BE from macMinBE to macMaxBE, at most macMaxCSMABackoffs extra
backoffs), transmission after aTurnaroundTime, acknowledgement by the receiver
aTurnaroundTime after the frame ends (§6.7.4.2, no CSMA), and up to macMaxFrameRetries
retransmissions when no ACK arrives within macAckWaitDuration (§6.7.4.3).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hanlab.emulator.han.scheduler import Scheduler, Timer
from hanlab.phy import (
    MAC_MAX_BE,
    MAC_MAX_CSMA_BACKOFFS,
    MAC_MAX_FRAME_RETRIES,
    MAC_MIN_BE,
    PhyTiming,
    phy_for,
)
from hanlab.zigbee.mac import MacFrame

BROADCAST_SHORT = 0xFFFF


class TruthSink(Protocol):
    """Where ground-truth events go (:class:`hanlab.emulator.truth.GroundTruthLog`)."""

    def record(self, event: str, ts_ns: int, **fields: object) -> None:
        """Record ``event`` at true time ``ts_ns`` (ns since the UNIX epoch)."""


class NullTruth:
    """A :class:`TruthSink` that keeps nothing."""

    def record(self, event: str, ts_ns: int, **fields: object) -> None:
        """Discard the event."""


class MemoryTruth:
    """A :class:`TruthSink` that keeps events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []

    def record(self, event: str, ts_ns: int, **fields: object) -> None:
        """Append ``{"event", "ts_ns", **fields}``."""
        self.events.append({"event": event, "ts_ns": ts_ns, **fields})


@dataclass(slots=True)
class Transmission:
    """One PPDU on one medium.

    Attributes:
        sender: the radio sending it.
        psdu: the MAC frame without FCS.
        seq: MAC sequence number.
        dst_short: 16-bit MAC destination, ``0xFFFF`` broadcast, ``None`` when addressed
            by EUI-64 (``dst64``) or not addressed (ACK).
        dst64: 64-bit MAC destination (association response), else ``None``.
        ack_request: the MAC ACK request bit.
        is_ack: an IEEE 802.15.4 ACK frame.
        payload: what the sending node means by it (read by receivers instead of
            decrypting the PSDU; the PSDU is what sniffers hear).
        start_ns, end_ns: true start and end of transmission (ns since the UNIX epoch).
        collided: another transmission overlapped it.
        attempt: 0 for the first transmission, n for the n-th retry.
    """

    sender: Radio
    psdu: bytes
    seq: int
    dst_short: int | None
    dst64: int | None
    ack_request: bool
    is_ack: bool
    payload: Any
    start_ns: int = 0
    end_ns: int = 0
    collided: bool = False
    attempt: int = 0


@dataclass(slots=True)
class _Outgoing:
    psdu: bytes
    seq: int
    dst_short: int | None
    dst64: int | None
    ack_request: bool
    payload: Any
    on_done: Callable[[bool], None] | None
    retries: int = 0
    nb: int = 0
    be: int = MAC_MIN_BE


Tap = Callable[[Transmission], None]


class Medium:
    """The air of one channel page and channel of one rig.

    Args:
        scheduler: the rig's scheduler.
        page, channel: the channel (page 0, or 28-31).
        truth: ground-truth sink.
        rng: random source of the rig (loss draws).
    """

    def __init__(self, scheduler: Scheduler, page: int, channel: int, truth: TruthSink,
                 rng: random.Random) -> None:
        self.scheduler = scheduler
        self.page = page
        self.channel = channel
        self.phy: PhyTiming = phy_for(page, channel)
        self.truth = truth
        self.rng = rng
        self.radios: list[Radio] = []
        self.active: list[Transmission] = []
        self.taps: list[Tap] = []
        self.last_end_ns = 0
        #: (sender EUI-64, receiver EUI-64) -> loss probability; None key -> default
        self.loss: dict[tuple[int, int] | None, float] = {}
        self.counters: dict[str, int] = {"frames": 0, "collisions": 0, "lost": 0}

    def __repr__(self) -> str:
        return f"Medium(page={self.page}, channel={self.channel})"

    def busy_since(self, since_ns: int) -> bool:
        """Whether energy was on the air at any time from ``since_ns`` to now (CCA)."""
        return bool(self.active) or self.last_end_ns > since_ns

    def loss_of(self, src: int, dst: int) -> float:
        """Loss probability of the link ``src`` → ``dst`` (EUI-64 ints)."""
        if not self.loss:
            return 0.0
        p = self.loss.get((src, dst))
        if p is None:
            p = self.loss.get((dst, src))
        if p is None:
            p = self.loss.get(None, 0.0)
        return p

    def start(self, tx: Transmission) -> None:
        """Put ``tx`` on the air now; it ends after its airtime."""
        now = self.scheduler.now_ns
        tx.start_ns = now
        tx.end_ns = now + self.phy.airtime_ns(len(tx.psdu))
        for other in self.active:
            if not other.collided:
                self.counters["collisions"] += 1
            other.collided = True
            tx.collided = True
        self.active.append(tx)
        self.scheduler.call_at(tx.end_ns, self._end, tx)

    def _end(self, tx: Transmission) -> None:
        self.active.remove(tx)
        self.last_end_ns = max(self.last_end_ns, tx.end_ns)
        self.counters["frames"] += 1
        self.truth.record(
            "frame", tx.start_ns, end_ns=tx.end_ns, airtime_ns=tx.end_ns - tx.start_ns,
            page=self.page, channel=self.channel, band=self.phy.band.value,
            sender=tx.sender.name, psdu_octets=len(tx.psdu), seq=tx.seq,
            ack=tx.is_ack, ack_request=tx.ack_request, attempt=tx.attempt,
            collided=tx.collided,
        )
        for tap in self.taps:
            tap(tx)
        tx.sender.tx_ended(tx)
        if tx.collided:
            return
        for radio in self.radios:
            if radio is tx.sender or not radio.on or radio.transmitting:
                continue
            if tx.is_ack:
                radio.ack_heard(tx)
                continue
            if not radio.accepts(tx):
                continue
            p = self.loss_of(tx.sender.eui64, radio.eui64)
            if p and self.rng.random() < p:
                self.counters["lost"] += 1
                self.truth.record("frame_lost", tx.end_ns, page=self.page,
                                  channel=self.channel, sender=tx.sender.name,
                                  receiver=radio.name, seq=tx.seq)
                continue
            radio.received(tx)


class RadioOwner(Protocol):
    """The node above a :class:`Radio`."""

    def on_frame(self, radio: Radio, tx: Transmission) -> None:
        """A frame addressed to this node arrived intact (duplicates removed)."""


class Radio:
    """One node's IEEE 802.15.4 MAC on one medium (see the module docstring).

    Args:
        owner: the node receiving frames.
        name: the node's name (ground truth).
        eui64: extended address (int).
        short: 16-bit short address (``0xFFFE`` until associated).
        pan_id: PAN ID.
        medium: the medium it is on.
        rng: random source for backoffs.
    """

    def __init__(self, owner: RadioOwner, name: str, eui64: int, short: int, pan_id: int,
                 medium: Medium, rng: random.Random) -> None:
        self.owner = owner
        self.name = name
        self.eui64 = eui64
        self.short = short
        self.pan_id = pan_id
        self.medium = medium
        self.rng = rng
        self.on = True
        self.transmitting = False
        self.mac_seq = rng.randrange(256)
        self._queue: deque[_Outgoing] = deque()
        self._current: _Outgoing | None = None
        self._ack_timer: Timer | None = None
        self._awaiting_seq: int | None = None
        self._last_rx: dict[int, int] = {}
        self.airtime_ns = 0
        #: called with (start_ns, airtime_ns) for every frame this radio sends
        self.on_airtime: Callable[[int, int], None] | None = None
        medium.radios.append(self)

    @property
    def scheduler(self) -> Scheduler:
        """The rig's scheduler."""
        return self.medium.scheduler

    @property
    def queued(self) -> int:
        """Frames waiting or being sent."""
        return len(self._queue) + (self._current is not None)

    def move_to(self, medium: Medium) -> None:
        """Retune to another channel (frequency agility); frames in flight are dropped."""
        if medium is self.medium:
            return
        self.medium.radios.remove(self)
        self.medium = medium
        medium.radios.append(self)

    def power(self, on: bool) -> None:
        """Switch the radio on or off; switching off drops every queued frame."""
        self.on = on
        if not on:
            if self._ack_timer is not None:
                self._ack_timer.cancel()
            pending = [*([self._current] if self._current else []), *self._queue]
            self._queue.clear()
            self._current = None
            self._awaiting_seq = None
            for out in pending:
                if out.on_done is not None:
                    out.on_done(False)

    def next_seq(self) -> int:
        """The next MAC sequence number (macDSN, §8.4.3.1)."""
        self.mac_seq = (self.mac_seq + 1) & 0xFF
        return self.mac_seq

    def send(self, psdu: bytes, seq: int, *, dst_short: int | None, dst64: int | None = None,
             ack_request: bool, payload: Any = None,
             on_done: Callable[[bool], None] | None = None) -> None:
        """Queue a frame; ``on_done(True)`` once sent (and acknowledged when requested),
        ``on_done(False)`` on channel access failure or no ACK after the retries."""
        if not self.on:
            if on_done is not None:
                on_done(False)
            return
        self._queue.append(_Outgoing(psdu, seq, dst_short, dst64, ack_request, payload,
                                     on_done))
        if self._current is None:
            self._next()

    # -- CSMA-CA (IEEE 802.15.4-2015 §6.2.5.1, unslotted) ----------------------------

    def _next(self) -> None:
        if self._current is not None or not self._queue or not self.on:
            return
        self._current = self._queue.popleft()
        self._csma_start(self._current)

    def _csma_start(self, out: _Outgoing) -> None:
        out.nb = 0
        out.be = MAC_MIN_BE
        self._backoff(out)

    def _backoff(self, out: _Outgoing) -> None:
        phy = self.medium.phy
        periods = self.rng.randrange(1 << out.be)
        cca_start = self.scheduler.now_ns + periods * phy.unit_backoff_ns
        self.scheduler.call_at(cca_start + phy.cca_ns, self._cca_done, out, cca_start)

    def _cca_done(self, out: _Outgoing, cca_start_ns: int) -> None:
        if out is not self._current:
            return
        if not self.medium.busy_since(cca_start_ns):
            self.scheduler.call_later(self.medium.phy.turnaround_ns, self._transmit, out)
            return
        out.nb += 1
        out.be = min(out.be + 1, MAC_MAX_BE)
        if out.nb > MAC_MAX_CSMA_BACKOFFS:
            self.medium.truth.record("channel_access_failure", self.scheduler.now_ns,
                                     sender=self.name, page=self.medium.page,
                                     channel=self.medium.channel, seq=out.seq)
            self._finish(False)
            return
        self._backoff(out)

    def _transmit(self, out: _Outgoing) -> None:
        if out is not self._current or not self.on:
            return
        self.transmitting = True
        tx = Transmission(self, out.psdu, out.seq, out.dst_short, out.dst64, out.ack_request,
                          False, out.payload, attempt=out.retries)
        self.medium.start(tx)

    def tx_ended(self, tx: Transmission) -> None:
        """Called by the medium when one of this radio's transmissions ends."""
        self.transmitting = False
        self.airtime_ns += tx.end_ns - tx.start_ns
        if self.on_airtime is not None:
            self.on_airtime(tx.start_ns, tx.end_ns - tx.start_ns)
        if tx.is_ack:
            return
        out = self._current
        if out is None or out.seq != tx.seq:
            return
        if not out.ack_request:
            self._finish(True)
            return
        self._awaiting_seq = out.seq
        self._ack_timer = self.scheduler.call_later(self.medium.phy.ack_wait_ns,
                                                    self._ack_timeout, out)

    def _ack_timeout(self, out: _Outgoing) -> None:
        if out is not self._current:
            return
        self._awaiting_seq = None
        out.retries += 1
        if out.retries > MAC_MAX_FRAME_RETRIES:
            self.medium.truth.record("no_ack", self.scheduler.now_ns, sender=self.name,
                                     page=self.medium.page, channel=self.medium.channel,
                                     seq=out.seq)
            self._finish(False)
            return
        self._csma_start(out)

    def ack_heard(self, tx: Transmission) -> None:
        """An ACK frame ended intact on the medium."""
        if self._awaiting_seq is None or tx.seq != self._awaiting_seq:
            return
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        self._awaiting_seq = None
        self._finish(True)

    def _finish(self, ok: bool) -> None:
        out = self._current
        self._current = None
        if out is not None and out.on_done is not None:
            out.on_done(ok)
        self._next()

    # -- reception ---------------------------------------------------------------------

    def accepts(self, tx: Transmission) -> bool:
        """MAC address filter (§6.7.2): our short address, broadcast, or our EUI-64."""
        if tx.dst64 is not None:
            return tx.dst64 == self.eui64
        return tx.dst_short == BROADCAST_SHORT or tx.dst_short == self.short

    def received(self, tx: Transmission) -> None:
        """An intact frame for this radio: ACK it if asked, drop retransmitted duplicates."""
        if tx.ack_request:
            self.scheduler.call_at(tx.end_ns + self.medium.phy.turnaround_ns,
                                   self._send_ack, tx.seq)
        if tx.ack_request and self._last_rx.get(tx.sender.eui64) == tx.seq:
            return
        self._last_rx[tx.sender.eui64] = tx.seq
        self.owner.on_frame(self, tx)

    def _send_ack(self, seq: int) -> None:
        if not self.on or self.transmitting:
            return
        psdu = MacFrame(2, seq).encode()
        self.transmitting = True
        self.medium.start(Transmission(self, psdu, seq, None, None, False, True, None))


@dataclass
class MediumSet:
    """The media of one rig, one per (page, channel), created on first use."""

    scheduler: Scheduler
    truth: TruthSink
    rng: random.Random
    media: dict[tuple[int, int], Medium] = field(default_factory=dict)

    def get(self, page: int, channel: int) -> Medium:
        """The medium of ``page``/``channel`` (created when first asked for)."""
        key = (page, channel)
        medium = self.media.get(key)
        if medium is None:
            medium = self.media[key] = Medium(self.scheduler, page, channel, self.truth,
                                              self.rng)
        return medium
