"""A rig's DUIS side: its DUIS client and receiver, its DUIS log, and, where the lab's DCC
is emulated, the emulated DCC on the rig's emulated HAN (issue 9, item 1; DESIGN.md "One
lab runtime").

The same for real and emulated rigs, except at the edge: the client posts to the lab's
``duis: endpoint`` (a DCC simulator's URL) or, with ``endpoint: emulated``, to an emulated
DCC this side starts for the rig (an HTTP endpoint like any other, attached to the rig's
emulated HAN once its emulated sniffers have started it). Every document sent or received
goes to the rig's DUIS log (:class:`~hanlab.runtime.emulation.RigDuisLog`), stamped on
the rig's clock and handed to the line sinks as written (the live correlator, the running
job's log).

A wait step's stimulus (a field action such as joining a device): on an emulated rig the
device raises the alert on the emulated HAN; on a real rig the technician is asked on the
rig's bus (``action`` event, MQTT ``hanlab/v1/<lab>/<rig>/action``) and in the log.

Each User has its own receive path at the emulated DCC (N27 / N17 reach the old supplier's).
Local Command Delivery (DUIS CommandVariants 2, 3, 6, 7): on an emulated rig an emulated
HHT (:mod:`hanlab.emulator.han.hht`, the rig's ``HHT`` device if it has one) delivers the
command over the emulated HAN (:meth:`RigDuis.deliver_locally`); :meth:`RigDuis.set_wan`
marks the rig's SM WAN absent for a 'no WAN' variant (nothing then crosses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hanlab.config.duis import DuisConfig
from hanlab.config.models import RigConfig
from hanlab.duis.client import DuisClient, DuisUser
from hanlab.duis.counters import RequestCounterStore
from hanlab.errors import HanlabError
from hanlab.events.bus import BusEvent, EventBus
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.emulation import RigDuisLog, han_watermark_clock

log = logging.getLogger(__name__)

__all__ = ["RigDuis", "rig_inventory"]

#: device alerts an emulated OTA transfer raises itself (0x8F72 / 0x8F1C verification,
#: 0x8F66 / 0x8F67 activation): a stimulus for them waits for the transfer instead.
FIRMWARE_ALERTS = frozenset({0x8F72, 0x8F1C, 0x8F66, 0x8F67})


class RigDuis:
    """The DUIS side of one rig (see the module docstring).

    Args:
        rig: the rig.
        duis: the lab's ``duis:`` section (paths resolved).
        users: the lab's Users with their signing keys.
        counters: the lab's RequestID counter store (one per process and folder).
        log_path: the rig's DUIS log file.
        bus: the rig's event bus (``action`` events).
        emulated: the rig's sniffers are emulated (the DCC, when emulated, is attached to
            the rig's emulated HAN).
        time_scale: the emulated HAN's rig seconds per host second.
        join_timeout_s: host seconds to wait for the emulated HAN and its joins.
        receiver_port_offset: added to a fixed receiver port (rig n of a lab: n).

    Use as ``async with RigDuis(...) as side``; :attr:`client` is then the started client.
    """

    def __init__(self, rig: RigConfig, duis: DuisConfig, *, users: list[DuisUser],
                 counters: RequestCounterStore, log_path: Path, bus: EventBus,
                 emulated: bool, time_scale: float = 1.0,
                 join_timeout_s: float = 60.0, receiver_port_offset: int = 0) -> None:
        self.rig = rig
        self.duis = duis
        self.users = users
        self.counters = counters
        self.log_path = log_path
        self.bus = bus
        self.emulated = emulated
        self.time_scale = time_scale
        self.join_timeout_s = join_timeout_s
        self.receiver_port_offset = receiver_port_offset
        self.log: RigDuisLog | None = None
        self.dcc: Any = None  # hanlab.emulator.dcc.EmulatedDcc with endpoint: emulated
        self.han: Any = None  # the rig's EmulatedHan on an emulated rig
        self.hht: Any = None  # hanlab.emulator.han.hht.EmulatedHht with an emulated DCC
        self._client: DuisClient | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def client(self) -> DuisClient:
        """The started DUIS client.

        Raises:
            HanlabError: not started.
        """
        if self._client is None:
            raise HanlabError(f"rig {self.rig.name}: its DUIS side is not running")
        return self._client

    @property
    def clock_ns(self) -> Callable[[], int] | None:
        """The rig clock the DUIS log and the correlator follow (``None``: host UTC)."""
        return None if self.han is None else han_watermark_clock(self.han)

    async def __aenter__(self) -> RigDuis:
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        try:
            await self._start(stack)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the client, the emulated DCC and the log; idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._client = None

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        from hanlab.duis.schema import load_duis_schema

        duis = self.duis
        schema = None if duis.xsd is None else load_duis_schema(duis.xsd)
        if self.emulated:
            self.han = await self._wait_for_han()
            stack.callback(setattr, self, "han", None)
        han = self.han
        self.log = stack.enter_context(RigDuisLog(
            self.log_path, clock_ns=None if han is None else han.now_ns,
            time_scale=self.time_scale, keep_xml=duis.keep_xml))
        receiver = duis.receiver
        emulated_dcc = duis.endpoint == "emulated"
        client = await stack.enter_async_context(DuisClient(
            base_url="http://127.0.0.1:1" if emulated_dcc else str(duis.endpoint),
            users=self.users, counters=self.counters, log=self.log, schema=schema,
            receiver_host=receiver.host,
            receiver_port=receiver.port + self.receiver_port_offset if receiver.port else 0,
            receiver_path=receiver.path, response_timeout_s=duis.response_timeout_s,
            # the DCC signs what it posts (issue 14 item 14): the real DCC's certificate
            # from the lab file; the emulated DCC's once it exists (trust_dcc below)
            dcc_certificate=None if emulated_dcc else duis.dcc_certificate(),
            dcc_ssl_context=None if emulated_dcc else duis.dcc_ssl_context(),
            receiver_ssl_context=receiver.ssl_context(),
            receiver_limits=receiver.limits.limits()))
        if duis.endpoint == "emulated":
            if han is None:
                raise HanlabError(
                    f"rig {self.rig.name} has real sniffers but the lab's DCC is emulated",
                    hint="give the lab's duis: endpoint the DCC simulator's URL")
            await self._start_emulated_dcc(stack, client, schema)
        self._client = client

    async def _wait_for_han(self) -> Any:
        from hanlab.emulator.han.registry import han_of

        deadline = time.monotonic() + self.join_timeout_s
        while (han := han_of(self.rig.name)) is None:
            if time.monotonic() > deadline:
                raise HanlabError(f"rig {self.rig.name}: its emulated HAN did not start")
            await asyncio.sleep(0.01)
        while not all(d.joined or d.bricked for d in han.devices):
            if time.monotonic() > deadline:
                missing = [d.name for d in han.devices if not d.joined]
                raise HanlabError(f"rig {self.rig.name}: {missing} did not join the "
                                  f"emulated HAN within {self.join_timeout_s} s")
            await asyncio.sleep(0.01)
        return han

    async def _start_emulated_dcc(self, stack: contextlib.AsyncExitStack,
                                  client: DuisClient, schema: Any) -> None:
        from hanlab.emulator.dcc import DccUser, EmulatedDcc

        settings = self.duis.emulated_dcc_settings()
        if settings.port:  # one emulated DCC per rig: rig n listens on the port + n
            settings = dataclasses.replace(settings, port=settings.port
                                           + self.receiver_port_offset)
        inventory = {Eui64.parse(d.eui64): d.role.value for d in self.rig.devices}
        smi = rig_inventory(self.rig, self.log_path.with_name(
            f"{self.rig.name}_dcc-inventory.json"))
        smi.listeners.append(self._install_whitelisted)
        dcc = EmulatedDcc(
            settings, users=[DccUser(u.eui64, client.receiver_url_for(u.eui64), u.certificate,
                                     role=u.role) for u in self.users],
            devices=inventory, schema=schema, inventory=smi)
        client.trust_dcc(dcc.certificate)  # its DSP key signs every response and alert
        await stack.enter_async_context(dcc)
        han = self.han
        previous = han.dcc
        self.hht = self._hht(han, dcc)
        self.hht.attach()  # the HAN's uplink: the HHT, then the DCC over the WAN
        stack.callback(setattr, han, "dcc", previous)
        dcc.attach_han(han, devices=list(inventory))
        client.base_url = dcc.url
        self.dcc = dcc

    def _hht(self, han: Any, dcc: Any) -> Any:
        from hanlab.emulator.han.hht import DEFAULT_HHT_EUI64, EmulatedHht

        named = [Eui64.parse(d.eui64) for d in self.rig.devices if d.role.value == "HHT"]
        return EmulatedHht(han, upstream=dcc, wan_present=lambda: bool(dcc.wan_present),
                           eui64=named[0] if named else DEFAULT_HHT_EUI64,
                           truth=getattr(han, "truth", None),
                           response_timeout_s=self.duis.emulated_dcc.response_timeout_s,
                           clock_ns=getattr(han, "now_ns", None))

    def set_wan(self, present: bool) -> bool:
        """Mark the rig's SM WAN present or absent (a 'no WAN' variant); whether it could
        be (only an emulated DCC's WAN can: a real rig's is as the rig is)."""
        if self.dcc is None:
            return False
        self.dcc.wan_present = present
        return True

    async def deliver_locally(self, target: Eui64, gbcs_command: bytes, *, request_id: str,
                              sr_variant: str, command_variant: int) -> bytes | None:
        """Local Command Delivery by the rig's HHT; the device's GBCS response or ``None``
        (no answer).

        Raises:
            HanlabError: the rig has no emulated HHT (a real rig's HHT is the installer's,
                not driven by hanlab).
        """
        if self.hht is None:
            raise HanlabError(f"rig {self.rig.name} has no HHT hanlab can drive for Local "
                              "Command Delivery", hint="run 'no WAN' variants on an "
                              "emulated rig, or deliver with the installer's HHT")
        response: bytes | None = await self.hht.deliver(
            target, gbcs_command, request_id=request_id, sr_variant=sr_variant,
            command_variant=command_variant)
        return response

    async def next_local_alert(self, index: int, timeout_s: float) -> bytes | None:
        """The ``index``-th alert the rig's HHT kept (see :meth:`EmulatedHht.next_alert`)."""
        if self.hht is None:
            return None
        alert: bytes | None = await self.hht.next_alert(index, timeout_s)
        return alert

    @property
    def local_alerts_kept(self) -> int:
        """How many alerts the rig's HHT has kept so far."""
        return 0 if self.hht is None else int(self.hht.alerts_kept)

    def _install_whitelisted(self, device: Any, old: Any) -> None:
        """A bench spare whitelisted by SR 8.11 joins the emulated HAN (the installer
        powers the new PPMID / IHD)."""
        del old
        if device.status == "Whitelisted" and self.han is not None:
            self.han.install(device.device_id)

    async def install(self, devices: Sequence[Eui64]) -> None:
        """A variant starts consuming ``devices``: on an emulated DCC they are marked
        consumed (reset on the next start if the run dies before :meth:`restore`) and a
        spare CH connects to the SM WAN (``Commissioned``); on a real rig the technician is
        asked to have the spares ready (``action`` event)."""
        if self.dcc is not None:
            self.dcc.inventory.consume(devices)
            for device in devices:
                self.dcc.inventory.install(device)
            return
        self._ask("have ready (spares) or expect decommissioned: "
                  + ", ".join(d.duis for d in devices), devices)

    async def restore(self, devices: Sequence[Eui64]) -> None:
        """A variant consumed ``devices`` (installed spares, decommissioned devices):
        factory reset them and put the rig back as its file describes it (seed 000: "After
        device decommission, device must go to the factory reset process … before device
        can be re-use"). Emulated: each goes back to its rig-file SMI status and a spare
        leaves the HAN for the bench; real: the technician is asked."""
        if self.dcc is not None:
            for device in devices:
                self.dcc.inventory.factory_reset(device)
                if self.han is not None:
                    self.han.uninstall(device)
            return
        self._ask("factory reset and re-fit as the rig file describes: "
                  + ", ".join(d.duis for d in devices), devices)

    def _ask(self, text: str, devices: Sequence[Eui64]) -> None:
        log.warning("rig %s: ACTION: %s", self.rig.name, text)
        self.bus.publish_nowait(BusEvent("action", {
            "devices": [d.duis for d in devices], "text": text}))

    def reattach(self) -> None:
        """After the emulated sniffers restarted the rig's HAN: point the DCC, the log's
        clock and :attr:`han` at the new one (no-op on a real rig)."""
        if not self.emulated or self.dcc is None:
            return
        from hanlab.emulator.han.registry import han_of

        han = han_of(self.rig.name)
        if han is None or han is self.han:
            return
        self.han = han
        if self.hht is not None:
            self.hht.attach(han)
        else:
            han.dcc = self.dcc
        self.dcc.attach_han(han, devices=[Eui64.parse(d.eui64) for d in self.rig.devices])
        if self.log is not None:
            self.log.clock_ns = han.now_ns

    async def stimulus(self, role: str, device: Eui64, alert_code: int) -> bool:
        """The field action behind a wait step (see the module docstring); whether it was
        done (an emulated device not on the HAN or not joined: ``False``)."""
        if self.han is not None:
            ota = getattr(self.han, "ota", None)
            firmware = getattr(self.dcc, "firmware", None)
            if alert_code in FIRMWARE_ALERTS and (
                    (ota is not None and ota.pending(device))
                    or (firmware is not None and firmware.pending(device))):
                return False  # a real OTA transfer is under way: its device raises it
            return bool(self.han.raise_device_alert(device, alert_code))
        text = (f"make the {role} {device.duis} raise alert 0x{alert_code:04X} (e.g. power "
                "it up, join it, enter the UTRN)")
        log.warning("rig %s: ACTION: %s", self.rig.name, text)
        self.bus.publish_nowait(BusEvent("action", {
            "role": role, "device": device.duis, "alert_code": f"0x{alert_code:04X}",
            "text": text}))
        return True

    async def ch_firmware(self, image: Any, mode: str = "upgrade",
                          connect: list[Eui64] | None = None,
                          timeout_s: float = 600.0) -> dict[str, Any]:
        """Upgrade this rig's CH to ``image`` (a :class:`hanlab.firmware.ch_image.ChImage`)
        now and wait up to ``timeout_s`` host seconds for its devices to come back.

        An emulated rig's emulated DCC deploys it (SECMP0024: the DCC's own operation;
        :func:`hanlab.emulator.han.ch_upgrade.dcc_upgrade_ch`), else its emulated HAN
        takes it directly; a real rig's DCC (simulator) operator is asked (``action``
        event) and ``{"requested": True, "missing": []}`` returned at once. ``mode``:
        ``upgrade`` or ``install``; ``connect``: devices connected afresh after it.

        Returns:
            The upgrade record (``ChUpgradeRecord.to_dict()``: each device's rejoin,
            ``missing`` those not back by the deadline).

        Raises:
            BadInputError: an upgrade is under way, or an unknown device or mode.
        """
        connect = list(connect or [])
        if self.han is None:
            text = (f"deploy CH firmware {image.describe()} ({mode}) to the CH of rig "
                    f"{self.rig.name} from the DCC (simulator)")
            log.warning("rig %s: ACTION: %s", self.rig.name, text)
            self.bus.publish_nowait(BusEvent("action", {
                "kind": "ch_firmware", "version": image.version, "mode": mode,
                "connect": [d.duis for d in connect], "text": text}))
            return {"requested": True, "missing": []}
        from hanlab.emulator.han.ch_upgrade import UpgradeMode, dcc_upgrade_ch

        kind: UpgradeMode = "install" if mode == "install" else "upgrade"
        if self.dcc is not None:
            record = await dcc_upgrade_ch(self.dcc, self.han.chf.eui, image, mode=kind,
                                          connect=tuple(connect))
        else:
            record = self.han.upgrade_ch(image, mode=kind, connect=connect)
        back = asyncio.Event()
        record.on_done.append(back.set)
        if not record.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(back.wait(), timeout_s)
        return dict(record.to_dict())

    def pause_traffic(self, paused: bool) -> None:
        """Pause (or resume) the emulated HAN's traffic generator and spontaneous alerts
        while a job runs (no-op on a real rig)."""
        if self.han is not None:
            self.han.traffic_paused = paused


def rig_inventory(rig: RigConfig, path: Path | None) -> Any:
    """The emulated DCC's Smart Metering Inventory of ``rig``
    (:class:`hanlab.emulator.dcc.inventory.Inventory`): installed devices
    ``Commissioned``, spares ``Pending``; the installed CHF and GPF form one CH, the
    n-th spare CHF and n-th spare GPF another; persisted to ``path`` (loaded when it
    exists).

    Raises:
        BadInputError: ``path`` is not an inventory file.
    """
    from hanlab.emulator.dcc.inventory import DeviceStatus, Inventory, InventoryDevice

    entries = []
    hubs: dict[tuple[bool, str], list[InventoryDevice]] = {}
    for device in rig.devices:
        status = DeviceStatus.PENDING if device.spare else DeviceStatus.COMMISSIONED
        entry = InventoryDevice(Eui64.parse(device.eui64), device.role.value, status, status,
                                manufacturer=device.manufacturer, model=device.model)
        entries.append(entry)
        hubs.setdefault((device.spare, device.role.value), []).append(entry)
    for spare in (False, True):
        for chf, gpf in zip(hubs.get((spare, "CHF"), []), hubs.get((spare, "GPF"), []),
                            strict=False):
            chf.hub, gpf.hub = gpf.device_id, chf.device_id
    return Inventory(entries, path=path)

