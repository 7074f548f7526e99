"""OTA Upgrade cluster commands (ZCL 07-5123 §11.13): encode and decode agree."""

from __future__ import annotations

from hanlab.zigbee import ota
from hanlab.zigbee.zcl import decode_zcl
from hanlab.zigbee.zcl_tables import CLUSTER_OTA_UPGRADE

ID = {"manufacturer_code": 0x1DB1, "image_type": 0x0101, "file_version": 0x01010000}


def _round(frame: ota.ZclFrame) -> ota.OtaCommand:
    cmd = ota.decode_ota_zcl(decode_zcl(frame.encode(), CLUSTER_OTA_UPGRADE))
    assert cmd is not None and cmd.error is None, cmd
    return cmd


def test_every_command_round_trips() -> None:
    notify = _round(ota.image_notify(1, query_jitter=50, **ID))
    assert notify.name == "ImageNotify" and notify.fields == {
        "payload_type": 3, "query_jitter": 50, **ID}
    query = _round(ota.query_next_image_request(2, manufacturer_code=0x1DB1, image_type=0x0101,
                                                current_file_version=1, hardware_version=7))
    assert query.fields["hardware_version"] == 7 and query.fields["file_version"] == 1
    rsp = _round(ota.query_next_image_response(2, ota.STATUS_SUCCESS, image_size_octets=900,
                                               **ID))
    assert rsp.fields["image_size_octets"] == 900 and rsp.status_name == "SUCCESS"
    none = _round(ota.query_next_image_response(3, ota.STATUS_NO_IMAGE_AVAILABLE))
    assert none.fields == {"status": 0x98} and none.status_name == "NO_IMAGE_AVAILABLE"
    req = _round(ota.image_block_request(4, file_offset=640, max_data_size_octets=64,
                                         min_block_period_ms=250, **ID))
    assert req.fields["file_offset"] == 640 and req.fields["min_block_period_ms"] == 250
    block = _round(ota.image_block_response(4, file_offset=640, data=b"x" * 48, **ID))
    assert block.fields["data_size_octets"] == 48 and block.data == b"x" * 48
    wait = _round(ota.image_block_wait(5, current_time=10, request_time=70,
                                       min_block_period_ms=100))
    assert wait.status_name == "WAIT_FOR_DATA" and wait.fields["request_time"] == 70
    end = _round(ota.upgrade_end_request(6, ota.STATUS_INVALID_IMAGE, **ID))
    assert end.status_name == "INVALID_IMAGE" and end.name == "UpgradeEndRequest"
    end_rsp = _round(ota.upgrade_end_response(6, current_time=5, **ID))
    assert end_rsp.fields["upgrade_time"] == 0xFFFFFFFF
    fields = ota.ota_fields(block)
    assert fields["ota.file_version"] == "0x01010000" and fields["ota.file_offset"] == 640
    assert ota.ota_summary(fields) == ("OTA ImageBlockResponse SUCCESS type 0x0101 ver "
                                       "0x01010000 offset 640 size 48")


def test_truncated_and_unknown_never_raise() -> None:
    whole = ota.image_block_response(4, file_offset=0, data=b"abc", **ID).payload
    for n in range(len(whole)):
        cmd = ota.decode_ota(ota.IMAGE_BLOCK_RESPONSE, 1, whole[:n])
        assert cmd.error is not None or n == 0
    odd = ota.decode_ota(0x0B, 0, b"\x01\x02")
    assert odd.name == "unknown_0x0b" and odd.error == "unknown OTA command"
