"""build_gbcs_message / build_tunnel_payload / GBT blocks read back by their parsers."""

from __future__ import annotations

import datetime as dt

import pytest

from hanlab.errors import BadInputError
from hanlab.gbcs import (
    Eui64,
    GbcsMessage,
    GbcsParseError,
    GbtBlock,
    GbtReassembler,
    TunnelCommand,
    build_gbcs_message,
    build_gbt_blocks,
    build_tunnel_payload,
    message_code_name,
    message_codes_for_use_case,
    parse_gbcs_message,
    parse_tunnel_payload,
    reassemble_gbt_blocks,
)
from hanlab.gbcs.codes import alert_code_name, cra_flag_name

SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
ESME = Eui64.parse("00DB1234567890A0")


def test_general_ciphering_round_trip() -> None:
    data = build_gbcs_message(
        cra_flag=1, originator_counter=2**64 - 1, originator_system_title=SUPPLIER,
        recipient_system_title=ESME, message_code=0x0027, content=b"\xd9" + bytes(200),
        mac=bytes(range(12)), invocation_counter=7,
    )
    message = parse_gbcs_message(data)
    assert isinstance(message, GbcsMessage)
    assert message.originator_counter == 2**64 - 1
    assert message.use_case == "ECS17b"
    assert message.mac == bytes(range(12))
    assert message.mac_header is not None and message.mac_header.invocation_counter == 7
    assert message.content == b"\xd9" + bytes(200)
    assert data[message.content_offset : message.content_offset + 201] == message.content


def test_general_signing_with_every_supplementary_field_and_date_time() -> None:
    when = dt.datetime(2024, 3, 1, 12, 30, 5, tzinfo=dt.UTC)
    data = build_gbcs_message(
        cra_flag=3, originator_counter=5, originator_system_title=ESME,
        recipient_system_title=SUPPLIER, message_code=0x0120, content=b"\x0f" + bytes(9),
        date_time=when, supplementary_remote_party_id=SUPPLIER,
        supplementary_remote_party_counter=99, supplementary_originator_counter=1234,
        signature=bytes(64),
    )
    message = parse_gbcs_message(data)
    assert isinstance(message, GbcsMessage)
    assert message.date_time == when
    assert message.supplementary_remote_party_id == SUPPLIER
    assert message.supplementary_remote_party_counter == 99
    assert message.supplementary_originator_counter == 1234
    assert message.signature == bytes(64)
    assert message.mac is None


def test_certificate_and_unsigned_pre_command() -> None:
    data = build_gbcs_message(
        cra_flag=1, originator_counter=1, originator_system_title=SUPPLIER,
        recipient_system_title=ESME, message_code=0x0100, content=b"\x30\x00",
        supplementary_remote_party_id=SUPPLIER, supplementary_remote_party_counter=2,
        supplementary_remote_party_ka_certificate=b"\x30\x82" + bytes(300), signature=None,
    )
    message = parse_gbcs_message(data)
    assert isinstance(message, GbcsMessage)
    assert message.supplementary_remote_party_ka_certificate == b"\x30\x82" + bytes(300)
    assert message.signature is None


@pytest.mark.parametrize(
    ("command", "message", "remaining"),
    [(TunnelCommand.GET, b"", None), (TunnelCommand.PUT, b"\xdf", None),
     (TunnelCommand.GET_RESPONSE, b"\xdf", 3), (TunnelCommand.GET_RESPONSE, b"", 0)],
)
def test_tunnel_round_trip(command: TunnelCommand, message: bytes, remaining: int | None) -> None:
    tunnel = parse_tunnel_payload(
        build_tunnel_payload(command, message, remaining_messages=remaining)
    )
    assert tunnel.error is None
    assert tunnel.command == command
    assert tunnel.remaining_messages == remaining
    assert tunnel.message_bytes == message


def test_tunnel_message_error_offset_counts_the_tunnel_header() -> None:
    tunnel = parse_tunnel_payload(bytes([0x02, 0x00, 0xDF, 0x09]))
    assert isinstance(tunnel.message, GbcsParseError)
    assert tunnel.message.offset == 4  # the CRA flag, after 02 00 DF 09


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b"", 0), (b"\x07", 0), (b"\x02", 1), (b"\x01\x00", 1), (b"\x03", 1)],
)
def test_bad_tunnel_data(data: bytes, offset: int) -> None:
    tunnel = parse_tunnel_payload(data)
    assert tunnel.error is not None and tunnel.error.offset == offset
    assert tunnel.command_name in ("GET", "GET-RESPONSE", "PUT", "unknown")


def test_tunnel_builder_refuses_inconsistent_arguments() -> None:
    with pytest.raises(BadInputError):
        build_tunnel_payload(TunnelCommand.GET, b"\xdf")
    with pytest.raises(BadInputError):
        build_tunnel_payload(TunnelCommand.GET_RESPONSE, b"\xdf")
    with pytest.raises(BadInputError):
        build_tunnel_payload(TunnelCommand.PUT, b"\xdf", remaining_messages=1)
    with pytest.raises(BadInputError):
        build_tunnel_payload(9, b"\xdf")


def test_gbt_blocks_reassemble_in_any_order() -> None:
    whole = build_gbcs_message(
        cra_flag=2, originator_counter=77, originator_system_title=ESME,
        recipient_system_title=SUPPLIER, message_code=0x0037, content=bytes(range(256)) * 3,
        signature=bytes(64),
    )
    raw_blocks = build_gbt_blocks(whole, block_data_size=100)
    blocks = [parse_gbcs_message(raw) for raw in raw_blocks]
    assert all(isinstance(block, GbtBlock) for block in blocks)
    gbt = [block for block in blocks if isinstance(block, GbtBlock)]
    assert [b.block_number for b in gbt] == list(range(1, len(gbt) + 1))
    assert [b.last_block for b in gbt] == [False] * (len(gbt) - 1) + [True]
    assert gbt[0].originator_counter == 77 and gbt[0].message_code == 0x0037
    assert reassemble_gbt_blocks(reversed(gbt)) == whole
    reassembler = GbtReassembler()
    results = [reassembler.add(block) for block in [gbt[-1], *gbt[:-1]]]
    assert results[:-1] == [None] * (len(gbt) - 1)
    assert results[-1] == parse_gbcs_message(whole)
    assert isinstance(reassemble_gbt_blocks(gbt[1:]), GbcsParseError)


def test_builder_refuses_bad_fields() -> None:
    common = {"originator_system_title": SUPPLIER, "recipient_system_title": ESME,
              "message_code": 1, "content": b""}
    with pytest.raises(BadInputError):
        build_gbcs_message(cra_flag=1, originator_counter=2**64, **common)  # type: ignore[arg-type]
    with pytest.raises(BadInputError):
        build_gbcs_message(cra_flag=1, originator_counter=1, mac=b"1", **common)  # type: ignore[arg-type]
    with pytest.raises(BadInputError):
        build_gbcs_message(
            cra_flag=1, originator_counter=1, supplementary_remote_party_counter=1,
            **common,  # type: ignore[arg-type]
        )


def test_tables_name_unknown_values_unknown() -> None:
    assert message_code_name(0x0027).startswith("ECS17b")
    assert message_code_name(0xFFFF) == "unknown"
    assert message_codes_for_use_case("cs02b") == tuple(range(0x0100, 0x010A))
    assert alert_code_name(0x8F26) == "Sub GHz Channel Changed"
    assert alert_code_name(0x1234) == "unknown"
    assert all(alert_code_name(code) != "unknown" for code in range(0x8F20, 0x8F2D))
    assert cra_flag_name(2) == "response" and cra_flag_name(9) == "unknown"


def test_eui64_forms() -> None:
    assert str(Eui64.parse("00-db-12-34-56-78-90-a0")) == "00-DB-12-34-56-78-90-A0"
    with pytest.raises(BadInputError):
        Eui64.parse("00-DB-12")


def test_eui64_is_a_value_with_a_checked_range() -> None:
    # a written-out __init__ (issue 15): still hashable, ordered, equal by value, checked
    assert {Eui64(1): "a"}[Eui64.from_bytes(bytes(7) + b"\x01")] == "a"
    assert sorted([Eui64(3), Eui64(1)]) == [Eui64(1), Eui64(3)]
    assert Eui64.parse("00DB1234567890A0") == Eui64(0x00DB1234567890A0)
    for bad in (-1, 1 << 64):
        with pytest.raises(BadInputError, match="outside"):
            Eui64(bad)


def test_tunnel_message_is_parsed_once() -> None:
    assert parse_tunnel_payload(build_tunnel_payload(TunnelCommand.GET)).message is None
    tunnel = parse_tunnel_payload(bytes([0x02, 0x00, 0xDF, 0x09]))
    message = tunnel.message
    assert isinstance(message, GbcsParseError) and message.offset >= 2
    assert tunnel.message is message  # kept from the first access
