"""How a campaign reaches its rigs (issue 10, item 3): the daemon that owns a rig
(found again through the state files after it restarts), or the lab runtime started
in this process for the rigs no daemon serves (as ``hanlab scenario run`` does).

A daemon must write to the campaign's results store (one record per job): a daemon
whose ``lab()["store"]`` names another store is refused (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hanlab.config.models import Lab
from hanlab.errors import BadInputError, HanlabError
from hanlab.runtime.emulation import EmulationSettings
from hanlab.store import ResultsStore

__all__ = ["DaemonLink", "InProcessLink", "rig_links", "served_rigs"]

Row = dict[str, Any]


class InProcessLink:
    """A rig of the lab runtime running in this process."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime  # hanlab.runtime.lab.LabRuntime

    async def submit(self, spec: Row) -> Row:
        """Queue a job (``LabRuntime.submit``)."""
        result: Row = self.runtime.submit(spec)
        return result

    async def job(self, job_id: str) -> Row:
        """A job's record (``LabRuntime.job``)."""
        result: Row = self.runtime.job(job_id)
        return result


class DaemonLink:
    """The daemon on this host serving ``rig`` (operator token from its tokens file),
    looked up again whenever it does not answer (a restarted daemon has a new pid and
    may have a new port).

    Args:
        rig: the rig's name.
        store_url: the campaign's store (password hidden): the daemon must use it.
        daemon_url: a fixed daemon URL (token from ``HANLAB_TOKEN`` or its state file).
    """

    def __init__(self, rig: str, store_url: str, daemon_url: str | None = None) -> None:
        self.rig = rig
        self.store_url = store_url
        self.daemon_url = daemon_url
        self._client: Any = None

    async def close(self) -> None:
        """Close the connection to the daemon (twice is fine)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def connect(self) -> Any:
        """The API client of the rig's daemon (checked to use the campaign's store).

        Raises:
            BadInputError: the daemon writes to another store.
            HanlabError: no daemon serves the rig now.
        """
        if self._client is not None:
            return self._client
        from hanlab.scenarios.cli_run import daemon_client

        client = daemon_client(self.rig, self.daemon_url)
        if client is None:
            raise HanlabError(f"no daemon serves rig {self.rig} now")
        try:
            lab = await client.lab()
        except BaseException:
            await client.close()
            raise
        if lab.get("store") != self.store_url:
            await client.close()
            raise BadInputError(
                f"the daemon at {client.url} serving rig {self.rig} writes its results to "
                f"{lab.get('store')}, this campaign to {self.store_url}",
                hint="give the campaign the daemon's lab file and --out")
        self._client = client
        return client

    async def _call(self, method: str, *args: Any) -> Row:
        client = await self.connect()
        try:
            result: Row = await getattr(client, method)(*args)
        except HanlabError as error:
            if not isinstance(error, BadInputError):
                await self.close()  # look the daemon up again next time
            raise
        return result

    async def submit(self, spec: Row) -> Row:
        """Queue a job on the daemon."""
        return await self._call("submit", spec)

    async def job(self, job_id: str) -> Row:
        """A job's record from the daemon."""
        return await self._call("job", job_id)


def served_rigs(rigs: list[str], daemon_url: str | None = None) -> list[str]:
    """The rigs a daemon of this host serves now (all of them with ``daemon_url``)."""
    from hanlab.daemon.statefile import daemon_for_rig

    if daemon_url is not None:
        return list(rigs)
    return [r for r in rigs if daemon_for_rig(r) is not None]


@contextlib.asynccontextmanager
async def rig_links(lab: Lab, rigs: list[str], *, mode: str, store: ResultsStore, out: Path,
                    emulation: EmulationSettings,
                    daemon_url: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """A link per rig: ``mode`` ``daemon``: every rig through its daemon (waiting for
    one that is away); ``in-process``: the rigs run by a lab runtime started here (its
    API off; MQTT only to a broker the lab file names), stopped on exit.

    Raises:
        BadInputError: a daemon writes to another store.
    """
    from hanlab.runtime.lab import LabOptions, LabRuntime

    if mode == "daemon":
        links = {r: DaemonLink(r, store.url, daemon_url) for r in rigs}
        try:
            for link in links.values():
                try:
                    await link.connect()
                except BadInputError:
                    raise
                except HanlabError:
                    pass  # away now: the campaign waits for it
            yield links
        finally:
            for link in links.values():
                await link.close()
        return
    sub = [r for r in lab.rigs if r.name in rigs]
    files = [f for r, f in zip(lab.rigs, lab.rig_files, strict=False) if r.name in rigs]
    model = lab.model_copy(update={"rigs": sub, "rig_files": files})
    runtime = LabRuntime(model, LabOptions(
        mqtt=lab.config.broker.host is not None, out=out, api=False, emulation=emulation,
        store=store))
    task = asyncio.create_task(runtime.run(), name="campaign-lab")
    try:
        for rig in runtime.runners:
            ready = asyncio.ensure_future(rig.duis_ready.wait())
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if rig.duis_error is not None:
                raise HanlabError(f"rig {rig.rig.name}: {rig.duis_error}")
        if task.done():
            task.result()
        yield {r: InProcessLink(runtime) for r in rigs}
    finally:
        runtime.stop()
        await asyncio.gather(task, return_exceptions=True)
