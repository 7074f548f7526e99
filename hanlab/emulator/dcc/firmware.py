"""SR 11.1 Update Firmware at the emulated DCC: the image goes to each listed device's CH,
which distributes it over the HAN (:mod:`hanlab.emulator.han.ota`).

The request (a Non-Device SR, CommandVariant 8, answered ``I0`` at once) carries
``FirmwareImage`` (base64), ``FirmwareVersion`` and ``DeviceIDList`` (DUIS 5.4 XSD
``UpdateFirmware``). A request without an image (the scenario library's) distributes the
catalogue image of each device's model, and so does one whose image is not a ZigBee OTA
file (no 0x0BEEF11E magic: e.g. the XSD completer's filler). After the DCC's processing
and WAN latency the CH holds the image (ground truth ``firmware_at_ch``); the CH tells
the DCC how the HAN transfer ended, and for a device that never fetched it the DCC raises
its FirmwareDistributionFailure alert (:class:`FirmwareAlertCodes`).

Which of N18-N23 means which failure is not established from DUIS's text here: the codes
are configurable and hanlab's reading is the default.
"""

from __future__ import annotations

import asyncio
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hanlab.duis.xml import SR_NS, DuisRequest
from hanlab.errors import BadInputError, FirmwareImageError
from hanlab.firmware.ota_file import OTA_FILE_IDENTIFIER, check_ota_image, parse_ota_file
from hanlab.gbcs.eui64 import Eui64

if TYPE_CHECKING:
    from hanlab.emulator.dcc.server import EmulatedDcc


OTA_MAGIC = OTA_FILE_IDENTIFIER.to_bytes(4, "little")


@dataclass(frozen=True, slots=True)
class FirmwareAlertCodes:
    """DCCAlertCodes of FirmwareDistributionFailure the emulated DCC raises itself.

    Attributes:
        invalid_image: the request's FirmwareImage is not a valid OTA file (or over 750 KB).
        ch_transfer_failed: the device's CH could not be reached to take the image.
        han_not_delivered: the CH held the image but the device never fetched it.
    """

    invalid_image: str = "N18"
    ch_transfer_failed: str = "N19"
    han_not_delivered: str = "N20"


class DccFirmware:
    """The emulated DCC's side of SR 11.1 (see the module docstring)."""

    def __init__(self, dcc: EmulatedDcc, codes: FirmwareAlertCodes | None = None) -> None:
        self.dcc = dcc
        self.codes = codes or FirmwareAlertCodes()
        self.requesters: dict[str, Eui64] = {}
        self._pending: set[Eui64] = set()

    def pending(self, device: Eui64) -> bool:
        """An SR 11.1 for ``device`` was accepted and its distribution has not ended."""
        return device in self._pending

    def update_firmware(self, request: DuisRequest) -> None:
        """SR 11.1 acknowledged: validate the image, hand it to each device's CH."""
        rid = request.request_id
        image: bytes | None = None
        node = request.body.find(f".//{{{SR_NS}}}FirmwareImage")
        text = "" if node is None or not node.text else node.text.strip()
        devices = self._devices(request)
        self.requesters[str(rid)] = rid.originator
        self._pending.update(devices)
        if text:
            try:
                image = binascii.a2b_base64(text)
            except binascii.Error as error:
                self._reject(rid, devices, f"FirmwareImage is not base64: {error}")
                return
            if not image.startswith(OTA_MAGIC):
                # not a ZigBee OTA file (a schema filler, another container): the CH
                # distributes the catalogue image of each device's model instead
                self.dcc._record("firmware_image_not_ota", request_id=str(rid),
                                 octets=len(image))
                image = None
        if image is not None:
            try:
                parsed = parse_ota_file(image, f"FirmwareImage of {rid}")
                problems = check_ota_image(parsed)
                if problems:
                    raise problems[0].error(parsed.source)
            except FirmwareImageError as error:
                self._reject(rid, devices, str(error))
                return
        self.dcc._spawn(self._deliver(request, image, devices), f"dcc-firmware-{rid}")

    def _reject(self, rid: Any, devices: list[Eui64], reason: str) -> None:
        self.dcc._record("firmware_rejected", request_id=str(rid), reason=reason)
        self._failure(rid.originator, self.codes.invalid_image, str(rid), devices)
        self._pending.difference_update(devices)

    @staticmethod
    def _devices(request: DuisRequest) -> list[Eui64]:
        node = request.body.find(f".//{{{SR_NS}}}DeviceIDList")
        out = []
        for part in ("" if node is None or not node.text else node.text).split(","):
            try:
                out.append(Eui64.parse(part.strip()))
            except BadInputError:
                continue
        return out

    async def _deliver(self, request: DuisRequest, image: bytes | None,
                       devices: list[Eui64]) -> None:
        settings = self.dcc.settings
        await asyncio.sleep(settings.processing_latency_s + settings.wan_latency_s)
        rid = request.request_id
        failed = []
        for device in devices:
            han: Any = self.dcc._hans.get(device, self.dcc._han)
            distribute = getattr(han, "distribute_firmware", None)
            if distribute is None:  # a HAN without firmware distribution (FakeHan)
                self.dcc._record("firmware_not_distributed", request_id=str(rid),
                                 target=device.duis)
                self._pending.discard(device)
                continue
            ok = bool(distribute(
                device, image, requester=rid.originator, request_id=str(rid), listener=self))
            self.dcc._record("firmware_at_ch" if ok else "firmware_ch_failed",
                             request_id=str(rid), target=device.duis)
            if not ok:
                failed.append(device)
                self._pending.discard(device)
        if failed:
            await self._post_failure(rid.originator, self.codes.ch_transfer_failed, str(rid),
                                     failed)

    def firmware_event(self, device: Eui64, event: str, *, request_id: str | None,
                       ts_ns: int, reason: str = "") -> None:
        """The CH's report on a device's HAN transfer (``OtaListener``). Never raises."""
        self.dcc._record("firmware_" + event, ts_ns, request_id=request_id,
                         target=device.duis, reason=reason or None)
        if event == "not_delivered" and request_id is not None:
            user = self.requesters.get(request_id)
            if user is not None:
                self._failure(user, self.codes.han_not_delivered, request_id, [device])

    def _failure(self, user: Eui64, code: str, request_id: str, devices: list[Eui64]) -> None:
        self.dcc._spawn(self._post_failure(user, code, request_id, devices),
                        f"dcc-firmware-failure-{request_id}")

    async def _post_failure(self, user: Eui64, code: str, request_id: str,
                            devices: list[Eui64]) -> None:
        if user not in self.dcc.users:
            return
        await self.dcc.post_dcc_alert(user, code, "FirmwareDistributionFailure", {
            "UpdateFirmwareRequestID": request_id,
            "MeterIDs": ",".join(d.duis for d in devices)})
