"""hanlab's GBCS and DCC code tables against the corpus and the seeds.

* Every use case of ``duis/gbcs-mapping-table.json`` is in ``hanlab.gbcs.codes`` with its
  Message Code(s), or listed with the reason it has none.
* Every device Alert Code the seeds name (``0x8F1C Device Firmware Verification ...``) and
  every Alert Code of an RTDS 4.5.0 alert file name is in ``ALERT_CODES``.
* Every DCC Alert Code (``N24``) the seeds describe is in ``DCC_ALERT_CODES`` with the
  seed's meaning, and every code there is one the DUIS 5.4 XSD allows.
* Every device SR variant whose Service Reference the mapping table names has a GBCS
  mapping, and every use case the mapping table names for a Service Reference is mapped
  by a variant of it (the SR catalogue).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hanlab.duis import all_variants
from hanlab.emulator.dcc.alerts import DCC_ALERT_CODES, dcc_alert_meaning
from hanlab.gbcs.codes import (
    ALERT_CODES,
    MAPPING_TABLE_USE_CASES,
    USE_CASES_WITHOUT_MESSAGE_CODE,
    message_codes_for_use_case,
    use_cases,
)
from tests.conftest import REPO_ROOT, need

_WORD = re.compile(r"[a-z0-9]+")


@pytest.fixture(scope="module")
def mapping_table(corpus_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        (corpus_dir / "duis" / "gbcs-mapping-table.json").read_text("utf-8"))
    assert len(rows) >= 207
    return rows


@pytest.fixture(scope="module")
def seed_text() -> str:
    seeds = REPO_ROOT.parent / "shared" / "seeds"
    need(seeds.is_dir(), f"seeds not found at {seeds}")
    return "\n".join(p.read_text("utf-8", errors="replace") for p in sorted(seeds.glob("*.txt")))


def hanlab_use_case(row: dict[str, Any]) -> str:
    """The GBCS use case id hanlab gives a mapping-table row."""
    name = " ".join(str(row["Use Case Name"]).split())
    return MAPPING_TABLE_USE_CASES.get((row["Code"], name), row["Code"])


def test_every_mapping_table_use_case_is_in_the_tables(
    mapping_table: list[dict[str, Any]]
) -> None:
    known = set(use_cases())
    missing = [
        f"{row['Code']} {row['Use Case Name']!r} -> {hanlab_use_case(row)}"
        for row in mapping_table
        if hanlab_use_case(row) not in known
        and hanlab_use_case(row) not in USE_CASES_WITHOUT_MESSAGE_CODE
    ]
    assert not missing, f"{len(missing)} use cases missing:\n" + "\n".join(missing)
    assert all(message_codes_for_use_case(hanlab_use_case(row))
               for row in mapping_table
               if hanlab_use_case(row) not in USE_CASES_WITHOUT_MESSAGE_CODE)
    codes = [row["Code"] for row in mapping_table]
    repeated = {code for code in codes if codes.count(code) > 1}
    resolved = {hanlab_use_case(row) for row in mapping_table if row["Code"] in repeated}
    assert len(resolved) == sum(codes.count(code) for code in repeated), (
        "MAPPING_TABLE_USE_CASES must give each repeated-code row its own use case")
    assert set(USE_CASES_WITHOUT_MESSAGE_CODE) <= set(codes)
    assert not set(USE_CASES_WITHOUT_MESSAGE_CODE) & known


def test_every_seed_and_rtds_alert_code_is_known(seed_text: str, corpus_dir: Path) -> None:
    named = {int(code, 16) for code in re.findall(r"\b0x(8[0-9A-Fa-f]{3})\b", seed_text)}
    assert len(named) >= 10
    named |= {int(match.group(1), 16)
              for path in (corpus_dir / "gbcs-rtds").glob("*/*ALERT*_GBCS.HEX")
              if (match := re.search(r"_([89][0-9A-F]{3})_", path.name))}
    missing = sorted(f"0x{code:04X}" for code in named if code not in ALERT_CODES)
    assert not missing, f"Alert Codes missing from ALERT_CODES: {missing}"


def seed_descriptions(seed_text: str) -> dict[str, list[str]]:
    """N-code -> the texts after it in the seeds' alert tables (its line and the two
    next non-empty lines, which hold the wrapped description)."""
    lines = [line for line in seed_text.splitlines() if line.strip()]
    found: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        for match in re.finditer(r"\bN(\d{1,2})(?:-N(\d{1,2}))?\b", line):
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            text = " ".join([line[match.end():], *lines[index + 1:index + 3]])
            for number in range(first, last + 1):
                found.setdefault(f"N{number}", []).append(text)
    return found


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower().replace("places", "placed")))


def test_dcc_alert_codes_have_the_seeds_meanings(seed_text: str, corpus_dir: Path) -> None:
    described = seed_descriptions(seed_text)
    in_tables = {code for code, texts in described.items()
                 if any(re.search(r"\bDCC\b|Alert|Restore|Update|Removal", t) for t in texts)}
    missing = sorted(in_tables - set(DCC_ALERT_CODES), key=lambda c: int(c[1:]))
    assert not missing, f"DCC Alert Codes the seeds describe, missing: {missing}"
    wrong: list[str] = []
    for code, info in DCC_ALERT_CODES.items():
        meaning = words(info.meaning)
        best = max((len(meaning & words(t)) / len(meaning) for t in described.get(code, [])),
                   default=0.0)
        if best < 0.8:
            wrong.append(f"{code}: {info.meaning!r} is not what the seeds say")
        if "seed 000" not in info.source:
            wrong.append(f"{code}: no seed cited")
    assert not wrong, "\n".join(wrong)
    assert dcc_alert_meaning("N3").startswith("Cancellation of Future Dated")
    assert dcc_alert_meaning("n24") == "Update HAN Device Log - Success"
    assert dcc_alert_meaning("N999") == "unknown"
    xsd = etree.parse(str(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd"))
    allowed = {node.get("value") for node in xsd.iter("{*}enumeration")
               if re.fullmatch(r"N\d+|AD1", node.get("value") or "")}
    assert set(DCC_ALERT_CODES) <= allowed


def test_every_sr_of_a_mapped_service_reference_has_its_mapping(
    mapping_table: list[dict[str, Any]]
) -> None:
    named: dict[str, set[str]] = {}
    for row in mapping_table:
        for reference in str(row["Service Reference"]).split(","):
            named.setdefault(reference.strip(), set()).add(hanlab_use_case(row))
    variants = [v for v in all_variants() if not v.non_device]
    empty = [v.service_reference_variant for v in variants
             if v.service_reference in named and not v.gbcs]
    assert not empty, f"SR variants with no GBCS mapping: {empty}"
    unmapped: list[str] = []
    for reference, wanted in sorted(named.items()):
        siblings = [v for v in variants if v.service_reference == reference]
        if not siblings:
            continue
        have = {m.use_case for v in siblings for m in v.gbcs}
        unmapped += [f"{reference}: {uc}" for uc in sorted(wanted - have)]
    assert not unmapped, "use cases the mapping table names, mapped by no SR variant:\n" + (
        "\n".join(unmapped))
    assert all(v.gbcs for v in variants), [v.service_reference_variant
                                          for v in variants if not v.gbcs]
