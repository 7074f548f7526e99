"""Communications Hub firmware upgrade on the emulated HAN (issue 12, item 1).

An emulated CH takes a new image (:class:`ChImage`: firmware version, CHTS version,
ZigBee PRO stack revision, Smart Energy version, as data), goes silent on every band for
the image's reboot time and comes back running it. Its devices notice the loss, rejoin
and resume polling; a device configured as ZigBee SE 1.4 behaves differently from one
configured as SE 1.2a where hanlab can source the difference (below). Each device's
rejoin is ground truth (``ch_upgrade_start``, ``ch_ready``, ``rejoin_attempt``,
``rejoined``, ``tunnel_open``, ``ch_upgrade_done``) and a :class:`RejoinRecord` of the
upgrade's :class:`ChUpgradeRecord`, which a scenario step and the impact report read.

Sources, and what is assumed:

* Seed 000, DIT.9: "Communications Hubs being upgraded from v1.0 to v1.1 while 1.2a
  Devices are connected", "... and a new 1.2a Device subsequently being connected", "v1.1
  Communications Hubs being installed and connected to 1.2a Devices"; v1.1 CHs "operate
  to ZigBee 1.4", existing Devices to ZigBee 1.2a (SE 1.2a: ZigBee document 07-5356-19).
* The rejoin on the air is a ZigBee PRO NWK Rejoin Request (NWK command 0x06, with the
  device's capability information) answered by a Rejoin Response (0x07: the short
  address and rejoin status), both NWK-secured with the network key (a secured rejoin,
  ZigBee PRO 05-3474 §3.4.6, §3.4.7, §3.6.1.4.2). A device joining afresh (installation,
  a new device) associates (IEEE 802.15.4 §6.3.1) and receives the network key in an APS
  Transport Key (§4.4.10.1), as the emulator's first join does.
* SE 1.4 is assumed to run on ZigBee PRO 2015 (R21) or later, SE 1.2a on ZigBee PRO 2007
  (R20): R21 added the Trust Centre link key verification, the APS Verify-Key (0x0F) and
  Confirm-Key (0x10) commands (tshark names both). hanlab's emulated SE 1.4 device
  verifies its trust-centre link key after a rejoin when the CH's image runs R21 or later
  (the re-key check the newer stack requires); an SE 1.2a device never does. No network
  key switch is modelled (the CH keeps its NVM: PAN ID, channel, network key, link keys).
* Loss detection: a device notices the CH is gone when a MAC exchange with it fails (no
  ACK after the MAC retries) while the CH reboots; a device that does not try to reach
  the CH during the reboot does not notice, as on a real HAN (``noticed: false``). Its
  first rejoin attempt follows a random 0..``REJOIN_FIRST_MAX_S`` delay, later ones an
  exponential backoff (``REJOIN_BACKOFF_S`` doubling up to ``REJOIN_BACKOFF_MAX_S``)
  with ±25 % jitter: assumed values (ZigBee PRO leaves the rejoin schedule to the
  application). The GBCS tunnels are application state and are lost in the reboot: each
  device opens its tunnel again (SE 1.4 D.6 RequestTunnel) before polling resumes.

Trigger: CH firmware is the DCC's own operation (SECMP0024, seeds 002/004: the DCC
deploys Communications Hub firmware; DUIS SR 11.1 "Update Firmware" is a User's request
for ESME/GSME images), so the scenario step ``ch_firmware`` asks the DCC to do it
(:func:`dcc_upgrade_ch`), and SR 11.2 Read Firmware Version (CS08, any device type) to
the CHF reads the version back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hanlab.config.models import DeviceRole
from hanlab.errors import BadInputError
from hanlab.firmware.ch_image import DEFAULT_CH_IMAGE, ChImage
from hanlab.gbcs.eui64 import Eui64
from hanlab.zigbee.aps import APS_COMMAND
from hanlab.zigbee.encode import build_psdu
from hanlab.zigbee.nwk import NWK_FRAME_COMMAND, NwkFrame
from hanlab.zigbee.security import AuxHeader

if TYPE_CHECKING:
    from hanlab.emulator.han.han import EmulatedHan
    from hanlab.emulator.han.medium import Radio
    from hanlab.emulator.han.nodes import AppMessage, Chf, Device, Node

__all__ = ["ChFirmware", "ChUpgradeRecord", "RejoinRecord", "UpgradeMode",
           "dcc_upgrade_ch"]

UpgradeMode = Literal["upgrade", "install"]

#: NWK command identifiers (ZigBee PRO §3.4): Rejoin Request, Rejoin Response.
NWK_CMD_REJOIN_REQUEST = 0x06
NWK_CMD_REJOIN_RESPONSE = 0x07
#: APS command identifiers added by ZigBee PRO 2015 (R21): Verify-Key, Confirm-Key.
APS_CMD_VERIFY_KEY = 0x0F
APS_CMD_CONFIRM_KEY = 0x10
#: APS key type: trust-centre link key.
KEY_TYPE_TC_LINK = 0x04
#: capability information (IEEE 802.15.4 §7.3.1.2): mains powered, receiver on when idle,
#: allocate address; a sleepy GSME sets only "allocate address".
CAPABILITY_MAINS = 0x8C
CAPABILITY_SLEEPY = 0x80
#: assumed rejoin schedule (see the module docstring), emulated seconds
REJOIN_FIRST_MAX_S = 2.0
REJOIN_BACKOFF_S = 2.0
REJOIN_BACKOFF_MAX_S = 30.0
#: no Rejoin Response this long after a Rejoin Request (ACKed or not): try again (assumed,
#: like the MAC's response wait; a lost response must not leave the device off the HAN)
REJOIN_RESPONSE_TIMEOUT_S = 3.0
#: no tunnel this long after the rejoin: ask for it again (assumed; a lost Request Tunnel
#: Response, or Confirm-Key, must not leave the device without polling)
TUNNEL_RETRY_S = 5.0
#: emulated seconds between the joins of devices connecting afresh after a reboot
JOIN_STAGGER_S = 0.5
_AUX_NWK, _AUX_DATA = 0x28, 0x20


@dataclass
class RejoinRecord:
    """How one device came back after a CH reboot (ground truth).

    Attributes:
        device, eui64, role, band, se_version: the device.
        method: ``nwk_rejoin`` (secured NWK rejoin) or ``association`` (joined afresh:
            installation or a new device).
        noticed: the device noticed the CH was gone (a MAC exchange failed in the reboot).
        lost_ns: when it noticed (ns since the UNIX epoch, HAN time), else ``None``.
        attempts: rejoin requests sent.
        rejoined_ns: Rejoin Response (or, for an association, Transport Key) received.
        key_verified: SE 1.4 on an R21+ CH: the Confirm-Key came; ``None``: not asked.
        resumed_ns: its GBCS tunnel open again (polling resumed).
    """

    device: str
    eui64: str
    role: str
    band: str
    se_version: str
    method: str = "nwk_rejoin"
    noticed: bool = False
    lost_ns: int | None = None
    attempts: int = 0
    rejoined_ns: int | None = None
    key_verified: bool | None = None
    resumed_ns: int | None = None

    def back(self) -> bool:
        """The device works again: its tunnel reopened, or it never noticed the loss."""
        return self.resumed_ns is not None or (not self.noticed and self.method
                                               == "nwk_rejoin")

    def to_dict(self, ready_ns: int | None) -> dict[str, Any]:
        """JSON-ready, with ``rejoin_s`` (ready → rejoined) and ``resume_s`` (ready →
        tunnel open), seconds after the CH came back, ``None`` where unknown."""
        out = asdict(self)
        for key, ts in (("rejoin_s", self.rejoined_ns), ("resume_s", self.resumed_ns)):
            out[key] = (None if ts is None or ready_ns is None
                        else round(max(0, ts - ready_ns) / 1e9, 6))
        out["back"] = self.back()
        return out


@dataclass
class ChUpgradeRecord:
    """One CH firmware upgrade (or installation) and its devices' recovery.

    Attributes:
        image, previous: the new image and the one it replaced.
        mode: ``upgrade`` (devices stay joined and rejoin) or ``install`` (a CH installed
            running the image: every device joins afresh).
        connected: devices connected afresh after the reboot (seed 000 DIT.9 "a new 1.2a
            Device subsequently being connected").
        started_ns, ready_ns: reboot start and the CH back (HAN time, ns since the epoch).
        devices: device name -> its :class:`RejoinRecord`.
        on_done: called once, when :meth:`done` becomes true (from the HAN's scheduler).
    """

    image: ChImage
    previous: ChImage
    mode: UpgradeMode
    started_ns: int
    connected: list[str] = field(default_factory=list)
    ready_ns: int | None = None
    devices: dict[str, RejoinRecord] = field(default_factory=dict)
    on_done: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def done(self) -> bool:
        """The CH is back and every device is back."""
        return self.ready_ns is not None and all(r.back() for r in self.devices.values())

    def missing(self) -> list[str]:
        """Devices not back (yet)."""
        return [name for name, r in self.devices.items() if not r.back()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ``ch_upgrade`` of a scenario step record)."""
        return {"image": self.image.model_dump(), "previous": self.previous.model_dump(),
                "mode": self.mode, "connected": list(self.connected),
                "started_ns": self.started_ns, "ready_ns": self.ready_ns,
                "reboot_s": self.image.reboot_s,
                "devices": [r.to_dict(self.ready_ns) for r in self.devices.values()],
                "missing": self.missing()}


class ChFirmware:
    """The CH firmware of one emulated HAN and the devices' recovery from its reboots.

    Args:
        han: the HAN (its CHF and GPF are the CH).
        image: what the CH runs at start (default :data:`DEFAULT_CH_IMAGE`).
    """

    def __init__(self, han: EmulatedHan, image: ChImage | None = None) -> None:
        self.han = han
        self.running = image or DEFAULT_CH_IMAGE
        self.history: list[ChUpgradeRecord] = []
        self.current: ChUpgradeRecord | None = None
        self._backoff_s: dict[int, float] = {}
        #: device EUI-64 -> the rejoin attempt a retry was scheduled for
        self._retried: dict[int, int] = {}

    # -- the upgrade ------------------------------------------------------------------------

    def upgrade(self, image: ChImage, *, mode: UpgradeMode = "upgrade",
                connect: list[Eui64 | str] | tuple[Eui64 | str, ...] = ()) -> ChUpgradeRecord:
        """Reboot the CH into ``image`` now (safe from the event loop while the HAN runs
        in real time: the work is scheduled, not done inline).

        Args:
            image: the new image.
            mode: ``upgrade`` or ``install`` (see :class:`ChUpgradeRecord`).
            connect: devices (EUI-64) connected afresh once the CH is back.

        Returns:
            The upgrade's record (filled in as the devices come back).

        Raises:
            BadInputError: an upgrade is under way, or a ``connect`` device is not on
                this HAN.
        """
        if self.current is not None and not self.current.done():
            raise BadInputError(f"rig {self.han.rig}: a CH firmware upgrade is under way "
                                f"(missing {', '.join(self.current.missing()) or 'the CH'})")
        nodes = []
        for eui in connect:
            node = self.han.node(eui)
            if node is None or node not in self.han.devices:
                raise BadInputError(f"rig {self.han.rig}: device {eui} to connect is not "
                                    "on the emulated HAN")
            nodes.append(node)
        self.han._catch_up()
        now = self.han.scheduler.now_ns
        record = ChUpgradeRecord(image, self.running, mode, now,
                                 connected=[n.name for n in nodes])
        for device in self.han.devices:
            if device.bricked:
                continue
            fresh = mode == "install" or device in nodes
            record.devices[device.name] = RejoinRecord(
                device.name, device.eui.duis, device.role.value, device.band.value,
                device.device.se_version, method="association" if fresh else "nwk_rejoin",
                noticed=fresh, lost_ns=now if fresh else None)
        self.current = record
        self.history.append(record)
        self._backoff_s.clear()
        self._retried.clear()
        self.han.scheduler.call_later(0, self._reboot, record, nodes)
        return record

    def _reboot(self, record: ChUpgradeRecord, connect: list[Device]) -> None:
        han = self.han
        han.truth.record("ch_upgrade_start", han.scheduler.now_ns, rig=han.rig,
                         mode=record.mode, version=record.image.version,
                         previous=record.previous.version,
                         zigbee_stack=record.image.zigbee_stack,
                         se_version=record.image.se_version, reboot_s=record.image.reboot_s)
        for server in (han.chf, han.gpf):
            server.power(False)
            server.clear()
            server.tunnels.clear()
        for device in han.devices:
            if record.mode == "install" or device in connect:
                _forget_network(device)
        han.scheduler.call_later(int(record.image.reboot_s * 1e9), self._ready, record,
                                 connect)

    def _ready(self, record: ChUpgradeRecord, connect: list[Device]) -> None:
        han = self.han
        self.running = record.image
        for server in (han.chf, han.gpf):
            server.power(True)
        record.ready_ns = han.scheduler.now_ns
        han.truth.record("ch_ready", record.ready_ns, rig=han.rig,
                         version=record.image.version)
        self._check_done(record)
        fresh = han.devices if record.mode == "install" else connect
        for index, device in enumerate(d for d in fresh if not d.bricked):
            server = han.gpf if device.role is DeviceRole.GSME else han.chf
            delay_s = (index + 1) * JOIN_STAGGER_S + han.rng.random() * JOIN_STAGGER_S
            device.later(delay_s, device.join, server)

    # -- device side -----------------------------------------------------------------------

    def link_failed(self, device: Device) -> None:
        """A MAC exchange of ``device`` with its CH failed (no ACK after the retries):
        while the CH reboots, the device has lost it and starts rejoining."""
        record = self.current
        entry = None if record is None else record.devices.get(device.name)
        if (record is None or entry is None or entry.noticed or record.done()
                or entry.method != "nwk_rejoin"):
            return
        entry.noticed = True
        entry.lost_ns = device.now_ns
        device.joined = False
        device.tunnel_id = None
        device._fetching = False
        device.record("ch_lost", version=self.running.version)
        self._backoff_s[device.eui64] = REJOIN_BACKOFF_S
        device.later(self.han.rng.random() * REJOIN_FIRST_MAX_S, self._rejoin, device)

    def _rejoin(self, device: Device) -> None:
        """Send a secured NWK Rejoin Request to the CHF (ZigBee PRO §3.4.6)."""
        entry = self._entry(device)
        if entry is None or entry.rejoined_ns is not None or device.bricked:
            return
        entry.attempts += 1
        device.power(True)
        radio = device.radio_to(self.han.chf)
        capability = CAPABILITY_SLEEPY if device.role is DeviceRole.GSME else CAPABILITY_MAINS
        device.record("rejoin_attempt", attempt=entry.attempts)
        attempt = entry.attempts
        _send_nwk_command(device, radio, bytes([NWK_CMD_REJOIN_REQUEST, capability]),
                          dst_short=0x0000, dst64=None, kind="rejoin_req",
                          on_done=lambda ok: None if ok else self._retry(device, attempt))
        device.later(REJOIN_RESPONSE_TIMEOUT_S, self._retry, device, attempt)

    def _retry(self, device: Device, attempt: int) -> None:
        """Try again after ``attempt`` failed (no ACK) or went unanswered; once per
        attempt, and not once the device has rejoined."""
        entry = self._entry(device)
        if (entry is None or entry.rejoined_ns is not None or entry.attempts != attempt
                or self._retried.get(device.eui64) == attempt):
            return
        self._retried[device.eui64] = attempt
        backoff_s = self._backoff_s.get(device.eui64, REJOIN_BACKOFF_S)
        self._backoff_s[device.eui64] = min(REJOIN_BACKOFF_MAX_S, backoff_s * 2)
        jitter = 0.75 + 0.5 * self.han.rng.random()
        device.later(backoff_s * jitter, self._rejoin, device)

    def on_ch_message(self, chf: Chf, peer: Node, msg: AppMessage) -> bool:
        """The CHF's side: answer a Rejoin Request and a Verify-Key. Whether ``msg`` was
        one of them."""
        if msg.kind == "rejoin_req":
            chf.later(0.02, self._rejoin_response, chf, peer)
            return True
        if msg.kind == "verify_key":
            if self.running.verifies_link_keys:
                chf.later(0.02, self._confirm_key, chf, peer)
            return True
        return False

    def _rejoin_response(self, chf: Chf, peer: Node) -> None:
        payload = bytes([NWK_CMD_REJOIN_RESPONSE]) + struct.pack("<HB", peer.short, 0)
        _send_nwk_command(chf, chf.radio_to(peer), payload, dst_short=peer.short,
                          dst64=peer.eui64, kind="rejoin_rsp")

    def _confirm_key(self, chf: Chf, peer: Node) -> None:
        """APS Confirm-Key (R21), APS-secured with the trust-centre link key."""
        from hanlab.emulator.han.nodes import AppMessage

        payload = struct.pack("<BBBQ", APS_CMD_CONFIRM_KEY, 0x00, KEY_TYPE_TC_LINK,
                              peer.eui64)
        chf.send_aps(peer, AppMessage("confirm_key", chf), payload, cluster=0, profile=0,
                     endpoint=0, link_key=self.han.link_key(chf, peer),
                     aps_frame_type=APS_COMMAND, aux_control=_AUX_DATA)

    def on_device_message(self, device: Device, msg: AppMessage) -> bool:
        """The device's side: Rejoin Response and Confirm-Key. Whether ``msg`` was one."""
        entry = self._entry(device)
        if msg.kind == "rejoin_rsp":
            if entry is not None and entry.rejoined_ns is None:
                entry.rejoined_ns = device.now_ns
                device.record("rejoined", method="nwk_rejoin", attempts=entry.attempts,
                              se_version=device.device.se_version)
                device.joined = True
                device.later(TUNNEL_RETRY_S, self._tunnel_watchdog, device)
                if device.device.se_version == "1.4" and self.running.verifies_link_keys:
                    self._verify_key(device)
                else:
                    device.later(0.02, device._request_tunnel)
            return True
        if msg.kind == "confirm_key":
            if entry is not None:
                entry.key_verified = True
            device.record("key_verified")
            device.later(0.02, device._request_tunnel)
            return True
        return False

    def _tunnel_watchdog(self, device: Device) -> None:
        """Ask for the tunnel again while the rejoined device has none (until the upgrade
        is over: :meth:`_entry` is then ``None``)."""
        entry = self._entry(device)
        if entry is None or entry.resumed_ns is not None or device.bricked:
            return
        device.record("tunnel_retry")
        device._request_tunnel()
        device.later(TUNNEL_RETRY_S, self._tunnel_watchdog, device)

    def _verify_key(self, device: Device) -> None:
        """APS Verify-Key (R21): NWK-secured, the key's hash (here derived, 16 octets)."""
        from hanlab.emulator.han.nodes import AppMessage, derive_key

        chf = self.han.chf
        digest = derive_key(self.han.rig, "verify", f"{device.eui64:016x}")
        payload = (struct.pack("<BBQ", APS_CMD_VERIFY_KEY, KEY_TYPE_TC_LINK, device.eui64)
                   + digest)
        entry = self._entry(device)
        if entry is not None:
            entry.key_verified = False
        device.send_aps(chf, AppMessage("verify_key", device), payload, cluster=0,
                        profile=0, endpoint=0, link_key=None, aps_frame_type=APS_COMMAND)

    def tunnel_open(self, device: Device) -> None:
        """``device`` opened its GBCS tunnel (after a join or rejoin): polling resumes."""
        entry = self._entry(device)
        if entry is None or entry.resumed_ns is not None:
            return
        if entry.method == "association":
            entry.rejoined_ns = entry.rejoined_ns or device.now_ns
        elif entry.rejoined_ns is None:
            return  # the tunnel of a device that never lost the CH
        entry.resumed_ns = device.now_ns
        device.record("tunnel_open", method=entry.method)
        if self.current is not None:
            self._check_done(self.current)

    def _check_done(self, record: ChUpgradeRecord) -> None:
        if not record.done():
            return
        if record is self.current:
            self.han.truth.record("ch_upgrade_done", self.han.scheduler.now_ns,
                                  rig=self.han.rig, version=record.image.version,
                                  devices=len(record.devices))
            self.current = None
        callbacks, record.on_done = record.on_done, []
        for callback in callbacks:
            callback()

    def _entry(self, device: Device) -> RejoinRecord | None:
        record = self.current
        return None if record is None else record.devices.get(device.name)


def _forget_network(device: Device) -> None:
    """A device whose CH was replaced (or that is new to the HAN): no network, silent."""
    device.joined = False
    device.tunnel_id = None
    device._fetching = False
    device.power(False)
    device.han.left(device)


def _send_nwk_command(node: Node, radio: Radio, payload: bytes, *, dst_short: int,
                      dst64: int | None, kind: str,
                      on_done: Any = None) -> None:
    """A NWK command frame, NWK-secured, with the extended source (and destination)."""
    from hanlab.emulator.han.nodes import _MSG_IDS, AppMessage

    seq, fc = node._next_nwk()
    mac_seq = radio.next_seq()
    nwk = NwkFrame(NWK_FRAME_COMMAND, dst=dst_short, src=node.short, radius=1, seq=seq,
                   security=True, aux=AuxHeader(_AUX_NWK, fc, node.eui64, 0),
                   src64=node.eui64, dst64=dst64, payload=payload)
    psdu = build_psdu(node._mac(radio, mac_seq, dst_short, True), nwk,
                      nwk_key=node.han.network_key)
    msg = AppMessage(kind, node)
    msg.msg_id = next(_MSG_IDS)
    radio.send(psdu, mac_seq, dst_short=dst_short, ack_request=True, payload=msg,
               on_done=on_done)


async def dcc_upgrade_ch(dcc: Any, chf: Eui64, image: ChImage, *,
                         mode: UpgradeMode = "upgrade",
                         connect: tuple[Eui64, ...] = ()) -> ChUpgradeRecord:
    """The emulated DCC deploys CH firmware to the CH of ``chf`` (SECMP0024: the DCC's
    own operation): after its processing and WAN latency the CH reboots into ``image``.

    Raises:
        BadInputError: the DCC has no emulated HAN with that CHF, or an upgrade is under
            way there.
    """
    import asyncio

    han = dcc._hans.get(chf, dcc._han)
    firmware = getattr(han, "ch_firmware", None)
    if firmware is None or han.chf.eui != chf:
        raise BadInputError(f"the emulated DCC has no CH {chf.duis}")
    dcc._record("ch_firmware_deploy", target=chf.duis, version=image.version, mode=mode)
    settings = dcc.settings
    await asyncio.sleep(settings.processing_latency_s + settings.wan_latency_s)
    record: ChUpgradeRecord = firmware.upgrade(image, mode=mode, connect=connect)
    dcc._record("ch_firmware_at_ch", target=chf.duis, version=image.version)
    return record
