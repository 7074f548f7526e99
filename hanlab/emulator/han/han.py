"""One rig's emulated HAN: media, nodes, traffic generator, faults and the DCC boundary.

:class:`EmulatedHan` builds the CH (CHF and GPF, a radio per band of the CH) and the
devices of a rig, joins them, and runs either in virtual time (:meth:`run_for`, tests) or
paced by the host clock (``async with han:``, the daemon). It is the HAN side of
:mod:`hanlab.emulator.dcc_link` (:meth:`deliver_command`) and writes the ground truth
(:mod:`hanlab.emulator.truth`): commands queued at the CHF, every frame's start and end
per channel, device processing start and end, responses sent and received.

Faults (issue 4, item 7): per-link frame loss, added device latency, a bricked device,
CH reboot, a sub-GHz channel change (frequency agility, alert 0x8F26) and GBCS duty-cycle
management with its alerts (0x8F20-0x8F25, 0x8F2C).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from hanlab.config.models import DeviceRole
from hanlab.duis.catalogue import message_code_for, sr
from hanlab.emulator.dcc_link import CommandDelivery, DccLink
from hanlab.emulator.han.ch_upgrade import ChFirmware, ChUpgradeRecord
from hanlab.emulator.han.content import alert_message, command_message
from hanlab.emulator.han.medium import Medium, MediumSet, NullTruth, Transmission, TruthSink
from hanlab.emulator.han.nodes import (
    AppMessage,
    Chf,
    Device,
    GbcsServer,
    Gpf,
    Gsme,
    Node,
    derive_key,
    short_address,
)
from hanlab.emulator.han.ota import OtaService
from hanlab.emulator.han.scheduler import RealtimeDriver, Scheduler
from hanlab.emulator.han.settings import (
    EmulatedDevice,
    FaultEvent,
    HanSettings,
    ProcessingModel,
)
from hanlab.errors import BadInputError
from hanlab.firmware.ch_image import ChImage
from hanlab.frames import Band
from hanlab.gbcs.codes import CraFlag
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message
from hanlab.zigbee.keyring import Keyring

#: GBCS duty-cycle alerts: entering Limited/Critical/Regulated, and falling back below.
DUTY_UP = (0x8F20, 0x8F22, 0x8F24)
DUTY_DOWN = (0x8F21, 0x8F23, 0x8F25)
DUTY_STATES = ("normal", "limited", "critical", "regulated")
ALERT_CHANNEL_CHANGED = 0x8F26
ALERT_DUTY_DISCARD = 0x8F2C
DEFAULT_SUBGHZ = (28, 12)
DEFAULT_2G4 = (0, 11)

#: Default processing-time models per role when the rig names none.
ROLE_PROCESSING: dict[DeviceRole, ProcessingModel] = {
    DeviceRole.ESME: ProcessingModel(mean_s=0.35, sd_s=0.1),
    DeviceRole.GSME: ProcessingModel(mean_s=0.8, sd_s=0.25),
    DeviceRole.CHF: ProcessingModel(mean_s=0.15, sd_s=0.05, min_s=0.02),
    DeviceRole.GPF: ProcessingModel(mean_s=0.2, sd_s=0.05, min_s=0.02),
}

#: GBCS Alert Codes the CHF / GPF raise after processing a command of a use case:
#: "CHF Device Log Changed" 0x8F12 and "GPF Device Log Changed" 0x8071. hanlab's reading
#: of seed 000 ('no WAN' installation: a locally delivered SR 8.11 (CCS01/CCS02) is
#: followed by Device Alert 0x8F12, a locally delivered 8.7.2 to the GPF (CS03B) by
#: 0x8071): raised only for locally delivered commands (CommandVariant 2, 3, 6, 7) unless
#: ``HanSettings.ch_alerts_wan``; override with ``HanSettings.ch_alerts``.
CH_COMMAND_ALERTS: dict[str, int] = {
    "CHF:CCS01": 0x8F12, "CHF:CCS02": 0x8F12,
    "GPF:CS03B": 0x8071, "GPF:CS03A2": 0x8071, "GPF:CS04AC": 0x8071,
}
#: DUIS CommandVariants of Local Command Delivery (DUIS 5.4 §3.2.3).
LOCAL_COMMAND_VARIANTS = frozenset({2, 3, 6, 7})

TapCallback = Callable[[Transmission, int, int], None]


class EmulatedHan:
    """The emulated HAN of one rig (see the module docstring).

    Args:
        rig: the rig name.
        settings: emulator settings.
        devices: the rig's devices (a CHF and GPF are added when absent).
        dual_band: the CH has a sub-GHz interface too.
        channels: band -> (page, channel) the CH uses; defaults from ``settings``.
        truth: ground-truth sink (:class:`~hanlab.emulator.truth.GroundTruthLog`).
        start_ns: true time to start at (ns since the UNIX epoch); now by default.
        dcc: the DCC side receiving responses and alerts, or ``None``.

    Raises:
        BadInputError: a device on sub-GHz with a single-band CH, or no device at all.
    """

    def __init__(self, rig: str, settings: HanSettings, devices: Iterable[EmulatedDevice],
                 *, dual_band: bool, channels: dict[Band, tuple[int, int]] | None = None,
                 truth: TruthSink | None = None, start_ns: int | None = None,
                 dcc: DccLink | None = None) -> None:
        self.rig = rig
        self.settings = settings
        self.truth: TruthSink = truth or NullTruth()
        self.dcc = dcc
        self.rng = random.Random(settings.seed * 1_000_003 + zlib.crc32(rig.encode()))
        self.scheduler = Scheduler(start_ns if start_ns is not None else time.time_ns())
        self.start_ns = self.scheduler.now_ns
        self.media = MediumSet(self.scheduler, self.truth, self.rng)
        self.dual_band = dual_band
        self.channels: dict[Band, tuple[int, int]] = {
            Band.GHZ_2_4: (0, settings.channel) if settings.channel else DEFAULT_2G4}
        if dual_band:
            self.channels[Band.SUB_GHZ] = (
                (settings.subghz_page, settings.subghz_channel)
                if settings.subghz_page is not None and settings.subghz_channel is not None
                else DEFAULT_SUBGHZ)
        if channels:
            self.channels.update({b: c for b, c in channels.items()
                                  if b is Band.GHZ_2_4 or dual_band})
        self.network_key = (bytes.fromhex(settings.network_key) if settings.network_key
                            else derive_key(rig, "network"))
        self.alert_recipient = Eui64.parse(settings.traffic.originator_eui64)
        self._default_loss = settings.loss
        self.counters: dict[str, int] = {"commands": 0, "responses": 0, "alerts": 0,
                                          "discarded": 0}
        self.responses: list[tuple[int, GbcsMessage]] = []
        self.alerts: list[tuple[int, int | None, str]] = []
        self._taps: list[tuple[Band, int | None, int | None, TapCallback]] = []
        self._traffic_index = 0
        #: while set, the traffic generator and spontaneous alerts send nothing (a job
        #: runs on the rig: its waits must see only what its own SRs cause)
        self.traffic_paused = False
        self._traffic_counter = settings.traffic.first_counter
        self._duty_state = 0
        self._duty_log: deque[tuple[int, int]] = deque()
        self._duty_sum_ns = 0
        self._duty_expiry_ns = 0
        self._driver: RealtimeDriver | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._local_commands: set[tuple[int, int]] = set()
        self._ch_alerts: dict[str, int] = (
            CH_COMMAND_ALERTS if settings.ch_alerts is None
            else {k.upper(): int(v, 16) for k, v in settings.ch_alerts.items()})
        self._build(list(devices))
        #: firmware distribution (OTA Upgrade cluster server on the CHF, device clients)
        self.ota = OtaService(self, settings.ota)
        #: the CH's firmware and its devices' recovery from a CH upgrade (issue 12)
        self.ch_firmware = ChFirmware(self, settings.ch_image)

    # -- construction -----------------------------------------------------------------------

    def _build(self, devices: list[EmulatedDevice]) -> None:
        by_role: dict[DeviceRole, EmulatedDevice] = {}
        for cfg in devices:
            if not cfg.spare:
                by_role.setdefault(cfg.role, cfg)
        chf_cfg = by_role.get(DeviceRole.CHF) or EmulatedDevice(
            role=DeviceRole.CHF, eui64=self._synthetic_eui(0xC0))
        gpf_cfg = by_role.get(DeviceRole.GPF) or EmulatedDevice(
            role=DeviceRole.GPF, eui64=self._synthetic_eui(0xC1))
        self.chf = Chf(self, chf_cfg, 0x0000, self._ch_model(chf_cfg))
        self.gpf = Gpf(self, gpf_cfg, 0x0001, self._ch_model(gpf_cfg))
        self.nodes: dict[int, Node] = {self.chf.eui64: self.chf, self.gpf.eui64: self.gpf}
        for band in self.channels:
            for ch_node in (self.chf, self.gpf):
                radio = ch_node.add_radio(band)
                if band is Band.SUB_GHZ:
                    radio.on_airtime = self._duty_add
        self.devices: list[Device] = []
        #: spares on the bench, off the HAN until :meth:`install`
        self.spares: list[Device] = []
        for cfg in devices:
            if cfg.spare and cfg.role in (DeviceRole.CHF, DeviceRole.GPF):
                bench_cls = Chf if cfg.role is DeviceRole.CHF else Gpf
                bench = bench_cls(self, cfg, short_address(Eui64.parse(cfg.eui64).value),
                                  self._ch_model(cfg))
                self.nodes[bench.eui64] = bench
                continue
            if cfg.role in (DeviceRole.CHF, DeviceRole.GPF, DeviceRole.HHT):
                continue
            if cfg.band is Band.SUB_GHZ and not self.dual_band:
                raise BadInputError(f"device {cfg.eui64} is on sub-GHz but the CH of rig "
                                    f"{self.rig} is single band")
            model = (self.settings.models.get(cfg.model) or self.settings.models.get("default")
                     or ROLE_PROCESSING.get(cfg.role) or ProcessingModel())
            cls = Gsme if cfg.role is DeviceRole.GSME else Device
            node = cls(self, cfg, short_address(Eui64.parse(cfg.eui64).value), model)
            radio = node.add_radio(cfg.band)
            radio.short = 0xFFFE
            radio.power(False)
            self.nodes[node.eui64] = node
            (self.spares if cfg.spare else self.devices).append(node)

    def _ch_model(self, cfg: EmulatedDevice) -> ProcessingModel:
        return (self.settings.ch_processing or self.settings.models.get(cfg.model)
                or ROLE_PROCESSING[cfg.role])

    def _synthetic_eui(self, low: int) -> str:
        value = (zlib.crc32(self.rig.encode()) << 16) | 0x0D00 | low
        return Eui64(value & ((1 << 64) - 1)).duis

    def medium_of(self, band: Band) -> Medium:
        """The medium the CH currently uses on ``band``."""
        page, channel = self.channels[band]
        return self._medium(page, channel)

    def _medium(self, page: int, channel: int) -> Medium:
        fresh = (page, channel) not in self.media.media
        medium = self.media.get(page, channel)
        if fresh:
            if self._default_loss:
                medium.loss[None] = self._default_loss
            for link in self.settings.link_loss:
                medium.loss[(Eui64.parse(link.a).value, Eui64.parse(link.b).value)] = (
                    link.probability)
        return medium

    def link_key(self, a: Node, b: Node) -> bytes:
        """The APS link key of the pair ``a``/``b`` (trust-centre or application link key)."""
        low, high = sorted((a.eui64, b.eui64))
        return derive_key(self.rig, "link", f"{low:016x}", f"{high:016x}")

    def keyring(self) -> Keyring:
        """The rig's keys: network key and every pair's link key (for tshark and decoding)."""
        ring = Keyring()
        ring.add_network_key(self.network_key, seq=0, label=f"{self.rig}-nwk")
        for device in [*self.devices, *self.spares]:  # a spare's keys before it joins
            for server in (self.chf, self.gpf):
                ring.add_link_key(self.link_key(device, server),
                                  devices=(device.eui64, server.eui64),
                                  label=f"{device.name}-{server.role.value}")
        return ring

    def node(self, eui64: Eui64 | str | int) -> Node | None:
        """The node with that EUI-64, or ``None``."""
        if isinstance(eui64, str):
            eui64 = Eui64.parse(eui64)
        value = eui64.value if isinstance(eui64, Eui64) else eui64
        return self.nodes.get(value)

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule joins, polls, traffic and faults (once)."""
        if self._started:
            return
        self._started = True
        sched = self.scheduler
        self.truth.record("han_start", sched.now_ns, rig=self.rig,
                          channels={b.value: list(c) for b, c in self.channels.items()})
        stagger_ns = int(self.settings.join_stagger_s * 1e9)
        for index, device in enumerate(self.devices):
            self._schedule_join(device, sched.now_ns + (index + 1) * stagger_ns)
        traffic = self.settings.traffic
        if traffic.enabled:
            begin_ns = sched.now_ns + (len(self.devices) + 2) * stagger_ns + int(1e9)
            sched.call_at(begin_ns, self._traffic_tick)
            if traffic.alert_interval_s:
                sched.call_at(begin_ns + int(traffic.alert_interval_s * 1e9), self._alert_tick)
        for fault in self.settings.faults:
            sched.call_at(self.start_ns + int(fault.at_s * 1e9), self.inject, fault)
        if self.dual_band:
            sched.call_later(int(self.settings.duty_cycle.window_s * 1e9 / 60), self._duty_tick)

    def _schedule_join(self, device: Device, join_ns: int) -> None:
        server: GbcsServer = self.gpf if device.role is DeviceRole.GSME else self.chf
        self.scheduler.call_at(join_ns, device.join, server)
        first_poll_s = (device.device.wake_interval_s if isinstance(device, Gsme)
                        else device.device.poll_interval_s)
        self.scheduler.call_at(join_ns + int(first_poll_s * 1e9 * (0.5 + self.rng.random())),
                               device.poll)

    def install(self, eui64: Eui64 | str | int) -> bool:
        """Install a bench spare: it powers up and joins the HAN now (the installer fitting
        a new PPMID / IHD once the CHF whitelisted it, SR 8.11). Whether it was a spare
        not yet installed. Safe to call from the event loop while the HAN runs."""
        node = self.node(eui64)
        if not isinstance(node, Device) or node not in self.spares:
            return False
        self._catch_up()
        self.spares.remove(node)
        self.devices.append(node)
        self._schedule_join(node, self.scheduler.now_ns)
        return True

    def uninstall(self, eui64: Eui64 | str | int) -> bool:
        """Take an installed spare back to the bench (NWK Leave; the factory reset before
        re-use). Whether it was an installed spare."""
        node = self.node(eui64)
        if not isinstance(node, Device) or not node.device.spare or node not in self.devices:
            return False
        self._catch_up()
        self.devices.remove(node)
        self.spares.append(node)
        if node.joined:
            self.scheduler.call_later(0, node.leave)
        return True

    def run_for(self, duration_s: float) -> int:
        """Virtual time: start if needed and run ``duration_s`` seconds of events."""
        self.start()
        return self.scheduler.run_for(duration_s)

    async def __aenter__(self) -> Self:
        """Start in real time (scaled by ``settings.time_scale``)."""
        self.start()
        self._driver = RealtimeDriver(self.scheduler, self.settings.time_scale)
        self._task = asyncio.create_task(self._driver.run(), name=f"han-{self.rig}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop the real-time driver; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def now_ns(self) -> int:
        """The HAN's true time now, in ns since the UNIX epoch: the clock its sniffers stamp
        frames with (host time scaled by ``time_scale`` while running in real time, the
        scheduler's time in virtual time)."""
        if self._driver is not None and self._task is not None:
            return self._driver.true_now_ns()
        return self.scheduler.now_ns

    def _catch_up(self) -> None:
        if self._driver is not None:
            self._driver.catch_up()

    # -- sniffer taps -----------------------------------------------------------------------

    def add_tap(self, band: Band, callback: TapCallback, *, page: int | None = None,
                channel: int | None = None) -> Callable[[], None]:
        """Hear every frame on ``band`` (following the CH's channel) or, with ``page`` and
        ``channel``, on that channel only. Returns a function that removes the tap."""
        entry = (band, page, channel, callback)
        self._taps.append(entry)
        self._retap()

        def remove() -> None:
            if entry in self._taps:
                self._taps.remove(entry)
                self._retap()
        return remove

    def _retap(self) -> None:
        for medium in self.media.media.values():
            medium.taps.clear()
        for band, page, channel, callback in self._taps:
            if page is not None and channel is not None:
                medium = self._medium(page, channel)
            elif band in self.channels:
                medium = self.medium_of(band)
            else:
                continue
            medium.taps.append(_bind_tap(callback, medium))

    # -- the DCC boundary (hanlab.emulator.dcc_link.HanLink) --------------------------------

    async def deliver_command(self, target_eui64: Eui64, gbcs_command: bytes,
                              request: CommandDelivery) -> None:
        """Queue a GBCS command for ``target_eui64`` at the CHF (``HanLink``)."""
        self._catch_up()
        self.queue_command(target_eui64, gbcs_command,
                           source="hht" if request.via == "hht" else "dcc",
                           variant=request.service_reference_variant,
                           local=request.command_variant in LOCAL_COMMAND_VARIANTS)

    def distribute_firmware(self, target_eui64: Eui64, image: bytes | None, *,
                            requester: Eui64, request_id: str | None = None,
                            listener: Any = None) -> bool:
        """SR 11.1 reached the CH: hold ``image`` (``None``: the catalogue's for the
        device's model) and distribute it over the OTA Upgrade cluster
        (:meth:`hanlab.emulator.han.ota.OtaService.distribute`)."""
        self._catch_up()
        return self.ota.distribute(target_eui64, image, requester=requester,
                                   request_id=request_id, listener=listener)

    def upgrade_ch(self, image: ChImage, *, mode: str = "upgrade",
                   connect: Iterable[Eui64 | str] = ()) -> ChUpgradeRecord:
        """Upgrade this rig's CH to ``image`` now: it reboots into it and its devices
        rejoin (:meth:`hanlab.emulator.han.ch_upgrade.ChFirmware.upgrade`; ``mode``
        ``upgrade`` or ``install``; ``connect``: devices connected afresh after it).

        Raises:
            BadInputError: an upgrade is under way, a bad mode or an unknown device.
        """
        if mode not in ("upgrade", "install"):
            raise BadInputError(f"CH firmware mode {mode!r} is neither upgrade nor install")
        return self.ch_firmware.upgrade(image, mode="install" if mode == "install"
                                        else "upgrade", connect=tuple(connect))

    def queue_command(self, target_eui64: Eui64 | str | int, gbcs_command: bytes, *,
                      source: str, variant: str = "", local: bool = False) -> bool:
        """Queue ``gbcs_command`` at the CHF (or, for a GSME, its GPF) for the target.

        A command for the CHF or GPF itself never crosses the HAN: the CH processes it
        (:meth:`GbcsServer.process_own`) and answers over the WAN.

        Args:
            local: the command was delivered locally (DUIS CommandVariant 2/3/6/7): the
                CH raises the alerts of :data:`CH_COMMAND_ALERTS` for it.

        Returns ``False`` when no such device is on this HAN, the CH is rebooting, or
        duty-cycle management discarded the command (alert 0x8F2C).
        """
        node = self.node(target_eui64)
        parsed = parse_gbcs_message(gbcs_command)
        counter = parsed.originator_counter if isinstance(parsed, GbcsMessage) else None
        code = parsed.message_code if isinstance(parsed, GbcsMessage) else None
        now = self.scheduler.now_ns
        self.truth.record("command_queued", now, rig=self.rig, source=source,
                          target=str(target_eui64) if node is None else node.eui.duis,
                          device=node.name if node else None, originator_counter=counter,
                          message_code=code, variant=variant, octets=len(gbcs_command))
        if isinstance(node, GbcsServer):
            if not isinstance(parsed, GbcsMessage) or not node.powered:
                return False
            self.counters["commands"] += 1
            if local:
                self._local_commands.add((node.eui64, parsed.originator_counter))
            node.process_own(parsed)
            return True
        if not isinstance(node, Device):
            return False
        if node.band is Band.SUB_GHZ and self._duty_state >= 2:
            self.counters["discarded"] += 1
            self.chf_alert(ALERT_DUTY_DISCARD)
            return False
        self.counters["commands"] += 1
        server: GbcsServer = self.gpf if isinstance(node, Gsme) else self.chf
        server.hold(node, gbcs_command)
        node.message_waiting()
        return True

    def from_device(self, peer: Node, message: GbcsMessage, raw: bytes) -> None:
        """A device's whole GBCS response or alert reached the CH; pass it to the DCC."""
        now = self.scheduler.now_ns
        if message.cra_flag == CraFlag.RESPONSE:
            self.counters["responses"] += 1
            self.responses.append((now, message))
            self.truth.record("response_received", now, rig=self.rig, device=peer.name,
                              eui64=peer.eui.duis,
                              originator_counter=message.originator_counter,
                              message_code=message.message_code)
            if self.dcc is not None and raw:
                self.dcc.on_device_response(raw, source_eui64=peer.eui, ts_ns=now)
        elif message.cra_flag == CraFlag.ALERT:
            self._alert_to_dcc(peer, message, raw)

    def _alert_to_dcc(self, peer: Node, message: GbcsMessage, raw: bytes) -> None:
        now = self.scheduler.now_ns
        self.counters["alerts"] += 1
        code = message.alert_code
        self.alerts.append((now, code, peer.name))
        self.truth.record("alert_received", now, rig=self.rig, device=peer.name,
                          eui64=peer.eui.duis,
                          alert_code=None if code is None else f"0x{code:04X}")
        if self.dcc is not None and raw:
            self.dcc.on_device_alert(raw, source_eui64=peer.eui, ts_ns=now)

    def chf_alert(self, alert_code: int) -> None:
        """An alert the CHF raises itself (sent over the WAN, not the HAN)."""
        self.ch_alert(self.chf, alert_code)

    def ch_alert(self, node: GbcsServer, alert_code: int, *,
                 recipient: Eui64 | None = None) -> None:
        """An alert the CHF or GPF raises itself, sent over the WAN (never on the HAN).

        CHF alerts are ASN.1, GPF alerts GBZ (GBCS v5.x §7.2.10, §16). ``recipient``: the
        User it is for (default: the HAN's alert recipient). Ground truth ``alert_sent``
        and ``alert_received`` (at the CH, the same instant).
        """
        node.alert_counter += 1
        raw = alert_message(device=node.eui, recipient=recipient or self.alert_recipient,
                            counter=node.alert_counter, alert_code=alert_code,
                            ts_ns=self.scheduler.now_ns, rng=self.rng, asn1=node is self.chf)
        node.record("alert_sent", alert_code=f"0x{alert_code:04X}")
        parsed = parse_gbcs_message(raw)
        if isinstance(parsed, GbcsMessage):
            self._alert_to_dcc(node, parsed, raw)

    def ch_command_alert(self, node: GbcsServer, command: GbcsMessage) -> None:
        """Raise the alert GBCS calls for after the CH processed ``command`` (see
        :data:`CH_COMMAND_ALERTS`), to the command's User (the Supplementary Remote Party
        where the DCC originated the command)."""
        local = (node.eui64, command.originator_counter) in self._local_commands
        self._local_commands.discard((node.eui64, command.originator_counter))
        if not (local or self.settings.ch_alerts_wan):
            return
        alert_code = self._ch_alerts.get(f"{node.role.value}:{command.use_case}".upper())
        if alert_code is None:
            return
        user = command.supplementary_remote_party_id or command.originator_system_title
        self.ch_alert(node, alert_code, recipient=user)

    def raise_device_alert(self, eui64: Eui64 | str | int, alert_code: int) -> bool:
        """Make a device of this HAN raise ``alert_code`` now (a field action: a device
        joining, a consumer entering a UTRN ...).

        A HAN device PUTs a GBCS alert (CRA flag 3) to its CH (GBCS v5.x §7.2.10; a sleepy
        GSME wakes to send it); the CHF or GPF raise it over the WAN. The alert reaches
        the DCC (``dcc.on_device_alert``) as any other. Safe to call from the event loop
        while the HAN runs in real time (it is scheduled, not run inline).

        Args:
            eui64: the device (EUI-64 in DUIS form, :class:`Eui64` or int).
            alert_code: GBCS Alert Code, 0..0xFFFF (e.g. 0x8183 device joined).

        Returns:
            ``False`` for a device not on this HAN, not joined, or bricked.

        Raises:
            BadInputError: ``alert_code`` outside 0..0xFFFF.
        """
        if not 0 <= alert_code <= 0xFFFF:
            raise BadInputError(f"Alert Code {alert_code} outside 0..0xFFFF")
        node = self.node(eui64)
        if node is None:
            return False
        self._catch_up()
        if isinstance(node, GbcsServer):
            self.scheduler.call_later(0, self.ch_alert, node, alert_code)
            return True
        if not isinstance(node, Device) or not node.joined or node.bricked:
            return False

        def raise_it() -> None:
            node.power(True)  # a sleepy GSME wakes to raise it, and sleeps once it is sent
            node.raise_alert(alert_code)

        self.scheduler.call_later(0, raise_it)
        return True

    def left(self, peer: Node) -> None:
        """``peer`` left the network: drop what the CH held for it."""
        for server in (self.chf, self.gpf):
            server.queues.pop(peer.eui64, None)
            server.tunnels.pop(peer.eui64, None)

    # -- traffic generator --------------------------------------------------------------------

    def _traffic_tick(self) -> None:
        traffic = self.settings.traffic
        targets = [] if self.traffic_paused else [
            d for d in self.devices if d.role in traffic.roles and d.joined]
        variants = traffic.variants
        for _ in range(len(targets) * max(1, len(variants))):
            if not targets or not variants:
                break
            index = self._traffic_index
            self._traffic_index += 1
            device = targets[index % len(targets)]
            variant = variants[(index // len(targets)) % len(variants)]
            try:
                code = message_code_for(variant, device.role.value)
                critical = sr(variant).critical
            except BadInputError:
                continue
            self._traffic_counter += 1
            command = command_message(
                originator=self.alert_recipient, counter=self._traffic_counter,
                target=device.eui, message_code=code, critical=critical, rng=self.rng)
            self.queue_command(device.eui, command, source="traffic", variant=variant)
            break
        self.scheduler.call_later(int(traffic.interval_s * 1e9), self._traffic_tick)

    def _alert_tick(self) -> None:
        interval_s = self.settings.traffic.alert_interval_s
        joined = [] if self.traffic_paused else [
            d for d in self.devices if d.joined and d.role in (DeviceRole.ESME, DeviceRole.GSME)]
        if joined:
            device = joined[self.rng.randrange(len(joined))]
            device.raise_alert(self.rng.choice((0x8F0A, 0x8F35, 0x8F69)))
        if interval_s:
            self.scheduler.call_later(int(interval_s * 1e9), self._alert_tick)

    # -- faults --------------------------------------------------------------------------------

    def inject(self, fault: FaultEvent) -> None:
        """Apply ``fault`` now (issue 4, item 7)."""
        self._catch_up()
        node = self.node(fault.device) if fault.device else None
        self.truth.record("fault", self.scheduler.now_ns, rig=self.rig, kind=fault.kind,
                          device=node.name if node else None)
        if fault.kind in ("brick", "unbrick") and isinstance(node, Device):
            node.bricked = fault.kind == "brick"
            node.power(not node.bricked)
        elif fault.kind == "leave" and isinstance(node, Device):
            node.leave()
        elif fault.kind == "latency" and isinstance(node, Device):
            node.added_latency_s = fault.duration_s
        elif fault.kind == "loss":
            self._default_loss = fault.probability
            for medium in self.media.media.values():
                medium.loss[None] = fault.probability
        elif fault.kind == "ch_reboot":
            for server in (self.chf, self.gpf):
                server.power(False)
                server.clear()
            self.scheduler.call_later(int(fault.duration_s * 1e9), self._ch_back)
        elif fault.kind == "channel_change":
            if fault.page is None or fault.channel is None:
                raise BadInputError("a channel_change fault needs page and channel")
            self.change_channel(fault.page, fault.channel)

    def _ch_back(self) -> None:
        for server in (self.chf, self.gpf):
            server.power(True)
        self.truth.record("ch_ready", self.scheduler.now_ns, rig=self.rig)

    def change_channel(self, page: int, channel: int) -> None:
        """Frequency agility: move the sub-GHz HAN to ``page``/``channel`` and raise 0x8F26.

        The CHF broadcasts a ZDO Mgmt_NWK_Update_req (ZigBee §2.4.3.3.9) on the old
        channel; 0.5 s later every sub-GHz radio retunes.

        Raises:
            BadInputError: the CH is single band, or the channel is not a sub-GHz one.
        """
        if Band.SUB_GHZ not in self.channels:
            raise BadInputError(f"rig {self.rig} has no sub-GHz HAN to change channel on")
        from hanlab.frames import PAGE_CHANNELS, band_of
        if band_of(page, channel) is not Band.SUB_GHZ:
            raise BadInputError(f"page {page} channel {channel} is not a sub-GHz channel")
        # ScanChannels: page in bits 27-31, the channel's bit counted from the page's first
        mask = (page << 27) | (1 << (channel - PAGE_CHANNELS[page].start))
        payload = bytes([self.chf.next_tsn()]) + mask.to_bytes(4, "little") + b"\xfe\x01"
        self.chf.send_aps(None, AppMessage("nwk_update", self.chf), payload, cluster=0x0038,
                          profile=0, endpoint=0, link_key=None,
                          radio=self.chf.radios[Band.SUB_GHZ])
        self.scheduler.call_later(int(0.5e9), self._retune, page, channel)

    def _retune(self, page: int, channel: int) -> None:
        old = self.channels[Band.SUB_GHZ]
        self.channels[Band.SUB_GHZ] = (page, channel)
        medium = self.medium_of(Band.SUB_GHZ)
        for node in self.nodes.values():
            radio = node.radios.get(Band.SUB_GHZ)
            if radio is not None:
                radio.move_to(medium)
        self._retap()
        self.truth.record("channel_change", self.scheduler.now_ns, rig=self.rig,
                          old_page=old[0], old_channel=old[1], page=page, channel=channel)
        self.chf_alert(ALERT_CHANNEL_CHANGED)

    # -- duty cycle (GBCS sub-GHz duty-cycle management) ------------------------------------

    @property
    def duty_cycle_state(self) -> str:
        """``normal``, ``limited``, ``critical`` or ``regulated``."""
        return DUTY_STATES[self._duty_state]

    def duty_cycle_pct(self) -> float:
        """The CH's sub-GHz transmit time over the last window, in %."""
        window_ns = int(self.settings.duty_cycle.window_s * 1e9)
        cutoff = self.scheduler.now_ns - window_ns
        while self._duty_log and self._duty_log[0][0] < cutoff:
            self._duty_sum_ns -= self._duty_log.popleft()[1]
        return 100.0 * self._duty_sum_ns / window_ns

    def _duty_add(self, start_ns: int, airtime_ns: int) -> None:
        self._duty_log.append((start_ns, airtime_ns))
        self._duty_sum_ns += airtime_ns
        self._duty_eval()

    def _duty_tick(self) -> None:
        self._duty_eval()
        self.scheduler.call_later(int(self.settings.duty_cycle.window_s * 1e9 / 60),
                                  self._duty_tick)

    def _duty_eval(self) -> None:
        cfg = self.settings.duty_cycle
        pct = self.duty_cycle_pct()
        thresholds = (cfg.limited_pct, cfg.critical_pct, cfg.regulated_pct)
        state = sum(1 for t in thresholds if pct >= t)
        while state > self._duty_state:
            self._duty_state += 1
            self._duty_change(DUTY_UP[self._duty_state - 1], pct)
        while state < self._duty_state:
            self._duty_state -= 1
            self._duty_change(DUTY_DOWN[self._duty_state], pct)
        if self._duty_state and self._duty_log:
            # evaluate again the instant the oldest frame leaves the window, so a fall
            # below a threshold is raised when it happens (not at the next tick)
            expiry_ns = self._duty_log[0][0] + int(cfg.window_s * 1e9) + 1
            if expiry_ns != self._duty_expiry_ns:
                self._duty_expiry_ns = expiry_ns
                self.scheduler.call_at(expiry_ns, self._duty_eval)

    def _duty_change(self, alert_code: int, pct: float) -> None:
        self.truth.record("duty_cycle_state", self.scheduler.now_ns, rig=self.rig,
                          state=self.duty_cycle_state, duty_cycle_pct=round(pct, 4))
        self.chf_alert(alert_code)


def _bind_tap(callback: TapCallback, medium: Medium) -> Callable[[Transmission], None]:
    page, channel = medium.page, medium.channel

    def tap(tx: Transmission) -> None:
        callback(tx, page, channel)
    return tap


def processing_models(settings: HanSettings) -> dict[str, Any]:
    """The processing-time models of ``settings`` as plain data (documentation, reports)."""
    return {name: model.model_dump() for name, model in settings.models.items()}
