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

With ``correlate=True`` the lab runs the rig the way the daemon does: a
:class:`hanlab.daemon.rig.RigRunner` over the rig file's emulated sniffers (their HAN
settings replaced by the lab's), writing per-band pcapng to ``capture_folder`` and
publishing to ``broker``, with a :class:`hanlab.correlate.live.LiveCorrelator` on its bus
fed the DUIS log lines as they are written: one exchange per SR, recorded with each step
(issue 5, "each SR correlated in the scenario runs").

One clock: with ``time_scale`` the HAN's emulated clock runs faster than the host's, and
the sniffers stamp frames with it. The lab's DUIS log is therefore stamped on the HAN's
clock too (:class:`LabDuisLog`: the client's host timestamp moved onto the HAN clock by
the host time elapsed since, times ``time_scale``), so the log and the captures can be
correlated together, live or by ``hanlab analyse``. At ``time_scale`` 1 the HAN clock is
the host's UTC clock.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hanlab.config.loader import load_rig
from hanlab.config.models import BrokerConfig, RigConfig
from hanlab.correlate.live import LiveCorrelator
from hanlab.duis.client import DuisClient, DuisUser
from hanlab.duis.counters import RequestCounterStore
from hanlab.duis.log import DuisLog
from hanlab.duis.schema import DuisSchema
from hanlab.emulator.dcc import DccUser, EmulatedDcc, EmulatedDccSettings
from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, build_han
from hanlab.emulator.han.registry import han_of
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

#: the live correlator's reorder window in host seconds (times time_scale, plus 50 ms of
#: HAN time for a frame's airtime): frames and DUIS lines reach it within a few loop
#: iterations, and a stalled HAN holds the watermark back (han_watermark_clock)
REORDER_HOST_S = 0.05


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


DuisLineSink = Callable[[dict[str, Any]], None]
"""Takes each DUIS log line as written (a live correlator's :meth:`duis_line`)."""


def han_clock(han: EmulatedHan) -> Callable[[], int]:
    """The running HAN's clock (:meth:`EmulatedHan.now_ns`): ns since the epoch on the
    emulated timeline, what its sniffers stamp frames with."""
    return han.now_ns


def han_watermark_clock(han: EmulatedHan) -> Callable[[], int]:
    """The time up to which the running HAN has produced its frames: its clock, or, while
    its scheduler is behind (events overdue after a host stall), the scheduler's time.
    The live correlator's watermark (items before it are released in time order)."""
    clock = han_clock(han)

    def now_ns() -> int:
        true_ns = clock()
        due = han.scheduler.next_ts_ns()
        if due is not None and due <= true_ns:
            return min(true_ns, han.scheduler.now_ns)
        return true_ns

    return now_ns


class LabDuisLog(DuisLog):
    """The emulated lab's DUIS log: lines stamped on the HAN's clock and handed, as
    written, to a sink (the live correlator).

    Args:
        path: the ``.jsonl`` file.
        clock_ns: the HAN clock (:func:`han_clock`), or ``None`` once there is none yet:
            host time is written unchanged.
        time_scale: emulated seconds per host second.
        sink: gets each line dict as written, or ``None``.
    """

    def __init__(self, path: Path, *, clock_ns: Callable[[], int | None],
                 time_scale: float, sink: DuisLineSink | None = None,
                 keep_xml: bool = False) -> None:
        super().__init__(path, keep_xml=keep_xml)
        self.on_line = sink
        self.clock_ns = clock_ns
        self.time_scale = time_scale

    def set_sink(self, sink: DuisLineSink | None) -> None:
        """Where lines go from now on."""
        self.on_line = sink

    def record(self, **fields: Any) -> None:
        """:meth:`DuisLog.record` with ``ts_ns`` moved to the HAN clock: the HAN time now,
        less the host time elapsed since ``ts_ns`` times ``time_scale``."""
        han_now = self.clock_ns()
        if han_now is not None:
            host_elapsed_ns = time.time_ns() - int(fields["ts_ns"])
            fields["ts_ns"] = han_now - int(host_elapsed_ns * self.time_scale)
        super().record(**fields)


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
        correlate: run the rig's emulated sniffers through a RigRunner (pcapng per band
            to ``capture_folder``, MQTT to ``broker``) with a live correlator fed the DUIS
            log (a temporary one if ``duis_log`` is ``None``); not with ``han``.
        capture_folder: where the RigRunner writes (default: a temporary folder).
        broker: publish the rig's events (frames' stats, exchanges, timings, scenario
            steps through the runner's bus) to this broker, or ``None``.
        lab_name: the lab name in MQTT topics and results.
        correlator: with ``han``: the daemon's live correlator of the rig; it gets each
            DUIS log line as written (a temporary log if ``duis_log`` is ``None``) and
            the runner records its exchanges.

    Attributes (once entered): ``client``, ``dcc``, ``han``, ``rig``; with
    ``correlate``: ``rig_runner`` and ``correlator``.
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
        correlate: bool = False,
        capture_folder: Path | None = None,
        broker: BrokerConfig | None = None,
        lab_name: str = "emulated",
        correlator: LiveCorrelator | None = None,
    ) -> None:
        if correlate and (han is not None or correlator is not None):
            raise HanlabError("EmulatedLab: correlate=True runs its own sniffers; with a "
                              "running HAN, give the daemon's correlator")
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
        self.correlate = correlate
        self.capture_folder = capture_folder
        self.broker = broker
        self.lab_name = lab_name
        self.rig_runner: Any = None  # hanlab.daemon.rig.RigRunner (imported lazily)
        self.correlator: LiveCorrelator | None = correlator
        self._clock: Callable[[], int] | None = None
        self._running_han: EmulatedHan | None = None

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
        if self.correlate:
            await self._start_rig(stack)  # stopped last: after the DUIS side
        elif self.truth_log is not None:
            truth = await stack.enter_async_context(GroundTruthLog(self.truth_log))
        log = None
        duis_log = self.duis_log
        if duis_log is None and self.correlator is not None:
            duis_log = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="hanlab-duis-"))) / "duis.jsonl"
        if duis_log is not None:
            sink = None if self.correlator is None else self.correlator.duis_line
            log = await stack.enter_async_context(LabDuisLog(
                duis_log, clock_ns=lambda: None if self._clock is None else self._clock(),
                time_scale=self._time_scale(), sink=sink))
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
            users=[DccUser(u.eui64, self._client.receiver_url, u.certificate, role=u.role)
                   for u in self.users],
            devices=inventory, schema=self.schema, truth=truth))
        running = self._running_han or self._given_han
        if running is not None:
            han = running
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
        self._clock = han_clock(self._han)
        if self.correlator is not None:
            self.correlator.clock_ns = han_watermark_clock(self._han)
        await self._wait_joined()

    def _time_scale(self) -> float:
        if self._given_han is not None:
            return self._given_han.settings.time_scale
        return self.settings.time_scale

    async def _start_rig(self, stack: contextlib.AsyncExitStack) -> None:
        """The rig's emulated sniffers under a RigRunner with a live correlator; wait for
        the HAN they share (:func:`hanlab.emulator.han.registry.han_of`)."""
        from hanlab.daemon.rig import RigOptions, RigRunner
        from hanlab.sources.emulated import EmulatedSnifferSettings

        if han_of(self.rig.name) is not None:
            raise HanlabError(f"rig {self.rig.name} already runs an emulated HAN here: "
                              "use han=han_of(rig)")
        _, driver_settings = load_rig(self.rig_path)
        han_settings = self._han_settings()
        sniffers: dict[str, Any] = {}
        for sid, value in driver_settings.items():
            if isinstance(value, EmulatedSnifferSettings):
                value = value.model_copy(update={"han": han_settings,
                                                 "truth_log": self.truth_log})
            sniffers[sid] = value
        folder = self.capture_folder
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="hanlab-capture-")))
        keys = build_han(self.rig.name, han_settings, rig_config=self.rig).keyring()
        scale = self.settings.time_scale
        self.correlator = LiveCorrelator(
            keys, [s.id for s in self.rig.sniffers],
            device_roles={d.eui64: d.role.value for d in self.rig.devices},
            reorder_ns=int((REORDER_HOST_S * scale + 0.05) * 1e9))
        runner = RigRunner(self.rig, sniffers,
                           RigOptions(lab=self.lab_name, broker=self.broker,
                                      capture_folder=folder),
                           correlator=self.correlator)
        self.rig_runner = runner
        task = asyncio.create_task(runner.run(), name=f"lab-rig-{self.rig.name}")

        async def stop_rig() -> None:
            runner.stop()
            await asyncio.gather(task, return_exceptions=True)

        stack.push_async_callback(stop_rig)
        deadline = time.monotonic() + self.settings.join_timeout_s
        while (han := han_of(self.rig.name)) is None:
            if task.done() or time.monotonic() > deadline:
                raise HanlabError(f"emulated sniffers of {self.rig.name} did not start")
            await asyncio.sleep(0.005)
        self._running_han = han

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
        self._clock = None
        self._running_han = None

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
        :meth:`provoke_alert` as its stimulus and, with ``correlate``, the live
        correlator's exchanges recorded per step (enter it with ``async with``).
        ``bus`` defaults to the rig runner's bus (its MQTT) when the lab correlates."""
        if bus is None and self.rig_runner is not None:
            bus = self.rig_runner.bus
        return ScenarioRunner(
            self.client, devices_by_role(self.rig), rig=self.rig.name, lab=lab,
            stimulus=self.provoke_alert, store=store, bus=bus, observer=observer,
            include_optional=include_optional, exchanges=self.correlator)
