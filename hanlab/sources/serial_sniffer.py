"""The runtime shared by sniffers on a USB serial port that stamp frames with their own
clock (nRF 802.15.4 sniffer, TI SmartRF Packet Sniffer 2 firmware).

One mechanism for what does not depend on the dongle's protocol (issue 6, items 2-4;
issue 13 item 5):

* the port, read straight from the event loop (:class:`SerialLink`: one ``os.read`` per
  readiness) and opened in a worker thread (a USB open can stall);
* the clock: raw timer readings unwrapped (:class:`~hanlab.sources.clock.TimerUnwrapper`),
  aligned to host UTC (:class:`~hanlab.sources.clock.ClockAligner`, ``ts_source``
  SNIFFER; ``sniffer_ts_ns`` the raw, unwrapped reading), kept strictly increasing;
* ``batches()``: what was parsed since the last batch, resumed through one future, so a
  frame is on the rig's bus one event-loop hop after its bytes were read;
* faults: when the port fails (EOF, read error, ENODEV: the dongle was pulled) or stays
  silent for ``silence_timeout_s``, the source waits for its device path to come back,
  reopens it, configures the dongle again and reports one ``gap`` event with its start,
  end and reason (:mod:`hanlab.hardware.reopen`); the frames before and after go to the
  same output.

A driver subclasses :class:`SerialSnifferSource` and supplies the protocol: checking the
spec (:meth:`~SerialSnifferSource.check_spec`), parsing bytes into frames
(:meth:`~SerialSnifferSource.on_data`, appending to ``pending`` and calling ``wake``),
configuring the dongle on every open (:meth:`~SerialSnifferSource.configure`) and the
bytes that stop it (:meth:`~SerialSnifferSource.stop_bytes`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, TypeVar

import serial
from pydantic import Field

from hanlab.errors import SourceError
from hanlab.frames import FrameBatch
from hanlab.hardware.reopen import gap_detail, reopen_when_present
from hanlab.sources.base import DriverSettings, EventReporter, FrameSource, SourceSpec, now_ns
from hanlab.sources.clock import ClockAligner, TimerUnwrapper


class SerialSnifferSettings(DriverSettings):
    """``settings:`` every serial sniffer with its own clock has (a driver adds its own).

    Attributes:
        port: device path, ideally the stable udev name ``/dev/hanlab/<rig>-<sniffer>``.
        baudrate: serial speed (ignored by a USB CDC ACM dongle; used by a UART bridge).
        min_delay_us: calibrated minimum delay from the sniffer's timestamp to the bytes
            reaching the host, subtracted from aligned times (docs/clock-alignment.md).
        clock_window_s: span of the clock estimator's window.
        reopen: reopen the port after a fault (else raise SourceError to the daemon).
        path_poll_s: how often a vanished device path is looked for.
        reopen_backoff_s, reopen_backoff_max_s: backoff between failed opens of a path
            that exists (first wait, and cap).
        silence_timeout_s: reopen when nothing at all arrived for this long (``None``: off;
            a quiet channel is silent, so set it only where traffic is certain).
        usb_vid, usb_pid, usb_serial: the dongle's USB identity, for udev rules and
            ``hanlab devices`` (the serial number is printed on ``hanlab devices``).
        usb_interface: the USB interface number of the sniffer's port, for a dongle that
            has several serial ports under one serial number (``None``: any).
    """

    live: ClassVar[bool] = True

    port: str
    baudrate: int = 115200
    min_delay_us: float = Field(default=0.0, ge=0)
    clock_window_s: float = Field(default=60.0, gt=0)
    reopen: bool = True
    path_poll_s: float = Field(default=0.1, gt=0)
    reopen_backoff_s: float = Field(default=0.1, gt=0)
    reopen_backoff_max_s: float = Field(default=1.0, gt=0)
    silence_timeout_s: float | None = Field(default=None, gt=0)
    usb_vid: int | None = None
    usb_pid: int | None = None
    usb_serial: str | None = None
    usb_interface: int | None = Field(default=None, ge=0, le=255)


class StreamProtocol:
    """Receives bytes from a :class:`SerialLink` and hands each read on with its host
    receive time in ns (one time per read: frames coalesced in a read share it).

    ``on_lost`` is called once when the port closes or fails, after ``lost`` is set.
    """

    def __init__(
        self,
        on_data: Callable[[bytes, int], None],
        clock: Callable[[], int],
        on_lost: Callable[[], None],
    ) -> None:
        self._on_data = on_data
        self._clock = clock
        self._on_lost = on_lost
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        """Pass ``data`` on, stamped with the host clock now."""
        self._on_data(data, self._clock())

    def connection_lost(self, exc: Exception | None) -> None:
        """Record the loss (``exc``: the error, ``None`` for a close or end of file)."""
        if not self.lost.done():
            self.lost.set_result(exc)
            self._on_lost()


class SerialLink:
    """A serial port read straight from the event loop: one ``os.read`` per readiness.

    pyserial configures the port (raw mode, speed, exclusive lock); reading and writing
    bypass its ``read()``, which costs two ``select`` calls and a timeout object per read
    (pyserial-asyncio-fast calls it with a 1024-octet limit on each wake-up). Here each
    wake-up drains up to 64 KiB in one system call, so a burst of frames costs one read.

    A failed read (EIO or ENXIO: the dongle was pulled; the pty master closed) or end of
    file closes the link and calls ``protocol.connection_lost`` with the error (``None``
    for end of file), once.
    """

    _READ_OCTETS = 65536

    def __init__(self, port: serial.Serial, protocol: StreamProtocol) -> None:
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


S = TypeVar("S", bound=SerialSnifferSettings)


class SerialSnifferSource(FrameSource[S], abc.ABC):
    """Frames from one serial sniffer with its own clock; see the module docstring.

    Args:
        spec: the sniffer; :meth:`check_spec` says which pages and channels it takes.
        report: receives ``gap`` and ``info`` events.
        host_clock_ns: host UTC clock in ns (injected by tests for virtual time).

    Raises (from ``start``):
        BadInputError: the spec is not a page/channel this sniffer receives.
        SourceError: the port cannot be opened or the dongle cannot be configured.
    """

    #: counters every serial sniffer keeps; a driver adds its own (``counters`` extra)
    _BASE_COUNTERS: ClassVar[tuple[str, ...]] = (
        "frames", "fcs_errors", "ts_clamped", "clock_restarts", "gaps", "reopens")
    #: the driver's own counters, besides the common ones
    DRIVER_COUNTERS: ClassVar[tuple[str, ...]] = ()
    #: errors from opening or configuring that a reopen retries (after the backoff)
    RETRY_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (OSError, serial.SerialException)

    def __init__(
        self,
        spec: SourceSpec,
        report: EventReporter | None = None,
        *,
        host_clock_ns: Callable[[], int] = now_ns,
    ) -> None:
        super().__init__(spec, report)
        self._clock = host_clock_ns
        self.page = spec.page
        self.channel = spec.channel
        self.aligner = ClockAligner(
            window_ns=int(self.settings.clock_window_s * 1e9),
            min_delay_ns=int(self.settings.min_delay_us * 1000),
            # spread the refits of sniffers opened together over the bucket span
            bucket_phase_ns=zlib.crc32(spec.sniffer_id.encode()),
        )
        self._timer = TimerUnwrapper(self.timer_bits())
        self._transport: SerialLink | None = None
        self._protocol: StreamProtocol | None = None
        #: frames parsed since the last batch (drivers append, then call :meth:`wake`)
        self.pending: FrameBatch = []
        #: the future ``batches()`` sleeps on while nothing is pending; whoever has news
        #: (frames parsed, port lost, stop) completes it: one event-loop hop per batch
        self._waiter: asyncio.Future[None] | None = None
        self._last_ts_ns = 0
        self._last_rx_ns = 0
        self._stopped = False
        self.counters = dict.fromkeys(self.DRIVER_COUNTERS + self._BASE_COUNTERS, 0)
        self.gaps: list[dict[str, Any]] = []

    # -- what a driver supplies -----------------------------------------------------------

    @abc.abstractmethod
    def check_spec(self, page: int, channel: int) -> None:
        """Raise :class:`~hanlab.errors.BadInputError` unless the sniffer can receive
        ``page``/``channel``."""

    @abc.abstractmethod
    def on_data(self, data: bytes, host_rx_ns: int) -> None:
        """Parse ``data`` read at ``host_rx_ns``: append frames to :attr:`pending` and
        call :meth:`wake`; count, never raise, what is not a frame."""

    @abc.abstractmethod
    async def configure(self) -> None:
        """Put the freshly opened dongle into receiving (write with :meth:`write`).

        Raises:
            one of :attr:`RETRY_ERRORS` if the dongle does not take its configuration.
        """

    @abc.abstractmethod
    def stop_bytes(self) -> bytes:
        """What to write to the dongle before closing its port (stop receiving)."""

    def timer_bits(self) -> int | None:
        """Width of the dongle's µs timer (:class:`TimerUnwrapper`; ``None``: auto 32/64)."""
        return None

    def reset_parser(self) -> None:
        """Forget partial input (a fresh connection starts a fresh byte stream)."""

    # -- opening and closing ----------------------------------------------------------

    async def start(self) -> None:
        """Open the port and start receiving on the configured page and channel."""
        self.check_spec(self.spec.page, self.spec.channel)
        self._stopped = False
        try:
            await self._open()
        except self.RETRY_ERRORS as exc:
            raise SourceError(
                f"sniffer {self.sniffer_id}: cannot open {self.settings.port}: {exc}",
                hint="check `hanlab devices` and the udev rules",
            ) from exc

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = StreamProtocol(self.on_data, self._clock, self.wake)
        opening = loop.run_in_executor(None, _open_port, self.settings.port, self.settings.baudrate)
        try:
            port = await asyncio.shield(opening)
        except asyncio.CancelledError:  # the open still completes: close what it opens
            opening.add_done_callback(_close_opened)
            raise
        self.reset_parser()
        self._transport, self._protocol = SerialLink(port, protocol), protocol
        # a fresh USB connection means a fresh dongle clock: realign from scratch
        self._timer.reset()
        self.aligner.restart()
        try:
            await self.configure()
        except BaseException:
            await self._close(say_stop=False)
            raise

    def write(self, data: bytes) -> None:
        """Write ``data`` to the dongle if the port is open (never blocks)."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def _close(self, *, say_stop: bool) -> None:
        transport, protocol = self._transport, self._protocol
        self._transport = self._protocol = None
        if transport is None or protocol is None:
            return
        if say_stop and not transport.is_closing():
            transport.write(self.stop_bytes())
        transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.lost), 2.0)

    async def stop(self) -> None:
        """Stop the dongle receiving and close the port; safe to call twice."""
        self._stopped = True
        self.wake()
        await self._close(say_stop=True)

    # -- receiving ----------------------------------------------------------------------

    def wake(self) -> None:
        """Resume a waiting ``batches()`` (frames pending, port lost, stopped)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def aligned_ns(self, raw_us: int, host_rx_ns: int, *, to_start_ns: int,
                   to_end_ns: int) -> tuple[int, int]:
        """Host UTC of a frame from the dongle's raw µs reading ``raw_us``.

        The clock model is fed the frame's *end* (the reading plus ``to_end_ns``): a
        dongle sends a frame only once it has ended, so the delay from the end to the
        host has a constant minimum whatever the frame's length; from a start-of-frame
        stamp it would not (the shortest frame's airtime would be taken as delay).

        Args:
            raw_us: the timer reading, as the dongle sent it (wrapped).
            host_rx_ns: when its bytes were read.
            to_start_ns: how long before the reading's instant the frame started (its
                airtime for an end-of-frame stamp, the SHR for an end-of-SFD stamp).
            to_end_ns: how long after the reading's instant the frame ended.

        Returns:
            ``(ts_ns, sniffer_ns)``: the start of the frame in host UTC ns, strictly after
            the previous frame's (clamps counted in ``ts_clamped``), and the unwrapped
            reading in ns.
        """
        full_us = self._timer.unwrap_us(raw_us, host_rx_ns)
        if self._timer.restarted:
            self.counters["clock_restarts"] += 1
            self.aligner.restart()
        sniffer_ns = full_us * 1000
        self.aligner.observe(sniffer_ns + to_end_ns, host_rx_ns)
        ts_ns = self.aligner.to_host_ns(sniffer_ns) - to_start_ns
        if ts_ns <= self._last_ts_ns:
            ts_ns = self._last_ts_ns + 1
            self.counters["ts_clamped"] += 1
        self._last_ts_ns = ts_ns
        return ts_ns, sniffer_ns

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
            if not self.pending and not protocol.lost.done():
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
            if self.pending:
                batch, self.pending = self.pending, []
                batch = self.checked(batch)
                if batch:
                    yield batch
            if protocol.lost.done() and not self._stopped and protocol is self._protocol:
                exc = protocol.lost.result()
                await self._fault(f"port lost: {exc}" if exc else "port closed (EOF)")

    def note_rx(self, host_rx_ns: int) -> None:
        """Record that bytes arrived at ``host_rx_ns`` (the gap's ``last_rx_ns``)."""
        self._last_rx_ns = host_rx_ns

    async def _fault(self, reason: str) -> None:
        gap_start_ns = self._clock()
        self.emit("info", what="device_lost", reason=reason, gap_start_ns=gap_start_ns)
        await self._close(say_stop=False)
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
            errors=self.RETRY_ERRORS,
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
