"""An emulated nRF 802.15.4 sniffer dongle on a pseudo-terminal (issue 6, tests).

It speaks the dongle's text protocol (Nordic "nRF Sniffer for 802.15.4"): it accepts
``sleep``, ``shell echo off``, ``channel N`` and ``receive`` lines, echoes commands
until echo is turned off, and while receiving prints
``received: <hex PSDU with FCS> power: <dBm> lqi: <n> time: <µs since boot>``, the time
being the end of the frame on its own clock.

The clock is configurable: offset and drift against the host, a 32-bit timer with its
wrap placed at a chosen moment, or a 64-bit one. Each frame's line is written a random
delivery delay (``delay_ns`` ± ``jitter_ns``) after the frame's end, and the frame's true
host time is recorded (the PSDU carries a sequence number, so a test can look it up).
Garbage lines (printable junk, binary junk, bad hex, truncated lines) are mixed in at a
given ratio. ``unplug()`` closes the pty and removes the device link, as a pulled USB
dongle does; ``plug()`` makes a new pty and link, with the dongle's clock restarted.

The pty, the device link and plugging are those of every emulated dongle
(tests/tools/pty_dongle.py). Used in-process (``async with EmulatedNrfDongle``)
by the tests, and as a program by ``benchmarks/serial_ingest.py``::

    python tests/tools/nrf_dongle.py --dir /tmp/links --count 16 --full-rate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

try:
    from tests.tools.pty_dongle import PtyDongle, boot_for_wrap, cancel
except ModuleNotFoundError:  # run as a program: python tests/tools/nrf_dongle.py
    from pty_dongle import PtyDongle, boot_for_wrap, cancel  # type: ignore[no-redef]

NS = 1_000_000_000
OCTET_NS = 32_000  # O-QPSK 250 kb/s
SHR_PHR_OCTETS = 6
TURNAROUND_NS = 192_000  # aTurnaroundTime, 12 symbols of 16 µs


def _crc16_kermit_table() -> tuple[int, ...]:
    table = []
    for octet in range(256):
        crc = octet
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc16_kermit_table()


def fcs16_bytes(data: bytes) -> bytes:
    """CRC-16/KERMIT as IEEE 802.15.4 sends it (written here, not imported from hanlab:
    the emulator is an independent implementation of the device). Table-driven, so the
    emulator stays cheap at full rate and does not compete with the process measured."""
    crc = 0
    table = _CRC_TABLE
    for octet in data:
        crc = (crc >> 8) ^ table[(crc ^ octet) & 0xFF]
    return crc.to_bytes(2, "little")


@dataclass
class DongleConfig:
    """How the emulated dongle behaves; times in ns, rates in Hz."""

    offset_ns: int = 200_000_000
    drift_ppm: float = 30.0
    timer_bits: int = 32
    #: place the 32-bit wrap this long after each plug-in (None: timer starts at 0)
    wrap_after_ns: int | None = None
    delay_ns: int = 100_000
    jitter_ns: int = 100_000
    garbage_ratio: float = 0.0
    rate_hz: float = 100.0
    full_rate: bool = False
    payload_octets: tuple[int, int] = (4, 40)
    embed_write_time: bool = False
    seed: int = 0
    #: generate its own frames (off: it prints only what a :class:`SharedAir` gives it)
    own_traffic: bool = True


@dataclass
class SentFrame:
    """Ground truth of one frame the dongle printed."""

    seq: int
    channel: int
    psdu: bytes
    true_start_ns: int
    raw_time_us: int
    written_ns: int


@dataclass
class DongleStats:
    frames: int = 0
    garbage: int = 0
    commands: list[str] = field(default_factory=list)


def build_psdu(seq: int, payload: bytes) -> bytes:
    """A MAC data frame (IEEE 802.15.4-2015 §7.3.2), short addresses, PAN ID compressed,
    with ``seq`` in its payload, FCS appended."""
    mhr = struct.pack("<HBHHH", 0x8861, seq & 0xFF, 0x1A2B, 0x0000, 0x1234)
    body = mhr + struct.pack("<I", seq) + payload
    return body + fcs16_bytes(body)


def garbage_line(rng: random.Random) -> bytes:
    """One line the parser must reject (never containing a line end)."""
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 :") for _ in range(30))
    if kind == 1:
        return bytes(rng.choice([b for b in range(256) if b not in (10, 13)]) for _ in range(20))
    if kind == 2:
        return b"received: 41zz8863 power: -40 lqi: 200 time: 12345"
    if kind == 3:
        return b"received: 4188630 power: -40 lqi: 200 time: 12345"  # odd hex length
    return b"received: 41886301 power: -40 lqi:"


class EmulatedNrfDongle(PtyDongle[DongleConfig]):
    """One emulated dongle behind a pty, reachable at ``link``.

    Args: those of :class:`PtyDongle` (``config``: clock, delay, garbage and traffic).
    """

    Config = DongleConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.echo = True
        self.receiving = False
        self.channel = 11
        self.sent: list[SentFrame] = []
        self.stats = DongleStats()

    def on_plug(self, now_ns: int) -> None:
        """Echo on, not receiving; the 32-bit timer placed to wrap ``wrap_after_ns`` on."""
        self.echo, self.receiving, self._inbuf = True, False, b""
        cfg = self.config
        self.boot_host_ns = boot_for_wrap(now_ns, bits=32, wrap_after_ns=cfg.wrap_after_ns,
                                          offset_ns=cfg.offset_ns, drift_ppm=cfg.drift_ppm)

    def on_unplug(self) -> None:
        """Stops receiving."""
        self.receiving = False

    def traffic(self) -> Coroutine[Any, Any, None] | None:
        """Its own frames, unless ``own_traffic`` is off."""
        return self._run() if self.config.own_traffic else None

    # -- protocol ------------------------------------------------------------------

    def sniffer_time_us(self, host_ns: int) -> int:
        """The dongle's raw timer reading at host time ``host_ns``."""
        cfg = self.config
        elapsed = host_ns - self.boot_host_ns
        full_us = (cfg.offset_ns + round(elapsed * (1 + cfg.drift_ppm * 1e-6))) // 1000
        return full_us & 0xFFFF_FFFF if cfg.timer_bits == 32 else full_us

    def on_bytes(self, data: bytes) -> None:
        """Commands, one a line."""
        self._inbuf += data
        *lines, self._inbuf = self._inbuf.replace(b"\r", b"\n").split(b"\n")
        for raw in lines:
            command = raw.strip().decode("ascii", "replace")
            if not command:
                continue
            self.stats.commands.append(command)
            if self.echo:
                self._write(raw.strip() + b"\r\n")
            if command == "sleep":
                self.receiving = False
            elif command == "shell echo off":
                self.echo = False
            elif command.startswith("channel "):
                with contextlib.suppress(ValueError):
                    self.channel = int(command.split()[1])
            elif command == "receive":
                self.receiving = True
            else:
                self._write(b"%s: command not found\r\n" % raw.strip())

    def print_heard(self, psdu: bytes, end_ns: int) -> None:
        """Print a frame heard on the air (PSDU with FCS, ended at host ``end_ns``) now,
        stamped with this dongle's clock at ``end_ns``."""
        if not self.receiving or not self.attached:
            return
        out = []
        if self.config.garbage_ratio and self._rng.random() < self.config.garbage_ratio:
            out.append(garbage_line(self._rng) + b"\r\n")
            self.stats.garbage += 1
        line, sent = self._frame_line(end_ns, self._clock(), 0, psdu=psdu)
        out.append(line)
        if self._write(b"".join(out)):
            self.sent.append(sent)
            self.stats.frames += 1

    def print_lines(self, specs: list[tuple[bytes, str]]) -> list[SentFrame]:
        """Print one frame line per ``(psdu with FCS, power)`` in a single write, stamped
        now; ``power`` is written as given (e.g. an absurd ``10**39``). Returns the
        ground truth of each line, in order."""
        now_ns = self._clock()
        out = []
        sent = []
        for psdu, power in specs:
            self._seq += 1
            raw_us = self.sniffer_time_us(now_ns)
            out.append(b"received: %s power: %s lqi: 200 time: %d\r\n" % (
                psdu.hex().encode(), power.encode(), raw_us))
            sent.append(SentFrame(self._seq, self.channel, psdu, now_ns, raw_us, now_ns))
        self._write(b"".join(out))
        return sent

    def _frame_line(
        self, end_ns: int, written_ns: int, payload_octets: int, psdu: bytes | None = None
    ) -> tuple[bytes, SentFrame]:
        cfg = self.config
        rng = self._rng
        self._seq += 1
        if psdu is None:
            payload = os.urandom(payload_octets)
            if cfg.embed_write_time:
                payload = struct.pack("<Q", written_ns) + payload
            psdu = build_psdu(self._seq, payload)
        raw_us = self.sniffer_time_us(end_ns)
        start_ns = end_ns - (len(psdu) + SHR_PHR_OCTETS) * OCTET_NS
        line = b"received: %s power: %d lqi: %d time: %d\r\n" % (
            psdu.hex().encode(),
            rng.randint(-90, -20),
            rng.randint(0, 255),
            raw_us,
        )
        return line, SentFrame(self._seq, self.channel, psdu, start_ns, raw_us, written_ns)

    async def _run(self) -> None:
        """Send frames while receiving: each at its end time plus its delivery delay."""
        cfg = self.config
        rng = self._rng
        next_end_ns = self._clock()
        while True:
            if not self.receiving:
                await asyncio.sleep(0.005)
                next_end_ns = self._clock()
                continue
            # frames on one channel never overlap: the next ends at least its airtime
            # and a turnaround after this one (full rate: exactly that)
            payload_octets = rng.randint(*cfg.payload_octets)
            extra = 8 if cfg.embed_write_time else 0
            airtime_ns = (SHR_PHR_OCTETS + 11 + 2 + extra + payload_octets) * OCTET_NS
            spacing_ns = airtime_ns + TURNAROUND_NS
            if not cfg.full_rate:
                spacing_ns = max(spacing_ns, int(rng.expovariate(cfg.rate_hz) * NS))
            next_end_ns += spacing_ns
            delay = max(0, cfg.delay_ns + rng.randint(-cfg.jitter_ns, cfg.jitter_ns))
            wait_s = (next_end_ns + delay - self._clock()) / NS
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if not self.receiving or not self.attached:
                continue
            out = []
            if cfg.garbage_ratio and rng.random() < cfg.garbage_ratio:
                out.append(garbage_line(rng) + b"\r\n")
                self.stats.garbage += 1
            written_ns = self._clock()
            if not cfg.full_rate:
                # woken late by the event loop: the frame ended ``delay`` before the
                # write, so the delivery delay is exactly the one drawn
                next_end_ns = max(next_end_ns, written_ns - delay)
            line, sent = self._frame_line(next_end_ns, written_ns, payload_octets)
            out.append(line)
            if self._write(b"".join(out)):
                self.sent.append(sent)
                self.stats.frames += 1


class SharedAir:
    """One 2.4 GHz channel heard by several emulated dongles (``own_traffic`` off): each
    frame is printed by every dongle receiving on ``channel``, stamped with that dongle's
    clock at the frame's end and written after that dongle's own delivery delay
    (:meth:`PtyDongle.delivery_delay_ns`), as sniffers side by side on a bench hear the
    same transmission. Any emulated dongle with ``print_heard`` takes part (the TI
    sub-GHz one too: give its PHY's ``octet_ns``, ``overhead_octets``, ``turnaround_ns``).

    Args:
        dongles: the dongles listening.
        channel: the channel the frames are sent on.
        tuned: whether a dongle receives ``channel`` (default: it is receiving and its
            ``channel`` is that one).
        octet_ns, overhead_octets, turnaround_ns: the PHY (default 2.4 GHz O-QPSK).
        rate_hz: mean frame rate (exponential spacing, never closer than airtime plus
            aTurnaroundTime).
        payload_octets: payload size range (the PSDU adds 11 octets of header and
            sequence number and 2 of FCS).
        seed: random seed of the payloads and spacing.
        host_clock_ns: host UTC clock (ns).
    """

    def __init__(
        self,
        dongles: list[Any],
        *,
        channel: int = 15,
        tuned: Callable[[Any], bool] | None = None,
        octet_ns: int = OCTET_NS,
        overhead_octets: int = SHR_PHR_OCTETS,
        turnaround_ns: int = TURNAROUND_NS,
        rate_hz: float = 200.0,
        payload_octets: tuple[int, int] = (4, 40),
        seed: int = 0,
        host_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.dongles = dongles
        self.channel = channel
        self._tuned = tuned or (lambda d: d.receiving and d.channel == channel)
        self._phy = (octet_ns, overhead_octets, turnaround_ns)
        self.rate_hz = rate_hz
        self.payload_octets = payload_octets
        self._rng = random.Random(seed)
        self._clock = host_clock_ns
        self._task: asyncio.Task[None] | None = None
        #: (sequence number, PSDU with FCS, true end of frame in host ns) of every frame
        self.sent: list[tuple[int, bytes, int]] = []

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        rng = self._rng
        seq = 0
        while True:
            payload = rng.randbytes(rng.randint(*self.payload_octets))
            seq += 1
            psdu = build_psdu(seq, payload)
            octet_ns, overhead_octets, turnaround_ns = self._phy
            airtime_ns = (overhead_octets + len(psdu)) * octet_ns
            spacing_ns = max(airtime_ns + turnaround_ns, int(rng.expovariate(self.rate_hz) * NS))
            await asyncio.sleep(spacing_ns / NS)
            end_ns = self._clock()
            self.sent.append((seq, psdu, end_ns))
            listening = [d for d in self.dongles if self._tuned(d)]
            due = sorted((end_ns + d.delivery_delay_ns(), i) for i, d in enumerate(listening))
            for due_ns, i in due:
                # the selector sleeps in whole ms: sleep to within 2 ms, then yield to the
                # loop until due, so each dongle's delivery delay is what it drew (±µs)
                while (left_ns := due_ns - self._clock()) > 0:
                    if left_ns > 2_000_000:
                        await asyncio.sleep((left_ns - 1_500_000) / NS)
                    else:
                        await asyncio.sleep(0)
                listening[i].print_heard(psdu, end_ns)


async def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="folder for the device links")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rate-hz", type=float, default=100.0)
    parser.add_argument("--full-rate", action="store_true")
    parser.add_argument("--garbage-ratio", type=float, default=0.0)
    parser.add_argument("--embed-write-time", action="store_true")
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower this process's CPU priority (a load generator must not starve the "
        "process it measures; lines are stamped when written, so a late write costs no error)",
    )
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    args.dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        for i in range(args.count):
            config = DongleConfig(
                rate_hz=args.rate_hz,
                full_rate=args.full_rate,
                garbage_ratio=args.garbage_ratio,
                embed_write_time=args.embed_write_time,
                jitter_ns=0,
                delay_ns=0,
                seed=i,
            )
            dongle = await stack.enter_async_context(
                EmulatedNrfDongle(args.dir / f"nrf{i}", config)
            )
            print(dongle.link, flush=True)
        print("ready", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(args.duration_s)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1:]))
