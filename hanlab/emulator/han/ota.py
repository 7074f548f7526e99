"""Firmware distribution on the emulated HAN: the CHF's OTA Upgrade server and each
device's OTA client (ZCL 07-5123 chapter 11; GBCS v5.x §11.2 firmware distribution,
SR 11.1 / 11.3).

After SR 11.1 the emulated DCC hands the image to the CH (:meth:`OtaService.distribute`):

1. the CHF sends Image Notify (payload type 3) to the device, repeated every
   ``notify_interval_s`` until the device answers, at most ``notify_attempts`` times (then
   the device is *unreachable*: :meth:`OtaListener.firmware_event` ``not_delivered``);
2. the device sends Query Next Image Request; the CHF answers with the image's identity
   and size;
3. the device pulls the file with Image Block Requests (offset, max data size
   ``max_data_size_octets``; the PSDU is APS-fragmented when the block does not fit,
   ZigBee §2.2.8.4.5), one every ``min_block_period_ms`` (the server's MinimumBlockPeriod,
   §11.10.10), over CSMA-CA on its band; on sub-GHz the CHF answers WAIT_FOR_DATA while
   its transmit time over the duty-cycle window exceeds ``duty_cycle_budget_pct``
   (GBCS duty-cycle management: the transfer spends the budget, commands keep theirs);
4. a sleepy GSME pulls only while awake: it stays up at most ``gsme_window_s`` per wake-up,
   then sleeps and resumes from its last offset at the next wake-up; any device whose
   block request goes unanswered ``block_timeout_s`` retries the same offset, and after
   ``block_attempts`` failures pauses ``resume_after_s`` and resumes from that offset;
5. with every octet in hand the device verifies the file against its own identity
   (:func:`hanlab.firmware.ota_file.check_ota_image`: structure, integrity code,
   signature, manufacturer code, image type, newer version), sends Upgrade End Request
   (SUCCESS / INVALID_IMAGE) and raises alert 0x8F72 Firmware Verification Successful or
   0x8F1C Firmware Verification Failed to the SR 11.1 requester; the CHF answers Upgrade
   End Response with upgrade time 0xFFFFFFFF (wait: activation is SR 11.3's);
6. SR 11.3 (CS06 Activate Firmware) makes the device run the verified version
   (:meth:`OtaService.activate`): the device raises 0x8F66 (activation done) or 0x8F67
   (nothing verified to activate) after its response. SR 11.2 then reads the new version.

Ground truth: ``ota_distribute``, ``ota_notify``, ``ota_query``, ``ota_block`` (every
block served: offset, octets, band, attempt), ``ota_wait`` (duty cycle), ``ota_block_timeout``,
``ota_paused``, ``ota_complete`` (verified or not, reason), ``ota_failed``,
``ota_activated``. Faults: ``corrupt`` (the CH serves the image with one octet flipped),
an unreachable (bricked) device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

from hanlab.emulator.han.content import alert_message
from hanlab.frames import Band
from hanlab.gbcs.eui64 import Eui64
from hanlab.zigbee import ota as zota
from hanlab.zigbee.common import LayerError
from hanlab.zigbee.zcl import ZclFrame, decode_zcl
from hanlab.zigbee.zcl_tables import CLUSTER_OTA_UPGRADE

if TYPE_CHECKING:
    from hanlab.emulator.han.han import EmulatedHan
    from hanlab.emulator.han.nodes import Device, Node

ALERT_VERIFY_OK = 0x8F72
ALERT_VERIFY_FAILED = 0x8F1C
ALERT_ACTIVATION_OK = 0x8F66
ALERT_ACTIVATION_FAILED = 0x8F67
PROFILE_SE = 0x0109
SE_ENDPOINT = 1
#: seconds between 2000-01-01 (ZigBee UTC time) and the UNIX epoch.
ZIGBEE_EPOCH_S = 946_684_800


class OtaSettings(BaseModel):
    """The emulated HAN's firmware distribution (``han.ota``); seconds and octets.

    Attributes:
        max_data_size_octets: what a client asks per Image Block Request (≤ 255).
        min_block_period_ms: the server's MinimumBlockPeriod between a client's requests.
        notify_interval_s, notify_attempts: Image Notify repetition for a silent device.
        block_timeout_s, block_attempts, resume_after_s: block retries and resumption.
        gsme_window_s: how long a GSME stays awake per wake-up while pulling blocks.
        duty_cycle_budget_pct: sub-GHz CH transmit share (of the duty-cycle window) above
            which the CHF answers WAIT_FOR_DATA; ``wait_s`` how long it asks to wait.
        verify_s: the device's verification time once the file is complete.
        catalogue: a firmware catalogue folder to take a model's image from when SR 11.1
            carries none; ``None``: :func:`shipped_catalogue`; a model it does not hold
            gets an emulated image (:func:`hanlab.firmware.emulated.emulated_image`).
        image_size_octets: size of that emulated image.
        corrupt_devices: fault: EUI-64s the CH serves a corrupted image to (the device's
            verification fails: 0x8F1C).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_data_size_octets: int = Field(default=64, ge=1, le=255)
    min_block_period_ms: int = Field(default=50, ge=0, le=65535)
    notify_interval_s: float = Field(default=10.0, gt=0)
    notify_attempts: int = Field(default=5, ge=1)
    block_timeout_s: float = Field(default=2.0, gt=0)
    block_attempts: int = Field(default=3, ge=1)
    resume_after_s: float = Field(default=5.0, gt=0)
    gsme_window_s: float = Field(default=1.0, gt=0)
    duty_cycle_budget_pct: float = Field(default=1.0, gt=0)
    wait_s: float = Field(default=60.0, gt=0)
    verify_s: float = Field(default=0.5, ge=0)
    catalogue: Path | None = None
    image_size_octets: int = Field(default=2048, ge=300)
    corrupt_devices: list[str] = Field(default_factory=list)


def shipped_catalogue() -> Path | None:
    """``$HANLAB_FIRMWARE_IMAGES``, else the source tree's ``firmware_images/`` (beside the
    package), when it holds an index; else ``None``."""
    import os

    env = os.environ.get("HANLAB_FIRMWARE_IMAGES")
    folder = Path(env) if env else Path(__file__).resolve().parents[3] / "firmware_images"
    return folder if (folder / "index.yaml").is_file() else None


class OtaListener(Protocol):
    """Who hears of a distribution's outcome at the CH (the emulated DCC)."""

    def firmware_event(self, device: Eui64, event: str, *, request_id: str | None,
                       ts_ns: int, reason: str = "") -> None:
        """``event``: ``ch_received``, ``han_transfer_complete``, ``not_delivered``."""


@dataclass
class _Distribution:
    """What the CH holds for one device."""

    image: bytes
    manufacturer_code: int
    image_type: int
    file_version: int
    requester: Eui64
    request_id: str | None
    corrupt: bool = False
    listener: OtaListener | None = None
    notified: int = 0
    answered: bool = False
    done: bool = False
    started_ns: int = 0
    blocks: int = 0


@dataclass
class _Client:
    """A device's OTA client state (ZCL §11.10 attributes, plus the download)."""

    manufacturer_code: int
    image_type: int
    current_file_version: int
    downloaded_file_version: int | None = None
    verified: bool = False
    image_size_octets: int = 0
    offset: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    active: bool = False
    waiting_request: int = -1
    attempts: int = 0
    window_end_ns: int = 0
    in_window: bool = False
    requester: Eui64 | None = None
    paused: bool = False
    next_ok_ns: int = 0


class OtaService:
    """The CHF's OTA Upgrade server and every device's client (see the module docstring).

    Args:
        han: the rig's HAN.
        settings: :class:`OtaSettings`.
    """

    def __init__(self, han: EmulatedHan, settings: OtaSettings) -> None:
        self.han = han
        self.settings = settings
        self.held: dict[int, _Distribution] = {}
        self.clients: dict[int, _Client] = {}

    # -- identities ------------------------------------------------------------------------

    def client(self, device: Device) -> _Client:
        """The OTA client of ``device`` (identity from its model)."""
        from hanlab.firmware.emulated import identity_of

        found = self.clients.get(device.eui64)
        if found is None:
            ident = identity_of(device.device.model or device.role.value.lower())
            found = self.clients[device.eui64] = _Client(
                ident.manufacturer_code, ident.image_type, ident.file_version)
        return found

    def running_version(self, eui64: int) -> int | None:
        """The file version the device runs (``None``: not an OTA client yet)."""
        node = self.han.nodes.get(eui64)
        from hanlab.emulator.han.nodes import Device

        return self.client(node).current_file_version if isinstance(node, Device) else None

    def image_for(self, device: Device) -> bytes:
        """The image SR 11.1 distributes when it carries none: the catalogue's newest for
        the device's model, else an emulated one."""
        from hanlab.firmware.catalogue import Catalogue
        from hanlab.firmware.emulated import emulated_image

        model = device.device.model or device.role.value.lower()
        folder = self.settings.catalogue or shipped_catalogue()
        if folder is not None:
            cat = Catalogue(folder)
            entry = cat.latest_for(model)
            if entry is not None:
                return cat.load_image(entry).raw
        return emulated_image(model, size_octets=self.settings.image_size_octets)

    def pending(self, eui64: Eui64 | int) -> bool:
        """A distribution to this device is under way (not yet verified or failed)."""
        value = eui64.value if isinstance(eui64, Eui64) else eui64
        held = self.held.get(value)
        return held is not None and not held.done

    # -- the server (CHF) ------------------------------------------------------------------

    def distribute(self, target: Eui64 | int, image: bytes | None, *, requester: Eui64,
                   request_id: str | None = None, corrupt: bool = False,
                   listener: OtaListener | None = None) -> bool:
        """Put ``image`` (an OTA file; ``None``: :meth:`image_for`) on the CH for
        ``target`` and notify the device. ``False``: no such device on this HAN, or the
        file is not an OTA file.

        Args:
            requester: the User the device's verification alert goes to.
            request_id: the SR 11.1 RequestID (for the listener and the ground truth).
            corrupt: serve the image with one octet flipped (fault); also for every
                device in ``settings.corrupt_devices``.
            listener: told of ``ch_received``, ``han_transfer_complete``,
                ``han_transfer_invalid`` and ``not_delivered``.
        """
        from hanlab.emulator.han.nodes import Device
        from hanlab.errors import FirmwareImageError
        from hanlab.firmware.ota_file import parse_ota_file

        node = self.han.node(target)
        if not isinstance(node, Device):
            return False
        data = image if image is not None else self.image_for(node)
        try:
            parsed = parse_ota_file(data)
        except FirmwareImageError as error:
            self.han.truth.record("ota_failed", self.han.scheduler.now_ns, rig=self.han.rig,
                                  device=node.name, reason=str(error))
            return False
        h = parsed.header
        served = bytearray(data)
        corrupt = corrupt or node.eui.duis in {Eui64.parse(d).duis
                                               for d in self.settings.corrupt_devices}
        if corrupt:
            served[len(served) // 2] ^= 0x5A
        held = _Distribution(bytes(served), h.manufacturer_code, h.image_type,
                             h.file_version, requester, request_id, corrupt, listener,
                             started_ns=self.han.scheduler.now_ns)
        self.held[node.eui64] = held
        chf = self.han.chf
        chf.record("ota_distribute", target=node.name, eui64_target=node.eui.duis,
                   file_version=f"0x{h.file_version:08X}", image_octets=len(data),
                   sha256=hashlib.sha256(data).hexdigest(), corrupt=corrupt,
                   request_id=request_id)
        self._event(node, "ch_received", held)
        self._notify(node)
        return True

    def _event(self, node: Node, event: str, held: _Distribution, reason: str = "") -> None:
        if held.listener is not None:
            held.listener.firmware_event(node.eui, event, request_id=held.request_id,
                                         ts_ns=self.han.scheduler.now_ns, reason=reason)

    def _notify(self, device: Device) -> None:
        held = self.held.get(device.eui64)
        if held is None or held.answered or held.done:
            return
        if held.notified >= self.settings.notify_attempts:
            held.done = True
            self.han.chf.record("ota_failed", target=device.name, reason="device unreachable",
                                notifications=held.notified)
            self._event(device, "not_delivered", held, "device unreachable: no Query Next "
                        f"Image after {held.notified} Image Notify")
            return
        held.notified += 1
        chf = self.han.chf
        zcl = zota.image_notify(chf.next_tsn(), manufacturer_code=held.manufacturer_code,
                                image_type=held.image_type, file_version=held.file_version)
        chf.record("ota_notify", target=device.name, attempt=held.notified)
        self._send(chf, device, zcl)
        chf.later(self.settings.notify_interval_s, self._notify, device)

    def _send(self, src: Node, dst: Node, zcl: ZclFrame) -> None:
        from hanlab.emulator.han.nodes import AppMessage

        data = zcl.encode()
        src.send_aps(dst, AppMessage("ota", src, data), data, cluster=CLUSTER_OTA_UPGRADE,
                     profile=PROFILE_SE, endpoint=SE_ENDPOINT,
                     link_key=self.han.link_key(src, dst))

    def on_message(self, node: Node, peer: Node, data: bytes) -> None:
        """An OTA Upgrade ZCL frame from ``peer`` reached ``node`` (CHF or a device)."""
        from hanlab.emulator.han.nodes import Device

        try:
            zcl = decode_zcl(data, CLUSTER_OTA_UPGRADE)
        except LayerError:
            return
        cmd = zota.decode_ota_zcl(zcl)
        if cmd is None:
            return
        if isinstance(node, Device):
            self._client_message(node, zcl, cmd)
        elif isinstance(peer, Device):
            self._server_message(peer, zcl, cmd)

    def _server_message(self, device: Device, zcl: ZclFrame, cmd: zota.OtaCommand) -> None:
        chf = self.han.chf
        held = self.held.get(device.eui64)
        f = cmd.fields
        if cmd.command_id == zota.QUERY_NEXT_IMAGE_REQUEST:
            chf.record("ota_query", target=device.name,
                       current_file_version=f"0x{f.get('file_version', 0):08X}")
            if held is None or held.done or f.get("image_type") != held.image_type \
                    or f.get("manufacturer_code") != held.manufacturer_code:
                reply = zota.query_next_image_response(zcl.tsn, zota.STATUS_NO_IMAGE_AVAILABLE)
            else:
                held.answered = True
                reply = zota.query_next_image_response(
                    zcl.tsn, zota.STATUS_SUCCESS, manufacturer_code=held.manufacturer_code,
                    image_type=held.image_type, file_version=held.file_version,
                    image_size_octets=len(held.image))
            self._send(chf, device, reply)
        elif cmd.command_id == zota.IMAGE_BLOCK_REQUEST:
            if held is None or f.get("file_version") != held.file_version:
                self._send(chf, device, zota.image_block_abort(zcl.tsn))
                return
            if device.band is Band.SUB_GHZ and (
                    self.han.duty_cycle_pct() >= self.settings.duty_cycle_budget_pct):
                now_s = self.han.scheduler.now_ns // 1_000_000_000 - ZIGBEE_EPOCH_S
                chf.record("ota_wait", target=device.name,
                           duty_cycle_pct=round(self.han.duty_cycle_pct(), 4))
                self._send(chf, device, zota.image_block_wait(
                    zcl.tsn, current_time=now_s,
                    request_time=now_s + int(self.settings.wait_s)))
                return
            offset = f.get("file_offset", 0)
            size = min(f.get("max_data_size_octets", 0), 255, max(len(held.image) - offset, 0))
            block = held.image[offset:offset + size]
            held.blocks += 1
            chf.record("ota_block", target=device.name, band=device.band.value,
                       file_offset=offset, octets=len(block), image_octets=len(held.image))
            self._send(chf, device, zota.image_block_response(
                zcl.tsn, manufacturer_code=held.manufacturer_code, image_type=held.image_type,
                file_version=held.file_version, file_offset=offset, data=block))
        elif cmd.command_id == zota.UPGRADE_END_REQUEST:
            if held is None:
                return
            ok = f.get("status") == zota.STATUS_SUCCESS
            now_s = self.han.scheduler.now_ns // 1_000_000_000 - ZIGBEE_EPOCH_S
            self._send(chf, device, zota.upgrade_end_response(
                zcl.tsn, manufacturer_code=held.manufacturer_code, image_type=held.image_type,
                file_version=held.file_version, current_time=now_s))
            held.done = True
            chf.record("ota_upgrade_end", target=device.name, status=cmd.status_name,
                       blocks=held.blocks,
                       duration_s=round((self.han.scheduler.now_ns - held.started_ns) / 1e9, 3))
            self._event(device, "han_transfer_complete" if ok else "han_transfer_invalid",
                        held, "" if ok else "device reported INVALID_IMAGE")

    # -- the clients (devices) -------------------------------------------------------------

    def _client_message(self, device: Device, zcl: ZclFrame, cmd: zota.OtaCommand) -> None:
        c = self.client(device)
        f = cmd.fields
        if cmd.command_id == zota.IMAGE_NOTIFY:
            if c.active or device.bricked:
                return
            if (f.get("manufacturer_code") == c.manufacturer_code
                    and f.get("image_type") == c.image_type
                    and f.get("file_version", 0) != c.current_file_version):
                self._query(device)
        elif cmd.command_id == zota.QUERY_NEXT_IMAGE_RESPONSE:
            if cmd.fields.get("status") != zota.STATUS_SUCCESS:
                return
            version = f["file_version"]
            if c.downloaded_file_version != version:
                c.downloaded_file_version = version
                c.offset = 0
                c.buffer = bytearray()
                c.verified = False
            c.image_size_octets = f["image_size_octets"]
            c.active = True
            held = self.held.get(device.eui64)
            c.requester = held.requester if held is not None else None
            self._begin_window(device)
            self._request(device)
        elif cmd.command_id == zota.IMAGE_BLOCK_RESPONSE:
            if not c.active or zcl.tsn != c.waiting_request:
                return
            c.waiting_request = -1
            c.attempts = 0
            if cmd.fields.get("status") == zota.STATUS_WAIT_FOR_DATA:
                delay_s = max(f.get("request_time", 0) - f.get("current_time", 0), 1)
                self._pause(device, float(delay_s), "server asked to wait (duty cycle)")
                return
            if cmd.fields.get("status") != zota.STATUS_SUCCESS:
                c.active = False
                self._end_window(device)
                return
            if f.get("file_offset") == c.offset and cmd.data:
                c.buffer += cmd.data
                c.offset += len(cmd.data)
            if c.offset >= c.image_size_octets:
                self._end_window(device, keep_awake=True)
                device.later(self.settings.verify_s, self._verify, device)
                return
            c.next_ok_ns = self.han.scheduler.now_ns + self.settings.min_block_period_ms \
                * 1_000_000
            device.later(self.settings.min_block_period_ms / 1000, self._request, device)

    def _query(self, device: Device) -> None:
        c = self.client(device)
        device.power(True)
        self._send(device, self.han.chf, zota.query_next_image_request(
            device.next_tsn(), manufacturer_code=c.manufacturer_code, image_type=c.image_type,
            current_file_version=c.current_file_version))

    def _begin_window(self, device: Device) -> None:
        """Hold a GSME awake for at most ``gsme_window_s`` of block requests."""
        from hanlab.emulator.han.nodes import Gsme

        c = self.client(device)
        if not isinstance(device, Gsme) or c.in_window:
            return
        c.in_window = True
        device.power(True)
        device._busy += 1  # keeps it awake (Gsme.idle)
        c.window_end_ns = self.han.scheduler.now_ns + int(self.settings.gsme_window_s * 1e9)

    def _end_window(self, device: Device, *, keep_awake: bool = False) -> None:
        c = self.client(device)
        if not c.in_window:
            return
        c.in_window = False
        device._busy -= 1
        if not keep_awake:
            device.record("ota_sleep", file_offset=c.offset)
            device.idle()

    def on_wake(self, device: Device) -> None:
        """A GSME woke up: ask for the image the CH holds for it (a sleepy device misses
        Image Notify, §11.11.2: it queries when awake), or resume a paused download from
        its offset."""
        c = self.clients.get(device.eui64)
        held = self.held.get(device.eui64)
        if (c is None or not c.active) and held is not None and not held.done:
            self._query(device)
            return
        if c is None or not c.active or c.waiting_request >= 0 or c.offset >= \
                c.image_size_octets:
            return
        if self.han.scheduler.now_ns < c.next_ok_ns:
            return
        c.paused = False
        self._begin_window(device)
        device.record("ota_resume", file_offset=c.offset)
        self._request(device)

    def _request(self, device: Device) -> None:
        from hanlab.emulator.han.nodes import Gsme

        c = self.client(device)
        if not c.active or c.paused or c.offset >= c.image_size_octets:
            return
        if device.bricked:  # radio silent: try again later, from the same offset
            self._pause(device, self.settings.resume_after_s, "device radio off")
            return
        if isinstance(device, Gsme) and (not c.in_window
                                         or self.han.scheduler.now_ns >= c.window_end_ns):
            self._end_window(device)  # sleep; resume at the next wake-up
            return
        tsn = device.next_tsn()
        self._send(device, self.han.chf, zota.image_block_request(
            tsn, manufacturer_code=c.manufacturer_code, image_type=c.image_type,
            file_version=c.downloaded_file_version or 0, file_offset=c.offset,
            max_data_size_octets=self.settings.max_data_size_octets))
        c.waiting_request = tsn
        device.later(self.settings.block_timeout_s, self._block_timeout, device, tsn, c.offset)

    def _block_timeout(self, device: Device, tsn: int, offset: int) -> None:
        c = self.client(device)
        if not c.active or c.waiting_request != tsn or c.offset != offset:
            return
        c.waiting_request = -1
        c.attempts += 1
        device.record("ota_block_timeout", file_offset=offset, attempt=c.attempts)
        if c.attempts >= self.settings.block_attempts:
            c.attempts = 0
            self._pause(device, self.settings.resume_after_s, "no block response")
            return
        self._request(device)

    def _pause(self, device: Device, delay_s: float, reason: str) -> None:
        from hanlab.emulator.han.nodes import Gsme

        c = self.client(device)
        c.paused = True
        c.next_ok_ns = self.han.scheduler.now_ns + int(delay_s * 1e9)
        device.record("ota_paused", file_offset=c.offset, reason=reason,
                      resume_after_s=delay_s)
        self._end_window(device)
        if not isinstance(device, Gsme):
            device.later(delay_s, self._resume, device)

    def _resume(self, device: Device) -> None:
        c = self.client(device)
        if c.active and c.paused:
            c.paused = False
            device.record("ota_resume", file_offset=c.offset)
            self._request(device)

    def _verify(self, device: Device) -> None:
        """Check the downloaded file (GBCS: the device verifies the manufacturer's
        signature), send Upgrade End Request, raise 0x8F72 / 0x8F1C."""
        from hanlab.errors import FirmwareImageError
        from hanlab.firmware.emulated import identity_of
        from hanlab.firmware.ota_file import check_ota_image, parse_ota_file

        c = self.client(device)
        c.active = False
        ident = identity_of(device.device.model or device.role.value.lower())
        reason = ""
        try:
            image = parse_ota_file(bytes(c.buffer))
            problems = check_ota_image(image, ident.target(
                c.current_file_version, eui64=device.eui64, name=device.name))
            if problems:
                reason = f"at byte {problems[0].offset}: {problems[0].reason}"
        except FirmwareImageError as error:
            reason = str(error)
        c.verified = not reason
        device.record("ota_complete", verified=c.verified, reason=reason or None,
                      octets=len(c.buffer), sha256=hashlib.sha256(c.buffer).hexdigest(),
                      file_version=f"0x{c.downloaded_file_version or 0:08X}")
        self._send(device, self.han.chf, zota.upgrade_end_request(
            device.next_tsn(),
            zota.STATUS_SUCCESS if c.verified else zota.STATUS_INVALID_IMAGE,
            manufacturer_code=c.manufacturer_code, image_type=c.image_type,
            file_version=c.downloaded_file_version or 0))
        self._alert(device, ALERT_VERIFY_OK if c.verified else ALERT_VERIFY_FAILED)

    def _alert(self, device: Device, alert_code: int) -> None:
        c = self.client(device)
        device.alert_counter += 1
        message = alert_message(device=device.eui,
                                recipient=c.requester or self.han.alert_recipient,
                                counter=device.alert_counter, alert_code=alert_code,
                                ts_ns=device.now_ns, rng=self.han.rng)
        device.record("alert_sent", alert_code=f"0x{alert_code:04X}")
        device.put(message)

    # -- activation (SR 11.3, CS06) ----------------------------------------------------------

    def activate(self, device: Device) -> None:
        """CS06 Activate Firmware processed by ``device``: run the verified download
        (0x8F66), or report that there is none (0x8F67)."""
        c = self.client(device)
        if c.verified and c.downloaded_file_version is not None:
            old = c.current_file_version
            c.current_file_version = c.downloaded_file_version
            c.verified = False
            device.record("ota_activated", file_version=f"0x{c.current_file_version:08X}",
                          previous_file_version=f"0x{old:08X}")
            self._alert(device, ALERT_ACTIVATION_OK)
        else:
            device.record("ota_activation_failed", reason="no verified image")
            self._alert(device, ALERT_ACTIVATION_FAILED)
