"""The emulated DCC wired to an emulated HAN the test builds itself (with a ground-truth
sink and taps of its own), and a DUIS client for the lab's two default Users: for tests
of the DCC <-> HAN boundary (faults, every SR variant on air). Labs and rigs run only
through :class:`hanlab.runtime.lab.LabRuntime`; this harness is the two edges alone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hanlab.config.loader import load_rig
from hanlab.config.models import RigConfig
from hanlab.duis.client import DuisClient
from hanlab.duis.counters import RequestCounterStore
from hanlab.emulator.dcc import DccUser, EmulatedDcc, EmulatedDccSettings
from hanlab.emulator.han import EmulatedHan, MemoryTruth, build_han
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.emulation import EmulationSettings, ephemeral_user, han_settings

IMPORT_SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
GAS_SUPPLIER = Eui64.parse("90-B3-D5-1F-30-02-00-00")


@dataclass
class Edges:
    """The parts: the rig, its HAN (not started), the truth it writes."""

    rig: RigConfig
    han: EmulatedHan
    truth: MemoryTruth


def build_edges(rig_file: Path, emulation: EmulationSettings) -> Edges:
    """The rig's emulated HAN (traffic generator off) with an in-memory ground truth."""
    rig, settings = load_rig(rig_file)
    han = han_settings(rig, settings, emulation, alert_recipient=IMPORT_SUPPLIER)
    han = han.model_copy(update={"traffic": han.traffic.model_copy(
        update={"enabled": False, "alert_interval_s": None})})
    truth = MemoryTruth()
    return Edges(rig, build_han(rig.name, han, rig_config=rig, truth=truth), truth)


@contextlib.asynccontextmanager
async def dcc_on_han(edges: Edges, counters: Path, *, processing_latency_s: float = 0.001,
                     wan_latency_s: float = 0.001, dcc_response_timeout_s: float = 20.0,
                     response_timeout_s: float = 30.0
                     ) -> AsyncIterator[tuple[DuisClient, EmulatedDcc]]:
    """The HAN running, the emulated DCC attached to it, a DUIS client on the DCC."""
    users = [ephemeral_user(IMPORT_SUPPLIER, "IS"), ephemeral_user(GAS_SUPPLIER, "GS")]
    inventory = {Eui64.parse(d.eui64): d.role.value for d in edges.rig.devices}
    async with DuisClient(base_url="http://127.0.0.1:1", users=users,
                          counters=RequestCounterStore(counters),
                          response_timeout_s=response_timeout_s) as client, EmulatedDcc(
            EmulatedDccSettings(processing_latency_s=processing_latency_s,
                                wan_latency_s=wan_latency_s,
                                response_timeout_s=dcc_response_timeout_s,
                                verify_signatures=True),
            users=[DccUser(u.eui64, client.receiver_url, u.certificate, role=u.role)
                   for u in users], devices=inventory) as dcc:
        edges.han.dcc = dcc
        async with edges.han:
            dcc.attach_han(edges.han, devices=list(inventory))
            client.base_url = dcc.url
            import asyncio
            import time

            deadline = time.monotonic() + 60
            while not all(d.joined or d.bricked for d in edges.han.devices):
                assert time.monotonic() < deadline, "the HAN's devices did not join"
                await asyncio.sleep(0.01)
            yield client, dcc
