"""An emulated TI SmartRF Packet Sniffer 2 dongle (CC1352 LaunchPad) on a pseudo-terminal.

It speaks the firmware's binary packet protocol (TI, SmartRF Packet Sniffer 2 User's
Guide, "Command Interface"; as ``sniffer_fw`` 1.10 really sends it, per the tuxniffer
README): it answers PING, STOP, CFG_PHY, CFG_FREQUENCY and START with a status (STOP when
not started and CFG_* while started: "invalid state"; an unknown command: "invalid
command"; a bad FCS: "FCS error"), and while started sends one data packet per frame
heard: Timestamp (6 octets, µs on its own 48-bit clock, at the end of the SFD) | one
header octet (the PSDU length) | PSDU with FCS | RSSI | Status (0x80: FCS OK), with no
packet FCS (``data_fcs`` adds one, as the user's guide draws it).

The clock is configurable like the nRF emulator's (tests/tools/nrf_dongle.py): offset,
drift, and the 48-bit wrap placed a chosen time after each plug-in. Each frame's packet is
written a random delivery delay (``delay_ns`` ± ``jitter_ns``) after its end; the frame's
true start in host time is recorded (the PSDU carries a sequence number). Garbage
(random octets, truncated packets, wrong FCS, bad EOF, an impossible Length, a "frame"
whose CRC is wrong although its status says OK) is mixed in at a given ratio. The pty,
the device link, plugging and unplugging are those of every emulated dongle
(tests/tools/pty_dongle.py); a replug restarts the dongle's clock.

Written from the protocol description, not from hanlab's driver: an independent
implementation of the device (its FCS and CRC are its own).
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from tests.tools.nrf_dongle import SentFrame, build_psdu
from tests.tools.pty_dongle import PtyDongle, boot_for_wrap

NS = 1_000_000_000
#: GB sub-GHz 2-FSK 100 kb/s: 80 µs per octet; SHR 10 octets (preamble 8, SFD 2), PHR 2
OCTET_NS = 80_000
SHR_OCTETS = 10
PHR_OCTETS = 2
TURNAROUND_NS = 1_000_000
TIMER_BITS = 48

_SOF, _EOF = b"\x40\x53", b"\x40\x45"
_PING, _START, _STOP, _CFG_FREQUENCY, _CFG_PHY = 0x40, 0x41, 0x42, 0x45, 0x47
_RESPONSE, _DATA, _ERROR = 0x80, 0xC0, 0xC1
_OK, _FCS_ERROR, _INVALID_COMMAND, _INVALID_STATE = 0, 2, 3, 4
#: PING answer: chip ID, chip revision, firmware ID, firmware revision (a CC1352P7)
_PING_ANSWER = struct.pack("<HBBH", 0x5313, 0x00, 0x51, 0x0110)


def packet(info: int, payload: bytes, *, with_fcs: bool = True) -> bytes:
    """SOF | Info | Length | Payload | FCS (sum of Info, Length and Payload) | EOF."""
    length = len(payload).to_bytes(2, "little")
    fcs = bytes([(info + sum(length) + sum(payload)) & 0xFF]) if with_fcs else b""
    return _SOF + bytes([info]) + length + payload + fcs + _EOF


@dataclass
class TiDongleConfig:
    """How the emulated dongle behaves; times in ns, rates in Hz."""

    offset_ns: int = 200_000_000
    drift_ppm: float = -25.0
    #: place the 48-bit wrap this long after each plug-in (None: the timer starts at 0)
    wrap_after_ns: int | None = None
    delay_ns: int = 150_000
    jitter_ns: int = 100_000
    garbage_ratio: float = 0.0
    rate_hz: float = 100.0
    payload_octets: tuple[int, int] = (8, 40)
    #: the share of frames received with a bad CRC (status 0x00, FCS octets spoilt)
    bad_crc_ratio: float = 0.0
    #: a packet FCS on data packets too, as the user's guide draws them
    data_fcs: bool = False
    #: octets between the timestamp and the PSDU
    header_octets: int = 1
    #: answer commands at all (off: a dongle with other firmware)
    answer: bool = True
    seed: int = 0
    #: generate its own frames (off: it sends only what :meth:`print_heard` gives it)
    own_traffic: bool = True


@dataclass
class TiDongleStats:
    frames: int = 0
    garbage: int = 0
    #: garbage items with a SOF in them (each costs the decoder a bad packet or more)
    garbage_packets: int = 0
    #: (command Info, payload) in the order received
    commands: list[tuple[int, bytes]] = field(default_factory=list)


class EmulatedTiDongle(PtyDongle[TiDongleConfig]):
    """One emulated TI sniffer behind a pty, reachable at ``link``.

    Args: those of :class:`PtyDongle` (``config``: clock, delay, garbage and traffic).
    """

    Config = TiDongleConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = False
        self.phy: int | None = None
        self.frequency_mhz: float | None = None
        self.sent: list[SentFrame] = []
        self.stats = TiDongleStats()

    @property
    def receiving(self) -> bool:
        """Whether it sends frames (started by the host; tests clear it to pause)."""
        return self.started

    @receiving.setter
    def receiving(self, value: bool) -> None:
        self.started = value

    def on_plug(self, now_ns: int) -> None:
        """Stopped, unconfigured; the 48-bit timer placed to wrap ``wrap_after_ns`` on."""
        self.started, self._inbuf, self.phy, self.frequency_mhz = False, b"", None, None
        cfg = self.config
        self.boot_host_ns = boot_for_wrap(now_ns, bits=TIMER_BITS,
                                          wrap_after_ns=cfg.wrap_after_ns,
                                          offset_ns=cfg.offset_ns, drift_ppm=cfg.drift_ppm)

    def on_unplug(self) -> None:
        """Stops."""
        self.started = False

    def traffic(self) -> Coroutine[Any, Any, None] | None:
        """The frames it hears while started, unless ``own_traffic`` is off."""
        return self._run() if self.config.own_traffic else None

    def print_heard(self, psdu: bytes, end_ns: int) -> None:
        """Send a frame heard on the air (PSDU with FCS, ended at host ``end_ns``) now,
        stamped with this dongle's clock at the end of its SFD."""
        if not self.started or not self.attached:
            return
        start_ns = end_ns - (SHR_OCTETS + PHR_OCTETS + len(psdu)) * OCTET_NS
        sfd_end_ns = start_ns + SHR_OCTETS * OCTET_NS
        if self._write(self.data_packet(psdu, sfd_end_ns)):
            self._seq += 1
            self.sent.append(SentFrame(self._seq, 0, psdu, start_ns,
                                       self.sniffer_time_us(sfd_end_ns), self._clock()))
            self.stats.frames += 1

    # -- protocol ------------------------------------------------------------------

    def sniffer_time_us(self, host_ns: int) -> int:
        """The dongle's raw 48-bit µs timer reading at host time ``host_ns``."""
        cfg = self.config
        elapsed = host_ns - self.boot_host_ns
        full_us = (cfg.offset_ns + round(elapsed * (1 + cfg.drift_ppm * 1e-6))) // 1000
        return full_us & ((1 << TIMER_BITS) - 1)

    def on_bytes(self, data: bytes) -> None:
        """Command packets (each with its FCS)."""
        self._inbuf += data
        while True:
            start = self._inbuf.find(_SOF)
            if start < 0:
                self._inbuf = self._inbuf[-1:]
                return
            buf = self._inbuf = self._inbuf[start:]
            if len(buf) < 5:
                return
            length = int.from_bytes(buf[3:5], "little")
            if len(buf) < 5 + length + 3:
                return
            info, payload, fcs = buf[2], buf[5:5 + length], buf[5 + length]
            framed = buf[6 + length:8 + length] == _EOF
            self._inbuf = buf[8 + length:] if framed else buf[2:]
            if framed:
                self._command(info, payload, fcs)

    def _command(self, info: int, payload: bytes, fcs: int) -> None:
        self.stats.commands.append((info, payload))
        if not self.config.answer:
            return
        if fcs != (info + len(payload) % 256 + len(payload) // 256 + sum(payload)) & 0xFF:
            status = _FCS_ERROR
        elif info == _PING:
            self._write(packet(_RESPONSE, bytes([_OK]) + _PING_ANSWER))
            return
        elif info == _STOP:
            status = _OK if self.started else _INVALID_STATE
            self.started = False
        elif info == _START:
            status = _OK if self.phy is not None and self.frequency_mhz else _INVALID_STATE
            self.started = status == _OK
        elif info in (_CFG_PHY, _CFG_FREQUENCY):
            if self.started:
                status = _INVALID_STATE
            elif info == _CFG_PHY and len(payload) == 1:
                self.phy, status = payload[0], _OK
            elif info == _CFG_FREQUENCY and len(payload) == 4:
                mhz, frac = struct.unpack("<HH", payload)
                self.frequency_mhz, status = mhz + frac / 65536, _OK
            else:
                status = _INVALID_COMMAND
        else:
            status = _INVALID_COMMAND
        self._write(packet(_RESPONSE, bytes([status])))

    def data_packet(self, psdu: bytes, sfd_end_ns: int, *, fcs_ok: bool = True,
                    rssi_dbm: int = -60) -> bytes:
        """The data packet of a frame whose SFD ended at host ``sfd_end_ns``."""
        cfg = self.config
        header = bytes([len(psdu) & 0xFF]) * cfg.header_octets
        payload = (self.sniffer_time_us(sfd_end_ns).to_bytes(6, "little") + header + psdu
                   + struct.pack("<bB", rssi_dbm, 0x80 if fcs_ok else 0x00))
        return packet(_DATA, payload, with_fcs=cfg.data_fcs)

    def garbage(self) -> bytes:
        """Octets the driver must skip without losing the frame after them."""
        rng = self._rng
        kind = rng.randrange(6)
        good = self.data_packet(build_psdu(0, b"garbage!"), self._clock())
        if kind == 0:  # random octets, no SOF in them
            return bytes(rng.choice([b for b in range(256) if b != 0x40]) for _ in range(20))
        if kind == 1:  # truncated: a few octets short of what its Length says
            return good[: len(good) - 2 - rng.randint(1, 6)]
        if kind == 2:  # a response with a wrong FCS
            bad = bytearray(packet(_RESPONSE, b"\x00"))
            bad[-3] ^= 0x5A
            return bytes(bad)
        if kind == 3:  # the EOF spoilt
            return good[:-2] + b"\x41\x46"
        if kind == 4:  # a Length beyond 2049
            return _SOF + b"\xc0\x00\x09" + bytes(8)
        # status says FCS OK but the PSDU's CRC is wrong
        psdu = bytearray(build_psdu(0, b"spoilt!!"))
        psdu[-1] ^= 0xFF
        return self.data_packet(bytes(psdu), self._clock())

    async def _run(self) -> None:
        """Send frames while started: each at its end time plus its delivery delay."""
        cfg = self.config
        rng = self._rng
        next_end_ns = self._clock()
        while True:
            if not self.started:
                await asyncio.sleep(0.005)
                next_end_ns = self._clock()
                continue
            payload_octets = rng.randint(*cfg.payload_octets)
            psdu_octets = 11 + payload_octets + 2
            airtime_ns = (SHR_OCTETS + PHR_OCTETS + psdu_octets) * OCTET_NS
            spacing_ns = max(airtime_ns + TURNAROUND_NS, int(rng.expovariate(cfg.rate_hz) * NS))
            next_end_ns += spacing_ns
            delay = max(0, cfg.delay_ns + rng.randint(-cfg.jitter_ns, cfg.jitter_ns))
            wait_s = (next_end_ns + delay - self._clock()) / NS
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if not self.started or not self.attached:
                continue
            written_ns = self._clock()
            # woken late by the event loop: the frame ended ``delay`` before the write
            next_end_ns = max(next_end_ns, written_ns - delay)
            out = []
            if cfg.garbage_ratio and rng.random() < cfg.garbage_ratio:
                junk = self.garbage()
                out.append(junk)
                self.stats.garbage += 1
                self.stats.garbage_packets += b"\x40\x53" in junk
            self._seq += 1
            psdu = build_psdu(self._seq, os.urandom(payload_octets))
            fcs_ok = not (cfg.bad_crc_ratio and rng.random() < cfg.bad_crc_ratio)
            if not fcs_ok:
                psdu = psdu[:-2] + bytes(b ^ 0xFF for b in psdu[-2:])
            start_ns = next_end_ns - airtime_ns
            out.append(self.data_packet(psdu, start_ns + SHR_OCTETS * OCTET_NS, fcs_ok=fcs_ok,
                                        rssi_dbm=rng.randint(-100, -30)))
            raw_us = self.sniffer_time_us(start_ns + SHR_OCTETS * OCTET_NS)
            if self._write(b"".join(out)):
                self.sent.append(SentFrame(self._seq, 0, psdu, start_ns, raw_us, written_ns))
                self.stats.frames += 1
