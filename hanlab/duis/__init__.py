"""DUIS layer: Service Request catalogue, request / response XML, schema validation.

DUIS 5.4 (DCC User Interface Specification). Imported on demand, not from here: the HTTP
client (:mod:`hanlab.duis.client`), the response receiver (:mod:`.receiver`), the DUIS log
(:mod:`.log`), RequestID counters (:mod:`.counters`) and XML signing (:mod:`.signing`).
"""

from hanlab.duis.catalogue import (
    GbcsMapping,
    ServiceRequestMappingError,
    ServiceRequestVariant,
    UnknownServiceRequestError,
    all_variants,
    message_code_for,
    sr,
)
from hanlab.duis.schema import DuisSchema, DuisSchemaError, load_duis_schema
from hanlab.duis.xml import (
    DuisRequest,
    DuisResponse,
    DuisXmlError,
    RequestId,
    build_acknowledgement,
    build_dcc_alert,
    build_device_alert,
    build_precommand_response,
    build_request,
    build_response,
    parse_request,
    parse_response,
    parse_xml,
    sr_element,
)

__all__ = [
    "DuisRequest",
    "DuisResponse",
    "DuisSchema",
    "DuisSchemaError",
    "DuisXmlError",
    "GbcsMapping",
    "RequestId",
    "ServiceRequestMappingError",
    "ServiceRequestVariant",
    "UnknownServiceRequestError",
    "all_variants",
    "build_acknowledgement",
    "build_dcc_alert",
    "build_device_alert",
    "build_precommand_response",
    "build_request",
    "build_response",
    "load_duis_schema",
    "message_code_for",
    "parse_request",
    "parse_response",
    "parse_xml",
    "sr",
    "sr_element",
]
