#!/usr/bin/env python3
"""Generate ``hanlab/duis/data/sr_catalogue.json`` from the shared corpus (run once).

Inputs (``../shared/corpus`` by default, GPL-3.0-or-later facts, not copied verbatim):

* ``duis/duis-request-matrix.json``: the 129 Service Request variants and their flags.
* ``duis/gbcs-mapping-table.json``: GBCS use case -> Service Reference (not variant); rows
  that share a Code are told apart by ``hanlab.gbcs.codes.MAPPING_TABLE_USE_CASES``.
* ``duis/templates/<use case>_<SR variant>_…``: which use case each variant becomes.
* ``gbcs-rtds/<SR variant>_<use case>/…_COMMAND_GBCS.HEX``: the exact Message Codes.
* :data:`GBCS_READINGS`: the few mappings none of those give (cited per row).

Per variant, each GBCS mapping says where it came from: ``rtds`` (a Message Code read from
an RTDS command of that variant), ``template`` (a DUIS template of that variant names the
use case) or ``service-reference`` (the mapping table lists the use case for the variant's
Service Reference only: a candidate, less precise).

Usage: ``python tools/gen_sr_catalogue.py [--corpus DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

from lxml import etree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hanlab.gbcs import GbcsMessage, message_codes_for_use_case, parse_gbcs_message  # noqa: E402
from hanlab.gbcs.codes import MAPPING_TABLE_USE_CASES, use_case_in_name  # noqa: E402

# GBCS use case family -> device type the SR targets (GBCS v5.x section 13 use case naming;
# GSME commands travel through the GPF but DUIS addresses the GSME).
DEVICE_TYPE_BY_USE_CASE: dict[str, str] = {
    "CS01a": "ESME", "CS01b": "GSME", "CS09": "PPMID",
    "GCS09": "GPF", "GCS59": "GPF", "GCS62": "GPF", "GCS21e": "GSME",
    # GBCS titles: "Read CHF Configuration Data ...", "Read CHF Event / Security Log"
    "ECS26i": "CHF", "ECS26n": "CHF", "ECS35c": "CHF", "ECS35d": "CHF",
}
DEVICE_TYPE_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("DBCH", "CHF"), ("CCS", "CHF"), ("PECS", "ESME"), ("HECS", "ESME"), ("ECS", "ESME"),
    ("GCS", "GSME"), ("PCS", "GSME"), ("CS", "ANY"),
)
BOOL = {"Yes": True, "No": False}

# SR variant -> (use case, why): mappings neither RTDS, templates nor the mapping table give.
GBCS_READINGS: dict[str, tuple[str, str]] = {
    "7.5": ("ECS47", "GBCS ECS47 'Set or Reset HC ALCS or ALCS State' activates, deactivates "
            "(SR 7.6, RTDS) and resets (SR 7.8, RTDS) an auxiliary load"),
}
_ENUMERATION = re.compile(r"[A-Za-z][A-Za-z ]{0,39}")
_TEMPLATE = re.compile(r"([A-Za-z][A-Za-z0-9-]*)_(\d+(?:\.\d+)*)_")
Feature = tuple[str, str | None]


def service_reference(row: dict[str, Any]) -> str:
    """The row's Service Reference, repaired where the matrix lost a trailing zero.

    The matrix gives ``6.2`` for variants ``6.20.1`` / ``6.20.2`` (a number, not a string, on
    its way from the DUIS spreadsheet); DUIS 5.4 and its templates say ``6.20``.
    """
    reference: str = row["Service Reference"]
    variant: str = row["Service Reference Variant"]
    if variant == reference or variant.startswith(reference + "."):
        return reference
    parent = variant.rsplit(".", 1)[0]
    if parent.rstrip("0") == reference.rstrip("0"):
        return parent
    raise SystemExit(f"matrix row {variant}: Service Reference {reference} does not fit")


def device_type(use_case: str) -> str:
    if use_case in DEVICE_TYPE_BY_USE_CASE:
        return DEVICE_TYPE_BY_USE_CASE[use_case]
    for prefix, kind in DEVICE_TYPE_BY_PREFIX:
        if use_case.startswith(prefix):
            return kind
    return "ANY"


def body_features(path: Path) -> set[Feature]:
    """Every element of the template's ``sr:Body`` as ``(name, None)`` and every leaf with
    enumeration-like text as ``(name, text)``."""
    root = etree.parse(str(path)).getroot()
    features: set[Feature] = set()
    for body in root.iter("{*}Body"):
        for node in body.iter():
            if not isinstance(node.tag, str) or node is body:
                continue
            name = etree.QName(node).localname
            features.add((name, None))
            text = (node.text or "").strip()
            if len(node) == 0 and _ENUMERATION.fullmatch(text):
                features.add((name, text))
    return features


def selectors(templates: dict[tuple[str, int | None], list[set[Feature]]]
              ) -> dict[tuple[str, int | None], tuple[Feature, ...]]:
    """Per mapping key of one variant and device type: the fewest features (one, else two)
    all its templates have together and no other key's template has together (element
    presence preferred, then values, by name)."""
    def rank(feature: Feature) -> tuple[bool, str, str]:
        return feature[1] is not None, feature[0], feature[1] or ""

    chosen: dict[tuple[str, int | None], tuple[Feature, ...]] = {}
    for key, own in templates.items():
        others = [f for k, fs in templates.items() if k != key for f in fs]
        common = sorted(set.intersection(*own), key=rank)
        candidates = [(f,) for f in common] + list(itertools.combinations(common, 2))
        for candidate in candidates:
            if not any(set(candidate) <= other for other in others):
                chosen[key] = candidate
                break
    return chosen


def template_key(corpus: Path, path: Path, known: set[str]) -> tuple[str, str, int | None] | None:
    """``(variant, use case, Message Code)`` a template becomes: the RTDS command of the same
    name gives the Message Code, else the use case's single one."""
    match = _TEMPLATE.match(path.name)
    if not match:
        return None
    use_case = use_case_in_name(match.group(1), known)
    if use_case is None:
        return None
    variant = match.group(2)
    command = (corpus / "gbcs-rtds" / f"{variant}_{match.group(1)}"
               / path.name.replace("_REQUEST_DUIS.XML", "_COMMAND_GBCS.HEX"))
    if command.is_file():
        message = parse_gbcs_message(bytes.fromhex(command.read_text().strip()))
        if isinstance(message, GbcsMessage):
            return variant, use_case, message.message_code
    codes = message_codes_for_use_case(use_case)
    return variant, use_case, codes[0] if len(codes) == 1 else None


def add_selectors(gbcs: list[dict[str, Any]],
                  templates: dict[tuple[str, int | None], list[set[Feature]]]) -> None:
    """Give each mapping of a device type with several mappings its ``selector``."""
    for kind in {m["device_type"] for m in gbcs}:
        rows = [m for m in gbcs if m["device_type"] == kind]
        keys = {(m["use_case"], m["message_code"]) for m in rows}
        if len(keys) < 2:
            continue
        seen = {k: v for k, v in templates.items() if k in keys}
        if len(seen) < 2:
            continue  # one mapping's templates alone tell nothing apart
        chosen = selectors(seen)
        for m in rows:
            features = chosen.get((m["use_case"], m["message_code"]))
            if features is not None:
                m["selector"] = [list(feature) for feature in features]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument(
        "--out", type=Path, default=REPO / "hanlab" / "duis" / "data" / "sr_catalogue.json"
    )
    args = parser.parse_args()
    duis = args.corpus / "duis"
    matrix = json.loads((duis / "duis-request-matrix.json").read_text())
    mapping = json.loads((duis / "gbcs-mapping-table.json").read_text())
    known = {row["Code"] for row in mapping}

    # variant -> {(use case, message code | None, source)}
    evidence: dict[str, set[tuple[str, int | None, str]]] = {}
    for folder in sorted((args.corpus / "gbcs-rtds").iterdir()):
        variant, _, name = folder.name.partition("_")
        use_case = use_case_in_name(name, known)
        if use_case is None or variant == "NA":
            continue
        for hex_file in folder.glob("*_COMMAND_GBCS.HEX"):
            message = parse_gbcs_message(bytes.fromhex(hex_file.read_text().strip()))
            if isinstance(message, GbcsMessage) and "ERROR" not in hex_file.name:
                evidence.setdefault(variant, set()).add((use_case, message.message_code, "rtds"))
    features: dict[str, dict[tuple[str, int | None], list[set[Feature]]]] = {}
    for template in sorted((duis / "templates").glob("*_REQUEST_DUIS.XML")):
        found_key = template_key(args.corpus, template, known)
        if found_key is None:
            continue
        variant, use_case, code = found_key
        have = evidence.setdefault(variant, set())
        if not any(uc == use_case and (c == code or code is None) for uc, c, _ in have):
            have.add((use_case, code, "template"))
        features.setdefault(variant, {}).setdefault((use_case, code), []).append(
            body_features(template))
    for variant, (use_case, _why) in GBCS_READINGS.items():
        codes = message_codes_for_use_case(use_case)
        evidence.setdefault(variant, set()).add((use_case, codes[0], "gbcs"))
    by_reference: dict[str, list[str]] = {}
    for row in mapping:
        name = " ".join(str(row["Use Case Name"]).split())
        use_case = MAPPING_TABLE_USE_CASES.get((row["Code"], name), row["Code"])
        for reference in str(row["Service Reference"]).split(","):
            by_reference.setdefault(reference.strip(), []).append(use_case)
    variants_of: dict[str, list[str]] = {}
    for row in matrix:
        variants_of.setdefault(service_reference(row), []).append(
            row["Service Reference Variant"])

    variants: list[dict[str, Any]] = []
    for row in matrix:
        variant = row["Service Reference Variant"]
        found = evidence.get(variant, set())
        reference = service_reference(row)
        siblings = {uc for v in variants_of[reference] for uc, _, _ in evidence.get(v, ())}
        if BOOL[row["Non-Device Request"]] is False:
            for use_case in by_reference.get(reference, []):
                if found and use_case in siblings:
                    continue
                codes = message_codes_for_use_case(use_case)
                code = codes[0] if len(codes) == 1 else None
                found.add((use_case, code, "service-reference"))
        gbcs: list[dict[str, Any]] = [
            {"device_type": device_type(uc), "use_case": uc, "message_code": code,
             "source": source}
            for uc, code, source in sorted(found, key=lambda e: (e[0], e[1] or 0))
        ]
        add_selectors(gbcs, features.get(variant, {}))
        variants.append({
            "name": row["Service Request Name"],
            "service_reference": reference,
            "service_reference_variant": variant,
            "critical": BOOL[row["Critical"]],
            "on_demand": BOOL[row["On Demand"]],
            "future_dated_response_pattern": row["Future Dated Response Pattern"],
            "dcc_scheduled": BOOL[row["DCC Scheduled"]],
            "non_device": BOOL[row["Non-Device Request"]],
            "eligible_user_roles": list(row["Eligible User Roles"]),
            "gbcs": gbcs,
        })
    document = {
        "schema_version": 1,
        "source": "generated by tools/gen_sr_catalogue.py from DUIS 5.4 request matrix, "
        "GBCS mapping table, DUIS templates and RTDS 4.5.0 (facts, GPL-3.0-or-later sources)",
        "variants": variants,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    mapped = sum(1 for v in variants if v["gbcs"])
    print(f"{len(variants)} SR variants, {mapped} with a GBCS mapping -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
