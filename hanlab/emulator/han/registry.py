"""One emulated HAN per rig, shared by that rig's emulated sniffers.

The first emulated sniffer of a rig to start creates the rig's :class:`EmulatedHan` (from
its settings, and the rig file's devices and sniffer channels when it names the rig
file) and starts it in real time; the last one to stop stops it. The emulated DCC finds a
rig's HAN here with :func:`han_of`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hanlab.config.models import ChVariant, DeviceConfig, RigConfig
from hanlab.emulator.han.han import EmulatedHan
from hanlab.emulator.han.medium import TruthSink
from hanlab.emulator.han.settings import EmulatedDevice, HanSettings
from hanlab.errors import BadInputError
from hanlab.frames import Band

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    han: EmulatedHan
    users: int
    truth_log: object | None


_HANS: dict[str, _Entry] = {}


def han_of(rig: str) -> EmulatedHan | None:
    """The running emulated HAN of ``rig``, or ``None``."""
    entry = _HANS.get(rig)
    return entry.han if entry is not None else None


def build_han(rig: str, settings: HanSettings, *, rig_file: Path | None = None,
              truth: TruthSink | None = None, start_ns: int | None = None,
              rig_config: RigConfig | None = None) -> EmulatedHan:
    """An :class:`EmulatedHan` for ``rig``: devices and channels from the rig's
    configuration (``rig_config``, or loaded from ``rig_file``) completed by ``settings``.

    Raises:
        BadInputError: the rig file cannot be loaded, or names another rig.
    """
    devices = list(settings.devices)
    dual_band = any(d.band is Band.SUB_GHZ for d in devices)
    channels: dict[Band, tuple[int, int]] = {}
    rig_cfg = rig_config
    if rig_cfg is None and rig_file is not None:
        from hanlab.config.loader import load_rig
        rig_cfg, _ = load_rig(rig_file)
    if rig_cfg is not None:
        if rig_cfg.name != rig:
            raise BadInputError(f"rig file {rig_file} is rig {rig_cfg.name!r}, not {rig!r}")
        extra = {d.eui64: d for d in devices}
        devices = [_with_record(extra[d.eui64].model_copy(update={"spare": d.spare})
                                if d.eui64 in extra else EmulatedDevice(
            role=d.role, eui64=d.eui64, band=d.band, name=d.name, model=d.model,
            spare=d.spare), d) for d in rig_cfg.devices]
        dual_band = rig_cfg.ch_variant is ChVariant.DUAL_BAND
        for sniffer in rig_cfg.sniffers:
            if sniffer.driver == "emulated":
                channels.setdefault(sniffer.band, (sniffer.page, sniffer.channel))
    if settings.channel is not None:
        channels[Band.GHZ_2_4] = (0, settings.channel)
    if settings.subghz_page is not None and settings.subghz_channel is not None:
        channels[Band.SUB_GHZ] = (settings.subghz_page, settings.subghz_channel)
    return EmulatedHan(rig, settings, devices, dual_band=dual_band, channels=channels,
                       truth=truth, start_ns=start_ns)


def _with_record(device: EmulatedDevice, record: DeviceConfig) -> EmulatedDevice:
    """``device`` with what its rig-file device record says of it (``se_version``)."""
    if record.se_version is None:
        return device
    return device.model_copy(update={"se_version": record.se_version})


@contextlib.asynccontextmanager
async def shared_han(rig: str, settings: HanSettings | None, *, rig_file: Path | None = None,
                     truth_log: Path | None = None,
                     rig_config: RigConfig | None = None) -> AsyncIterator[EmulatedHan]:
    """Use the running HAN of ``rig``, creating and starting it on first use.

    Args:
        settings: the HAN settings (the first user's win; ``None`` for defaults).
        rig_file: the rig file to read devices and channels from (if no ``rig_config``).
        rig_config: the rig's configuration (devices, sniffers).
        truth_log: ground-truth JSONL file to write (first user's wins).
    """
    entry = _HANS.get(rig)
    if entry is None:
        truth = None
        if truth_log is not None:
            from hanlab.emulator.truth import GroundTruthLog
            truth = GroundTruthLog(truth_log, flush_every=256)
        han = build_han(rig, settings or HanSettings(), rig_file=rig_file, truth=truth,
                        rig_config=rig_config)
        entry = _HANS[rig] = _Entry(han, 0, truth)
        await han.__aenter__()
    elif settings is not None and settings != entry.han.settings:
        log.warning("rig %s: emulated sniffers disagree on the HAN settings; the first "
                    "one's are used", rig)
    entry.users += 1
    try:
        yield entry.han
    finally:
        entry.users -= 1
        if entry.users == 0 and _HANS.get(rig) is entry:
            del _HANS[rig]
            await entry.han.stop()
            close = getattr(entry.truth_log, "close", None)
            if close is not None:
                close()
