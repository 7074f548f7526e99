"""Emulated sniffer: a frame source that hears one band or channel of a rig's emulated HAN.

Every emulated sniffer of a rig shares the rig's :class:`~hanlab.emulator.han.EmulatedHan`
(:mod:`hanlab.emulator.han.registry`), created by the first one to start. A sniffer
delivers what it hears like a real one: each frame stamped with the start of its
transmission (``TsSource.EMULATED``) plus Gaussian jitter, a frame missed with
``miss_rate``, collided frames with a bad FCS. With ``follow_channel`` (the default) a
sub-GHz sniffer follows the CH through a channel change, and its frames carry the new
channel page and channel.

Settings (rig file, ``sniffers[].settings``)::

    rig_file: other.yaml                # only outside a rig: where devices come from
    miss_rate: 0.0                      # probability of missing a frame
    jitter_us: 0.0                      # standard deviation of the timestamp error
    truth_log: ../captures/truth.jsonl  # ground truth (the first sniffer's wins)
    han: {...}                          # hanlab.emulator.han.settings.HanSettings
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from hanlab.emulator.han.han import EmulatedHan
from hanlab.emulator.han.medium import Transmission
from hanlab.emulator.han.registry import shared_han
from hanlab.emulator.han.settings import HanSettings
from hanlab.frames import Frame, FrameBatch, TsSource, band_of
from hanlab.sources.base import DriverSettings, EventReporter, FrameSource, SourceSpec


class EmulatedSnifferSettings(DriverSettings):
    """Settings of an emulated sniffer (see the module docstring)."""

    live: ClassVar[bool] = True

    rig_file: Path | None = None
    miss_rate: float = Field(default=0.0, ge=0, le=1)
    jitter_us: float = Field(default=0.0, ge=0)
    follow_channel: bool = True
    rssi_dbm: float = -55.0
    truth_log: Path | None = None
    seed: int = 7
    han: HanSettings | None = None


class EmulatedSnifferSource(FrameSource[EmulatedSnifferSettings]):
    """A sniffer on the emulated HAN (see the module docstring)."""

    Settings = EmulatedSnifferSettings

    def __init__(self, spec: SourceSpec, report: EventReporter | None = None) -> None:
        super().__init__(spec, report)
        settings = self.settings
        self.counters.update({"frames": 0, "missed": 0})
        self._rng = random.Random(settings.seed ^ hash(spec.sniffer_id) & 0xFFFF)
        self._pending: list[Frame] = []
        self._ready = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None
        self.han: EmulatedHan | None = None

    async def start(self) -> None:
        """Join (or start) the rig's emulated HAN and tap the sniffer's band/channel."""
        stack = contextlib.AsyncExitStack()
        rig = self.spec.rig or self.spec.sniffer_id
        self.han = await stack.enter_async_context(shared_han(
            rig, self.settings.han, rig_file=self.settings.rig_file,
            truth_log=self.settings.truth_log, rig_config=self.spec.rig_config))
        follow = self.settings.follow_channel
        remove = self.han.add_tap(self.spec.band, self._heard,
                                  page=None if follow else self.spec.page,
                                  channel=None if follow else self.spec.channel)
        stack.callback(remove)
        self._stack = stack

    async def stop(self) -> None:
        """Untap and release the HAN (the last sniffer stops it); safe to call twice."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def _heard(self, tx: Transmission, page: int, channel: int) -> None:
        settings = self.settings
        if settings.miss_rate and self._rng.random() < settings.miss_rate:
            self.counters["missed"] += 1
            return
        ts_ns = tx.start_ns
        if settings.jitter_us:
            ts_ns += int(self._rng.gauss(0.0, settings.jitter_us) * 1000)
        self._pending.append(Frame(
            ts_ns, self.spec.sniffer_id, band_of(page, channel), page, channel, tx.psdu,
            not tx.collided, settings.rssi_dbm, 255 if not tx.collided else 60,
            TsSource.EMULATED, tx.start_ns))
        self._ready.set()

    async def batches(self) -> AsyncIterator[FrameBatch]:
        """Frames as the HAN produces them, one batch per wake-up."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, []
            self.counters["frames"] += len(batch)
            batch = self.checked(batch)
            if batch:
                yield batch

