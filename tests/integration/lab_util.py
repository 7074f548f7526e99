"""The lab runtime in a test: the rig files given, run by :class:`LabRuntime` as ``hanlab
up`` runs them, in CI-sized time (the HAN 20 times faster than real time, GSMEs waking
every 2 emulated seconds, millisecond DCC latencies)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hanlab.config.duis import DuisConfig, EmulatedDccConfig
from hanlab.config.loader import load_lab
from hanlab.config.models import Lab
from hanlab.runtime.emulation import EmulationSettings
from hanlab.runtime.lab import DEFAULT_USERS, LabOptions, LabRuntime

ROOT = Path(__file__).resolve().parents[2]
DUAL = ROOT / "rigs" / "emulated-dual-band.yaml"
SINGLE = ROOT / "rigs" / "emulated-single-band.yaml"
FAST = EmulationSettings(time_scale=20.0, wake_interval_s=2.0, ch_processing_s=0.002)


def fast_duis(*, response_timeout_s: float = 30.0, dcc_response_timeout_s: float = 20.0,
              **update: Any) -> DuisConfig:
    """An emulated DCC with millisecond latencies and the lab's two default Users."""
    return DuisConfig(
        endpoint="emulated", users=list(DEFAULT_USERS), response_timeout_s=response_timeout_s,
        emulated_dcc=EmulatedDccConfig(processing_latency_s=0.001, wan_latency_s=0.001,
                                       response_timeout_s=dcc_response_timeout_s),
        **update)


def lab_of(rig_file: Path, *, duis: DuisConfig | None = None, name: str = "test") -> Lab:
    """A lab of one rig file with ``duis`` as its ``duis:`` section."""
    lab = load_lab(rig_file)
    config = lab.config.model_copy(update={"name": name, "duis": duis or fast_duis()})
    return lab.model_copy(update={"config": config})


@contextlib.asynccontextmanager
async def running_lab(lab: Lab, out: Path, *, emulation: EmulationSettings = FAST,
                      mqtt: bool = False, api: bool = False,
                      api_port: int | None = 0) -> AsyncIterator[LabRuntime]:
    """``lab`` running (every rig's DUIS side ready) until the block ends."""
    runtime = LabRuntime(lab, LabOptions(mqtt=mqtt, out=out, api=api, api_port=api_port,
                                         emulation=emulation))
    task = asyncio.create_task(runtime.run(), name="test-lab")
    try:
        deadline = time.monotonic() + 60
        for rig in runtime.runners:
            while not rig.duis_ready.is_set():
                assert not task.done(), task.exception()
                assert time.monotonic() < deadline, f"rig {rig.rig.name} did not start"
                await asyncio.sleep(0.01)
            assert rig.duis_error is None, rig.duis_error
        yield runtime
    finally:
        runtime.stop()
        await asyncio.gather(task, return_exceptions=True)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def stored_jobs(out: Path) -> list[dict[str, Any]]:
    """Every job record in the results store of a lab run with ``out`` (SQLite
    ``<out>/hanlab.db``), oldest first."""
    from hanlab.store import open_store

    store = open_store(None, out)
    try:
        return [record for record, _ in store.jobs()]
    finally:
        store.close()


async def finished(runtime: LabRuntime, job_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """The job's record once it ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = runtime.job(job_id)
        if record["state"] not in ("queued", "running"):
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['state']}"
        await asyncio.sleep(0.05)


async def run_job(runtime: LabRuntime, timeout_s: float = 300.0, **spec: Any) -> dict[str, Any]:
    """Submit a job and return its record once it ended."""
    record = runtime.submit(spec)
    return await finished(runtime, record["id"], timeout_s)


def wait_until(predicate: Any, timeout_s: float, what: str) -> Any:
    """Poll ``predicate`` (every 0.1 s, blocking) until it returns something true; that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout_s} s")
