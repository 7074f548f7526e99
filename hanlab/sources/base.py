"""The interface every frame source (sniffer driver) implements.

A source turns one sniffer, radio, file or emulated medium into batches of
:class:`~hanlab.frames.Frame`. The daemon's supervisor owns restarts: a source raises
:class:`~hanlab.errors.SourceError` when its device fails and the supervisor decides what
to do (STYLE.md §8: reconnection is explicit supervision, not buried in drivers).

Contract:

* ``async with source:`` opens it (``start``) and always closes it (``stop``); ``stop`` is
  safe to call twice.
* ``async for batch in source.batches():`` yields non-empty lists of frames in arrival
  order; iteration ends when the source is exhausted (end of a replayed file), and raises
  :class:`~hanlab.errors.SourceError` when the device fails.
* ``report`` receives :class:`SourceEvent` notices (gap, counters) while it runs.
* ``counters`` holds the source's own counts (e.g. ``out_of_order``, ``bad_lines``,
  ``out_of_range``).
* every batch passes through :meth:`FrameSource.checked` before it is yielded, so each
  field of each frame is in range (issue 14 item 8).
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from hanlab.errors import BadInputError
from hanlab.frames import Band, FrameBatch, checked_frames
from hanlab.resources import StartStop

if TYPE_CHECKING:
    from hanlab.config.models import RigConfig


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """A notice from a source or about it (MQTT kind ``source``).

    Attributes:
        kind: ``started``, ``stopped``, ``finished``, ``failed``, ``gap`` or ``info``.
        sniffer_id: the sniffer it is about.
        ts_ns: when it happened, ns since the UNIX epoch.
        detail: JSON-serialisable facts (reason, ``gap_start_ns``, ``gap_end_ns``, counts).
    """

    kind: str
    sniffer_id: str
    ts_ns: int
    detail: dict[str, Any] = field(default_factory=dict)


EventReporter = Callable[[SourceEvent], None]


def now_ns() -> int:
    """Host UTC time in ns since the UNIX epoch."""
    return time.time_ns()


class DriverSettings(BaseModel):
    """Base of every driver's ``settings`` model: unknown keys are errors.

    ``never_finishes`` says whether a source with these settings runs until it is
    stopped (a live sniffer, a looped replay), so ``--exit-when-done`` would never exit
    (issue 14 item 4). Live drivers set the class attribute ``live = True``.
    """

    model_config = ConfigDict(extra="forbid")
    #: a live sniffer: its frames never end on their own
    live: ClassVar[bool] = False

    @property
    def never_finishes(self) -> bool:
        """Whether the source runs until stopped (never reports ``finished``)."""
        return self.live

    def input_files(self) -> dict[str, Path]:
        """Settings field -> file the source reads, which must exist when the rig is
        loaded (issue 14 item 3); none by default."""
        return {}


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What a source needs to know about the sniffer it serves.

    Attributes:
        sniffer_id: the configured id.
        band, page, channel: the configured band, channel page and channel.
        settings: the driver's validated settings model.
        rig: the rig the sniffer belongs to.
        rig_config: the whole :class:`~hanlab.config.models.RigConfig` (devices, other
            sniffers), for drivers that need the rig's context (the emulated HAN); ``None``
            where a source runs outside a rig.
    """

    sniffer_id: str
    band: Band
    page: int
    channel: int
    settings: DriverSettings
    rig: str = ""
    rig_config: RigConfig | None = None


S = TypeVar("S", bound=DriverSettings)


class FrameSource(StartStop, abc.ABC, Generic[S]):
    """Base class of every sniffer driver, generic in its settings model ``S``.
    See the module docstring for the contract.

    Attributes:
        settings: ``spec.settings``, checked to be an instance of the driver's
            ``Settings`` model.

    Raises:
        BadInputError: ``spec.settings`` is not the driver's settings model.
    """

    #: the driver's settings model, used to validate ``settings`` in rig files.
    Settings: ClassVar[type[DriverSettings]] = DriverSettings

    def __init__(self, spec: SourceSpec, report: EventReporter | None = None) -> None:
        if not isinstance(spec.settings, self.Settings):
            raise BadInputError(
                f"sniffer {spec.sniffer_id}: settings are {type(spec.settings).__name__}, "
                f"not {self.Settings.__name__}")
        self.settings: S = cast(S, spec.settings)
        self.spec = spec
        self.report: EventReporter = report or (lambda _event: None)
        self.counters: dict[str, int] = {}

    @property
    def sniffer_id(self) -> str:
        """The configured id of the sniffer this source serves."""
        return self.spec.sniffer_id

    def checked(self, batch: FrameBatch) -> FrameBatch:
        """``batch`` with every field in range (:func:`~hanlab.frames.checked_frames`):
        frames out of range dropped or clamped and counted in ``counters["out_of_range"]``,
        so one absurd value never reaches a sink (issue 14 item 8). May be empty."""
        return checked_frames(batch, self.counters)

    def emit(self, kind: str, **detail: Any) -> None:
        """Report a :class:`SourceEvent` of ``kind`` with ``detail``, stamped now."""
        self.report(SourceEvent(kind, self.spec.sniffer_id, now_ns(), detail))

    async def start(self) -> None:
        """Open the device or file. Raises :class:`~hanlab.errors.SourceError`."""

    async def stop(self) -> None:
        """Close the device or file; safe to call twice."""

    @abc.abstractmethod
    def batches(self) -> AsyncIterator[FrameBatch]:
        """Yield non-empty frame batches until exhausted; see the module docstring."""
