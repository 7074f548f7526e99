"""The serial sniffer drivers and their emulated dongles, side by side, for tests that
every serial sniffer must pass (clock alignment, garbage, hot-plug): one :class:`Kind`
per driver, so a test is parametrised over ``KINDS`` instead of written twice.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hanlab.frames import Band, Frame
from hanlab.sources.base import SourceEvent, SourceSpec
from hanlab.sources.nrf802154 import Nrf802154Settings, Nrf802154Source
from hanlab.sources.serial_sniffer import SerialSnifferSource
from hanlab.sources.ti_sniffer import TiSnifferSettings, TiSnifferSource
from tests.tools.nrf_dongle import DongleConfig, EmulatedNrfDongle, SentFrame
from tests.tools.ti_dongle import EmulatedTiDongle, TiDongleConfig


class Dongle(Protocol):
    """What the tests use of an emulated dongle."""

    link: Path
    sent: list[SentFrame]
    receiving: bool

    def plug(self) -> None: ...
    def unplug(self) -> None: ...
    def _clock(self) -> int: ...


@dataclass(frozen=True)
class Kind:
    """One serial sniffer driver and its emulated dongle.

    Attributes:
        name: test id.
        driver: the rig-file driver name.
        band, page, channel: what the sniffer is tuned to in the tests.
        rate_hz: a frame rate the band carries comfortably (sub-GHz frames are 2.5x
            longer on air).
        dongle: ``(link, rate_hz=…, garbage_ratio=…, seed=…)`` → emulated dongle.
        source: ``(link, report, settings)`` → the driver's source.
        garbage_counters: the counters the driver puts garbage in.
    """

    name: str
    driver: str
    band: Band
    page: int
    channel: int
    rate_hz: float
    dongle: Callable[..., Any]
    source: Callable[[Path, Any, dict[str, Any]], SerialSnifferSource[Any]]
    garbage_counters: tuple[str, ...]


def _nrf_source(link: Path, report: Any, settings: dict[str, Any]) -> Nrf802154Source:
    spec = SourceSpec("nrf0", Band.GHZ_2_4, 0, 15,
                      Nrf802154Settings(port=str(link), **settings), rig="rig1")
    return Nrf802154Source(spec, report)


def _ti_source(link: Path, report: Any, settings: dict[str, Any]) -> TiSnifferSource:
    spec = SourceSpec("ti0", Band.SUB_GHZ, 28, 11,
                      TiSnifferSettings(port=str(link), **settings), rig="rig1")
    return TiSnifferSource(spec, report)


NRF = Kind("nrf", "nrf802154", Band.GHZ_2_4, 0, 15, 400.0,
           lambda link, **kw: EmulatedNrfDongle(link, DongleConfig(**kw)),
           _nrf_source, ("bad_lines", "bad_frames"))
TI = Kind("ti", "ti-smartrf-sniffer2", Band.SUB_GHZ, 28, 11, 150.0,
          lambda link, **kw: EmulatedTiDongle(link, TiDongleConfig(**kw)),
          _ti_source, ("bad_packets",))
KINDS = [NRF, TI]


def seq_of(frame: Frame) -> int:
    """The sequence number the emulated dongles put in each PSDU (tests/tools)."""
    value: int = struct.unpack_from("<I", frame.psdu, 9)[0]
    return value


def start_errors_ns(frames: list[Frame], sent: list[SentFrame]) -> list[int]:
    """|aligned ``ts_ns`` − true start| of each frame, ns, sorted."""
    truth = {s.seq: s for s in sent}
    return sorted(abs(f.ts_ns - truth[seq_of(f)].true_start_ns) for f in frames)


async def collect(source: SerialSnifferSource[Any], frames: list[Frame]) -> None:
    """Drain ``source.batches()`` into ``frames``."""
    async for batch in source.batches():
        assert batch
        frames.extend(batch)


class Running:
    """The source's ``batches()`` drained into a list by a tracked task."""

    def __init__(self, source: SerialSnifferSource[Any]) -> None:
        self.source = source
        self.frames: list[Frame] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        await self.source.start()
        self.task = asyncio.create_task(collect(self.source, self.frames))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.source.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def wait_for(predicate: Any, timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` until true (TimeoutError after ``timeout_s``)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling a test condition
            await asyncio.sleep(0.01)


__all__ = ["KINDS", "NRF", "TI", "Kind", "Running", "SourceEvent", "collect",
           "seq_of", "start_errors_ns", "wait_for"]
