"""nRF 802.15.4 sniffer source: Nordic's sniffer firmware over a USB CDC ACM serial port.

The dongle (nRF52840, USB VID 0x1915 PID 0x154B; older firmware 0x154A) speaks a text
protocol (Nordic "nRF Sniffer for 802.15.4", firmware and extcap):

* host → dongle, one command per line: ``sleep`` (stop receiving), ``shell echo off``
  (newer, Zephyr-shell firmware: stop echoing commands), ``channel N`` (11-26),
  ``receive`` (start receiving);
* dongle → host, one line per frame:
  ``received: <hex PSDU with FCS> power: <dBm> lqi: <0-255> time: <µs since boot>``.
  ``time`` is taken when the last symbol of the frame was received (nRF 802.15.4 radio
  driver, ``nrf_802154_received_timestamp_raw``): 32-bit in older firmware (wraps every
  2^32 µs), 64-bit in newer. Only frames whose CRC passed are delivered; the printed FCS
  "may be modified by the hardware", so it is not re-checked unless asked to.

Frames are stamped with the dongle's own clock, aligned to host UTC by
:class:`~hanlab.sources.clock.ClockAligner` (``ts_source`` SNIFFER; ``sniffer_ts_ns`` is
the raw, unwrapped end-of-frame reading). ``ts_ns`` is the start of the frame: the
end-of-frame time minus the frame's airtime, (SHR 5 + PHR 1 + PSDU) octets × 32 µs
(IEEE 802.15.4-2015 §12.2, O-QPSK 250 kb/s).

Latency (issue 6, ``benchmarks/serial_ingest.py``): each wake-up of the event loop for a
port costs one ``os.read`` of everything pending (:class:`_SerialLink`), the lines are
parsed at once, and the waiting ``batches()`` is resumed through one future: a line is on
the rig's bus one event-loop hop after its bytes were read. Timestamps do not depend on
this latency: they come from the dongle's clock.

Faults (issue 6, item 4): when the port fails (EOF, read error, ENODEV: the dongle was
pulled), the source waits for its device path to come back, reopens it, and reports one
``gap`` event with its start, end and reason; the frames before and after go to the same
output. Lines that are not frames are counted (``bad_lines``, ``bad_frames``), never
fatal.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import os
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Literal

import serial
from pydantic import Field

from hanlab.errors import BadInputError, SourceError
from hanlab.fcs import check_fcs16
from hanlab.frames import MAX_PSDU_OCTETS, Frame, FrameBatch, TsSource
from hanlab.hardware.reopen import gap_detail, reopen_when_present
from hanlab.sources.base import (
    DriverSettings,
    EventReporter,
    FrameSource,
    SourceSpec,
    now_ns,
)
from hanlab.sources.clock import ClockAligner, TimerUnwrapper

#: USB identity of the nRF Sniffer for 802.15.4 (Nordic VID, sniffer PID; 0x154A older).
NORDIC_VID = 0x1915
SNIFFER_PID = 0x154B

#: O-QPSK 250 kb/s: 32 µs per octet; SHR (4 preamble + 1 SFD) and PHR are 6 octets.
_OCTET_NS = 32_000
_SHR_PHR_OCTETS = 6

#: lines the dongle prints that are not frames and not faults (echo, prompts, replies).
_SHELL_PREFIXES = (b"sleep", b"channel", b"receive", b"shell", b"uart:~$", b"\x1b[")


class Nrf802154Settings(DriverSettings):
    """``settings:`` of an ``nrf802154`` sniffer in a rig file.

    Attributes:
        port: device path, ideally the stable udev name ``/dev/hanlab/<rig>-<sniffer>``.
        baudrate: serial speed (ignored by USB CDC ACM; kept for UART-wired dongles).
        timer_bits: 32 or 64 for the firmware's ``time:`` counter, or ``None`` to detect.
        min_delay_us: calibrated minimum delay from end of frame to the line reaching the
            host, subtracted from aligned times (see docs/clock-alignment.md).
        timestamp_reference: what ``time:`` marks: ``end_of_frame`` (Nordic firmware)
            or ``start_of_frame``.
        fcs_check: ``hardware`` trusts the radio's CRC check; ``recompute`` checks the
            printed FCS again.
        clock_window_s: span of the clock estimator's window.
        reopen: reopen the port after a fault (else raise SourceError to the daemon).
        path_poll_s: how often a vanished device path is looked for.
        reopen_backoff_s, reopen_backoff_max_s: backoff between failed opens of a path
            that exists (first wait, and cap).
        silence_timeout_s: reopen when nothing at all arrived for this long (``None``: off;
            a quiet channel is silent, so set it only where traffic is certain).
        usb_vid, usb_pid, usb_serial: the dongle's USB identity, for udev rules and
            ``hanlab devices`` (the serial number is printed on ``hanlab devices``).
    """

    live: ClassVar[bool] = True

    port: str
    baudrate: int = 115200
    timer_bits: Literal[32, 64] | None = None
    min_delay_us: float = Field(default=0.0, ge=0)
    timestamp_reference: Literal["end_of_frame", "start_of_frame"] = "end_of_frame"
    fcs_check: Literal["hardware", "recompute"] = "hardware"
    clock_window_s: float = Field(default=60.0, gt=0)
    reopen: bool = True
    path_poll_s: float = Field(default=0.1, gt=0)
    reopen_backoff_s: float = Field(default=0.1, gt=0)
    reopen_backoff_max_s: float = Field(default=1.0, gt=0)
    silence_timeout_s: float | None = Field(default=None, gt=0)
    usb_vid: int | None = NORDIC_VID
    usb_pid: int | None = SNIFFER_PID
    usb_serial: str | None = None


class ParsedLine:
    """One ``received:`` line, parsed: PSDU with FCS, power (dBm), LQI, raw µs time."""

    __slots__ = ("lqi", "power_dbm", "psdu_fcs", "time_us")

    def __init__(self, psdu_fcs: bytes, power_dbm: int, lqi: int, time_us: int) -> None:
        self.psdu_fcs = psdu_fcs
        self.power_dbm = power_dbm
        self.lqi = lqi
        self.time_us = time_us


#: a ``power:`` beyond ± this many dBm is a corrupt line, not a reading
MAX_POWER_DBM = 1000


def parse_line(line: bytes) -> ParsedLine | None:
    """Parse one line of the dongle's output (without its line end).

    Returns:
        the parsed frame line, or ``None`` if the line is not a well-formed
        ``received:`` line (the caller counts it), including a ``power:`` beyond
        ±:data:`MAX_POWER_DBM` (a corrupt line; issue 14 item 10). A plausible power outside
        [-128, 127] dBm is kept here and clamped with the other range checks
        (:func:`hanlab.frames.checked_frames`).
    """
    parts = line.split()
    if (
        len(parts) != 8
        or parts[0] != b"received:"
        or parts[2] != b"power:"
        or parts[4] != b"lqi:"
        or parts[6] != b"time:"
    ):
        return None
    try:
        psdu_fcs = binascii.a2b_hex(parts[1])
        power_dbm = int(parts[3])
        lqi = int(parts[5])
        time_us = int(parts[7])
    except (binascii.Error, ValueError):
        return None
    if not 3 <= len(psdu_fcs) <= MAX_PSDU_OCTETS or not 0 <= lqi <= 255 \
            or not -MAX_POWER_DBM <= power_dbm <= MAX_POWER_DBM:
        return None
    return ParsedLine(psdu_fcs, power_dbm, lqi, time_us)


class _LineProtocol(asyncio.Protocol):
    """Receives bytes from the serial transport, hands complete lines on with their
    host receive time in ns (one time per read: lines coalesced in a read share it).

    ``on_lost`` is called once when the port closes or fails, after ``lost`` is set.
    """

    def __init__(
        self,
        on_lines: Callable[[list[bytes], int], None],
        clock: Callable[[], int],
        on_lost: Callable[[], None],
    ) -> None:
        self._on_lines = on_lines
        self._clock = clock
        self._on_lost = on_lost
        self._carry = b""
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        host_rx_ns = self._clock()
        if self._carry:
            data = self._carry + data
        lines = data.replace(b"\r", b"\n").split(b"\n")
        self._carry = lines.pop()
        if len(self._carry) > 4096:  # no line end for too long: garbage, drop it
            lines.append(self._carry)
            self._carry = b""
        if lines:
            self._on_lines(lines, host_rx_ns)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)
            self._on_lost()


class _SerialLink:
    """A serial port read straight from the event loop: one ``os.read`` per readiness.

    pyserial configures the port (raw mode, speed, exclusive lock); reading and writing
    bypass its ``read()``, which costs two ``select`` calls and a timeout object per read
    (pyserial-asyncio-fast calls it with a 1024-octet limit on each wake-up). Here each
    wake-up drains up to 64 KiB in one system call, so a burst of lines costs one read.

    A failed read (EIO or ENXIO: the dongle was pulled; the pty master closed) or end of
    file closes the link and calls ``protocol.connection_lost`` with the error (``None``
    for end of file), once.
    """

    _READ_OCTETS = 65536

    def __init__(self, port: serial.Serial, protocol: _LineProtocol) -> None:
        self._loop = asyncio.get_running_loop()
        self._port = port
        self._fd: int = port.fileno()
        self._protocol = protocol
        self._out = b""
        self._closing = False
        self._loop.add_reader(self._fd, self._read_ready)

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called or the port failed."""
        return self._closing

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fd, self._READ_OCTETS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(exc)
            return
        if data:
            self._protocol.data_received(data)
        else:
            self._lose(None)

    def write(self, data: bytes) -> None:
        """Write ``data`` without blocking; what the port does not take now is sent when
        it becomes writable. Ignored once closing."""
        if self._closing:
            return
        if self._out:
            self._out += data
            return
        self._out = data
        self._write_ready()

    def _write_ready(self) -> None:
        try:
            n = os.write(self._fd, self._out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._lose(exc)
            return
        self._out = self._out[n:]
        if self._out:
            self._loop.add_writer(self._fd, self._write_ready)
        else:
            self._loop.remove_writer(self._fd)

    def close(self) -> None:
        """Send what is buffered if the port takes it now, close the port, and report
        ``connection_lost(None)``; safe to call twice."""
        if not self._closing and self._out:
            with contextlib.suppress(OSError):
                os.write(self._fd, self._out)
        self._lose(None)

    def _lose(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._out = b""
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)


def _open_port(port: str, baudrate: int) -> serial.Serial:
    """Open ``port`` for non-blocking use (runs in a worker thread: a USB open can stall)."""
    return serial.Serial(port, baudrate, exclusive=True, timeout=0, write_timeout=0)


def _close_opened(opening: asyncio.Future[serial.Serial]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


class Nrf802154Source(FrameSource[Nrf802154Settings]):
    """Frames from one nRF 802.15.4 sniffer dongle (issue 6, items 2-4).

    Args:
        spec: the sniffer; ``page`` must be 0 (the nRF52840 sniffs 2.4 GHz only).
        report: receives ``gap``, ``clock`` and ``info`` events.
        host_clock_ns: host UTC clock in ns (injected by tests for virtual time).

    Raises (from ``start``):
        BadInputError: the spec is not a 2.4 GHz channel.
        SourceError: the port cannot be opened.
    """

    Settings = Nrf802154Settings

    def __init__(
        self,
        spec: SourceSpec,
        report: EventReporter | None = None,
        *,
        host_clock_ns: Callable[[], int] = now_ns,
    ) -> None:
        super().__init__(spec, report)
        self._clock = host_clock_ns
        self.channel = spec.channel
        self.aligner = ClockAligner(
            window_ns=int(self.settings.clock_window_s * 1e9),
            min_delay_ns=int(self.settings.min_delay_us * 1000),
            # spread the refits of sniffers opened together over the bucket span
            bucket_phase_ns=zlib.crc32(spec.sniffer_id.encode()),
        )
        self._timer = TimerUnwrapper(self.settings.timer_bits)
        self._transport: _SerialLink | None = None
        self._protocol: _LineProtocol | None = None
        self._pending: FrameBatch = []
        #: the future ``batches()`` sleeps on while nothing is pending; whoever has news
        #: (lines parsed, port lost, stop) completes it: one event-loop hop per batch
        self._waiter: asyncio.Future[None] | None = None
        self._last_ts_ns = 0
        self._last_rx_ns = 0
        self._stopped = False
        self.counters = {
            "lines": 0,
            "frames": 0,
            "bad_lines": 0,
            "bad_frames": 0,
            "shell_lines": 0,
            "fcs_errors": 0,
            "ts_clamped": 0,
            "clock_restarts": 0,
            "gaps": 0,
            "reopens": 0,
        }
        self.gaps: list[dict[str, Any]] = []

    # -- opening and closing ----------------------------------------------------------

    async def start(self) -> None:
        """Open the port and start receiving on the configured channel."""
        if self.spec.page != 0 or not 11 <= self.spec.channel <= 26:
            raise BadInputError(
                f"sniffer {self.sniffer_id}: the nRF 802.15.4 sniffer receives 2.4 GHz only "
                f"(page 0, channels 11-26), not page {self.spec.page} channel {self.spec.channel}"
            )
        self._stopped = False
        try:
            await self._open()
        except (OSError, serial.SerialException) as exc:
            raise SourceError(
                f"sniffer {self.sniffer_id}: cannot open {self.settings.port}: {exc}",
                hint="check `hanlab devices` and the udev rules",
            ) from exc

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = _LineProtocol(self._on_lines, self._clock, self._wake)
        opening = loop.run_in_executor(None, _open_port, self.settings.port, self.settings.baudrate)
        try:
            port = await asyncio.shield(opening)
        except asyncio.CancelledError:  # the open still completes: close what it opens
            opening.add_done_callback(_close_opened)
            raise
        self._transport, self._protocol = _SerialLink(port, protocol), protocol
        # a fresh USB connection means a fresh dongle clock: realign from scratch
        self._timer.reset()
        self.aligner.restart()
        self._write(b"", b"sleep", b"shell echo off", b"channel %d" % self.channel, b"receive")

    def _write(self, *commands: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(c + b"\r\n" for c in commands))

    async def _close(self, *, say_sleep: bool) -> None:
        transport, protocol = self._transport, self._protocol
        self._transport = self._protocol = None
        if transport is None or protocol is None:
            return
        if say_sleep:
            self._write_to(transport, b"sleep\r\n")
        transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.lost), 2.0)

    @staticmethod
    def _write_to(transport: _SerialLink, data: bytes) -> None:
        if not transport.is_closing():
            transport.write(data)

    async def stop(self) -> None:
        """Put the dongle to sleep and close the port; safe to call twice."""
        self._stopped = True
        self._wake()
        await self._close(say_sleep=True)

    async def set_channel(self, channel: int) -> None:
        """Change channel while running (``sleep``, ``channel N``, ``receive``).

        Lines already in flight when the command is written are labelled with the old
        channel, so frames from the last few ms before the change may carry the new one.

        Raises:
            BadInputError: ``channel`` is not 11-26.
        """
        if not 11 <= channel <= 26:
            raise BadInputError(f"channel {channel} is not a 2.4 GHz channel (11-26)")
        self.channel = channel
        self._write(b"sleep", b"channel %d" % channel, b"receive")
        self.emit("info", channel=channel, what="channel_changed")

    # -- receiving ----------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_lines(self, lines: list[bytes], host_rx_ns: int) -> None:
        self._last_rx_ns = host_rx_ns
        out = self._pending
        counters = self.counters
        recompute = self.settings.fcs_check == "recompute"
        end_ref = self.settings.timestamp_reference == "end_of_frame"
        for line in lines:
            if not line:
                continue
            counters["lines"] += 1
            try:
                frame = self._frame_of(line, host_rx_ns, recompute, end_ref)
            except Exception:  # one bad line never loses the rest of the read
                counters["bad_lines"] += 1
                continue
            if frame is not None:
                out.append(frame)
                counters["frames"] += 1
        if out:
            self._wake()

    def _frame_of(self, line: bytes, host_rx_ns: int, recompute: bool,
                  end_ref: bool) -> Frame | None:
        """The frame of one output line, or ``None`` (counted) if it carries none."""
        counters = self.counters
        spec = self.spec
        parsed = parse_line(line)
        if parsed is None:
            if line.startswith(b"received:"):
                counters["bad_frames"] += 1
            elif line.lstrip().startswith(_SHELL_PREFIXES):
                counters["shell_lines"] += 1
            else:
                counters["bad_lines"] += 1
            return None
        full_us = self._timer.unwrap_us(parsed.time_us, host_rx_ns)
        if self._timer.restarted:
            counters["clock_restarts"] += 1
            self.aligner.restart()
        sniffer_ns = full_us * 1000
        self.aligner.observe(sniffer_ns, host_rx_ns)
        ts_ns = self.aligner.to_host_ns(sniffer_ns)
        psdu_fcs = parsed.psdu_fcs
        if end_ref:
            ts_ns -= (len(psdu_fcs) + _SHR_PHR_OCTETS) * _OCTET_NS
        if ts_ns <= self._last_ts_ns:
            ts_ns = self._last_ts_ns + 1
            counters["ts_clamped"] += 1
        self._last_ts_ns = ts_ns
        fcs_ok = True
        if recompute and not check_fcs16(psdu_fcs):
            fcs_ok = False
            counters["fcs_errors"] += 1
        return Frame(ts_ns, spec.sniffer_id, spec.band, 0, self.channel, psdu_fcs[:-2], fcs_ok,
                     float(parsed.power_dbm), parsed.lqi, TsSource.SNIFFER, sniffer_ns)


    async def batches(self) -> AsyncIterator[FrameBatch]:
        """Yield frame batches until stopped; survive unplugs (see module docstring).

        Raises:
            SourceError: the port failed and ``reopen`` is off.
        """
        loop = asyncio.get_running_loop()
        while not self._stopped:
            protocol = self._protocol
            if protocol is None:
                await self._recover("not open")
                continue
            if not self._pending and not protocol.lost.done():
                self._waiter = waiter = loop.create_future()
                timeout_s = self.settings.silence_timeout_s
                try:
                    if timeout_s is None:
                        await waiter
                    else:
                        async with asyncio.timeout(timeout_s):
                            await waiter
                except TimeoutError:
                    await self._fault(f"silent for {timeout_s} s")
                    continue
                finally:
                    self._waiter = None
            if self._pending:
                batch, self._pending = self._pending, []
                batch = self.checked(batch)
                if batch:
                    yield batch
            if protocol.lost.done() and not self._stopped and protocol is self._protocol:
                exc = protocol.lost.result()
                await self._fault(f"port lost: {exc}" if exc else "port closed (EOF)")

    async def _fault(self, reason: str) -> None:
        gap_start_ns = self._clock()
        self.emit("info", what="device_lost", reason=reason, gap_start_ns=gap_start_ns)
        await self._close(say_sleep=False)
        if not self.settings.reopen:
            raise SourceError(f"sniffer {self.sniffer_id}: {reason}")
        await self._recover(reason, gap_start_ns)

    async def _recover(self, reason: str, gap_start_ns: int | None = None) -> None:
        """Wait for the device path, reopen it, report the gap once with start and end."""
        if gap_start_ns is None:
            gap_start_ns = self._clock()
        s = self.settings
        attempts = await reopen_when_present(
            s.port,
            self._open,
            stopped=lambda: self._stopped,
            path_poll_s=s.path_poll_s,
            backoff_s=s.reopen_backoff_s,
            backoff_max_s=s.reopen_backoff_max_s,
            errors=(OSError, serial.SerialException),
        )
        if attempts is None:
            return
        gap = gap_detail(
            reason,
            gap_start_ns,
            self._clock(),
            last_rx_ns=self._last_rx_ns,
            open_attempts=attempts,
            port=s.port,
        )
        self.gaps.append(gap)
        self.counters["gaps"] += 1
        self.counters["reopens"] += 1
        self.emit("gap", **gap)
