"""Validation of DUIS documents against the DUIS 5.4 XML Schema (DUIS 5.4 section 3.3).

The schema files (``DUIS Schema V5.4.xsd``, ``MMC Schema V5.4.xsd``,
``xmldsig-core-schema.xsd``) are GPL-3.0-or-later and are **not** shipped in this package:
pass the path of ``DUIS Schema V5.4.xsd`` (the others beside it), e.g. from the lab config.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from hanlab.errors import BadInputError

_XSD_NS = "http://www.w3.org/2001/XMLSchema"


class DuisSchemaError(BadInputError):
    """The DUIS XSD cannot be loaded, or a document does not validate against it.

    Args:
        message: the cause.
        problems: one line per schema violation, ``line N: message``.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        detail = f": {self.problems[0]}" if self.problems else ""
        super().__init__(message + detail, hint="compare the document with DUIS 5.4 section 3.3")


class DuisSchema:
    """A compiled DUIS 5.4 XML Schema.

    Args:
        xsd_path: path of ``DUIS Schema V5.4.xsd``; its imports are read from the same folder
            (never from the network).

    Raises:
        DuisSchemaError: the file is missing or does not compile.
    """

    def __init__(self, xsd_path: Path | str) -> None:
        path = Path(xsd_path).resolve()
        if not path.is_file():
            raise DuisSchemaError(f"DUIS XSD not found at {path}")
        # Schema files are trusted local files: their internal entities (xmldsig) are needed.
        parser = etree.XMLParser(no_network=True)
        try:
            tree = etree.parse(str(path), parser)
            for node in tree.getroot().iter(f"{{{_XSD_NS}}}import", f"{{{_XSD_NS}}}include"):
                location = node.get("schemaLocation")
                if location and "://" not in location:
                    # libxml2 does not find relative locations with spaces ("MMC Schema ...").
                    node.set("schemaLocation", (path.parent / location).as_uri())
            self._schema = etree.XMLSchema(tree)
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as error:
            raise DuisSchemaError(f"cannot load DUIS XSD {path}: {error}") from error
        self.path = path

    def problems(self, document: etree._Element | etree._ElementTree) -> list[str]:
        """Schema violations of ``document``, ``line N: message`` each; ``[]`` when valid."""
        if self._schema.validate(document):
            return []
        return [f"line {entry.line}: {entry.message}" for entry in self._schema.error_log]

    def check(self, document: etree._Element | etree._ElementTree) -> None:
        """Raise :class:`DuisSchemaError` unless ``document`` is valid DUIS 5.4."""
        problems = self.problems(document)
        if problems:
            raise DuisSchemaError("DUIS document does not validate", problems)


@cache
def load_duis_schema(xsd_path: Path | str) -> DuisSchema:
    """The compiled :class:`DuisSchema` for ``xsd_path``, compiled once per path."""
    return DuisSchema(xsd_path)
