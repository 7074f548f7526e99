"""CH firmware roll-out in the emulated DCC (SECMP0024, seed 004; issue 12 items 3, 4).

* :mod:`.model` the records; :mod:`.rules` the rules, pure, each citing its clause;
* :mod:`.service` the DCC's roll-out service (lab scale, in memory, with the deployment
  hook the lab wires to its rigs);
* :mod:`.auth` per-User HMAC request signing; :mod:`.portal` the machine-to-machine API
  (solution option 2, section 3.2), mounted on the emulated DCC under ``/rollout/v1``;
* :mod:`.estate` the same rules over a synthetic estate of millions of CHs in DuckDB.
"""

from hanlab.emulator.dcc.rollout.auth import PortalUser, authorization
from hanlab.emulator.dcc.rollout.model import ChRecord, DeployOrder, Notification
from hanlab.emulator.dcc.rollout.portal import RolloutPortal
from hanlab.emulator.dcc.rollout.rules import RolloutConfig, Rule, RuleViolation
from hanlab.emulator.dcc.rollout.service import PilotRules, RolloutService

__all__ = [
    "ChRecord",
    "DeployOrder",
    "Notification",
    "PilotRules",
    "PortalUser",
    "RolloutConfig",
    "RolloutPortal",
    "RolloutService",
    "Rule",
    "RuleViolation",
    "authorization",
]
