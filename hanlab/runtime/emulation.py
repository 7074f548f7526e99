"""The emulated edges of a rig runtime (issue 9, item 1: "emulation replaces only the
edges"): what differs between an emulated rig and a real one, and nothing else.

* :class:`EmulationSettings`: how fast the lab's emulated HANs run, and the CH-side
  processing time; applied to the HAN settings of the rig's ``emulated`` sniffers
  (:func:`emulated_driver_settings`) before they start, so every emulated sniffer of the
  rig shares one HAN (:mod:`hanlab.emulator.han.registry`).
* :func:`emulated_keyring`: the keys the emulated HAN derives (as ``hanlab keys
  emulated`` writes them), for the rig's live correlator.
* :func:`han_watermark_clock`: the clock an emulated rig's frames are stamped with (the
  HAN's), which the rig's DUIS log and correlator follow; a real rig uses the host's UTC
  clock.
* :func:`ephemeral_user`: a DCC User with a one-run signing key, for a lab whose Users
  name no key files (emulated DCC only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from hanlab.config.models import RigConfig
from hanlab.duis.log import DuisLog
from hanlab.gbcs.eui64 import Eui64
from hanlab.zigbee.keyring import Keyring

if TYPE_CHECKING:  # imported where used: start-up of `hanlab capture` (issue 15)
    from hanlab.duis.client import DuisUser

__all__ = ["EmulationSettings", "RigDuisLog", "emulated_driver_settings", "emulated_keyring",
           "ephemeral_user", "han_settings", "han_watermark_clock", "is_emulated_rig"]

#: the live correlator's reorder window of an emulated rig, in host seconds (times the
#: HAN's time scale, plus 50 ms of HAN time for a frame's airtime). 50 ms was too short:
#: a host stall of ~70 ms (a job record committed, a GC pause) on a busy 2-core machine
#: made a dozen frames late at time scale 20; 200 ms keeps the live exchanges equal to
#: the offline ones at the cost of 0.2 s more before an exchange is released.
REORDER_HOST_S = 0.2


class EmulationSettings(BaseModel):
    """How a lab's emulated rigs run (lab file ``emulation:``; ``hanlab up --time-scale``).

    Attributes:
        time_scale: emulated HAN seconds per host second (``None``: the rig file's).
        wake_interval_s: every GSME's wake-up interval in emulated seconds (``None``: the
            rig file's).
        ch_processing_s: the CHF's / GPF's processing of commands addressed to them
            (emulated seconds, fixed; ``None``: the HAN's default model).
        seed: the HAN's random seed (``None``: the rig file's).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_scale: float | None = Field(default=None, gt=0, le=1000)
    wake_interval_s: float | None = Field(default=None, gt=0)
    ch_processing_s: float | None = Field(default=None, ge=0)
    seed: int | None = None


def is_emulated_rig(rig: RigConfig) -> bool:
    """Every sniffer of the rig is emulated (an emulated HAN stands in for the radios)."""
    return bool(rig.sniffers) and all(s.driver == "emulated" for s in rig.sniffers)


def han_settings(rig: RigConfig, driver_settings: Mapping[str, Any],
                 emulation: EmulationSettings, *, alert_recipient: Eui64 | None = None) -> Any:
    """The HAN settings of an emulated rig: the first emulated sniffer's (else the
    defaults) with ``emulation`` applied; device alerts and traffic name
    ``alert_recipient`` as their User when given."""
    from hanlab.emulator.han.settings import EmulatedDevice, HanSettings, ProcessingModel
    from hanlab.sources.emulated import EmulatedSnifferSettings

    base = next((s.han for s in driver_settings.values()
                 if isinstance(s, EmulatedSnifferSettings) and s.han is not None), HanSettings())
    update: dict[str, Any] = {}
    if emulation.time_scale is not None:
        update["time_scale"] = emulation.time_scale
    if emulation.seed is not None:
        update["seed"] = emulation.seed
    if emulation.ch_processing_s is not None:
        update["ch_processing"] = ProcessingModel(distribution="fixed",
                                                  mean_s=emulation.ch_processing_s, min_s=0.0)
    if emulation.wake_interval_s is not None:
        wake = emulation.wake_interval_s
        known = {d.eui64 for d in base.devices}
        update["devices"] = [d.model_copy(update={"wake_interval_s": wake})
                             for d in base.devices] + [
            EmulatedDevice(role=d.role, eui64=d.eui64, band=d.band, name=d.name,
                           model=d.model, wake_interval_s=wake, spare=d.spare)
            for d in rig.devices if d.eui64 not in known]
    if alert_recipient is not None:
        update["traffic"] = base.traffic.model_copy(
            update={"originator_eui64": alert_recipient.duis})
    return base.model_copy(update=update)


def emulated_driver_settings(rig: RigConfig, driver_settings: Mapping[str, Any],
                             settings: Any) -> dict[str, Any]:
    """The rig's driver settings with every emulated sniffer given the HAN ``settings``
    (so they share one HAN built from them)."""
    from hanlab.sources.emulated import EmulatedSnifferSettings

    out: dict[str, Any] = {}
    for sid, value in driver_settings.items():
        if isinstance(value, EmulatedSnifferSettings):
            value = value.model_copy(update={"han": settings})
        out[sid] = value
    return out


def emulated_keyring(rig: RigConfig, settings: Any) -> Keyring:
    """The keys the rig's emulated HAN derives from ``settings`` (network key, every
    device's link keys with the CHF and GPF), as ``hanlab keys emulated`` writes them."""
    from hanlab.emulator.han.registry import build_han

    return build_han(rig.name, settings, rig_config=rig).keyring()


def han_watermark_clock(han: Any) -> Callable[[], int]:
    """The time up to which the running HAN has produced its frames: its clock, or, while
    its scheduler is behind (events overdue after a host stall), the scheduler's time.
    The live correlator's watermark (items before it are released in time order)."""

    def now_ns() -> int:
        true_ns = int(han.now_ns())
        due = han.scheduler.next_ts_ns()
        if due is not None and due <= true_ns:
            return min(true_ns, int(han.scheduler.now_ns))
        return true_ns

    return now_ns


class RigDuisLog(DuisLog):
    """A rig's DUIS log: lines stamped on the rig's clock (an emulated HAN's, which may
    run faster than the host's) and handed, as written, to every line sink (the live
    correlator, the running job's own log).

    Args:
        path: the ``.jsonl`` file.
        clock_ns: the rig clock now (ns since the epoch), or ``None`` while there is none
            (host time is written unchanged).
        time_scale: rig seconds per host second.
    """

    def __init__(self, path: Any, *, clock_ns: Callable[[], int | None] | None = None,
                 time_scale: float = 1.0, keep_xml: bool = False) -> None:
        super().__init__(path, keep_xml=keep_xml)
        self.clock_ns = clock_ns
        self.time_scale = time_scale
        self.sinks: list[Callable[[dict[str, Any]], None]] = []
        self.on_line = self._fan_out

    def _fan_out(self, line: dict[str, Any]) -> None:
        for sink in list(self.sinks):
            sink(line)

    def record(self, **fields: Any) -> None:
        """:meth:`DuisLog.record` with ``ts_ns`` moved to the rig clock: the rig time now,
        less the host time elapsed since ``ts_ns`` times ``time_scale``."""
        rig_now = None if self.clock_ns is None else self.clock_ns()
        if rig_now is not None:
            host_elapsed_ns = time.time_ns() - int(fields["ts_ns"])
            fields["ts_ns"] = rig_now - int(host_elapsed_ns * self.time_scale)
        super().record(**fields)


def ephemeral_user(eui64: Eui64, role: str, *, supplier: str | None = None) -> DuisUser:
    """A DCC User with a fresh ECDSA P-256 key and a self-signed certificate (test PKI of
    one run, valid 30 days: never written to disk)."""
    from hanlab.duis.signing import ephemeral_identity

    key, certificate = ephemeral_identity(f"hanlab-{role}-{eui64.duis}",
                                          lifetime_s=30 * 86_400.0)
    from hanlab.duis.client import DuisUser

    return DuisUser(eui64=eui64, role=role, signing_key=key, certificate=certificate,
                    supplier=supplier)
