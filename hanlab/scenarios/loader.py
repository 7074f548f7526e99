"""Loading the scenario library: YAML files validated by :mod:`hanlab.scenarios.models`.

The library ships as package data (``hanlab/scenarios/library/*.yaml``, one file per
business scenario of seed 000 plus seed 001's Change of Supplier process); a lab may add
its own folder. Every problem is reported as ``file:line: field: message`` (the loader of
:mod:`hanlab.config.loader` does the YAML and the line numbers).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

from hanlab.config.loader import load_yaml_model
from hanlab.errors import BadInputError, ConfigError
from hanlab.scenarios.models import Scenario, Variant


class UnknownScenarioError(BadInputError):
    """No scenario (or variant) of that name is in the library."""


def library_folder() -> Path:
    """The shipped library's folder (``hanlab/scenarios/library``)."""
    return Path(str(resources.files("hanlab.scenarios").joinpath("library")))


def load_scenario_file(path: Path) -> Scenario:
    """One scenario file, validated; its ``name`` must equal the file's stem.

    Raises:
        ConfigError: invalid YAML or fields, with file and line.
    """
    scenario, _ = load_yaml_model(path, Scenario, "a scenario file (name, variants, …)")
    if scenario.name != path.stem:
        raise ConfigError([f"{path}:1: name: {scenario.name!r} must be the file's stem "
                           f"{path.stem!r}"])
    return scenario


def load_library(folders: Iterable[Path] = ()) -> dict[str, Scenario]:
    """The shipped library plus every ``*.yaml`` of ``folders`` (later files win).

    Raises:
        ConfigError: every problem of every file at once.
    """
    scenarios: dict[str, Scenario] = dict(_shipped())
    problems: list[str] = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.yaml")):
            try:
                scenario = load_scenario_file(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            scenarios[scenario.name] = scenario
    if problems:
        raise ConfigError(problems)
    return scenarios


@cache
def _shipped() -> tuple[tuple[str, Scenario], ...]:
    problems: list[str] = []
    out: list[tuple[str, Scenario]] = []
    for path in sorted(library_folder().glob("*.yaml")):
        try:
            scenario = load_scenario_file(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        out.append((scenario.name, scenario))
    if problems:
        raise ConfigError(problems)
    return tuple(out)


def get_scenario(name: str, scenarios: dict[str, Scenario] | None = None) -> Scenario:
    """The scenario ``name`` (a file stem, e.g. ``install-and-commission``).

    Raises:
        UnknownScenarioError: not in the library.
    """
    library = load_library() if scenarios is None else scenarios
    found = library.get(name)
    if found is None:
        raise UnknownScenarioError(
            f"no scenario {name!r} in the library",
            hint="list them with: hanlab scenarios list")
    return found


def get_variant(scenario: Scenario, variant_id: str) -> Variant:
    """The variant ``variant_id`` of ``scenario``.

    Raises:
        UnknownScenarioError: no such variant.
    """
    try:
        return scenario.variant(variant_id)
    except KeyError:
        ids = ", ".join(v.id for v in scenario.variants)
        raise UnknownScenarioError(
            f"scenario {scenario.name} has no variant {variant_id!r}",
            hint=f"variants: {ids}") from None
