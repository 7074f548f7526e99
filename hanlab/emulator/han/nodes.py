"""Emulated HAN nodes: the ZigBee stack of each device and the CHF, GPF and device roles.

Each node is a ZigBee node at frame level (ZigBee PRO 05-3474, Smart Energy 1.4): a MAC
(:class:`~.medium.Radio`) per band it uses, NWK frames secured with the rig's network key
(§4.3), APS payloads secured with the per-pair link key (§4.4) and APS-fragmented when a
PSDU would exceed 127 octets (§2.2.8.4.5), ZCL Tunneling (0x0704, SE 1.4 D.6) carrying the
GBCS tunnel (GBCS v5.x §7.2.4): GET, GET-RESPONSE with the remaining count, PUT. Frames
are built with :mod:`hanlab.zigbee.encode`, the codec that decodes them.

Star topology: the CHF (0x0000, coordinator and trust centre) and the GPF (0x0001, inside
the CH) have a radio on each band of the CH; every other device one radio on its band.
Receivers read the sender's intent (:class:`AppMessage`) rather than decrypting the
PSDU; sniffers hear the PSDU.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hanlab.config.models import DeviceRole
from hanlab.emulator.han.content import alert_message, response_message
from hanlab.emulator.han.medium import BROADCAST_SHORT, Radio, Transmission
from hanlab.emulator.han.settings import EmulatedDevice, ProcessingModel
from hanlab.frames import Band
from hanlab.gbcs.codes import CraFlag
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.firmware_version import (
    MESSAGE_CODES_READ_FIRMWARE_VERSION,
    firmware_version_content,
)
from hanlab.gbcs.message import (
    GbcsMessage,
    GbtBlock,
    GbtReassembler,
    build_gbt_blocks,
    parse_gbcs_message,
)
from hanlab.gbcs.tunnel import TunnelCommand, build_tunnel_payload, parse_tunnel_payload
from hanlab.zigbee.aps import APS_CMD_TRANSPORT_KEY, APS_COMMAND, ApsFrame
from hanlab.zigbee.encode import build_psdu, fragment_aps
from hanlab.zigbee.mac import ADDR_EXT, ADDR_SHORT, FRAME_TYPE_COMMAND, FRAME_TYPE_DATA, MacFrame
from hanlab.zigbee.nwk import NWK_FRAME_COMMAND, NwkFrame
from hanlab.zigbee.security import AuxHeader, key_transport_key
from hanlab.zigbee.zcl import ZclFrame, tunnel_transfer_data

if TYPE_CHECKING:
    from hanlab.emulator.han.han import EmulatedHan

PROFILE_SE = 0x0109
PROFILE_ZDP = 0x0000
CLUSTER_TUNNELING = 0x0704
SE_ENDPOINT = 1
#: ZCL Tunneling protocol id of GB-HRGP (SE 1.4 D.6.2.4.1, Table D-150).
TUNNEL_PROTOCOL_GB_HRGP = 6
MAX_PSDU_NO_FCS = 125
NWK_RADIUS = 30
#: security control octets: network key + extended nonce; data key + extended nonce;
#: key-transport key + extended nonce (ZigBee §4.5.1.1).
_AUX_NWK, _AUX_DATA, _AUX_KEY_TRANSPORT = 0x28, 0x20, 0x30
#: Alert Codes (GBCS v5.x Table 16.2).
ALERT_JOINED_SMHAN = 0x8183
#: seconds a device waits for the GET-RESPONSE to its GET before giving up on it.
GET_RESPONSE_TIMEOUT_S = 1.5
#: GBCS Message Code of CS06 Activate Firmware (SR 11.3).
MESSAGE_CODE_CS06_ACTIVATE_FIRMWARE = 0x0012
#: apsMaxFrameRetries (ZigBee §2.2.7.1).
APS_MAX_FRAME_RETRIES = 3


@dataclass(slots=True)
class AppMessage:
    """What a node means by the frames it sends (read by the receiving node).

    Attributes:
        kind: ``tunnel``, ``request_tunnel``, ``request_tunnel_rsp``, ``assoc_req``,
            ``assoc_rsp``, ``transport_key``, ``device_annce``, ``leave``, ``nwk_update``;
            ``rejoin_req``, ``rejoin_rsp``, ``verify_key``, ``confirm_key``
            (:mod:`.ch_upgrade`).
        src: the sending node.
        data: GBCS tunnel data (after the ZCL tunnel id) for ``tunnel``.
        fragments: APS fragments the message travels in.
    """

    kind: str
    src: Node
    data: bytes = b""
    fragments: int = 1
    msg_id: int = 0


_MSG_IDS = itertools.count(1)


class _Outcome:
    """Reports ``on_done(True)`` once every fragment of a message got through, else
    ``on_done(False)`` (ZigBee §2.2.8.4.5: one lost block loses the message)."""

    __slots__ = ("ok", "on_done", "pending")

    def __init__(self, fragments: int, on_done: Callable[[bool], None] | None) -> None:
        self.pending = fragments
        self.ok = True
        self.on_done = on_done

    def done(self, ok: bool) -> None:
        self.ok = self.ok and ok
        self.pending -= 1
        if self.pending == 0 and self.on_done is not None:
            self.on_done(self.ok)


def derive_key(*parts: str) -> bytes:
    """A 16-octet emulated key from labels (deterministic; emulated rigs only)."""
    return hashlib.sha256("|".join(("hanlab-emulated", *parts)).encode()).digest()[:16]


def draw_processing_s(model: ProcessingModel, rng: random.Random,
                      added_s: float = 0.0) -> float:
    """A processing time in emulated seconds drawn from ``model`` (seed requirement
    DIT.11: message and response timings), plus ``added_s`` (the latency fault)."""
    if model.distribution == "fixed":
        value = model.mean_s
    elif model.distribution == "uniform":
        value = rng.uniform(model.min_s, model.max_s)
    else:
        mean = max(model.mean_s, 1e-6)
        sigma2 = math.log(1 + (model.sd_s / mean) ** 2)
        value = rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
    return min(max(value, model.min_s), model.max_s) + added_s


def short_address(eui64: int) -> int:
    """A deterministic 16-bit short address for a device (never 0x0000-0x0007 or ≥0xFFF8)."""
    return 0x0008 + (eui64 * 2654435761 >> 7) % 0xFFE0


class Node:
    """One ZigBee node of the emulated HAN (see the module docstring).

    Args:
        han: the rig's HAN.
        device: its configuration.
        short: its 16-bit NWK/MAC short address.
    """

    role: DeviceRole

    def __init__(self, han: EmulatedHan, device: EmulatedDevice, short: int) -> None:
        self.han = han
        self.device = device
        self.role = device.role
        self.eui = Eui64.parse(device.eui64)
        self.eui64 = self.eui.value
        self.name = device.name or f"{device.role.value}-{device.eui64[-5:]}"
        self.band = device.band
        self.short = short
        self.joined = False
        self.radios: dict[Band, Radio] = {}
        rng = han.rng
        self.nwk_fc = rng.randrange(1 << 16)
        self.aps_fc = rng.randrange(1 << 16)
        self.nwk_seq = rng.randrange(256)
        self.aps_counter = rng.randrange(256)
        self.tsn = rng.randrange(256)
        self._partial: dict[int, int] = {}
        self._overhead: dict[tuple[int, str], int] = {}

    def __repr__(self) -> str:
        return f"<{self.name} {self.eui} 0x{self.short:04x}>"

    # -- radios -------------------------------------------------------------------------

    def add_radio(self, band: Band) -> Radio:
        """Attach a radio on ``band``'s current medium."""
        radio = Radio(self, self.name, self.eui64, self.short, self.han.settings.pan_id,
                      self.han.medium_of(band), self.han.rng)
        self.radios[band] = radio
        return radio

    def radio_to(self, peer: Node) -> Radio:
        """The radio that reaches ``peer`` (the peer's band when this node has several)."""
        return self.radios.get(peer.band) or next(iter(self.radios.values()))

    def power(self, on: bool) -> None:
        """Switch every radio of this node on or off."""
        for radio in self.radios.values():
            radio.power(on)

    # -- frame building -------------------------------------------------------------------

    def _next_nwk(self) -> tuple[int, int]:
        self.nwk_seq = (self.nwk_seq + 1) & 0xFF
        self.nwk_fc += 1
        return self.nwk_seq, self.nwk_fc

    def next_tsn(self) -> int:
        """Next ZCL transaction sequence number."""
        self.tsn = (self.tsn + 1) & 0xFF
        return self.tsn

    def _mac(self, radio: Radio, seq: int, dst: int, ack: bool) -> MacFrame:
        return MacFrame(FRAME_TYPE_DATA, seq, dst_pan=radio.pan_id, dst_addr=dst,
                        dst_mode=ADDR_SHORT, src_addr=self.short, src_mode=ADDR_SHORT,
                        pan_id_compression=True, ack_request=ack)

    def send_aps(self, peer: Node | None, msg: AppMessage, aps_payload: bytes, *,
                 cluster: int, profile: int, endpoint: int, link_key: bytes | None,
                 aps_frame_type: int = 0, aux_control: int = _AUX_DATA,
                 nwk_secured: bool = True, on_done: Callable[[bool], None] | None = None,
                 radio: Radio | None = None) -> None:
        """Send ``aps_payload`` to ``peer`` (``None``: NWK broadcast 0xFFFD) as APS data.

        Fragments the APS payload when one PSDU cannot hold it (ZigBee §2.2.8.4.5);
        ``on_done(ok)`` is called after the last fragment's MAC outcome.
        """
        radio = radio or (self.radio_to(peer) if peer is not None
                          else next(iter(self.radios.values())))
        broadcast = peer is None
        nwk_dst = 0xFFFD if peer is None else peer.short
        mac_dst = BROADCAST_SHORT if peer is None else peer.short
        self.aps_counter = (self.aps_counter + 1) & 0xFF
        aps = ApsFrame(aps_frame_type, delivery_mode=2 if broadcast else 0,
                       dst_endpoint=endpoint if aps_frame_type == 0 else None,
                       cluster=cluster if aps_frame_type == 0 else None,
                       profile=profile if aps_frame_type == 0 else None,
                       src_endpoint=endpoint if aps_frame_type == 0 else None,
                       counter=self.aps_counter, security=link_key is not None)
        key_label = f"{aps_frame_type}:{cluster}:{link_key is not None}:{nwk_secured}"
        overhead = self._overhead.get((nwk_dst, key_label))
        pieces: list[ApsFrame]
        if overhead is None or len(aps_payload) > MAX_PSDU_NO_FCS - overhead:
            frags = fragment_aps(aps, b"\x00", 1)
            probe = self._build(radio, frags[0], mac_dst, nwk_dst, link_key, aux_control,
                                nwk_secured, 0, not broadcast)
            overhead = len(probe) - 1
            self._overhead[(nwk_dst, key_label)] = overhead
        if len(aps_payload) + overhead - 2 <= MAX_PSDU_NO_FCS:
            aps.payload = aps_payload
            pieces = [aps]
        else:
            pieces = fragment_aps(aps, aps_payload, MAX_PSDU_NO_FCS - overhead)
        msg.fragments = len(pieces)
        msg.msg_id = next(_MSG_IDS)
        outcome = _Outcome(len(pieces), on_done)
        for piece in pieces:
            seq = radio.next_seq()
            psdu = self._build(radio, piece, mac_dst, nwk_dst, link_key, aux_control,
                               nwk_secured, seq, not broadcast)
            radio.send(psdu, seq, dst_short=mac_dst, ack_request=not broadcast,
                       payload=msg, on_done=outcome.done)

    def _build(self, radio: Radio, aps: ApsFrame, mac_dst: int, nwk_dst: int,
               link_key: bytes | None, aux_control: int, nwk_secured: bool, seq: int,
               ack: bool) -> bytes:
        nwk_seq, nwk_fc = self._next_nwk()
        nwk = NwkFrame(dst=nwk_dst, src=self.short, radius=NWK_RADIUS, seq=nwk_seq,
                       security=nwk_secured,
                       aux=AuxHeader(_AUX_NWK, nwk_fc, self.eui64, 0) if nwk_secured else None)
        if link_key is not None:
            self.aps_fc += 1
            aps.aux = AuxHeader(aux_control, self.aps_fc, self.eui64)
        return build_psdu(self._mac(radio, seq, mac_dst, ack), nwk, aps,
                          nwk_key=self.han.network_key, link_key=link_key,
                          aps_src64=self.eui64)

    def send_zcl(self, peer: Node, zcl: ZclFrame, msg: AppMessage,
                 on_done: Callable[[bool], None] | None = None) -> None:
        """Send a ZCL frame to ``peer``'s SE endpoint, APS-secured with their link key."""
        self.send_aps(peer, msg, zcl.encode(), cluster=CLUSTER_TUNNELING, profile=PROFILE_SE,
                      endpoint=SE_ENDPOINT, link_key=self.han.link_key(self, peer),
                      on_done=on_done)

    def send_tunnel(self, peer: Node, tunnel_id: int, data: bytes, *, to_client: bool,
                    on_done: Callable[[bool], None] | None = None) -> None:
        """Send GBCS tunnel data in a ZCL Tunneling TransferData command (SE 1.4 D.6)."""
        zcl = tunnel_transfer_data(self.next_tsn(), tunnel_id, data,
                                   direction=1 if to_client else 0)
        self.send_zcl(peer, zcl, AppMessage("tunnel", self, data), on_done)

    def send_mac_command(self, radio: Radio, msg: AppMessage, payload: bytes, *,
                         dst_short: int | None, dst64: int | None) -> None:
        """Send an IEEE 802.15.4 MAC command frame (§7.5) with the source EUI-64."""
        seq = radio.next_seq()
        mac = MacFrame(FRAME_TYPE_COMMAND, seq, dst_pan=radio.pan_id,
                       dst_addr=dst_short if dst64 is None else dst64,
                       dst_mode=ADDR_SHORT if dst64 is None else ADDR_EXT,
                       src_pan=0xFFFF if dst64 is None else None, src_addr=self.eui64,
                       src_mode=ADDR_EXT, pan_id_compression=dst64 is not None,
                       ack_request=True, payload=payload)
        msg.msg_id = next(_MSG_IDS)
        radio.send(mac.encode(), seq, dst_short=dst_short, dst64=dst64, ack_request=True,
                   payload=msg)

    # -- reception --------------------------------------------------------------------------

    def on_frame(self, radio: Radio, tx: Transmission) -> None:
        """MAC delivered a frame: reassemble APS fragments, then :meth:`on_message`."""
        msg = tx.payload
        if not isinstance(msg, AppMessage):
            return
        if msg.fragments > 1:
            got = self._partial.get(msg.msg_id, 0) + 1
            if got < msg.fragments:
                self._partial[msg.msg_id] = got
                return
            self._partial.pop(msg.msg_id, None)
        self.later(self.han.settings.stack_latency_s, self.on_message, radio, msg)

    def on_message(self, radio: Radio, msg: AppMessage) -> None:
        """A whole application message arrived (override)."""

    # -- helpers ------------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """The true time now (ns since the UNIX epoch)."""
        return self.han.scheduler.now_ns

    def later(self, delay_s: float, callback: Callable[..., None], *args: object) -> None:
        """Run ``callback(*args)`` ``delay_s`` seconds of true time from now."""
        self.han.scheduler.call_later(int(delay_s * 1e9), callback, *args)

    def record(self, event: str, **fields: object) -> None:
        """Ground truth: ``event`` now, with this node's name and EUI-64."""
        self.han.truth.record(event, self.now_ns, rig=self.han.rig, device=self.name,
                              eui64=self.eui.duis, **fields)


class GbcsServer(Node):
    """The CH side of the GBCS tunnel: holds messages per device and serves GETs.

    GBCS v5.x §7.2.4: a device's GET is answered with a GET-RESPONSE carrying the next
    message and the count still waiting (or none and 0); a device's PUT carries its
    response or alert.
    """

    def __init__(self, han: EmulatedHan, device: EmulatedDevice, short: int,
                 processing: ProcessingModel | None = None) -> None:
        super().__init__(han, device, short)
        self.queues: dict[int, deque[bytes]] = {}
        self.tunnels: dict[int, int] = {}
        self._next_tunnel = 1
        self._gbt = GbtReassembler()
        self.alert_counter = han.rng.randrange(1 << 40)
        self.processing = processing or ProcessingModel()
        #: incremented by a CH reboot: commands in processing before it are lost
        self.epoch = 0
        self.busy = 0
        #: a spare CH on the bench: WAN-connected, no radio on the air
        self.on_bench = device.spare

    @property
    def powered(self) -> bool:
        """The CH is up (not in a ``ch_reboot`` fault; a bench spare always is)."""
        return self.on_bench or any(radio.on for radio in self.radios.values())

    def process_own(self, command: GbcsMessage) -> None:
        """Process a GBCS command addressed to this CHF / GPF itself.

        Such commands (CCS/GCS/CS use cases: SR 8.11, 8.12.x, 6.15.2, 6.17, 6.21, 6.23,
        joins to the GPF ...) reach the CH over the WAN and never cross the HAN. After a
        processing time drawn from :attr:`processing` the CH answers with a GBCS response
        (CRA flag 2, the command's Originator Counter and Message Code, GBCS v5.x §4.3.1.2)
        built as the devices build theirs, and raises the GBCS alert the use case calls for
        (:meth:`EmulatedHan.ch_command_alert`). Ground truth: ``processing_start``,
        ``processing_end``, ``response_sent`` (or ``processing_lost`` after a CH reboot).
        """
        duration_s = draw_processing_s(self.processing, self.han.rng)
        self.busy += 1
        self.record("processing_start", originator_counter=command.originator_counter,
                    message_code=command.message_code)
        self.later(duration_s, self._own_done, command, self.epoch)

    def _own_done(self, command: GbcsMessage, epoch: int) -> None:
        self.busy -= 1
        if epoch != self.epoch or not self.powered:
            self.record("processing_lost", originator_counter=command.originator_counter,
                        message_code=command.message_code)
            return
        self.record("processing_end", originator_counter=command.originator_counter,
                    message_code=command.message_code)
        response = response_message(command, rng=self.han.rng)
        self.record("response_sent", originator_counter=command.originator_counter,
                    message_code=command.message_code, octets=len(response))
        parsed = parse_gbcs_message(response)
        if isinstance(parsed, GbcsMessage):
            self.han.from_device(self, parsed, response)
        self.han.ch_command_alert(self, command)

    def hold(self, target: Node, message: bytes) -> None:
        """Queue ``message`` for ``target`` (GBT-segmented when long, GBCS v5.x §8.2)."""
        queue = self.queues.setdefault(target.eui64, deque())
        if len(message) > self.han.settings.gbt_threshold_octets:
            queue.extend(build_gbt_blocks(message, block_data_size=512))
        else:
            queue.append(message)

    def clear(self) -> None:
        """Forget every held message and the commands in processing (CH reboot)."""
        self.queues.clear()
        self.epoch += 1

    def on_message(self, radio: Radio, msg: AppMessage) -> None:
        """Serve RequestTunnel, tunnel GET and PUT."""
        peer = msg.src
        if msg.kind == "request_tunnel":
            tunnel_id = self.tunnels.get(peer.eui64)
            if tunnel_id is None:
                tunnel_id = self.tunnels[peer.eui64] = self._next_tunnel
                self._next_tunnel += 1
            zcl = ZclFrame(1, peer.tsn, 0x00, struct.pack("<HBH", tunnel_id, 0, 1500),
                           direction=1, disable_default_response=True,
                           cluster=CLUSTER_TUNNELING)
            self.send_zcl(peer, zcl, AppMessage("request_tunnel_rsp", self))
            return
        if msg.kind != "tunnel":
            return
        tunnel = parse_tunnel_payload(msg.data)
        tunnel_id = self.tunnels.get(peer.eui64, 0)
        if tunnel.command == TunnelCommand.GET:
            queue = self.queues.get(peer.eui64)
            message = queue.popleft() if queue else b""
            remaining = min(len(queue), 255) if queue else 0
            data = build_tunnel_payload(TunnelCommand.GET_RESPONSE, message,
                                        remaining_messages=remaining)
            if message:
                self.han.truth.record("command_sent", self.now_ns, rig=self.han.rig,
                                      device=peer.name, server=self.name,
                                      octets=len(message), remaining=remaining)
            self.send_tunnel(peer, tunnel_id, data, to_client=True,
                             on_done=(lambda ok: None if ok else self._undelivered(peer, message))
                             if message else None)
        elif tunnel.command == TunnelCommand.PUT:
            parsed = parse_gbcs_message(tunnel.message_bytes)
            if isinstance(parsed, GbtBlock):
                whole = self._gbt.add(parsed)
                if not isinstance(whole, GbcsMessage):
                    return
                self.received(peer, whole, b"")
                return
            if isinstance(parsed, GbcsMessage):
                self.received(peer, parsed, tunnel.message_bytes)

    def _undelivered(self, peer: Node, message: bytes) -> None:
        """The GET-RESPONSE never got through: keep the message first in the queue (the
        APS retransmission of ZigBee §2.2.8.3, folded into the next GET)."""
        self.queues.setdefault(peer.eui64, deque()).appendleft(message)

    def received(self, peer: Node, message: GbcsMessage, raw: bytes) -> None:
        """A whole GBCS response or alert from ``peer`` reached the CH."""
        self.han.from_device(peer, message, raw)


class Chf(GbcsServer):
    """The Communications Hub Function: coordinator, trust centre, GBCS tunnel server."""

    def on_message(self, radio: Radio, msg: AppMessage) -> None:
        """Association (IEEE 802.15.4-2015 §6.3.1) and key transport, then the tunnel."""
        peer = msg.src
        if msg.kind == "assoc_req":
            self.later(0.02, self._associate, peer)
            return
        if msg.kind == "leave":
            self.han.left(peer)
            return
        if msg.kind == "ota":
            self.han.ota.on_message(self, peer, msg.data)
            return
        if self.han.ch_firmware.on_ch_message(self, peer, msg):
            return
        super().on_message(radio, msg)

    def _associate(self, peer: Node) -> None:
        radio = self.radio_to(peer)
        payload = bytes([0x02]) + struct.pack("<HB", peer.short, 0)
        self.send_mac_command(radio, AppMessage("assoc_rsp", self), payload,
                              dst_short=None, dst64=peer.eui64)
        self.later(0.05, self._transport_key, peer)

    def _transport_key(self, peer: Node) -> None:
        """APS Transport Key with the network key (ZigBee §4.4.10.1), key-transport key."""
        payload = (bytes([APS_CMD_TRANSPORT_KEY, 0x01]) + self.han.network_key + b"\x00"
                   + struct.pack("<QQ", peer.eui64, self.eui64))
        link = key_transport_key(self.han.link_key(self, peer))
        self.send_aps(peer, AppMessage("transport_key", self), payload, cluster=0,
                      profile=0, endpoint=0, link_key=link, aps_frame_type=APS_COMMAND,
                      aux_control=_AUX_KEY_TRANSPORT, nwk_secured=False)


class Gpf(GbcsServer):
    """The Gas Proxy Function in the CH: serves the GSME's tunnel, forwards to the CHF."""


class Device(Node):
    """A device that joins the CH and fetches its GBCS messages through the tunnel.

    ESME, PPMID, HCALCS and IHD are mains powered: they GET promptly when a message waits
    (``fetch_delay_s``) and every ``poll_interval_s``. The GSME (:class:`Gsme`) sleeps.
    """

    def __init__(self, han: EmulatedHan, device: EmulatedDevice, short: int,
                 processing: ProcessingModel) -> None:
        super().__init__(han, device, short)
        self.processing = processing
        self.server: GbcsServer | None = None
        self.tunnel_id: int | None = None
        self.bricked = device.bricked
        self.added_latency_s = device.added_latency_s
        self._fetching = False
        self._fetch_id = 0
        self._busy = 0
        self._gbt = GbtReassembler()
        self.alert_counter = han.rng.randrange(1 << 40)

    # -- joining ------------------------------------------------------------------------------

    def join(self, server: GbcsServer) -> None:
        """Associate with the CH, receive the network key, announce, open the GBCS tunnel."""
        self.server = server
        if self.bricked:
            self.power(False)
            return
        self.power(True)
        radio = next(iter(self.radios.values()))
        radio.short = self.short
        self.send_mac_command(radio, AppMessage("assoc_req", self), bytes([0x01, 0x80]),
                              dst_short=0x0000, dst64=None)

    def leave(self) -> None:
        """NWK Leave (ZigBee §3.4.4) to the CHF, then silence."""
        chf = self.han.chf
        seq, fc = self._next_nwk()
        radio = self.radio_to(chf)
        mac_seq = radio.next_seq()
        nwk = NwkFrame(NWK_FRAME_COMMAND, dst=0x0000, src=self.short, radius=1, seq=seq,
                       security=True, aux=AuxHeader(_AUX_NWK, fc, self.eui64, 0),
                       payload=b"\x04\x00")
        psdu = build_psdu(self._mac(radio, mac_seq, 0x0000, True), nwk,
                          nwk_key=self.han.network_key)
        radio.send(psdu, mac_seq, dst_short=0x0000, ack_request=True,
                   payload=AppMessage("leave", self),
                   on_done=lambda _ok: self.power(False))
        self.joined = False
        self.record("leave")

    def on_message(self, radio: Radio, msg: AppMessage) -> None:
        """Join steps, tunnel responses, and GBCS commands."""
        if msg.kind == "transport_key":
            self.later(0.01, self._announce)
        elif msg.kind == "request_tunnel_rsp":
            self.tunnel_id = self.server.tunnels.get(self.eui64, 0) if self.server else 0
            self.han.ch_firmware.tunnel_open(self)
            if not self.joined:
                self.joined = True
                self.record("joined", short=f"0x{self.short:04x}")
                self.raise_alert(ALERT_JOINED_SMHAN)
        elif msg.kind == "tunnel":
            self._tunnel(msg.data)
        elif msg.kind == "ota":
            self.han.ota.on_message(self, msg.src, msg.data)
        else:
            self.han.ch_firmware.on_device_message(self, msg)

    def _announce(self) -> None:
        """ZDO Device_annce (ZigBee §2.4.3.1.11), then RequestTunnel (SE 1.4 D.6.2.4.1)."""
        payload = struct.pack("<BHQB", self.next_tsn(), self.short, self.eui64, 0x80)
        self.send_aps(None, AppMessage("device_annce", self), payload, cluster=0x0013,
                      profile=PROFILE_ZDP, endpoint=0, link_key=None)
        self.later(0.02, self._request_tunnel)

    def _request_tunnel(self) -> None:
        if self.server is None:
            return
        zcl = ZclFrame(1, self.next_tsn(), 0x00,
                       struct.pack("<BHBH", TUNNEL_PROTOCOL_GB_HRGP, 0xFFFF, 0, 1500),
                       disable_default_response=True, cluster=CLUSTER_TUNNELING)
        self.send_zcl(self.server, zcl, AppMessage("request_tunnel", self))

    # -- the GBCS tunnel ------------------------------------------------------------------------

    def message_waiting(self) -> None:
        """The CH holds a message for this device (mains powered: fetch promptly)."""
        self.later(self.device.fetch_delay_s, self.fetch)

    def fetch(self) -> None:
        """Send a tunnel GET to the server (GBCS v5.x §7.2.4)."""
        if (self._fetching or not self.joined or self.bricked or self.server is None
                or self.tunnel_id is None):
            return
        self._fetching = True
        self._fetch_id += 1
        self.later(GET_RESPONSE_TIMEOUT_S, self._get_timeout, self._fetch_id)
        self.send_tunnel(self.server, self.tunnel_id, build_tunnel_payload(TunnelCommand.GET),
                         to_client=False, on_done=self._get_sent)

    def _get_timeout(self, fetch_id: int) -> None:
        """No GET-RESPONSE came (lost on the air): give up this GET; the next poll retries."""
        if self._fetching and fetch_id == self._fetch_id:
            self._fetching = False
            self.record("get_timeout")
            self.later(0.1, self.fetch)

    def _get_sent(self, ok: bool) -> None:
        if not ok:
            self._fetching = False
            self.han.ch_firmware.link_failed(self)
            self.idle()

    def _tunnel(self, data: bytes) -> None:
        tunnel = parse_tunnel_payload(data)
        if tunnel.command != TunnelCommand.GET_RESPONSE:
            return
        self._fetching = False
        if tunnel.message_bytes:
            parsed = parse_gbcs_message(tunnel.message_bytes)
            if isinstance(parsed, GbtBlock):
                whole = self._gbt.add(parsed)
                if isinstance(whole, GbcsMessage):
                    self._process(whole)
            elif isinstance(parsed, GbcsMessage) and parsed.cra_flag == CraFlag.COMMAND:
                self._process(parsed)
        if tunnel.remaining_messages:
            self.fetch()
        else:
            self.idle()

    def processing_time_s(self) -> float:
        """A processing time drawn from this device model's distribution."""
        return draw_processing_s(self.processing, self.han.rng, self.added_latency_s)

    def _process(self, command: GbcsMessage) -> None:
        duration_s = self.processing_time_s()
        self._busy += 1
        self.record("processing_start", originator_counter=command.originator_counter,
                    message_code=command.message_code)
        self.later(duration_s, self._respond, command)

    def _respond(self, command: GbcsMessage) -> None:
        self._busy -= 1
        self.record("processing_end", originator_counter=command.originator_counter,
                    message_code=command.message_code)
        if self.bricked:
            self.idle()
            return
        version = self._firmware_version_read(command.message_code)
        response = response_message(command, rng=self.han.rng, content=None if version is None
                                    else firmware_version_content(version))
        self.record("response_sent", originator_counter=command.originator_counter,
                    message_code=command.message_code, octets=len(response),
                    **({} if version is None else {"firmware_version": f"0x{version:08X}"}))
        self.put(response)
        if command.message_code == MESSAGE_CODE_CS06_ACTIVATE_FIRMWARE:
            self.han.ota.activate(self)

    def _firmware_version_read(self, message_code: int) -> int | None:
        """The version a firmware version read reports (SR 11.2: ECS52, GCS38, CS08),
        recorded as ground truth and carried in the response; ``None``: not such a read."""
        if message_code not in MESSAGE_CODES_READ_FIRMWARE_VERSION:
            return None
        return self.han.ota.running_version(self.eui64)

    def put(self, message: bytes) -> None:
        """PUT a GBCS response or alert to the server (GBT blocks when long)."""
        if self.server is None or self.tunnel_id is None:
            return
        if len(message) > self.han.settings.gbt_threshold_octets:
            parts = build_gbt_blocks(message, block_data_size=512)
        else:
            parts = [message]
        self._busy += 1
        self._put_parts(parts, 0)

    def _put_parts(self, parts: list[bytes], attempt: int) -> None:
        if self.server is None or self.tunnel_id is None:
            self._busy -= 1
            return
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            self.send_tunnel(self.server, self.tunnel_id,
                             build_tunnel_payload(TunnelCommand.PUT, part), to_client=False,
                             on_done=(lambda ok: self._put_done(ok, parts, attempt))
                             if last else None)

    def _put_done(self, ok: bool, parts: list[bytes], attempt: int) -> None:
        """APS-level retry of a PUT that did not get through (apsMaxFrameRetries 3)."""
        if not ok and attempt < APS_MAX_FRAME_RETRIES and not self.bricked:
            self.later(0.1 * (attempt + 1), self._put_parts, parts, attempt + 1)
            return
        if not ok:
            self.han.ch_firmware.link_failed(self)
        self._busy -= 1
        self.idle()

    def raise_alert(self, alert_code: int) -> None:
        """Raise a device alert: a GBCS alert PUT to the server (GBCS v5.x §7.2.10)."""
        self.alert_counter += 1
        message = alert_message(device=self.eui, recipient=self.han.alert_recipient,
                                counter=self.alert_counter, alert_code=alert_code,
                                ts_ns=self.now_ns, rng=self.han.rng)
        self.record("alert_sent", alert_code=f"0x{alert_code:04X}")
        self.put(message)

    def idle(self) -> None:
        """Nothing in flight any more (the GSME goes back to sleep)."""

    def poll(self) -> None:
        """Periodic GET every ``poll_interval_s``."""
        self.fetch()
        self.later(self.device.poll_interval_s, self.poll)


@dataclass
class _Wake:
    awake: bool = False
    linger_s: float = 0.2
    timers: list[object] = field(default_factory=list)


class Gsme(Device):
    """The battery gas meter: sleeps, wakes every ``wake_interval_s`` and only then
    exchanges with the GPF (GBCS v5.x §10.5; its radio is off while asleep)."""

    def __init__(self, han: EmulatedHan, device: EmulatedDevice, short: int,
                 processing: ProcessingModel) -> None:
        super().__init__(han, device, short, processing)
        self.wake = _Wake()

    def message_waiting(self) -> None:
        """A sleepy device learns of waiting messages only when it wakes."""

    def poll(self) -> None:
        """Wake up, GET from the GPF, and schedule the next wake-up."""
        if self.joined and not self.bricked:
            self.wake.awake = True
            self.power(True)
            self.record("wake")
            self.fetch()
            self.han.ota.on_wake(self)
        self.later(self.device.wake_interval_s, self.poll)

    def idle(self) -> None:
        """Back to sleep once nothing is in flight."""
        if self.joined and not self._fetching and self._busy == 0:
            self.later(self.wake.linger_s, self._sleep)

    def _sleep(self) -> None:
        if self.joined and not self._fetching and self._busy == 0 and any(
                r.on for r in self.radios.values()):
            self.wake.awake = False
            self.power(False)
            self.record("sleep")
