"""An emulated lab in one process: emulated DCC, emulated HAN, DUIS client and receiver.

The one place that assembles them (for ``hanlab scenario run`` on an emulated rig, the
tests, and the daemon): everything on 127.0.0.1, every latency configurable down to
milliseconds (issue 5, item 4: "CI-sized time, short emulated delays").

* The DUIS client (:class:`hanlab.duis.client.DuisClient`) with its receiver, for two Users
  (import supplier ``IS`` and gas supplier ``GS``) with ephemeral ECDSA P-256 signing keys
  and self-signed certificates unless Users are given: nothing is read from ``../shared``.
* The emulated DCC (:class:`hanlab.emulator.dcc.EmulatedDcc`) with the rig's devices as its
  inventory and the Users' certificates, verifying every Critical SR's signature.
* The rig's emulated HAN (:class:`hanlab.emulator.han.EmulatedHan`, built from the rig file
  as the emulated sniffers build it) in real time scaled by ``time_scale``: commands to the
  ESME, GSME (through the GPF, when it wakes), PPMID, IHD and HCALCS travel over the
  emulated air. Its traffic generator and spontaneous alerts are off (they would answer
  a scenario's waits), and device alerts go to the ``IS`` User.
* Commands to the CHF and GPF themselves (CCS/GCS use cases: SR 8.11, 8.12.x, 6.21 to the
  GPF …) never cross the HAN: the emulated HAN's CHF / GPF nodes process them (a fixed
  ``ch_processing_s`` here) and answer over the WAN.

Use::

    async with EmulatedLab(rig_path, EmulatedLabSettings(time_scale=20)) as lab:
        async with lab.runner(store=...) as runner:
            await runner.run(scenario)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hanlab.config.loader import load_rig
from hanlab.config.models import DeviceRole, RigConfig
from hanlab.duis.client import DuisClient, DuisUser
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.log import DuisLog
from hanlab.duis.schema import DuisSchema
from hanlab.emulator.dcc import DccUser, EmulatedDcc, EmulatedDccSettings
from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, build_han
from hanlab.emulator.han.settings import ProcessingModel
from hanlab.emulator.truth import GroundTruthLog
from hanlab.errors import HanlabError
from hanlab.events.bus import EventBus
from hanlab.gbcs.eui64 import Eui64
from hanlab.scenarios.runner import RunObserver, ScenarioRunner, devices_by_role
from hanlab.scenarios.store import RunStore
from hanlab.sources.emulated import EmulatedSnifferSettings

IMPORT_SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
GAS_SUPPLIER = Eui64.parse("90-B3-D5-1F-30-02-00-00")
"""The emulated lab's Users (the ZAZ1 test PKI's two supplier EUI-64s)."""

CH_ROLES = (DeviceRole.CHF, DeviceRole.GPF)


@dataclass(frozen=True)
class EmulatedLabSettings:
    """Timing of the emulated lab (all durations in seconds).

    Attributes:
        time_scale: emulated HAN seconds per host second (1.0: real time).
        wake_interval_s: GSME wake-up interval (emulated seconds), overriding the rig's;
            ``None``: keep the rig's (default 30 s).
        dcc_processing_latency_s, dcc_wan_latency_s: the emulated DCC's latencies.
        dcc_response_timeout_s: how long the emulated DCC waits for a device's response.
        ch_processing_s: the CHF's / GPF's processing of commands addressed to them
            (emulated seconds, fixed; applies to a HAN this lab builds).
        response_timeout_s: the DUIS client's default wait for a response.
        join_timeout_s: host seconds to wait for every device to join the HAN.
        seed: the HAN's random seed (None: the rig's).
    """

    time_scale: float = 1.0
    wake_interval_s: float | None = None
    dcc_processing_latency_s: float = 0.05
    dcc_wan_latency_s: float = 0.1
    dcc_response_timeout_s: float = 120.0
    ch_processing_s: float = 0.05
    response_timeout_s: float = 180.0
    join_timeout_s: float = 60.0
    seed: int | None = None


def ephemeral_user(eui64: Eui64, role: str) -> DuisUser:
    """A DCC User with a fresh ECDSA P-256 key and a self-signed certificate (test PKI of
    one run: never written to disk)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hanlab-{role}-{eui64.duis}")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return DuisUser(eui64=eui64, role=role, signing_key=key, certificate=certificate)


def han_settings_of(rig_path: Path) -> HanSettings:
    """The HAN settings the rig file's emulated sniffers give (the first one's), or the
    defaults."""
    _, settings = load_rig(rig_path)
    for value in settings.values():
        if isinstance(value, EmulatedSnifferSettings) and value.han is not None:
            return value.han
    return HanSettings()


def is_emulated(rig_path: Path) -> bool:
    """Whether every sniffer of the rig is emulated (no hardware)."""
    rig, _ = load_rig(rig_path)
    return all(s.driver == "emulated" for s in rig.sniffers)


_T = TypeVar("_T")


def _started(part: _T | None) -> _T:
    if part is None:
        raise HanlabError("the emulated lab is not started (use 'async with')")
    return part


class EmulatedLab:
    """The emulated lab of one rig (see the module docstring).

    Args:
        rig_path: the rig file (its devices are the DCC's inventory and the HAN's nodes).
        settings: timing, see :class:`EmulatedLabSettings`.
        users: the DUIS Users (default: ephemeral ``IS`` and ``GS`` Users).
        schema: validate every DUIS document against the XSD, or ``None``.
        duis_log, truth_log: where to write the DUIS log / the ground truth, or ``None``.
        counter_folder: RequestID counter state (default: a temporary folder).
        han: an already running emulated HAN of the rig to use (the daemon's, from
            :func:`hanlab.emulator.han.han_of`, so its emulated sniffers hear the scenario);
            it is connected to this lab's DCC while the lab runs and left running after.
            ``None``: build and run one (traffic generator and spontaneous alerts off).

    Attributes (once entered): ``client``, ``dcc``, ``han``, ``rig``.
    """

    def __init__(
        self,
        rig_path: Path,
        settings: EmulatedLabSettings | None = None,
        *,
        users: Sequence[DuisUser] | None = None,
        schema: DuisSchema | None = None,
        duis_log: Path | None = None,
        truth_log: Path | None = None,
        counter_folder: Path | None = None,
        han: EmulatedHan | None = None,
    ) -> None:
        self.rig_path = Path(rig_path)
        self.settings = settings or EmulatedLabSettings()
        self.rig: RigConfig = load_rig(self.rig_path)[0]
        self.users = list(users) if users is not None else [
            ephemeral_user(IMPORT_SUPPLIER, "IS"), ephemeral_user(GAS_SUPPLIER, "GS")]
        self.schema = schema
        self.duis_log = duis_log
        self.truth_log = truth_log
        self.counter_folder = counter_folder
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: DuisClient | None = None
        self._dcc: EmulatedDcc | None = None
        self._given_han = han
        self._han: EmulatedHan | None = None

    # -- parts -------------------------------------------------------------------------------

    @property
    def client(self) -> DuisClient:
        """The DUIS client (once entered)."""
        return _started(self._client)

    @property
    def dcc(self) -> EmulatedDcc:
        """The emulated DCC (once entered)."""
        return _started(self._dcc)

    @property
    def han(self) -> EmulatedHan:
        """The rig's emulated HAN (once entered)."""
        return _started(self._han)

    def _han_settings(self) -> HanSettings:
        base = han_settings_of(self.rig_path)
        settings = self.settings
        recipient = next((u.eui64 for u in self.users if u.role == "IS"), self.users[0].eui64)
        devices = base.devices
        if settings.wake_interval_s is not None:
            known = {d.eui64 for d in devices}
            devices = [d.model_copy(update={"wake_interval_s": settings.wake_interval_s})
                       for d in devices] + [
                EmulatedDevice(role=d.role, eui64=d.eui64, band=d.band, name=d.name,
                               model=d.model, wake_interval_s=settings.wake_interval_s)
                for d in self.rig.devices if d.eui64 not in known]
        update: dict[str, Any] = {
            "time_scale": settings.time_scale, "devices": devices,
            "ch_processing": ProcessingModel(distribution="fixed",
                                             mean_s=settings.ch_processing_s, min_s=0.0),
            "traffic": base.traffic.model_copy(update={
                "enabled": False, "alert_interval_s": None,
                "originator_eui64": recipient.duis}),
        }
        if settings.seed is not None:
            update["seed"] = settings.seed
        return base.model_copy(update=update)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        self._stack = stack
        try:
            await self._start(stack)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        settings = self.settings
        folder = self.counter_folder
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="hanlab-counters-")))
        truth = None
        if self.truth_log is not None:
            truth = await stack.enter_async_context(GroundTruthLog(self.truth_log))
        log = None
        if self.duis_log is not None:
            log = await stack.enter_async_context(DuisLog(self.duis_log))
        self._client = await stack.enter_async_context(DuisClient(
            base_url="http://127.0.0.1:1", users=self.users,
            counters=RequestCounterStore(folder), log=log, schema=self.schema,
            response_timeout_s=settings.response_timeout_s))
        inventory = {Eui64.parse(d.eui64): d.role.value for d in self.rig.devices}
        self._dcc = await stack.enter_async_context(EmulatedDcc(
            EmulatedDccSettings(
                processing_latency_s=settings.dcc_processing_latency_s,
                wan_latency_s=settings.dcc_wan_latency_s,
                response_timeout_s=settings.dcc_response_timeout_s,
                verify_signatures=True),
            users=[DccUser(u.eui64, self._client.receiver_url, u.certificate)
                   for u in self.users],
            devices=inventory, schema=self.schema, truth=truth))
        if self._given_han is not None:
            han = self._given_han
            previous = han.dcc
            stack.callback(setattr, han, "dcc", previous)
            han.dcc = self._dcc
            self._han = han
        else:
            han = build_han(self.rig.name, self._han_settings(), rig_file=self.rig_path,
                            truth=truth)
            han.dcc = self._dcc
            self._han = await stack.enter_async_context(han)
        self._dcc.attach_han(self._han, devices=list(inventory))
        self._client.base_url = self._dcc.url
        await self._wait_joined()

    async def _wait_joined(self) -> None:
        deadline = time.monotonic() + self.settings.join_timeout_s
        while not all(d.joined or d.bricked for d in self.han.devices):
            if time.monotonic() > deadline:
                missing = [d.name for d in self.han.devices if not d.joined]
                raise HanlabError(f"emulated HAN of {self.rig.name}: {missing} did not join "
                                  f"within {self.settings.join_timeout_s} s")
            await asyncio.sleep(0.01)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop everything in reverse order (cancelling and awaiting their tasks);
        idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._client = self._dcc = self._han = None

    # -- the scenario side -------------------------------------------------------------------

    async def provoke_alert(self, role: str, device: Eui64, alert_code: int) -> bool:
        """The field action behind a wait step's stimulus: ``device`` raises ``alert_code``
        on the emulated HAN (a device PUTs it to the CH; the CHF / GPF raise it over the
        WAN). Returns ``False`` for a device not on this HAN or not joined."""
        del role
        return self.han.raise_device_alert(device, alert_code)

    def runner(self, *, store: RunStore | None = None, bus: EventBus | None = None,
               observer: RunObserver | None = None, include_optional: bool = True,
               lab: str = "emulated") -> ScenarioRunner:
        """A :class:`ScenarioRunner` on this lab's client and rig, with
        :meth:`provoke_alert` as its stimulus (enter it with ``async with``)."""
        return ScenarioRunner(
            self.client, devices_by_role(self.rig), rig=self.rig.name, lab=lab,
            stimulus=self.provoke_alert, store=store, bus=bus, observer=observer,
            include_optional=include_optional)
