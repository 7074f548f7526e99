"""DUIS 5.4 Request / Response / Acknowledgement XML: parse and build (DUIS 5.4 section 3).

Parsing is safe against hostile XML: no DTD is accepted (so no entity expansion and no
external entities), nothing is fetched from the network, and huge trees are refused.
Signing (XML-DSig) is not done here; a parsed document only says whether it carries a
``ds:Signature``.
"""

from __future__ import annotations

import datetime as dt
import re
from base64 import b64decode, b64encode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Union

from lxml import etree

from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

SR_NS: Final = "http://www.dccinterface.co.uk/ServiceUserGateway"
RA_NS: Final = "http://www.dccinterface.co.uk/ResponseAndAlert"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
SCHEMA_VERSION: Final = "5.4"
NSMAP: Final = {"sr": SR_NS, "ds": DS_NS, "ra": RA_NS}
MAX_COUNTER: Final = (1 << 64) - 1
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024

_REQUEST_ID: Final = re.compile(r"^([0-9A-Fa-f-]{23}):([0-9A-Fa-f-]{23}):(0|[1-9][0-9]{0,19})$")
_ACK_CODES: Final = frozenset({"I0", "I99"})


def _q(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


class DuisXmlError(BadInputError):
    """A DUIS document is not well-formed, unsafe, or lacks a required element.

    Args:
        message: what is wrong, naming the element or line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="check the document against DUIS 5.4 section 3")


@dataclass(frozen=True, slots=True, order=True)
class RequestId:
    """A DUIS RequestID (or ResponseID): ``<originator EUI-64>:<target EUI-64>:<counter>``.

    DUIS 5.4 section 3.4.1.1. For a ResponseID the first EUI-64 is the responding device.

    Attributes:
        originator: the User's EUI-64 (for a RequestID).
        target: the target device's EUI-64.
        counter: 0..2**64-1; for an RTDS command it equals the GBCS Originator Counter.

    Raises:
        BadInputError: ``counter`` out of range.
    """

    originator: Eui64
    target: Eui64
    counter: int

    def __post_init__(self) -> None:
        if not 0 <= self.counter <= MAX_COUNTER:
            raise BadInputError(f"RequestID counter {self.counter} outside 0..2**64-1")

    @classmethod
    def parse(cls, text: str) -> RequestId:
        """From ``90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000``.

        Raises:
            BadInputError: not in that form, or the counter exceeds 2**64-1.
        """
        match = _REQUEST_ID.match(text.strip())
        if not match:
            raise BadInputError(
                f"not a DUIS RequestID: {text!r}",
                hint="write <EUI-64>:<EUI-64>:<counter>, e.g. "
                "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000",
            )
        return cls(Eui64.parse(match.group(1)), Eui64.parse(match.group(2)), int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.originator.duis}:{self.target.duis}:{self.counter}"


@dataclass(frozen=True)
class DuisRequest:
    """A parsed DUIS Service Request (DUIS 5.4 section 3.2).

    Attributes:
        request_id: the RequestID.
        command_variant: CommandVariant 1..8.
        service_reference: e.g. ``4.1``.
        service_reference_variant: e.g. ``4.1.1``.
        body_name: local name of the Body's element, e.g. ``ReadInstantaneousImportRegisters``.
        body: that element (lxml), for the caller to read further.
        first_in_sequence: the optional FirstInSequence flag.
        preceding_request_id: the optional PrecedingServiceRequestID.
        schema_version: the ``schemaVersion`` attribute.
        signed: whether a ``ds:Signature`` element is present (not verified).
    """

    request_id: RequestId
    command_variant: int
    service_reference: str
    service_reference_variant: str
    body_name: str
    body: etree._Element
    first_in_sequence: bool | None
    preceding_request_id: RequestId | None
    schema_version: str
    signed: bool


@dataclass(frozen=True)
class DuisResponse:
    """A parsed DUIS Response, Device Alert, DCC Alert or Acknowledgement (DUIS 5.4 3.5).

    An Acknowledgement is a Response whose ResponseMessage carries only the service
    references (:attr:`is_acknowledgement`).

    Attributes:
        request_id: the RequestID it answers, if present.
        response_id: the ResponseID, if present.
        response_code: e.g. ``I0``, ``I99``, ``E65``.
        response_date_time: ResponseDateTime (aware datetime).
        body_name: ``ResponseMessage``, ``DeviceAlertMessage``, ``DCCAlertMessage`` or other.
        service_reference, service_reference_variant: where the body carries them.
        content_name: local name of the ResponseMessage content element (``GBCSPayload``,
            ``PreCommand`` ...), or ``None``.
        gbcs_payload: decoded GBCSPayload, if any.
        alert_code: DeviceAlertMessage AlertCode, if any.
        body: the Body's child element (lxml).
        schema_version: the ``schemaVersion`` attribute.
        signed: whether a ``ds:Signature`` element is present (not verified).
        dcc_alert_code: DCCAlertMessage DCCAlertCode (e.g. ``N24``), if any.
        pre_command: the PreCommand GBCSPayload of a Transform response, if any.
        local_command: the LocalCommand GBCSPayload of a Local Command Delivery
            response (CommandVariants 2, 3, 6, 7), if any.
    """

    request_id: RequestId | None
    response_id: RequestId | None
    response_code: str
    response_date_time: dt.datetime
    body_name: str
    service_reference: str | None
    service_reference_variant: str | None
    content_name: str | None
    gbcs_payload: bytes | None
    alert_code: int | None
    body: etree._Element
    schema_version: str
    signed: bool
    dcc_alert_code: str | None = None
    pre_command: bytes | None = None
    local_command: bytes | None = None

    @property
    def is_acknowledgement(self) -> bool:
        """A synchronous acknowledgement: a ResponseMessage with no content."""
        return self.body_name == "ResponseMessage" and self.content_name is None

    @property
    def is_success(self) -> bool:
        """ResponseCode is I0 or I99 (DUIS 5.4 section 3.5.3)."""
        return self.response_code in _ACK_CODES


def safe_parser() -> etree.XMLParser:
    """An lxml parser that expands no entities, loads no DTD and touches no network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted DUIS XML into its root element; refuse any DOCTYPE.

    Raises:
        DuisXmlError: too large, not well-formed, or carries a DTD (entity attacks).
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DuisXmlError(f"DUIS document of {len(data)} bytes exceeds {MAX_DOCUMENT_BYTES}")
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as error:
        raise DuisXmlError(f"not well-formed XML: {error}") from error
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise DuisXmlError("DUIS documents carry no DTD; this one does (refused)")
    return root


def _text(parent: etree._Element, local: str, *, required: bool = True) -> str | None:
    node = parent.find(_q(local))
    if node is None or node.text is None:
        if required:
            raise DuisXmlError(f"missing sr:{local} in sr:{etree.QName(parent).localname}")
        return None
    return str(node.text).strip()


def _required(parent: etree._Element, local: str) -> str:
    value = _text(parent, local)
    assert value is not None
    return value


def _child(parent: etree._Element, local: str) -> etree._Element:
    node = parent.find(_q(local))
    if node is None:
        raise DuisXmlError(f"missing sr:{local} in sr:{etree.QName(parent).localname}")
    return node


def _first_element(parent: etree._Element) -> etree._Element:
    for node in parent:
        if isinstance(node.tag, str):
            return node
    raise DuisXmlError(f"sr:{etree.QName(parent).localname} is empty")


def _request_id(value: str | None) -> RequestId | None:
    return None if value is None else RequestId.parse(value)


def _signed(root: etree._Element) -> bool:
    return root.find(f"{{{DS_NS}}}Signature") is not None


def parse_request(data: bytes) -> DuisRequest:
    """Read a DUIS Request document (DUIS 5.4 section 3.2).

    Raises:
        DuisXmlError: unsafe, not well-formed, not an ``sr:Request``, or a header element is
            missing; BadInputError for a malformed RequestID.
    """
    root = parse_xml(data)
    if root.tag != _q("Request"):
        raise DuisXmlError(f"root is {root.tag}, expected sr:Request")
    header = _child(root, "Header")
    body = _first_element(_child(root, "Body"))
    first = _text(header, "FirstInSequence", required=False)
    try:
        command_variant = int(_required(header, "CommandVariant"))
    except ValueError as error:
        raise DuisXmlError(f"CommandVariant is not a number: {error}") from error
    return DuisRequest(
        request_id=RequestId.parse(_required(header, "RequestID")),
        command_variant=command_variant,
        service_reference=_required(header, "ServiceReference"),
        service_reference_variant=_required(header, "ServiceReferenceVariant"),
        body_name=etree.QName(body).localname,
        body=body,
        first_in_sequence=None if first is None else first.lower() in ("true", "1"),
        preceding_request_id=_request_id(
            _text(header, "PrecedingServiceRequestID", required=False)
        ),
        schema_version=root.get("schemaVersion", ""),
        signed=_signed(root),
    )


def parse_response(data: bytes) -> DuisResponse:
    """Read a DUIS Response, alert or acknowledgement (DUIS 5.4 section 3.5).

    Raises:
        DuisXmlError: unsafe, not well-formed, not an ``sr:Response``, or an element is
            missing or malformed.
    """
    root = parse_xml(data)
    if root.tag != _q("Response"):
        raise DuisXmlError(f"root is {root.tag}, expected sr:Response")
    header = _child(root, "Header")
    body = _first_element(_child(root, "Body"))
    body_name = etree.QName(body).localname
    content = next(
        (node for node in body if isinstance(node.tag, str) and etree.QName(node).localname
         not in ("ServiceReference", "ServiceReferenceVariant")),
        None,
    ) if body_name == "ResponseMessage" else None
    payload_text = _text(body, "GBCSPayload", required=False)
    alert_text = _text(body, "AlertCode", required=False)
    pre_node = body.find(_q("PreCommand"))
    pre_text = None if pre_node is None else _text(pre_node, "GBCSPayload", required=False)
    local_node = body.find(_q("LocalCommand"))
    local_text = (None if local_node is None
                  else _text(local_node, "GBCSPayload", required=False))
    try:
        pre_command = b64decode(pre_text, validate=False) if pre_text else None
        local_command = b64decode(local_text, validate=False) if local_text else None
        when = dt.datetime.fromisoformat(_required(header, "ResponseDateTime"))
        payload = b64decode(payload_text, validate=False) if payload_text else None
        alert_code = int(alert_text, 16) if alert_text else None
    except ValueError as error:
        raise DuisXmlError(f"malformed response element: {error}") from error
    return DuisResponse(
        request_id=_request_id(_text(header, "RequestID", required=False)),
        response_id=_request_id(_text(header, "ResponseID", required=False)),
        response_code=_required(header, "ResponseCode"),
        response_date_time=when if when.tzinfo else when.replace(tzinfo=dt.UTC),
        body_name=body_name,
        service_reference=_text(body, "ServiceReference", required=False),
        service_reference_variant=_text(body, "ServiceReferenceVariant", required=False),
        content_name=None if content is None else etree.QName(content).localname,
        gbcs_payload=payload,
        alert_code=alert_code,
        body=body,
        schema_version=root.get("schemaVersion", ""),
        signed=_signed(root),
        dcc_alert_code=_text(body, "DCCAlertCode", required=False),
        pre_command=pre_command,
        local_command=local_command,
    )


BodyValue = Union[str, int, bool, "BodyMapping", Sequence["BodyMapping"]]
BodyMapping = Mapping[str, BodyValue]


def sr_element(name: str, content: BodyValue | None = None) -> etree._Element:
    """Build an ``sr:`` element tree from plain values, in the mapping's order.

    Args:
        name: local name, e.g. ``ReadInstantaneousImportRegisters``.
        content: text (str / int / bool), a mapping of child name -> content, or, as a
            mapping value, a sequence of mappings for a repeated child.

    Returns:
        The element, in the DUIS namespace.
    """
    node = etree.Element(_q(name), nsmap={"sr": SR_NS})
    _fill(node, content)
    return node


def _fill(node: etree._Element, content: BodyValue | None) -> None:
    if content is None:
        return
    if isinstance(content, bool):
        node.text = "true" if content else "false"
    elif isinstance(content, str | int):
        node.text = str(content)
    elif isinstance(content, Mapping):
        for key, value in content.items():
            if isinstance(value, Sequence) and not isinstance(value, str):
                for item in value:
                    _fill(etree.SubElement(node, _q(key)), item)
            else:
                _fill(etree.SubElement(node, _q(key)), value)


def _document(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _format_date_time(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_request(
    *,
    request_id: RequestId,
    command_variant: int,
    service_reference_variant: str,
    body: etree._Element,
    service_reference: str | None = None,
    first_in_sequence: bool | None = None,
    preceding_request_id: RequestId | None = None,
) -> bytes:
    """Write an unsigned DUIS 5.4 Request document (DUIS 5.4 section 3.2).

    Args:
        request_id: the RequestID.
        command_variant: 1..8 (DUIS 5.4 section 3.2.2).
        service_reference_variant: e.g. ``"4.1.1"``.
        body: the Body's element, e.g. from :func:`sr_element`.
        service_reference: defaults to the variant's, from the SR catalogue.
        first_in_sequence, preceding_request_id: optional sequencing header elements.

    Returns:
        UTF-8 XML bytes with an XML declaration.

    Raises:
        BadInputError: ``command_variant`` outside 1..8, or an unknown variant when
            ``service_reference`` is not given.
    """
    if not 1 <= command_variant <= 8:
        raise BadInputError(f"CommandVariant {command_variant} outside 1..8")
    if service_reference is None:
        from hanlab.duis.catalogue import sr

        service_reference = sr(service_reference_variant).service_reference
    root = etree.Element(_q("Request"), nsmap={"sr": SR_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    header = etree.SubElement(root, _q("Header"))
    etree.SubElement(header, _q("RequestID")).text = str(request_id)
    if first_in_sequence is not None:
        etree.SubElement(header, _q("FirstInSequence")).text = str(first_in_sequence).lower()
    if preceding_request_id is not None:
        etree.SubElement(header, _q("PrecedingServiceRequestID")).text = str(
            preceding_request_id
        )
    etree.SubElement(header, _q("CommandVariant")).text = str(command_variant)
    etree.SubElement(header, _q("ServiceReference")).text = service_reference
    etree.SubElement(header, _q("ServiceReferenceVariant")).text = service_reference_variant
    etree.SubElement(root, _q("Body")).append(body)
    return _document(root)


def _response_root(
    request_id: RequestId | None,
    response_id: RequestId | None,
    response_code: str,
    response_date_time: dt.datetime,
) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(_q("Response"), nsmap={"sr": SR_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    header = etree.SubElement(root, _q("Header"))
    if request_id is not None:
        etree.SubElement(header, _q("RequestID")).text = str(request_id)
    if response_id is not None:
        etree.SubElement(header, _q("ResponseID")).text = str(response_id)
    etree.SubElement(header, _q("ResponseCode")).text = response_code
    etree.SubElement(header, _q("ResponseDateTime")).text = _format_date_time(response_date_time)
    return root, etree.SubElement(root, _q("Body"))


def build_response(
    *,
    request_id: RequestId | None,
    response_code: str,
    response_date_time: dt.datetime,
    service_reference: str,
    service_reference_variant: str,
    response_id: RequestId | None = None,
    gbcs_payload: bytes | None = None,
) -> bytes:
    """Write a DUIS Response (DUIS 5.4 section 3.5): a device's response or an acknowledgement.

    Without ``gbcs_payload`` (and typically ``response_code`` ``I0``) it is the synchronous
    Acknowledgement; with it, the Device's response carrying the GBCS message (base64).

    Args:
        request_id: the request answered (``None`` only for unsolicited messages).
        response_code: a DUIS ResponseCode, e.g. ``I0``, ``I99``, ``E65``.
        response_date_time: when the response was made (written in UTC, milliseconds).
        service_reference, service_reference_variant: of the request.
        response_id: the ResponseID (device EUI-64 : user EUI-64 : counter), if any.
        gbcs_payload: the GBCS response octets.
    """
    root, body = _response_root(request_id, response_id, response_code, response_date_time)
    message = etree.SubElement(body, _q("ResponseMessage"))
    etree.SubElement(message, _q("ServiceReference")).text = service_reference
    etree.SubElement(message, _q("ServiceReferenceVariant")).text = service_reference_variant
    if gbcs_payload is not None:
        etree.SubElement(message, _q("GBCSPayload")).text = b64encode(gbcs_payload).decode()
    return _document(root)


def build_acknowledgement(
    *,
    request_id: RequestId,
    service_reference: str,
    service_reference_variant: str,
    response_date_time: dt.datetime,
    response_code: str = "I0",
) -> bytes:
    """Write the synchronous Acknowledgement of a request (DUIS 5.4 section 3.5.2)."""
    return build_response(
        request_id=request_id,
        response_code=response_code,
        response_date_time=response_date_time,
        service_reference=service_reference,
        service_reference_variant=service_reference_variant,
    )


def build_device_alert(
    *,
    response_id: RequestId,
    alert_code: int,
    gbcs_payload: bytes,
    response_date_time: dt.datetime,
    request_id: RequestId | None = None,
    response_code: str = "I0",
) -> bytes:
    """Write a DUIS Device Alert message (DUIS 5.4 section 3.5.5) carrying a GBCS alert.

    Args:
        response_id: device EUI-64 : user EUI-64 : counter.
        alert_code: the GBCS Alert Code, 0..0xFFFF (written as 4 hex digits).
        gbcs_payload: the GBCS alert octets.
        response_date_time: when the DCC forwarded it.
        request_id: the request it relates to, if any (e.g. future-dated alerts).
        response_code: ResponseCode, ``I0`` by default.

    Raises:
        BadInputError: ``alert_code`` out of range.
    """
    if not 0 <= alert_code <= 0xFFFF:
        raise BadInputError(f"Alert Code {alert_code} outside 0..0xFFFF")
    root, body = _response_root(request_id, response_id, response_code, response_date_time)
    alert = etree.SubElement(body, _q("DeviceAlertMessage"))
    etree.SubElement(alert, _q("AlertCode")).text = f"{alert_code:04X}"
    etree.SubElement(alert, _q("GBCSPayload")).text = b64encode(gbcs_payload).decode()
    return _document(root)


def build_precommand_response(
    *,
    request_id: RequestId,
    service_reference: str,
    service_reference_variant: str,
    response_date_time: dt.datetime,
    gbcs_payload: bytes,
    gbcs_version: str = "4.0",
) -> bytes:
    """Write the synchronous Transform Service response (CommandVariant 4) with a PreCommand.

    DUIS 5.4 section 3.2.4: the DCC returns the unsigned GBCS command (the Pre-Command) for
    the User to sign and send back with CommandVariant 5 (``SignedPreCommand``).

    Args:
        request_id: the Transform request's RequestID.
        service_reference, service_reference_variant: of the request.
        response_date_time: when the DCC answered.
        gbcs_payload: the Pre-Command octets (a GBCS message without signature).
        gbcs_version: the GBCSVersion element, e.g. ``"4.0"``.
    """
    root, body = _response_root(request_id, None, "I0", response_date_time)
    message = etree.SubElement(body, _q("ResponseMessage"))
    etree.SubElement(message, _q("ServiceReference")).text = service_reference
    etree.SubElement(message, _q("ServiceReferenceVariant")).text = service_reference_variant
    pre = etree.SubElement(message, _q("PreCommand"))
    etree.SubElement(pre, _q("GBCSVersion")).text = gbcs_version
    etree.SubElement(pre, _q("GBCSPayload")).text = b64encode(gbcs_payload).decode()
    return _document(root)


def build_dcc_alert(
    *,
    dcc_alert_code: str,
    alert: etree._Element,
    response_date_time: dt.datetime,
    request_id: RequestId | None = None,
    response_id: RequestId | None = None,
    response_code: str = "I0",
) -> bytes:
    """Write a DUIS DCC Alert message (DUIS 5.4 section 3.5.6, ``sr:DCCAlertMessage``).

    Args:
        dcc_alert_code: the DCCAlertCode, e.g. ``"N24"`` (an enumeration of the XSD).
        alert: the DCCAlert's content element, e.g. ``sr_element("UpdateHANDeviceLogResult",
            {"UpdateHANDeviceLogServiceRequestID": str(request_id)})``.
        response_date_time: when the DCC raised it.
        request_id: the request it relates to, if any.
        response_id: a ResponseID, if any.
        response_code: ResponseCode, ``I0`` by default.
    """
    root, body = _response_root(request_id, response_id, response_code, response_date_time)
    message = etree.SubElement(body, _q("DCCAlertMessage"))
    etree.SubElement(message, _q("DCCAlertCode")).text = dcc_alert_code
    etree.SubElement(message, _q("DCCAlert")).append(alert)
    return _document(root)


def build_local_command_response(
    *,
    request_id: RequestId,
    service_reference: str,
    service_reference_variant: str,
    response_date_time: dt.datetime,
    gbcs_payload: bytes,
    response_code: str = "I0",
) -> bytes:
    """Write the synchronous answer carrying a Command for Local Delivery.

    DUIS 5.4 XSD ``CommandVariant`` table: CommandVariants 2 and 6 return the command
    ("Cmd LD") synchronously and send nothing over the SM WAN; 3 and 7 return it and also
    send it over the SM WAN. The command is ``sr:ResponseMessage/sr:LocalCommand/
    sr:GBCSPayload`` (XSD ``LocalCommand``).

    Args:
        request_id: the request's RequestID.
        service_reference, service_reference_variant: of the request.
        response_date_time: when the DCC answered.
        gbcs_payload: the GBCS command octets for the HHT to deliver.
        response_code: ``I0`` (CV 2 / 6: complete) or ``I99`` (CV 3 / 7: the device's
            response over the WAN follows).
    """
    root, body = _response_root(request_id, None, response_code, response_date_time)
    message = etree.SubElement(body, _q("ResponseMessage"))
    etree.SubElement(message, _q("ServiceReference")).text = service_reference
    etree.SubElement(message, _q("ServiceReferenceVariant")).text = service_reference_variant
    local = etree.SubElement(message, _q("LocalCommand"))
    etree.SubElement(local, _q("GBCSPayload")).text = b64encode(gbcs_payload).decode()
    return _document(root)
