"""``hanlab up`` with a lab ``duis:`` section whose ``endpoint`` is ``emulated`` (issue 5,
"each SR correlated"; DESIGN.md "One pipeline, live and offline").

For every rig whose sniffers are all emulated:

* :func:`rig_correlator` gives its :class:`~hanlab.daemon.rig.RigRunner` a live
  correlator (the rig's keys, roles from the rig file), which publishes ``exchange`` and
  ``timings`` events on the rig's bus (MQTT ``hanlab/v1/<lab>/<rig>/exchange|timings``);
* :class:`EmulatedDuis` starts, once the rig's emulated sniffers run its HAN
  (:func:`hanlab.emulator.han.registry.han_of`), an
  :class:`~hanlab.scenarios.emulated_lab.EmulatedLab` on that HAN: the emulated DCC with
  the rig's devices, a DUIS client and receiver for the lab's Users (an ephemeral signing
  key for a User without key files), and the DUIS log (``duis.log`` with the rig's name
  added: ``duis-<rig>.jsonl``) whose lines feed the rig's correlator as they are written.
  Run scenarios on it in-process with ``supervisor.duis_labs.labs[rig].runner()``.

The labs stop before the rigs, so every DUIS line reaches the correlator before it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from hanlab.config.duis import DuisConfig
from hanlab.config.models import RigConfig
from hanlab.correlate.live import LiveCorrelator
from hanlab.errors import HanlabError

__all__ = ["EmulatedDuis", "is_emulated_rig", "rig_correlator"]


def is_emulated_rig(rig: RigConfig) -> bool:
    """Every sniffer of the rig is emulated (it has an emulated HAN to attach a DCC to)."""
    return bool(rig.sniffers) and all(s.driver == "emulated" for s in rig.sniffers)


def rig_correlator(rig: RigConfig, driver_settings: dict[str, Any]) -> LiveCorrelator:
    """A live correlator for an emulated rig: all its keys (derived as the emulated HAN
    derives them, as ``hanlab keys emulated`` does), device roles from the rig file."""
    from hanlab.emulator.han.registry import build_han
    from hanlab.emulator.han.settings import HanSettings
    from hanlab.scenarios.emulated_lab import REORDER_HOST_S
    from hanlab.sources.emulated import EmulatedSnifferSettings

    han_settings = next((s.han for s in driver_settings.values()
                         if isinstance(s, EmulatedSnifferSettings) and s.han is not None),
                        HanSettings())
    keys = build_han(rig.name, han_settings, rig_config=rig).keyring()
    return LiveCorrelator(
        keys, [s.id for s in rig.sniffers],
        device_roles={d.eui64: d.role.value for d in rig.devices},
        reorder_ns=int((REORDER_HOST_S * han_settings.time_scale + 0.05) * 1e9))


class EmulatedDuis:
    """The emulated DCC and DUIS client of each emulated rig of a running lab.

    Args:
        duis: the lab's ``duis:`` section (``endpoint: emulated``).
        rigs: rig name -> (rig file, the rig runner's live correlator).
        join_timeout_s: how long to wait for each rig's HAN to start and its devices to
            join.

    Use as ``async with EmulatedDuis(...) as duis:`` inside the running lab;
    :attr:`labs` maps each rig name to its :class:`EmulatedLab`.
    """

    def __init__(self, duis: DuisConfig, rigs: dict[str, tuple[Path, LiveCorrelator]], *,
                 join_timeout_s: float = 60.0) -> None:
        self.duis = duis
        self.rigs = rigs
        self.join_timeout_s = join_timeout_s
        self.labs: dict[str, Any] = {}  # rig -> hanlab.scenarios.emulated_lab.EmulatedLab
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> EmulatedDuis:
        from hanlab.duis.schema import load_duis_schema
        from hanlab.emulator.han.registry import han_of
        from hanlab.scenarios.emulated_lab import (
            EmulatedLab,
            EmulatedLabSettings,
            ephemeral_user,
            han_watermark_clock,
        )

        duis = self.duis
        users = [u if u.signing_key is not None else ephemeral_user(u.eui64, u.role)
                 for u in duis.duis_users()]
        schema = None if duis.xsd is None else load_duis_schema(duis.xsd)
        dcc = duis.emulated_dcc
        settings = EmulatedLabSettings(
            dcc_processing_latency_s=dcc.processing_latency_s,
            dcc_wan_latency_s=dcc.wan_latency_s, dcc_response_timeout_s=dcc.response_timeout_s,
            response_timeout_s=duis.response_timeout_s, join_timeout_s=self.join_timeout_s)
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        try:
            for name, (rig_file, correlator) in self.rigs.items():
                deadline = time.monotonic() + self.join_timeout_s
                while (han := han_of(name)) is None:
                    if time.monotonic() > deadline:
                        raise HanlabError(f"rig {name}: its emulated HAN did not start")
                    await asyncio.sleep(0.01)
                log = None if duis.log is None else duis.log.with_name(
                    f"{duis.log.stem}-{name}{duis.log.suffix}")
                self.labs[name] = await stack.enter_async_context(EmulatedLab(
                    rig_file, settings, users=users, schema=schema, duis_log=log,
                    counter_folder=duis.counter_state_folder, han=han,
                    correlator=correlator))
                correlator.clock_ns = han_watermark_clock(han)
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self.labs.clear()
