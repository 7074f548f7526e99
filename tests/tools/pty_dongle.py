"""What every emulated USB serial dongle shares: a pseudo-terminal behind a device link,
plugged and unplugged like a USB device, and a clock of its own (tests/tools).

The device appears at ``link`` (a symlink to ``/dev/pts/N``), the way udev names a real
dongle ``/dev/hanlab/<rig>-<sniffer>``. ``unplug()`` closes the pty and removes the link,
as a pulled dongle does (the reader sees EIO or a hang-up); ``plug()`` makes a new pty
and link, and the dongle's clock restarts (:meth:`PtyDongle.on_plug`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import random
import time
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar


class DongleConfigBase(Protocol):
    """What every emulated dongle's config has (times in ns)."""

    seed: int
    delay_ns: int
    jitter_ns: int


C = TypeVar("C", bound=DongleConfigBase)


def boot_for_wrap(now_ns: int, *, bits: int, wrap_after_ns: int | None, offset_ns: int,
                  drift_ppm: float) -> int:
    """Host time (ns) at which a µs timer of ``bits`` bits, starting at ``offset_ns`` and
    running ``drift_ppm`` fast, must have booted to wrap ``wrap_after_ns`` after
    ``now_ns`` (``None``: it boots now)."""
    if wrap_after_ns is None:
        return now_ns
    to_wrap_ns = (1 << bits) * 1000 - offset_ns
    return now_ns + wrap_after_ns - round(to_wrap_ns / (1 + drift_ppm * 1e-6))


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class PtyDongle(abc.ABC, Generic[C]):
    """An emulated dongle behind a pty reachable at ``link``; ``async with`` plugs it and
    runs its traffic (:meth:`traffic`), and unplugs it at the end.

    Args:
        link: path of the device link to create.
        config: its behaviour (default: ``Config()``); ``seed`` seeds ``_rng``.
        host_clock_ns: host UTC clock (ns).
    """

    #: the dongle's config class
    Config: ClassVar[Callable[[], Any]]

    def __init__(self, link: Path, config: C | None = None, *,
                 host_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.link = link
        self.config: C = config if config is not None else self.Config()
        self._rng = random.Random(self.config.seed)
        self._clock = host_clock_ns
        self._inbuf = b""
        self._seq = 0
        self.boot_host_ns = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped_writes = 0
        self.plugged = asyncio.Event()

    @abc.abstractmethod
    def on_plug(self, now_ns: int) -> None:
        """Reset the dongle's state and restart its clock (plugged in at ``now_ns``)."""

    @abc.abstractmethod
    def on_unplug(self) -> None:
        """The dongle lost power."""

    @abc.abstractmethod
    def on_bytes(self, data: bytes) -> None:
        """Handle octets the host wrote."""

    def traffic(self) -> Coroutine[Any, Any, None] | None:
        """The coroutine sending the dongle's own frames, or ``None``."""
        return None

    def plug(self) -> None:
        """Attach: a new pty, the link pointing at it, the dongle's clock restarted."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.on_plug(self._clock())
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        self.plugged.set()

    def unplug(self) -> None:
        """Detach: the link vanishes and the pty closes (reader sees EIO/hang-up)."""
        self.plugged.clear()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        self.on_unplug()

    @property
    def attached(self) -> bool:
        """Whether the pty is open (plugged in)."""
        return self._master is not None

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # no reader on the slave side
            return
        self.on_bytes(data)

    def delivery_delay_ns(self) -> int:
        """One draw of the delay from a frame's end to its bytes: ``delay_ns`` ±
        ``jitter_ns`` of the config."""
        cfg = self.config
        return max(0, cfg.delay_ns + self._rng.randint(-cfg.jitter_ns, cfg.jitter_ns))

    def _write(self, data: bytes) -> bool:
        """Write ``data`` to the host now; ``False`` (counted) if the pty did not take it."""
        if self._master is None:
            return False
        try:
            os.write(self._master, data)
        except (BlockingIOError, OSError):
            self.dropped_writes += 1
            return False
        return True

    async def __aenter__(self) -> Self:
        self.plug()
        traffic = self.traffic()
        if traffic is not None:
            self._task = asyncio.create_task(traffic)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cancel(self._task)
        self.unplug()
