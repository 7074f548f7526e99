"""Hypothesis: no input makes the GBCS parsers raise; lying lengths give an offset."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hanlab.gbcs import (
    Eui64,
    GbcsMessage,
    GbcsParseError,
    GbtBlock,
    build_gbcs_message,
    parse_gbcs_message,
    parse_tunnel_payload,
)

TITLE = st.integers(0, 2**64 - 1).map(Eui64)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    supplementary = draw(st.integers(0, 3))
    return build_gbcs_message(
        cra_flag=draw(st.integers(1, 3)),
        originator_counter=draw(st.integers(0, 2**64 - 1)),
        originator_system_title=draw(TITLE),
        recipient_system_title=draw(TITLE),
        message_code=draw(st.integers(0, 0xFFFF)),
        content=draw(st.binary(max_size=300)),
        supplementary_remote_party_id=draw(TITLE) if supplementary >= 1 else None,
        supplementary_remote_party_counter=draw(st.integers(0, 2**64 - 1))
        if supplementary >= 2 else None,
        supplementary_originator_counter=draw(st.integers(0, 2**64 - 1))
        if supplementary >= 3 else None,
        signature=draw(st.sampled_from([b"", bytes(64), None])),
        mac=draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12))),
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    for candidate in (data, b"\xdf" + data, b"\xdd\x00" + data, b"\xdd\x09" + data):
        result = parse_gbcs_message(candidate)
        assert isinstance(result, GbcsMessage | GbtBlock | GbcsParseError)
        if isinstance(result, GbcsParseError):
            assert 0 <= result.offset <= len(candidate)
    tunnel = parse_tunnel_payload(data)
    assert isinstance(tunnel.message, GbcsMessage | GbtBlock | GbcsParseError | type(None))


@settings(max_examples=200, deadline=None)
@given(messages(), st.data())
def test_built_messages_parse_and_truncations_fail_with_offset(
    data: bytes, draw: st.DataObject
) -> None:
    assert isinstance(parse_gbcs_message(data), GbcsMessage)
    cut = draw.draw(st.integers(1, len(data) - 1))
    truncated = parse_gbcs_message(data[:cut])
    if isinstance(truncated, GbcsParseError):
        assert 0 <= truncated.offset <= cut
    else:  # only an unsigned Pre-Command cut exactly before its (absent) signature
        assert isinstance(truncated, GbcsMessage) and truncated.signature is None


@settings(max_examples=200, deadline=None)
@given(messages(), st.data())
def test_corrupted_octets_never_raise(data: bytes, draw: st.DataObject) -> None:
    at = draw.draw(st.integers(0, len(data) - 1))
    value = draw.draw(st.integers(0, 255))
    corrupted = data[:at] + bytes([value]) + data[at + 1 :]
    result = parse_gbcs_message(corrupted)
    assert isinstance(result, GbcsMessage | GbtBlock | GbcsParseError)
