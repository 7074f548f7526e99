"""ZCL OTA Upgrade cluster (0x0019) commands: decode to fields, encode from them
(ZCL 07-5123 chapter 11, §11.13 commands; all integers little-endian).

Client to server (direction 0): 0x01 Query Next Image Request (§11.13.4), 0x03 Image
Block Request (§11.13.6), 0x04 Image Page Request (§11.13.7), 0x06 Upgrade End Request
(§11.13.9), 0x08 Query Device Specific File Request (§11.13.11). Server to client
(direction 1): 0x00 Image Notify (§11.13.3), 0x02 Query Next Image Response (§11.13.5),
0x05 Image Block Response (§11.13.8), 0x07 Upgrade End Response (§11.13.10), 0x09 Query
Device Specific File Response (§11.13.12).

:func:`decode_ota` never raises: a payload too short for its fields keeps the fields it
had and says ``error`` (a sniffer must survive what it does not know). Field names follow
the units convention (``file_offset``, ``data_size_octets``, ``min_block_period_ms``);
tshark's ``zbee_zcl_general.ota.*`` names are in :data:`TSHARK_FIELDS`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

from hanlab.zigbee.zcl import ZclFrame
from hanlab.zigbee.zcl_tables import CLUSTER_OTA_UPGRADE

IMAGE_NOTIFY: Final = 0x00
QUERY_NEXT_IMAGE_REQUEST: Final = 0x01
QUERY_NEXT_IMAGE_RESPONSE: Final = 0x02
IMAGE_BLOCK_REQUEST: Final = 0x03
IMAGE_PAGE_REQUEST: Final = 0x04
IMAGE_BLOCK_RESPONSE: Final = 0x05
UPGRADE_END_REQUEST: Final = 0x06
UPGRADE_END_RESPONSE: Final = 0x07
QUERY_SPECIFIC_FILE_REQUEST: Final = 0x08
QUERY_SPECIFIC_FILE_RESPONSE: Final = 0x09

#: ZCL status codes the OTA cluster uses (ZCL 07-5123 Table 2-12, §11.13).
STATUS_NAMES: Final[dict[int, str]] = {
    0x00: "SUCCESS", 0x7E: "NOT_AUTHORIZED", 0x80: "MALFORMED_COMMAND",
    0x81: "UNSUP_CLUSTER_COMMAND", 0x95: "ABORT", 0x96: "INVALID_IMAGE",
    0x97: "WAIT_FOR_DATA", 0x98: "NO_IMAGE_AVAILABLE", 0x99: "REQUIRE_MORE_IMAGE",
}
STATUS_SUCCESS: Final = 0x00
STATUS_ABORT: Final = 0x95
STATUS_INVALID_IMAGE: Final = 0x96
STATUS_WAIT_FOR_DATA: Final = 0x97
STATUS_NO_IMAGE_AVAILABLE: Final = 0x98

#: hanlab field -> tshark field (``zbee_zcl_general.ota.``).
TSHARK_FIELDS: Final[dict[str, str]] = {
    "status": "status", "manufacturer_code": "manufacturer_code", "image_type": "image.type",
    "file_version": "file.version", "file_offset": "file.offset",
    "data_size_octets": "data_size", "max_data_size_octets": "max_data_size",
    "image_size_octets": "image.size", "min_block_period_ms": "min_block_period",
    "payload_type": "payload.type", "query_jitter": "query_jitter",
    "current_time": "current_time", "request_time": "request_time",
    "upgrade_time": "upgrade_time", "hardware_version": "hw_ver",
}

_NAMES: Final[dict[tuple[int, int], str]] = {
    (1, IMAGE_NOTIFY): "ImageNotify", (0, QUERY_NEXT_IMAGE_REQUEST): "QueryNextImageRequest",
    (1, QUERY_NEXT_IMAGE_RESPONSE): "QueryNextImageResponse",
    (0, IMAGE_BLOCK_REQUEST): "ImageBlockRequest", (0, IMAGE_PAGE_REQUEST): "ImagePageRequest",
    (1, IMAGE_BLOCK_RESPONSE): "ImageBlockResponse", (0, UPGRADE_END_REQUEST): "UpgradeEndRequest",
    (1, UPGRADE_END_RESPONSE): "UpgradeEndResponse",
    (0, QUERY_SPECIFIC_FILE_REQUEST): "QuerySpecificFileRequest",
    (1, QUERY_SPECIFIC_FILE_RESPONSE): "QuerySpecificFileResponse",
}

# Field layouts as data: (name, struct format); optional groups handled by _decode.
_ID: Final = (("manufacturer_code", "H"), ("image_type", "H"), ("file_version", "I"))
_LAYOUT: Final[dict[tuple[int, int], tuple[tuple[str, str], ...]]] = {
    (0, QUERY_NEXT_IMAGE_REQUEST): (("field_control", "B"), *_ID),
    (0, IMAGE_BLOCK_REQUEST): (("field_control", "B"), *_ID, ("file_offset", "I"),
                               ("max_data_size_octets", "B")),
    (0, IMAGE_PAGE_REQUEST): (("field_control", "B"), *_ID, ("file_offset", "I"),
                              ("max_data_size_octets", "B"), ("page_size_octets", "H"),
                              ("response_spacing_ms", "H")),
    (0, UPGRADE_END_REQUEST): (("status", "B"), *_ID),
    (1, UPGRADE_END_RESPONSE): (*_ID, ("current_time", "I"), ("upgrade_time", "I")),
    (0, QUERY_SPECIFIC_FILE_REQUEST): (("request_node_address", "Q"), *_ID,
                                       ("zigbee_stack_version", "H")),
}


@dataclass(slots=True)
class OtaCommand:
    """One decoded OTA Upgrade command.

    Attributes:
        command_id, direction: as in the ZCL header (direction 0 client to server).
        name: e.g. ``ImageBlockResponse``, ``unknown_0x0b``.
        fields: decoded fields (integers; see the module docstring for names).
        data: the image data of an Image Block Response, else ``b""``.
        error: why decoding stopped early, or ``None``.
    """

    command_id: int
    direction: int
    name: str
    fields: dict[str, int] = field(default_factory=dict)
    data: bytes = b""
    error: str | None = None

    @property
    def status_name(self) -> str | None:
        """The status as a name (``SUCCESS``, ``WAIT_FOR_DATA`` …), or ``None``."""
        status = self.fields.get("status")
        if status is None:
            return None
        return STATUS_NAMES.get(status, f"unknown_0x{status:02x}")


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, out: dict[str, int], name: str, fmt: str) -> None:
        size = struct.calcsize("<" + fmt)
        if len(self.buf) - self.pos < size:
            raise ValueError(f"truncated at octet {self.pos}: {name} needs {size} octets, "
                             f"{len(self.buf) - self.pos} left")
        out[name] = int(struct.unpack_from("<" + fmt, self.buf, self.pos)[0])
        self.pos += size


def decode_ota(command_id: int, direction: int, payload: bytes) -> OtaCommand:
    """Decode an OTA Upgrade command payload (after the ZCL header). Never raises."""
    key = (direction, command_id)
    cmd = OtaCommand(command_id, direction, _NAMES.get(key, f"unknown_0x{command_id:02x}"))
    r = _Reader(payload)
    f = cmd.fields
    try:
        layout = _LAYOUT.get(key)
        if layout is not None:
            for name, fmt in layout:
                r.take(f, name, fmt)
            fc = f.get("field_control", 0)
            if key == (0, QUERY_NEXT_IMAGE_REQUEST) and fc & 0x01:
                r.take(f, "hardware_version", "H")
            elif key in ((0, IMAGE_BLOCK_REQUEST), (0, IMAGE_PAGE_REQUEST)):
                if fc & 0x01:
                    r.take(f, "request_node_address", "Q")
                if key == (0, IMAGE_BLOCK_REQUEST) and fc & 0x02:
                    r.take(f, "min_block_period_ms", "H")
        elif key == (1, IMAGE_NOTIFY):
            r.take(f, "payload_type", "B")
            r.take(f, "query_jitter", "B")
            for name, fmt in _ID[:min(f["payload_type"], 3)]:
                r.take(f, name, fmt)
        elif key in ((1, QUERY_NEXT_IMAGE_RESPONSE), (1, QUERY_SPECIFIC_FILE_RESPONSE)):
            r.take(f, "status", "B")
            if f["status"] == STATUS_SUCCESS:
                for name, fmt in _ID:
                    r.take(f, name, fmt)
                r.take(f, "image_size_octets", "I")
        elif key == (1, IMAGE_BLOCK_RESPONSE):
            r.take(f, "status", "B")
            if f["status"] == STATUS_SUCCESS:
                for name, fmt in _ID:
                    r.take(f, name, fmt)
                r.take(f, "file_offset", "I")
                r.take(f, "data_size_octets", "B")
                cmd.data = payload[r.pos:r.pos + f["data_size_octets"]]
                if len(cmd.data) < f["data_size_octets"]:
                    cmd.error = (f"truncated: data size {f['data_size_octets']}, "
                                 f"{len(cmd.data)} octets present")
            elif f["status"] == STATUS_WAIT_FOR_DATA:
                r.take(f, "current_time", "I")
                r.take(f, "request_time", "I")
                if len(payload) - r.pos >= 2:
                    r.take(f, "min_block_period_ms", "H")
        else:
            cmd.error = "unknown OTA command"
    except ValueError as error:
        cmd.error = str(error)
    return cmd


def decode_ota_zcl(zcl: ZclFrame) -> OtaCommand | None:
    """The OTA command of a cluster-specific ZCL frame on cluster 0x0019, else ``None``."""
    if zcl.cluster != CLUSTER_OTA_UPGRADE or zcl.frame_type != 1 or zcl.manufacturer_specific:
        return None
    return decode_ota(zcl.command_id, zcl.direction, zcl.payload)


# -- encoding -------------------------------------------------------------------------------


def _id(manufacturer_code: int, image_type: int, file_version: int) -> bytes:
    return struct.pack("<HHI", manufacturer_code, image_type, file_version)


def _frame(tsn: int, command_id: int, payload: bytes, direction: int) -> ZclFrame:
    return ZclFrame(1, tsn, command_id, payload, direction=direction,
                    disable_default_response=direction == 1 and command_id != IMAGE_NOTIFY,
                    cluster=CLUSTER_OTA_UPGRADE)


def image_notify(tsn: int, *, manufacturer_code: int, image_type: int, file_version: int,
                 query_jitter: int = 100) -> ZclFrame:
    """Image Notify, payload type 0x03 (jitter, manufacturer code, image type, file
    version; §11.13.3)."""
    return _frame(tsn, IMAGE_NOTIFY, bytes((3, query_jitter))
                  + _id(manufacturer_code, image_type, file_version), 1)


def query_next_image_request(tsn: int, *, manufacturer_code: int, image_type: int,
                             current_file_version: int,
                             hardware_version: int | None = None) -> ZclFrame:
    """Query Next Image Request (§11.13.4)."""
    payload = bytes((0 if hardware_version is None else 1,)) + _id(
        manufacturer_code, image_type, current_file_version)
    if hardware_version is not None:
        payload += struct.pack("<H", hardware_version)
    return _frame(tsn, QUERY_NEXT_IMAGE_REQUEST, payload, 0)


def query_next_image_response(tsn: int, status: int, *, manufacturer_code: int = 0,
                              image_type: int = 0, file_version: int = 0,
                              image_size_octets: int = 0) -> ZclFrame:
    """Query Next Image Response (§11.13.5); only the status unless SUCCESS."""
    payload = bytes((status,))
    if status == STATUS_SUCCESS:
        payload += _id(manufacturer_code, image_type, file_version) + struct.pack(
            "<I", image_size_octets)
    return _frame(tsn, QUERY_NEXT_IMAGE_RESPONSE, payload, 1)


def image_block_request(tsn: int, *, manufacturer_code: int, image_type: int,
                        file_version: int, file_offset: int, max_data_size_octets: int,
                        min_block_period_ms: int | None = None) -> ZclFrame:
    """Image Block Request (§11.13.6); with ``min_block_period_ms`` field control bit 1
    (BlockRequestDelay / MinimumBlockPeriod present)."""
    fc = 0 if min_block_period_ms is None else 0x02
    payload = bytes((fc,)) + _id(manufacturer_code, image_type, file_version) + struct.pack(
        "<IB", file_offset, max_data_size_octets)
    if min_block_period_ms is not None:
        payload += struct.pack("<H", min_block_period_ms)
    return _frame(tsn, IMAGE_BLOCK_REQUEST, payload, 0)


def image_block_response(tsn: int, *, manufacturer_code: int, image_type: int,
                         file_version: int, file_offset: int, data: bytes) -> ZclFrame:
    """Image Block Response with status SUCCESS and ``data`` (≤ 255 octets, §11.13.8)."""
    if len(data) > 255:
        raise ValueError(f"an image block holds at most 255 octets, not {len(data)}")
    return _frame(tsn, IMAGE_BLOCK_RESPONSE, bytes((STATUS_SUCCESS,)) + _id(
        manufacturer_code, image_type, file_version) + struct.pack(
        "<IB", file_offset, len(data)) + data, 1)


def image_block_wait(tsn: int, *, current_time: int, request_time: int,
                     min_block_period_ms: int | None = None) -> ZclFrame:
    """Image Block Response WAIT_FOR_DATA: ask again at ``request_time`` (UTC seconds,
    §11.13.8.1), optionally with a new minimum block period."""
    payload = bytes((STATUS_WAIT_FOR_DATA,)) + struct.pack("<II", current_time, request_time)
    if min_block_period_ms is not None:
        payload += struct.pack("<H", min_block_period_ms)
    return _frame(tsn, IMAGE_BLOCK_RESPONSE, payload, 1)


def image_block_abort(tsn: int) -> ZclFrame:
    """Image Block Response ABORT (§11.13.8)."""
    return _frame(tsn, IMAGE_BLOCK_RESPONSE, bytes((STATUS_ABORT,)), 1)


def upgrade_end_request(tsn: int, status: int, *, manufacturer_code: int, image_type: int,
                        file_version: int) -> ZclFrame:
    """Upgrade End Request (§11.13.9): SUCCESS after the image verified, INVALID_IMAGE
    when it did not."""
    return _frame(tsn, UPGRADE_END_REQUEST, bytes((status,)) + _id(
        manufacturer_code, image_type, file_version), 0)


def upgrade_end_response(tsn: int, *, manufacturer_code: int, image_type: int,
                         file_version: int, current_time: int = 0,
                         upgrade_time: int = 0xFFFFFFFF) -> ZclFrame:
    """Upgrade End Response (§11.13.10); upgrade time 0xFFFFFFFF: wait for an upgrade
    command (GB: the activation is SR 11.3's, CS06)."""
    return _frame(tsn, UPGRADE_END_RESPONSE, _id(manufacturer_code, image_type, file_version)
                  + struct.pack("<II", current_time, upgrade_time), 1)


def ota_fields(cmd: OtaCommand) -> dict[str, Any]:
    """Flat ``ota.*`` fields of ``cmd`` for ``hanlab decode`` (codes and versions hex)."""
    out: dict[str, Any] = {"ota.command": cmd.name}
    for name, value in cmd.fields.items():
        if name in ("manufacturer_code", "image_type"):
            out[f"ota.{name}"] = f"0x{value:04x}"
        elif name == "file_version":
            out[f"ota.{name}"] = f"0x{value:08x}"
        elif name == "request_node_address":
            out[f"ota.{name}"] = f"{value:016X}"
        else:
            out[f"ota.{name}"] = value
    if cmd.status_name is not None:
        out["ota.status_name"] = cmd.status_name
    if cmd.error:
        out["ota.error"] = cmd.error
    return out


def ota_summary(f: dict[str, Any]) -> str:
    """One-line text of the ``ota.*`` fields, e.g. ``OTA ImageBlockResponse SUCCESS
    0x01010000 offset 96 size 48``."""
    parts = [f"OTA {f['ota.command']}"]
    if "ota.status_name" in f:
        parts.append(str(f["ota.status_name"]))
    for key, label in (("ota.image_type", "type"), ("ota.file_version", "ver"),
                       ("ota.file_offset", "offset"), ("ota.data_size_octets", "size"),
                       ("ota.max_data_size_octets", "max"), ("ota.image_size_octets", "image"),
                       ("ota.min_block_period_ms", "period_ms")):
        if key in f:
            parts.append(f"{label} {f[key]}")
    return " ".join(parts)
