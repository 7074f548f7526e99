"""Waiting for a vanished USB device and reopening it (issue 6, item 4: hot-plug).

Shared by the drivers that recover from an unplug themselves (nRF sniffer, zigpy radio)
so that the gap they report is measured where it is known best: from the moment the
fault was seen to the moment capture resumed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any


def is_device_path(path: str) -> bool:
    """Whether ``path`` names a file that appears and vanishes with the device (not a
    ``socket://`` or other pyserial URL)."""
    return "://" not in path


async def reopen_when_present(
    path: str,
    open_device: Callable[[], Awaitable[None]],
    *,
    stopped: Callable[[], bool],
    path_poll_s: float,
    backoff_s: float,
    backoff_max_s: float,
    errors: tuple[type[BaseException], ...],
) -> int | None:
    """Wait until ``path`` exists, then call ``open_device`` until it succeeds.

    A missing path is polled every ``path_poll_s`` (a stat: cheap, so a replugged dongle
    is found within that time); a path that exists but fails to open (the USB device is
    still enumerating, or another program holds it) is retried after ``backoff_s``,
    doubling up to ``backoff_max_s``.

    Returns:
        the number of open attempts, or ``None`` if ``stopped()`` turned true first.
    Raises:
        whatever ``open_device`` raises that is not one of ``errors``.
    """
    attempts = 0
    while not stopped():
        # a stat of a /dev link does not block
        if is_device_path(path) and not os.path.exists(path):  # noqa: ASYNC240
            await asyncio.sleep(path_poll_s)
            continue
        attempts += 1
        try:
            await open_device()
        except errors:
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, backoff_max_s)
            continue
        return attempts
    return None


def gap_detail(reason: str, gap_start_ns: int, gap_end_ns: int, **extra: Any) -> dict[str, Any]:
    """The detail of a ``gap`` source event (MQTT ``source`` kind; pcapng statistics
    block): reason, start and end in ns since the UNIX epoch, and driver facts."""
    return {"reason": reason, "gap_start_ns": gap_start_ns, "gap_end_ns": gap_end_ns, **extra}
