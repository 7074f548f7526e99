"""Business scenarios as data and their runner (issue 5, items 3 and 4).

The library (:mod:`.loader`, ``library/*.yaml``): seed 000's 18 DIT business scenarios with
their 80 variants as Service Request sequences, and seed 001's Change of Supplier process.
The runner (:mod:`.runner`) sends them through a :class:`hanlab.duis.client.DuisClient`;
:mod:`.emulated_lab` stands up the emulated DCC and HAN for it; :mod:`.store` keeps results.
"""

from hanlab.scenarios.loader import (
    UnknownScenarioError,
    get_scenario,
    get_variant,
    library_folder,
    load_library,
    load_scenario_file,
)
from hanlab.scenarios.models import (
    ChFirmwareStep,
    ExternalStep,
    PauseStep,
    Scenario,
    SrStep,
    Step,
    Variant,
    WaitAlertStep,
)

__all__ = [
    "ChFirmwareStep",
    "ExternalStep",
    "PauseStep",
    "Scenario",
    "SrStep",
    "Step",
    "UnknownScenarioError",
    "Variant",
    "WaitAlertStep",
    "get_scenario",
    "get_variant",
    "library_folder",
    "load_library",
    "load_scenario_file",
]
