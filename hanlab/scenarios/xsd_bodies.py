"""Complete a scenario step's Body into a DUIS 5.4 XSD-valid one (where an XSD is
configured): the step's ``params`` where given, the schema's minimum elsewhere.

The library carries only identifying fields (device IDs, request type, payment mode). A lab
that validates every document against ``DUIS Schema V5.4.xsd`` (the emulated DCC refuses an
invalid request with E1) gets, from the schema itself, each required element the step did
not give, with the smallest value its type allows: the first of an enumeration, the lower
bound of a range, the minimum length, a fixed sample for the few patterns DUIS uses. A
choice takes the alternative the params name, else the first. These values are schema
fillers, not business data: a real DCC needs complete ``params``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final

import xmlschema
from lxml import etree
from xmlschema.validators import XsdElement, XsdGroup

from hanlab.duis.xml import SR_NS
from hanlab.errors import BadInputError

_EUI64: Final = "00-00-00-00-00-00-00-00"
_PATTERN_SAMPLES: Final = (
    (re.compile(r"^\(?\[A-Fa-f0-9\]\{2\}-.*,\)\*"), _EUI64),  # EUI-64 list
    (re.compile(r"^\[A-Fa-f0-9\]\{2\}-.*:"), f"{_EUI64}:{_EUI64}:0"),  # RequestID
    (re.compile(r"^\[A-Fa-f0-9\]\{2\}-"), _EUI64),
    (re.compile(r"^\[0-9\]\{(\d+)\}$"), None),  # digits of a fixed length
    (re.compile(r"^\[ -~\]\+$"), "A"),
    (re.compile(r"^\[0-9 \]\+$"), "0"),
)
_MAX_DEPTH: Final = 32


class BodyCompleter:
    """Completes Body elements against the DUIS XSD (see the module docstring).

    Args:
        xsd_path: ``DUIS Schema V5.4.xsd``.

    Raises:
        BadInputError: the XSD cannot be read.
    """

    def __init__(self, xsd_path: Path | str) -> None:
        try:
            self._schema = xmlschema.XMLSchema(str(xsd_path))
        except (OSError, xmlschema.XMLSchemaException) as error:
            raise BadInputError(f"cannot read the DUIS XSD {xsd_path}: {error}") from error
        request: Any = self._schema.elements["Request"]
        body: Any = next(e for e in request.type.content.iter_elements()
                         if e.local_name == "Body")
        self._bodies: dict[str, Any] = {
            str(e.local_name): e for e in body.type.content.iter_elements()}

    def complete(self, name: str, params: Mapping[str, Any]) -> etree._Element:
        """The Body element ``name`` with ``params`` and every required element.

        Raises:
            BadInputError: ``name`` is not a DUIS Request Body element.
        """
        element = self._bodies.get(name)
        if element is None:
            raise BadInputError(f"{name} is not a DUIS 5.4 Request Body element")
        node = etree.Element(f"{{{SR_NS}}}{name}", nsmap={"sr": SR_NS})
        self._used: set[str] = set()
        self._fill(node, element, params, 0)
        unknown = sorted(set(params) - self._used)
        if unknown:
            raise BadInputError(f"{name} has no element {', '.join(unknown)} (DUIS 5.4 XSD)",
                                hint="name the Body's child elements in params")
        return node

    def _fill(self, node: etree._Element, element: Any, given: Any, depth: int) -> None:
        xsd_type: Any = element.type
        if depth > _MAX_DEPTH:
            return
        for attr_name, attribute in getattr(xsd_type, "attributes", {}).items():
            if attribute.use == "required" and attr_name:
                node.set(str(attr_name), _sample(attribute.type))
        if xsd_type.is_simple() or xsd_type.has_simple_content():
            simple = xsd_type if xsd_type.is_simple() else xsd_type.content
            node.text = _text(given) if given is not None and not isinstance(
                given, Mapping) else _sample(simple)
            return
        params = given if isinstance(given, Mapping) else {}
        if isinstance(xsd_type.content, XsdGroup):
            self._group(node, xsd_type.content, params, depth)

    def _group(self, node: etree._Element, group: XsdGroup, params: Mapping[str, Any],
               depth: int) -> None:
        particles = list(group)
        if group.model == "choice":
            chosen = next((p for p in particles if _names(p) & set(params)), None)
            if chosen is None and group.min_occurs == 0:
                return
            particles = [particles[0] if chosen is None else chosen]
        for particle in particles:
            if isinstance(particle, XsdGroup):
                if particle.min_occurs > 0 or _names(particle) & set(params):
                    self._group(node, particle, params, depth + 1)
                continue
            if not isinstance(particle, XsdElement):
                continue
            value = params.get(particle.local_name)
            if value is not None:
                self._used.add(particle.local_name)
            if value is None and particle.min_occurs == 0:
                continue
            values = value if isinstance(value, list) else [value]
            for _ in range(max(0, particle.min_occurs - len(values))):
                values.append(None)
            for item in values:
                child = etree.SubElement(node, f"{{{SR_NS}}}{particle.local_name}")
                self._fill(child, particle, item, depth + 1)


def _names(particle: Any) -> set[str]:
    if isinstance(particle, XsdElement):
        return {str(particle.local_name)}
    if isinstance(particle, XsdGroup):
        return {str(e.local_name) for e in particle.iter_elements()}
    return set()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sample(simple: Any) -> str:
    """The smallest value of an XSD simple type that satisfies its facets."""
    enumeration = getattr(simple, "enumeration", None)
    if enumeration:
        return _text(enumeration[0])
    patterns = getattr(simple, "patterns", None)
    if patterns:
        regex = patterns.regexps[0]
        for shape, sample in _PATTERN_SAMPLES:
            match = shape.match(regex)
            if match:
                return sample if sample is not None else "0" * int(match.group(1))
    base = getattr(simple, "primitive_type", None) or simple
    kind = getattr(base, "local_name", None) or ""
    lower = getattr(simple, "min_value", None)
    min_length = getattr(simple, "min_length", None) or 0
    length = getattr(simple, "length", None)
    if kind in ("decimal", "float", "double"):
        return str(lower if lower is not None else 0)
    if kind == "boolean":
        return "false"
    if kind == "dateTime":
        return dt.datetime(2030, 1, 1, tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    if kind == "date":
        return "2030-01-01"
    if kind == "time":
        return "00:00:00"
    if kind == "hexBinary":
        return "00" * max(length or 0, min_length, 1)
    if kind == "base64Binary":
        return "AAAA"
    if kind == "gMonthDay":
        return "--01-01"
    if kind == "duration":
        return "PT0S"
    if lower is not None:
        return str(lower)
    if getattr(simple, "is_derived", None) and _is_integer(simple):
        return "0"
    count = max(length or 0, min_length, 1)
    return "A" * count


def _is_integer(simple: Any) -> bool:
    name = getattr(simple, "local_name", "") or ""
    base = getattr(simple, "base_type", None)
    while base is not None and not name.endswith(("integer", "Integer", "int", "short",
                                                   "long", "byte")):
        name = getattr(base, "local_name", "") or ""
        base = getattr(base, "base_type", None)
    return name.lower().endswith(("integer", "int", "short", "long", "byte"))


@cache
def completer_for(xsd_path: Path) -> BodyCompleter:
    """One :class:`BodyCompleter` per XSD file (building it parses the schema, ~1 s)."""
    return BodyCompleter(xsd_path)
