"""zigpy radio source: packet capture and energy scans through any zigpy radio library.

A radio library that implements zigpy's packet capture (bellows/EZSP today) is driven
through zigpy's public :class:`zigpy.application.ControllerApplication` API only:

* ``connect()`` / ``disconnect()`` (no network is formed or joined);
* ``packet_capture(channel)``: an async iterator of :class:`zigpy.types.CapturedPacket`
  (host timestamp, RSSI, LQI, channel, PSDU without FCS);
* ``packet_capture_change_channel(channel)``: hop while capturing;
* ``energy_scan(channels, duration_exp, count)``: energy per channel (0-255 scale);
* ``watchdog_feed()``: is the radio still answering?

Configured the zigpy way (``path``, ``baudrate``, ``flow_control``). One channel, or a
channel list hopped every ``dwell_s``.

Timestamps: these radios stamp frames **on the host** when the radio library handles the
frame's callback (bellows: ``datetime.now(UTC)`` in the ``mfglibRxHandler`` callback).
Frames are therefore ``ts_source`` HOST with no ``sniffer_ts_ns``; ``ts_ns`` is that
stamp minus the frame's airtime, and is late by the radio's processing plus the serial
transfer of the callback (about 1 ms per 11 octets at 115200 baud, so 2-15 ms for
5-127 octet frames) plus host scheduling: millisecond precision, not microsecond
(docs/hardware.md). Frames are monotonic per sniffer (a stamp that would go backwards is
moved 1 ns after its predecessor and counted in ``ts_clamped``).

Energy scans (issue 6, item 1; DIT.8 channel occupancy and frequency agility) run on
demand (:meth:`ZigpyRadioSource.energy_scan`) or every ``energy_scan_interval_s``; the
radio cannot capture while scanning, so a scan is also a ``gap`` with reason
``energy scan``. Results are ``energy`` source events.

Faults: a capture that raises, a radio connection lost, or a watchdog that goes
unanswered for ``watchdog_timeout_s`` disconnects the radio, waits for ``path`` to
exist, reconnects with backoff and reports one ``gap`` (start, end, reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import zigpy.application
import zigpy.exceptions
import zigpy.types
from pydantic import Field

from hanlab.errors import BadInputError, SourceError
from hanlab.frames import PAGE_CHANNELS, Frame, FrameBatch, TsSource
from hanlab.hardware.reopen import gap_detail, reopen_when_present
from hanlab.sources.base import DriverSettings, EventReporter, FrameSource, SourceSpec, now_ns

#: radio library names (as zigpy-cli and ZHA name them) -> ControllerApplication class.
RADIO_LIBRARIES: dict[str, str] = {
    "ezsp": "bellows.zigbee.application:ControllerApplication",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
_OCTET_NS = 32_000  # O-QPSK 250 kb/s (IEEE 802.15.4-2015 §12.2)
_SHR_PHR_FCS_OCTETS = 8  # SHR 5 + PHR 1 + FCS 2 (the PSDU given has no FCS)

AppClass = type[zigpy.application.ControllerApplication]


class ZigpyRadioSettings(DriverSettings):
    """``settings:`` of a ``zigpy`` radio in a rig file.

    Attributes:
        radio: a name from :data:`RADIO_LIBRARIES` (``ezsp``) or ``module:Class`` of a
            ControllerApplication subclass.
        path, baudrate, flow_control: zigpy's ``device`` configuration.
        channels: channels to hop over (default: the sniffer's ``channel``).
        dwell_s: time on each channel when hopping.
        energy_scan_interval_s: scan every this long (``None``: only on demand).
        energy_scan_channels: channels to scan (default: every channel of the page).
        energy_scan_duration_exp: IEEE 802.15.4 ScanDuration exponent: each channel is
            scanned for aBaseSuperframeDuration·(2^n + 1) symbols (n=2: 77 ms at 2.4 GHz).
        energy_scan_count: scans averaged per channel.
        watchdog_interval_s, watchdog_timeout_s: ask the radio every interval whether it
            answers; restart it when it has not within the timeout (``None``: off).
        path_poll_s, reopen_backoff_s, reopen_backoff_max_s: hot-plug recovery timing.
        usb_vid, usb_pid, usb_serial: the radio's USB identity, for udev rules and
            ``hanlab devices``.
    """

    live: ClassVar[bool] = True

    radio: str = "ezsp"
    path: str
    baudrate: int | None = None
    flow_control: Literal["hardware", "software"] | None = None
    channels: list[int] | None = None
    dwell_s: float = Field(default=10.0, gt=0)
    energy_scan_interval_s: float | None = Field(default=None, gt=0)
    energy_scan_channels: list[int] | None = None
    energy_scan_duration_exp: int = Field(default=2, ge=0, le=14)
    energy_scan_count: int = Field(default=1, ge=1)
    watchdog_interval_s: float | None = Field(default=30.0, gt=0)
    watchdog_timeout_s: float = Field(default=10.0, gt=0)
    path_poll_s: float = Field(default=0.1, gt=0)
    reopen_backoff_s: float = Field(default=0.5, gt=0)
    reopen_backoff_max_s: float = Field(default=5.0, gt=0)
    usb_vid: int | None = None
    usb_pid: int | None = None
    usb_serial: str | None = None


def radio_app_class(radio: str) -> AppClass:
    """The ControllerApplication class of radio library ``radio``.

    Raises:
        BadInputError: unknown name, or the library is not installed.
    """
    target = RADIO_LIBRARIES.get(radio, radio)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise BadInputError(
            f"unknown zigpy radio {radio!r} (known: {', '.join(RADIO_LIBRARIES)}, or module:Class)"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise BadInputError(f"zigpy radio library {target!r} is not available: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, zigpy.application.ControllerApplication)):
        raise BadInputError(f"{target!r} is not a zigpy ControllerApplication")
    return cls


def captured_ts_ns(timestamp: datetime) -> int:
    """ns since the UNIX epoch of a timezone-aware ``timestamp`` (µs resolution)."""
    return ((timestamp - _EPOCH) // _US) * 1000


class ZigpyRadioSource(FrameSource[ZigpyRadioSettings]):
    """Frames and energy scans from one zigpy radio (issue 6, items 1 and 4).

    Args:
        spec: the sniffer; ``channel`` (or ``settings.channels``) on ``page``.
        report: receives ``gap``, ``energy`` and ``info`` events.
        app_class: the ControllerApplication class to use instead of ``settings.radio``
            (tests pass a subclass driven by a fake, as bellows' own tests do).
        host_clock_ns: host UTC clock for gap and scan times.
    """

    Settings = ZigpyRadioSettings

    def __init__(
        self,
        spec: SourceSpec,
        report: EventReporter | None = None,
        *,
        app_class: AppClass | None = None,
        host_clock_ns: Callable[[], int] = now_ns,
    ) -> None:
        super().__init__(spec, report)
        self._app_class = app_class
        self._clock = host_clock_ns
        self.channels = list(self.settings.channels or [spec.channel])
        valid = PAGE_CHANNELS.get(spec.page, range(0))
        bad = [c for c in self.channels if c not in valid]
        if bad:
            raise BadInputError(
                f"sniffer {spec.sniffer_id}: channels {bad} are not on page {spec.page}"
            )
        self.channel = self.channels[0]
        self.app: zigpy.application.ControllerApplication | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: FrameBatch = []
        self._wakeup = asyncio.Event()
        self._fault: asyncio.Future[str] | None = None
        self._scan_lock = asyncio.Lock()
        self._capturing = asyncio.Event()
        self._last_ts_ns = 0
        self._stopped = False
        self.energy_scans: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []
        self.counters = {
            "frames": 0,
            "ts_clamped": 0,
            "hops": 0,
            "energy_scans": 0,
            "watchdog_failures": 0,
            "restarts": 0,
            "gaps": 0,
        }

    # -- radio lifecycle ---------------------------------------------------------------

    def _zigpy_config(self) -> dict[str, Any]:
        device: dict[str, Any] = {"path": self.settings.path}
        if self.settings.baudrate is not None:
            device["baudrate"] = self.settings.baudrate
        if self.settings.flow_control is not None:
            device["flow_control"] = self.settings.flow_control
        return {"device": device, "database_path": None}

    async def start(self) -> None:
        """Connect to the radio and start capturing.

        Raises:
            BadInputError: unknown radio library.
            SourceError: the radio cannot be reached.
        """
        self._stopped = False
        try:
            await self._connect()
        except (OSError, ConnectionError, TimeoutError, zigpy.exceptions.ZigbeeException) as exc:
            raise SourceError(
                f"sniffer {self.sniffer_id}: cannot connect to {self.settings.path}: {exc}",
                hint="check `hanlab devices`, the radio type and its baudrate",
            ) from exc

    async def _connect(self) -> None:
        cls = self._app_class or radio_app_class(self.settings.radio)
        app = cls(self._zigpy_config())
        try:
            await app.connect()
        except BaseException:
            with contextlib.suppress(Exception):
                await app.disconnect()  # type: ignore[no-untyped-call]
            raise
        self.app = app
        self._fault = asyncio.get_running_loop().create_future()
        app.add_listener(self)
        self._spawn(self._capture(), "capture")
        if len(self.channels) > 1:
            self._spawn(self._hop(), "hop")
        if self.settings.watchdog_interval_s is not None:
            self._spawn(self._watchdog(), "watchdog")
        if self.settings.energy_scan_interval_s is not None:
            self._spawn(self._scan_schedule(), "energy-scan")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.sniffer_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        """zigpy listener callback: the radio library lost its connection."""
        self._set_fault(f"radio connection lost: {exc}")

    def _set_fault(self, reason: str) -> None:
        if self._fault is not None and not self._fault.done():
            self._fault.set_result(reason)
            self._wakeup.set()

    async def _disconnect(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._capturing.clear()
        app, self.app = self.app, None
        if app is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app.disconnect(), 5.0)  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        """Stop capturing and disconnect the radio; safe to call twice."""
        self._stopped = True
        self._wakeup.set()
        await self._disconnect()

    # -- capture, hopping, watchdog, energy scans ----------------------------------------

    async def _capture(self) -> None:
        app = self.app
        assert app is not None
        try:
            async with contextlib.aclosing(app.packet_capture(self.channel)) as packets:
                self._capturing.set()
                async for packet in packets:
                    self._on_packet(packet)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the radio library's own errors vary by library
            self._set_fault(f"packet capture failed: {type(exc).__name__}: {exc}")
        else:
            self._set_fault("packet capture ended")
        finally:
            self._capturing.clear()

    def _on_packet(self, packet: zigpy.types.CapturedPacket) -> None:
        psdu = bytes(packet.data)
        ts_ns = captured_ts_ns(packet.timestamp) - (len(psdu) + _SHR_PHR_FCS_OCTETS) * _OCTET_NS
        if ts_ns <= self._last_ts_ns:
            ts_ns = self._last_ts_ns + 1
            self.counters["ts_clamped"] += 1
        self._last_ts_ns = ts_ns
        spec = self.spec
        self._pending.append(
            Frame(
                ts_ns,
                spec.sniffer_id,
                spec.band,
                spec.page,
                int(packet.channel),
                psdu,
                None,
                float(packet.rssi),
                int(packet.lqi),
                TsSource.HOST,
                None,
            )
        )
        self.counters["frames"] += 1
        self._wakeup.set()

    async def _hop(self) -> None:
        index = 0
        while True:
            await asyncio.sleep(self.settings.dwell_s)
            index = (index + 1) % len(self.channels)
            await self.set_channel(self.channels[index])

    async def set_channel(self, channel: int) -> None:
        """Move the capture to ``channel`` (``packet_capture_change_channel``)."""
        app = self.app
        if app is None:
            return
        async with self._scan_lock:
            await app.packet_capture_change_channel(channel)
        self.channel = channel
        self.counters["hops"] += 1

    async def _watchdog(self) -> None:
        interval = self.settings.watchdog_interval_s
        assert interval is not None
        while True:
            await asyncio.sleep(interval)
            app = self.app
            if app is None:
                return
            try:
                async with asyncio.timeout(self.settings.watchdog_timeout_s):
                    await app.watchdog_feed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # TimeoutError or the library's error
                self.counters["watchdog_failures"] += 1
                self._set_fault(f"radio stopped answering: {type(exc).__name__} {exc}".strip())
                return

    async def _scan_schedule(self) -> None:
        interval = self.settings.energy_scan_interval_s
        assert interval is not None
        while True:
            await asyncio.sleep(interval)
            try:
                await self.energy_scan()
            except SourceError:
                return

    async def energy_scan(self, channels: list[int] | None = None) -> dict[int, float]:
        """Scan the energy of ``channels`` (default: settings, else the whole page).

        Capture pauses during the scan (the radio does one or the other); the pause is
        reported as a ``gap`` with reason ``energy scan``, and the result as an
        ``energy`` event: ``{channel: energy 0-255}`` with the scan's start and end.

        Raises:
            SourceError: the radio is not connected or the scan failed.
        """
        app = self.app
        if app is None:
            raise SourceError(f"sniffer {self.sniffer_id}: radio not connected")
        scan = channels or self.settings.energy_scan_channels or list(PAGE_CHANNELS[self.spec.page])
        async with self._scan_lock:
            capture = [t for t in self._tasks if t.get_name().endswith("-capture")]
            for task in capture:
                task.cancel()
            await asyncio.gather(*capture, return_exceptions=True)
            start_ns = self._clock()
            try:
                result = await app.energy_scan(
                    channels=zigpy.types.Channels.from_channel_list(scan),  # type: ignore[misc]
                    duration_exp=self.settings.energy_scan_duration_exp,
                    count=self.settings.energy_scan_count,
                )
            except Exception as exc:
                self._set_fault(f"energy scan failed: {type(exc).__name__}: {exc}")
                raise SourceError(f"sniffer {self.sniffer_id}: energy scan failed: {exc}") from exc
            finally:
                if self.app is app and not self._stopped:
                    self._spawn(self._capture(), "capture")
            end_ns = self._clock()
        energy = {int(ch): float(value) for ch, value in sorted(result.items())}
        record = {
            "page": self.spec.page,
            "energy": energy,
            "scan_start_ns": start_ns,
            "scan_end_ns": end_ns,
            "duration_exp": self.settings.energy_scan_duration_exp,
            "count": self.settings.energy_scan_count,
        }
        self.energy_scans.append(record)
        self.counters["energy_scans"] += 1
        self.emit("energy", **record)
        self._record_gap("energy scan", start_ns, end_ns)
        return energy

    def _record_gap(self, reason: str, start_ns: int, end_ns: int, **extra: Any) -> None:
        gap = gap_detail(reason, start_ns, end_ns, path=self.settings.path, **extra)
        self.gaps.append(gap)
        self.counters["gaps"] += 1
        self.emit("gap", **gap)

    # -- frames ---------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[FrameBatch]:
        """Yield frame batches until stopped; restart the radio after faults."""
        while not self._stopped:
            if self.app is None or self._fault is None:
                await self._recover("not connected", self._clock())
                continue
            if not self._pending and not self._fault.done():
                await self._wakeup.wait()
            self._wakeup.clear()
            if self._pending:
                batch, self._pending = self._pending, []
                batch = self.checked(batch)
                if batch:
                    yield batch
            if self._fault.done() and not self._stopped:
                reason = self._fault.result()
                start_ns = self._clock()
                self.emit("info", what="radio_lost", reason=reason, gap_start_ns=start_ns)
                await self._disconnect()
                await self._recover(reason, start_ns)

    async def _recover(self, reason: str, gap_start_ns: int) -> None:
        s = self.settings
        attempts = await reopen_when_present(
            s.path,
            self._connect,
            stopped=lambda: self._stopped,
            path_poll_s=s.path_poll_s,
            backoff_s=s.reopen_backoff_s,
            backoff_max_s=s.reopen_backoff_max_s,
            errors=(Exception,),
        )
        if attempts is not None:
            self.counters["restarts"] += 1
            self._record_gap(reason, gap_start_ns, self._clock(), open_attempts=attempts)
