"""Running one job on its rig runtime (issue 9, item 2): the scenario's variants through a
:class:`~hanlab.scenarios.runner.ScenarioRunner` on the rig's DUIS client, stimulus and
live correlator, the job's record updated and saved after every step.

The job gets its own DUIS log (``<jobs>/<id>/duis.jsonl``: every line the rig's DUIS log
wrote while the job ran), so ``hanlab analyse <the job's captures> --duis-log
<the job's duis.jsonl>`` reproduces the job's exchanges and timings from files alone
(DESIGN.md "A timing in a report must be reproducible from the capture and the DUIS log
alone").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from hanlab.duis.jsonl import JsonLinesWriter
from hanlab.errors import HanlabError
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.jobs import JobRecord
from hanlab.scenarios.checks import catalogue_versions
from hanlab.scenarios.runner import ScenarioRunner, StepResult, VariantResult, devices_by_role

if TYPE_CHECKING:
    from hanlab.runtime.rig import RigRuntime

log = logging.getLogger(__name__)

__all__ = ["job_devices", "run_job"]

#: host seconds a job waits for its rig's DUIS side to start
DUIS_START_TIMEOUT_S = 120.0


def job_devices(rig: Any, chosen: dict[str, str]) -> dict[str, list[Eui64]]:
    """The rig's devices per role with each chosen device first for its role (a job's
    ``devices``: ``{"GSME": "00-DB-…"}`` makes ``GSME`` that device and ``GSME#2`` the
    next one in the rig file)."""
    roles = devices_by_role(rig)
    for ref, eui64 in chosen.items():
        role = ref.partition("#")[0]
        wanted = Eui64.parse(eui64)
        euis = roles.get(role, [])
        if wanted in euis:
            euis.remove(wanted)
            euis.insert(0, wanted)
    return roles


class _JobObserver:
    """Updates the job record as the runner goes (saved and published every step)."""

    def __init__(self, runtime: RigRuntime, record: JobRecord) -> None:
        self.runtime = runtime
        self.record = record

    def variant_started(self, result: VariantResult, steps: int) -> None:
        del steps
        self.record.progress["current"] = (f"{result.scenario}/{result.variant} "
                                           f"#{result.repetition}")
        self.runtime._save(self.record)

    def step_finished(self, result: VariantResult, step: StepResult) -> None:
        self.record.step_finished(result, step)
        self.runtime.options.jobs.save(self.record)  # type: ignore[union-attr]
        self.runtime.publish_job(self.record, self.record.steps[-1])

    def variant_finished(self, result: VariantResult) -> None:
        correlator = self.runtime.correlator
        exchanges = {}
        if correlator is not None:
            for step in result.steps:
                exchange = (None if step.request_id is None
                            else correlator.exchange_of(step.request_id))
                if exchange is not None:
                    exchanges[step.request_id or ""] = exchange
        self.record.variant_finished(result, exchanges)
        self.record.timings = self.record.timing_stats().summary()
        self.runtime._save(self.record)


async def run_job(runtime: RigRuntime, record: JobRecord) -> None:
    """Run ``record`` on ``runtime`` to its end; never raises but for cancellation (the
    record is then ``interrupted``, everything up to then kept)."""
    from hanlab.scenarios.loader import get_scenario, load_library

    store = runtime.options.jobs
    assert store is not None
    folder = store.job_folder(record.id)
    record.state = "running"
    record.started_ns = time.time_ns()
    record.duis_log = str(folder / "duis.jsonl")
    marks = runtime.capture_marks()
    runtime._save(record)
    job_log: JsonLinesWriter | None = None
    side = None
    runner: ScenarioRunner | None = None
    try:
        try:
            await asyncio.wait_for(runtime.duis_ready.wait(), DUIS_START_TIMEOUT_S)
        except TimeoutError:
            raise HanlabError("the rig's DUIS side did not start in time") from None
        side = runtime.duis
        if side is None or side.log is None:
            raise HanlabError(runtime.duis_error or "the rig has no DUIS side")
        side.reattach()
        job_log = JsonLinesWriter(folder / "duis.jsonl")
        side.log.sinks.append(job_log.write)
        side.pause_traffic(True)
        scenario = get_scenario(record.scenario, load_library())
        runner = ScenarioRunner(
            side.client, job_devices(runtime.rig, record.devices), rig=runtime.rig.name,
            lab=runtime.options.lab, stimulus=side.stimulus, bus=runtime.bus,
            observer=_JobObserver(runtime, record), include_optional=record.include_optional,
            exchanges=runtime.correlator, ch_firmware=side.ch_firmware,
            spares=devices_by_role(runtime.rig, spare=True), install=side.install,
            restore=side.restore, catalogue=catalogue_versions(
                {Eui64.parse(d.eui64): d.model or d.role.value.lower()
                 for d in runtime.rig.devices}), local=side)
        runtime._current_runner = runner
        async with runner:
            results = await runner.run(scenario, record.variants, repeat=record.repeat)
        if runner.cancelled:
            record.state, record.detail = "cancelled", "cancelled while running"
        elif results and all(r.passed for r in results):
            record.state = "passed"
        else:
            failed = sum(not r.passed for r in results)
            record.state = "failed"
            record.detail = f"{failed} of {len(results)} variant runs failed"
    except asyncio.CancelledError:
        record.state = "interrupted"
        record.detail = "the daemon stopped while the job ran; results up to then are kept"
        raise
    except HanlabError as error:
        record.state, record.detail = "error", str(error)
    except Exception as error:  # a bug must not take the rig down
        log.exception("job %s on rig %s crashed", record.id, runtime.rig.name)
        record.state, record.detail = "error", f"{type(error).__name__}: {error}"
    finally:
        if side is not None:
            side.pause_traffic(False)
            if side.log is not None and job_log is not None:
                side.log.sinks.remove(job_log.write)
        if job_log is not None:
            job_log.close()
        record.ended_ns = time.time_ns()
        record.captures = [p.name for p in runtime.captures_covering(marks)]
        record.timings = record.timing_stats().summary()
        runtime._save(record)
