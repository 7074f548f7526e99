"""Every DUIS template and sample of the corpus parses; every document we build validates.

Also checks the design's key fact: the RequestID counter of an RTDS DUIS template equals
the Originator Counter of the matching RTDS GBCS command.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from hanlab.duis import (
    DuisSchema,
    RequestId,
    build_acknowledgement,
    build_device_alert,
    build_request,
    build_response,
    load_duis_schema,
    parse_request,
    parse_response,
    parse_xml,
    sr,
)
from hanlab.gbcs import GbcsMessage, parse_gbcs_message

WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def schema(corpus_dir: Path) -> DuisSchema:
    return load_duis_schema(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")


def request_files(corpus_dir: Path) -> list[Path]:
    files = sorted((corpus_dir / "duis" / "templates").glob("*.XML"))
    files += sorted((corpus_dir / "duis" / "samples").glob("*REQUEST_DUIS.XML"))
    assert len(files) >= 212
    return files


def test_every_template_parses_and_validates(corpus_dir: Path, schema: DuisSchema) -> None:
    problems: list[str] = []
    files = request_files(corpus_dir)
    for path in files:
        data = path.read_bytes()
        request = parse_request(data)
        if not 1 <= request.command_variant <= 8:
            problems.append(f"{path.name}: CommandVariant {request.command_variant}")
        if not request.service_reference_variant.startswith(request.service_reference):
            problems.append(f"{path.name}: {request.service_reference_variant} not in "
                            f"{request.service_reference}")
        if sr(request.service_reference_variant).service_reference != request.service_reference:
            problems.append(f"{path.name}: catalogue disagrees on the Service Reference")
        if str(RequestId.parse(str(request.request_id))) != str(request.request_id):
            problems.append(f"{path.name}: RequestID does not round-trip")
        problems += [f"{path.name}: {p}" for p in schema.problems(parse_xml(data))]
    assert not problems, f"{len(problems)} problems in {len(files)} files:\n" + "\n".join(problems)


def test_rebuilt_requests_validate(corpus_dir: Path, schema: DuisSchema) -> None:
    problems: list[str] = []
    for path in request_files(corpus_dir):
        original = parse_request(path.read_bytes())
        rebuilt = build_request(
            request_id=original.request_id,
            command_variant=original.command_variant,
            service_reference_variant=original.service_reference_variant,
            body=original.body,
            first_in_sequence=original.first_in_sequence,
            preceding_request_id=original.preceding_request_id,
        )
        again = parse_request(rebuilt)
        if (again.request_id, again.service_reference, again.body_name) != (
            original.request_id, original.service_reference, original.body_name
        ):
            problems.append(f"{path.name}: header changed on rebuild")
        problems += [f"{path.name}: {p}" for p in schema.problems(parse_xml(rebuilt))]
    assert not problems, "\n".join(problems)


def test_samples_responses_parse(corpus_dir: Path, schema: DuisSchema) -> None:
    samples = corpus_dir / "duis" / "samples"
    response = parse_response((samples / "ECS52_11.2_SUCCESS_RESPONSE_DUIS.XML").read_bytes())
    assert response.response_code == "I0" and not response.is_acknowledgement
    assert response.gbcs_payload is not None
    assert isinstance(parse_gbcs_message(response.gbcs_payload), GbcsMessage)
    error = parse_response((samples / "acknowledgement-error.xml").read_bytes())
    assert error.response_code == "E65" and error.is_acknowledgement and not error.is_success
    firmware = parse_response((samples / "readfw-response.xml").read_bytes())
    assert firmware.service_reference_variant == "11.2"
    for name in ("ECS52_11.2_SUCCESS_RESPONSE_DUIS.XML", "acknowledgement-error.xml"):
        assert schema.problems(parse_xml((samples / name).read_bytes())) == []


def test_built_responses_validate(schema: DuisSchema) -> None:
    request_id = RequestId.parse("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000")
    response_id = RequestId.parse("00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:1000")
    documents = [
        build_acknowledgement(request_id=request_id, service_reference="4.1",
                              service_reference_variant="4.1.1", response_date_time=WHEN),
        build_response(request_id=request_id, response_id=response_id, response_code="I0",
                       response_date_time=WHEN, service_reference="4.1",
                       service_reference_variant="4.1.1", gbcs_payload=b"\xdf\x09\x02"),
        build_device_alert(response_id=response_id, alert_code=0x8F26,
                           gbcs_payload=b"\xdf\x09\x03", response_date_time=WHEN),
    ]
    for document in documents:
        assert schema.problems(parse_xml(document)) == [], document.decode()
    alert = parse_response(documents[2])
    assert alert.alert_code == 0x8F26 and alert.body_name == "DeviceAlertMessage"
    assert parse_response(documents[0]).is_acknowledgement


def test_template_counters_equal_rtds_originator_counters(corpus_dir: Path) -> None:
    """DESIGN.md: for an RTDS command, Originator Counter == DUIS RequestID counter."""
    rtds = corpus_dir / "gbcs-rtds"
    checked = 0
    mismatches: list[str] = []
    for path in sorted((corpus_dir / "duis" / "templates").glob("*_REQUEST_DUIS.XML")):
        use_case, _, rest = path.name.partition("_")
        variant = rest.split("_", 1)[0]
        if use_case.startswith("CS02b"):
            continue  # RTDS 4.5.0 CS02b commands carry other counters (1300 vs 1005)
        command = rtds / f"{variant}_{use_case}" / path.name.replace(
            "_REQUEST_DUIS.XML", "_COMMAND_GBCS.HEX"
        )
        if not command.is_file():
            continue
        message = parse_gbcs_message(bytes.fromhex(command.read_text().strip()))
        assert isinstance(message, GbcsMessage), command.name
        request = parse_request(path.read_bytes())
        counter = (
            message.supplementary_remote_party_counter
            if message.supplementary_remote_party_counter is not None
            and message.originator_counter != request.request_id.counter
            else message.originator_counter
        )
        if counter != request.request_id.counter:
            mismatches.append(f"{path.name}: {request.request_id.counter} != {counter}")
        checked += 1
    assert checked >= 100, checked
    assert not mismatches, "\n".join(mismatches)


def test_schema_refuses_a_wrong_document(schema: DuisSchema) -> None:
    bad = etree.fromstring(b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/'
                           b'ServiceUserGateway" schemaVersion="5.4"/>')
    assert schema.problems(bad)
