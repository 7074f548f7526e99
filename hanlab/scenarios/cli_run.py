"""``hanlab scenario run``: the rig's lab (emulated in-process, or a real DCC simulator
through a lab file's ``duis:`` section), a rich progress display, the run store and MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from hanlab.config.duis import DuisConfig
from hanlab.config.loader import load_lab, load_rig
from hanlab.config.models import RigConfig
from hanlab.correlate.live import LiveCorrelator
from hanlab.duis.client import DuisClient
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.log import DuisLog
from hanlab.duis.schema import load_duis_schema
from hanlab.errors import BadInputError
from hanlab.events.bus import EventBus
from hanlab.events.mqtt import MqttPublisher
from hanlab.gbcs.eui64 import Eui64
from hanlab.scenarios.emulated_lab import EmulatedLab, EmulatedLabSettings, is_emulated
from hanlab.scenarios.models import Scenario
from hanlab.scenarios.runner import (
    ScenarioRunner,
    StepResult,
    VariantResult,
    devices_by_role,
)
from hanlab.scenarios.store import RunStore

_STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


class RichObserver:
    """Progress bar per variant run and one line per step (response code, alert, timeout)."""

    def __init__(self, console: Console, progress: Progress) -> None:
        self.console = console
        self.progress = progress
        self._task: TaskID | None = None

    def variant_started(self, result: VariantResult, steps: int) -> None:
        """Start a progress bar for the variant."""
        self._task = self.progress.add_task(
            f"{result.scenario}/{result.variant} #{result.repetition}", total=steps)

    def step_finished(self, result: VariantResult, step: StepResult) -> None:
        """Print the step's outcome and advance the bar."""
        style = _STATUS_STYLE[step.status]
        if step.kind == "sr":
            what = (f"SR {step.sr_variant} {step.sr_name} -> {step.target_role}"
                    f" ({step.user_role}, CV{step.command_variant or '?'})")
            codes = f"ack {step.ack_code or '-'} response {step.response_code or '-'}"
        elif step.kind == "wait":
            what = f"wait alert{' after ' + step.stimulus if step.stimulus else ''}"
            codes = f"alert {step.alert_code or '-'}"
        else:
            what, codes = step.kind, ""
        opt = " (optional)" if step.optional else ""
        self.console.print(
            f"  {step.index:>3} [{style}]{step.status:<7}[/] {what}{opt}: {codes} "
            f"{step.outcome or ''} {step.duration_s:.3f} s {step.detail}".rstrip(),
            highlight=False)
        if self._task is not None:
            self.progress.advance(self._task)

    def variant_finished(self, result: VariantResult) -> None:
        """Print the verdict and drop the bar."""
        verdict = "[green]PASS[/]" if result.passed else "[bold red]FAIL[/]"
        self.console.print(
            f"{verdict} {result.scenario}/{result.variant} #{result.repetition}: "
            f"{result.srs_answered}/{result.srs_sent} SRs answered, {result.duration_s:.2f} s",
            highlight=False)
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None


async def _prompt_stimulus(role: str, device: Eui64, alert_code: int) -> bool:
    """A real rig: the technician performs the field action behind a wait step."""
    print(f"ACTION: make the {role} {device.duis} raise alert 0x{alert_code:04X} "
          "(e.g. power it up, join it, enter the UTRN), then wait", flush=True)
    return True


@contextlib.asynccontextmanager
async def _mqtt(rig: RigConfig, lab_name: str) -> AsyncIterator[EventBus | None]:
    """An event bus published to the rig's external broker, or ``None`` without one."""
    if rig.broker is None or rig.broker.host is None:
        yield None
        return
    bus = EventBus()
    publisher = MqttPublisher(bus.subscribe("mqtt", maxsize=10_000, frames=False),
                              rig.broker, lab_name, rig.name)
    task = asyncio.create_task(publisher.run(), name=f"scenario-mqtt-{rig.name}")
    try:
        yield bus
    finally:
        await bus.close()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_command(
    scenario: Scenario, *, rig_path: Path, variants: Sequence[str], repeat: int,
    lab_path: Path | None, results_folder: Path, time_scale: float, include_optional: bool,
    console: Console, capture_folder: Path | None = None,
) -> bool:
    """Run ``scenario`` on the rig (issue 5, item 4); whether every variant run passed.

    On an emulated rig with ``capture_folder``, the rig's sniffers write per-band pcapng
    there, the DUIS log goes beside them, every SR is correlated live, and the per-band
    timing report (DIT.11) is printed and written as ``timings.json`` / ``timings.csv``
    in ``results_folder``.

    Raises:
        BadInputError: unknown variant; a real rig without a lab file's ``duis:`` section.
    """
    for variant_id in variants:
        from hanlab.scenarios.loader import get_variant
        get_variant(scenario, variant_id)
    rig, _ = load_rig(rig_path)
    duis: DuisConfig | None = None
    lab_name = "lab"
    if lab_path is not None:
        lab = load_lab(lab_path)
        duis, lab_name = lab.config.duis, lab.config.name
    emulated = is_emulated(rig_path) and (duis is None or duis.endpoint == "emulated")
    if not emulated and duis is None:
        raise BadInputError(f"rig {rig.name} is not emulated: give --lab with a duis: section",
                            hint="the duis: section names the DCC simulator and the Users")
    with RunStore(results_folder) as store, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=console, transient=True) as progress:
        observer = RichObserver(console, progress)
        async with contextlib.AsyncExitStack() as stack:
            bus = await stack.enter_async_context(_mqtt(rig, lab_name))
            if emulated:
                schema = None if duis is None or duis.xsd is None else load_duis_schema(duis.xsd)
                users = None if duis is None else duis.duis_users()
                duis_log = None if duis is None else duis.log
                if duis_log is None and capture_folder is not None:
                    duis_log = capture_folder / f"{rig.name}_duis.jsonl"
                lab_emulated = await stack.enter_async_context(EmulatedLab(
                    rig_path, EmulatedLabSettings(time_scale=time_scale), users=users,
                    schema=schema, duis_log=duis_log,
                    counter_folder=None if duis is None else duis.counter_state_folder,
                    correlate=capture_folder is not None, capture_folder=capture_folder))
                runner = lab_emulated.runner(store=store, bus=bus, observer=observer,
                                             include_optional=include_optional, lab=lab_name)
            else:
                assert duis is not None
                runner = await stack.enter_async_context(_real_runner(
                    duis, rig, store=store, bus=bus, observer=observer,
                    include_optional=include_optional, lab=lab_name))
            async with runner:
                results = await runner.run(scenario, variants, repeat=repeat)
    passed = sum(r.passed for r in results)
    sent = sum(r.srs_sent for r in results)
    answered = sum(r.srs_answered for r in results)
    console.print(f"{scenario.name}: {passed}/{len(results)} variant runs passed, "
                  f"{answered}/{sent} SRs answered; results in {store.path}", highlight=False)
    correlator = lab_emulated.correlator if emulated else None
    if correlator is not None and capture_folder is not None:
        _report_timings(correlator, rig.name, capture_folder, results_folder, console)
    return passed == len(results)


def _report_timings(correlator: LiveCorrelator, rig_name: str, capture_folder: Path,
                    results_folder: Path, console: Console) -> None:
    """Print the per-band timing table; write ``timings.json``/``.csv`` to the results."""
    stats = correlator.stats
    console.print(stats.table())
    (results_folder / "timings.json").write_text(stats.to_json() + "\n")
    (results_folder / "timings.csv").write_text(stats.to_csv())
    files = sorted(capture_folder.glob(f"{rig_name}_*.pcapng"))
    console.print(f"{len(correlator.exchanges)} exchanges; timings in "
                  f"{results_folder / 'timings.json'} and .csv; captures: "
                  + ", ".join(str(f) for f in files), highlight=False)


@contextlib.asynccontextmanager
async def _real_runner(
    duis: DuisConfig, rig: RigConfig, *, store: RunStore, bus: EventBus | None,
    observer: RichObserver, include_optional: bool, lab: str,
) -> AsyncIterator[ScenarioRunner]:
    """A runner on a DUIS client to the lab's DCC (simulator) for a real rig."""
    async with contextlib.AsyncExitStack() as stack:
        log = None
        if duis.log is not None:
            log = await stack.enter_async_context(DuisLog(duis.log, keep_xml=duis.keep_xml))
        client = await stack.enter_async_context(DuisClient(
            base_url=str(duis.endpoint), users=duis.duis_users(),
            counters=RequestCounterStore(duis.counter_state_folder), log=log,
            schema=None if duis.xsd is None else load_duis_schema(duis.xsd),
            receiver_host=duis.receiver.host, receiver_port=duis.receiver.port,
            receiver_path=duis.receiver.path, response_timeout_s=duis.response_timeout_s))
        yield ScenarioRunner(client, devices_by_role(rig), rig=rig.name, lab=lab,
                             stimulus=_prompt_stimulus, store=store, bus=bus,
                             observer=observer, include_optional=include_optional)
