"""The lab supervisor behind ``hanlab up``: every rig of a lab under one asyncio loop.

It starts the embedded MQTT broker when the lab configures none, runs one
:class:`~hanlab.daemon.rig.RigRunner` per rig (a rig that crashes is logged and the others
keep running), and stops cleanly on SIGINT/SIGTERM: sources stop, sinks drain, files close,
each rig's retained status turns ``offline``.

With a lab ``duis:`` section whose endpoint is ``emulated``, each emulated rig's runner
gets a live correlator and the emulated DCC and DUIS client run on the rig's HAN
(:mod:`hanlab.daemon.emulated_duis`); they stop before the rigs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from hanlab.config.models import Lab
from hanlab.daemon.emulated_duis import EmulatedDuis, is_emulated_rig, rig_correlator
from hanlab.daemon.rig import RigOptions, RigRunner
from hanlab.events.broker import EmbeddedBroker

log = logging.getLogger(__name__)


class LabSupervisor:
    """Runs every rig of ``lab``.

    Args:
        lab: the loaded lab.
        mqtt: publish to MQTT (the lab's broker, or the embedded one).
        capture_folder: overrides every rig's capture folder when set.
        exit_when_done: stop once every rig's sources are exhausted (replay labs).
        duration_s: stop after this many seconds, or ``None``.
    """

    def __init__(self, lab: Lab, *, mqtt: bool = True, capture_folder: Path | None = None,
                 exit_when_done: bool = False, duration_s: float | None = None) -> None:
        self.lab = lab
        self.duration_s = duration_s
        broker = lab.config.broker if mqtt else None
        folder = capture_folder or lab.config.capture_folder
        duis = lab.config.duis
        emulated_duis = duis is not None and duis.endpoint == "emulated"
        self.runners = []
        correlated = {}
        rig_files = dict(zip((r.name for r in lab.rigs), lab.rig_files, strict=False))
        for rig in lab.rigs:
            settings = {sid: s for (rname, sid), s in lab.driver_settings.items()
                        if rname == rig.name}
            correlator = (rig_correlator(rig, settings)
                          if emulated_duis and is_emulated_rig(rig) else None)
            self.runners.append(RigRunner(
                rig, settings, RigOptions(lab=lab.config.name, broker=broker,
                                          capture_folder=folder,
                                          exit_when_done=exit_when_done),
                correlator=correlator))
            rig_file = rig_files.get(rig.name)
            if correlator is not None and rig_file is not None:
                correlated[rig.name] = (rig_file, correlator)
        #: the emulated DCC and DUIS client per emulated rig (``labs``), or ``None``
        self.duis_labs = (EmulatedDuis(duis, correlated)
                          if duis is not None and correlated else None)
        self.embedded: EmbeddedBroker | None = (
            EmbeddedBroker(lab.config.broker.port) if broker is not None and broker.embedded
            else None
        )
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask every rig to stop (after the emulated DUIS side, if any)."""
        self._stop.set()
        if self.duis_labs is None:
            for runner in self.runners:
                runner.stop()

    async def _run_rig(self, runner: RigRunner) -> None:
        try:
            await runner.run()
        except Exception:
            log.exception("rig %s stopped on an error; the other rigs go on", runner.rig.name)

    async def run(self, on_start: Callable[[LabSupervisor], None] | None = None,
                  on_duis: Callable[[LabSupervisor], None] | None = None) -> None:
        """Run until stopped (signal, :meth:`stop`, duration, or every rig done);
        ``on_duis`` is called once the emulated DUIS side runs (``duis_labs.labs``)."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
        try:
            if self.embedded is not None:
                await self.embedded.start()
            if on_start is not None:
                on_start(self)
            rigs = [asyncio.create_task(self._run_rig(r), name=f"rig-{r.rig.name}")
                    for r in self.runners]
            timer = (loop.call_later(self.duration_s, self.stop)
                     if self.duration_s is not None else None)
            try:
                if self.duis_labs is None:
                    await asyncio.gather(*rigs)
                else:
                    async with self.duis_labs:
                        if on_duis is not None:
                            on_duis(self)
                        await self._stop.wait()
            finally:
                if timer is not None:
                    timer.cancel()
                self.stop()
                for runner in self.runners:
                    runner.stop()
                await asyncio.gather(*rigs, return_exceptions=True)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            if self.embedded is not None:
                await self.embedded.stop()
