"""DUIS XML: RequestID values, safe parsing, request build/parse round trip."""

from __future__ import annotations

import datetime as dt

import pytest

from hanlab.duis import (
    DuisXmlError,
    RequestId,
    build_acknowledgement,
    build_request,
    parse_request,
    parse_response,
    sr_element,
)
from hanlab.errors import BadInputError
from hanlab.gbcs import Eui64

USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
ESME = Eui64.parse("00-DB-12-34-56-78-90-A0")


@pytest.mark.parametrize("counter", [0, 1000, 2**64 - 1])
def test_request_id_round_trip(counter: int) -> None:
    request_id = RequestId(USER, ESME, counter)
    assert RequestId.parse(str(request_id)) == request_id
    assert str(request_id).startswith("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:")


@pytest.mark.parametrize(
    "text",
    ["90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551616",
     "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:-1",
     "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:01",
     "90B3D51F30010000:00DB1234567890A0:1", ""],
)
def test_bad_request_ids(text: str) -> None:
    with pytest.raises(BadInputError):
        RequestId.parse(text)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway">&lol2;</sr:Request>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway">&x;</sr:Request>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE, b"<sr:Request", b"<a/>"])
def test_hostile_or_wrong_documents_are_refused(document: bytes) -> None:
    with pytest.raises(DuisXmlError):
        parse_request(document)


def test_request_round_trip() -> None:
    request_id = RequestId(USER, ESME, 1000)
    body = sr_element("ReadInstantaneousImportRegisters", None)
    data = build_request(request_id=request_id, command_variant=1,
                         service_reference_variant="4.1.1", body=body)
    request = parse_request(data)
    assert request.request_id == request_id
    assert request.service_reference == "4.1"
    assert request.command_variant == 1
    assert request.body_name == "ReadInstantaneousImportRegisters"
    assert not request.signed


def test_sr_element_nested_and_repeated() -> None:
    node = sr_element("UpdateHANDeviceLog", {
        "DeviceID": ESME.duis, "RequestType": "Add",
        "Entry": [{"Value": 1}, {"Value": True}],
    })
    names = [child.tag.split("}")[1] for child in node]
    assert names == ["DeviceID", "RequestType", "Entry", "Entry"]
    assert node[3][0].text == "true"


def test_acknowledgement_round_trip() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    data = build_acknowledgement(request_id=RequestId(USER, ESME, 7), service_reference="4.1",
                                 service_reference_variant="4.1.1", response_date_time=when)
    ack = parse_response(data)
    assert ack.is_acknowledgement and ack.is_success
    assert ack.response_date_time == when
    assert b"2024-01-02T03:04:05.000Z" in data


def test_command_variant_range() -> None:
    with pytest.raises(BadInputError):
        build_request(request_id=RequestId(USER, ESME, 1), command_variant=9,
                      service_reference_variant="4.1.1", body=sr_element("X"))
