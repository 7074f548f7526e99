"""The DUIS Service Request catalogue: 129 SR variants and the GBCS they become.

Data: ``hanlab/duis/data/sr_catalogue.json``, generated once by ``tools/gen_sr_catalogue.py``
from the DUIS 5.4 request matrix (DUIS 5.4 section 3.2 and Annex "Service Request
Matrix"), the GBCS mapping table, the DUIS templates and the RTDS 4.5.0 messages. Read
from the package at first use; nothing outside the package is read at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from lxml import etree

from hanlab.errors import BadInputError

MappingSource = Literal["rtds", "template", "gbcs", "service-reference"]
"""Where a GBCS mapping comes from, most precise first: a Message Code read from an RTDS
command of the variant; a DUIS template of the variant; hanlab's reading of the GBCS use
case (``tools/gen_sr_catalogue.py`` ``GBCS_READINGS``, cited there); the GBCS mapping table
entry for the variant's Service Reference only (a candidate)."""

_SOURCE_ORDER = {"rtds": 0, "template": 1, "gbcs": 2, "service-reference": 3}
Feature = tuple[str, str | None]
"""A body feature: ``(element local name, None)`` (present) or ``(name, text)``."""


class UnknownServiceRequestError(BadInputError):
    """No SR variant of that name is in the catalogue (DUIS 5.4 section 3.2)."""


class ServiceRequestMappingError(BadInputError):
    """An SR variant has no (or no single) GBCS Message Code for a device type."""


@dataclass(frozen=True, slots=True)
class GbcsMapping:
    """One GBCS use case an SR variant becomes for one device type.

    Attributes:
        device_type: ``ESME``, ``GSME``, ``GPF``, ``CHF``, ``PPMID`` or ``ANY`` (the SR's
            target device, whatever its type: the CS use cases).
        use_case: GBCS use case id, e.g. ``ECS17b``.
        message_code: the GBCS Message Code, or ``None`` where the use case has several
            (CS02b) and no RTDS command named the one.
        source: see :data:`MappingSource`.
        selector: where the variant has several mappings for the device type, the request
            body features (one or two) that choose this one, read from the variant's DUIS
            templates: every template of this mapping has them all, none of the others'
            does; ``()`` where the body cannot tell (e.g. ECS26d / ECS26l by device
            generation).
    """

    device_type: str
    use_case: str
    message_code: int | None
    source: MappingSource
    selector: tuple[Feature, ...] = ()

    def selects(self, body: etree._Element) -> bool:
        """Whether the SR body (any element of the request's ``sr:Body``) has every feature
        of :attr:`selector`; ``False`` without one."""
        if not self.selector:
            return False
        present: set[Feature] = set()
        for node in body.iter():
            if isinstance(node.tag, str):
                name = etree.QName(node).localname
                present |= {(name, None), (name, (node.text or "").strip())}
        return set(self.selector) <= present


@dataclass(frozen=True, slots=True)
class ServiceRequestVariant:
    """One DUIS Service Request variant (DUIS 5.4 section 3.2, Service Request Matrix).

    Attributes:
        name: e.g. ``Read Instantaneous Import Registers``.
        service_reference: e.g. ``4.1``.
        service_reference_variant: e.g. ``4.1.1``.
        critical: the SR must be signed by the user (XML-DSig) and its GBCS is critical.
        on_demand: may be sent for immediate execution.
        future_dated_response_pattern: ``No``, ``DSP``, ``Device`` or ``DSP & Device``.
        dcc_scheduled: may be scheduled by the DCC.
        non_device: the DCC answers it itself; no GBCS goes to a device.
        eligible_user_roles: e.g. ``("IS", "GS")``.
        gbcs: the GBCS use cases per device type (empty for non-device SRs).
    """

    name: str
    service_reference: str
    service_reference_variant: str
    critical: bool
    on_demand: bool
    future_dated_response_pattern: str
    dcc_scheduled: bool
    non_device: bool
    eligible_user_roles: tuple[str, ...]
    gbcs: tuple[GbcsMapping, ...]

    def message_codes(
        self, device_type: str, body: etree._Element | None = None
    ) -> tuple[int, ...]:
        """Message Codes of this variant for ``device_type``, of the most precise source.

        Mappings for exactly that device type win over ``ANY`` ones (the CS use cases).
        With the request ``body``, the mappings whose :attr:`GbcsMapping.selector` it has
        come first (a DCC chooses CCS01 or CCS02 for SR 8.11 by the body), whatever their
        source.
        """
        wanted = device_type.upper()
        exact = [m for m in self.gbcs if m.device_type == wanted]
        rows = sorted(
            exact or [m for m in self.gbcs if m.device_type == "ANY"],
            key=lambda m: _SOURCE_ORDER[m.source],
        )
        chosen = [m for m in rows if m.selects(body)] if body is not None else []
        best = chosen or [m for m in rows
                          if _SOURCE_ORDER[m.source] == _SOURCE_ORDER[rows[0].source]]
        return tuple(dict.fromkeys(m.message_code for m in best if m.message_code is not None))


@cache
def _load() -> dict[str, ServiceRequestVariant]:
    text = resources.files("hanlab.duis").joinpath("data/sr_catalogue.json").read_text("utf-8")
    document = json.loads(text)
    variants: dict[str, ServiceRequestVariant] = {}
    for row in document["variants"]:
        variants[row["service_reference_variant"]] = ServiceRequestVariant(
            name=row["name"],
            service_reference=row["service_reference"],
            service_reference_variant=row["service_reference_variant"],
            critical=row["critical"],
            on_demand=row["on_demand"],
            future_dated_response_pattern=row["future_dated_response_pattern"],
            dcc_scheduled=row["dcc_scheduled"],
            non_device=row["non_device"],
            eligible_user_roles=tuple(row["eligible_user_roles"]),
            gbcs=tuple(_mapping(mapping) for mapping in row["gbcs"]),
        )
    return variants


def _mapping(row: dict[str, Any]) -> GbcsMapping:
    return GbcsMapping(
        device_type=row["device_type"], use_case=row["use_case"],
        message_code=row["message_code"], source=row["source"],
        selector=tuple((name, text) for name, text in row.get("selector", ())),
    )


def all_variants() -> tuple[ServiceRequestVariant, ...]:
    """All SR variants in DUIS order (129 in DUIS 5.4)."""
    return tuple(_load().values())


def sr(variant: str) -> ServiceRequestVariant:
    """The SR variant named by its ServiceReferenceVariant, e.g. ``sr("4.1.1")``.

    Raises:
        UnknownServiceRequestError: no such variant in DUIS 5.4.
    """
    found = _load().get(variant.strip())
    if found is None:
        raise UnknownServiceRequestError(
            f"unknown Service Request variant {variant!r}",
            hint="use a ServiceReferenceVariant of DUIS 5.4, e.g. 4.1.1",
        )
    return found


def message_code_for(
    variant: str, device_type: str, body: etree._Element | None = None
) -> int:
    """The GBCS Message Code SR ``variant`` becomes for a device of ``device_type``.

    Args:
        variant: ServiceReferenceVariant, e.g. ``"4.1.1"``.
        device_type: ``ESME``, ``GSME``, ``GPF``, ``CHF``, ``PPMID`` (case-insensitive).
        body: the request's ``sr:Body`` (or its child), to choose among several use cases
            by :attr:`GbcsMapping.selector` (8.11 ``RequestType`` Remove -> CCS02).

    Returns:
        E.g. ``message_code_for("4.1.1", "ESME") == 0x0027`` (ECS17b).

    Raises:
        UnknownServiceRequestError: unknown variant.
        ServiceRequestMappingError: the variant has no Message Code for that device type, or
            several equally precise ones (e.g. 8.11 is CCS01 or CCS02 by its RequestType).
    """
    entry = sr(variant)
    codes = entry.message_codes(device_type, body)
    if len(codes) != 1:
        what = "no" if not codes else f"{len(codes)} ({', '.join(f'0x{c:04X}' for c in codes)})"
        raise ServiceRequestMappingError(
            f"SR {variant} has {what} GBCS Message Codes for {device_type.upper()}",
            hint="see hanlab.duis.catalogue.sr(variant).gbcs for the use cases",
        )
    return codes[0]
