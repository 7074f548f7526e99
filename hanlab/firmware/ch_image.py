"""A Communications Hub firmware image as data (issue 12, item 1): what the emulated CH
runs and what a scenario's ``ch_firmware`` step deploys (:mod:`hanlab.emulator.han.ch_upgrade`).

Seed 000, DIT.9: v1.1 Communications Hubs "operate to ZigBee 1.4", existing Devices to
ZigBee 1.2a; a CHTS v1.0 CH is assumed here to run SE 1.2a on ZigBee PRO R20.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_CH_IMAGE", "ChImage", "SeVersion", "ZigbeeStack"]

SeVersion = Literal["1.2a", "1.4"]
"""ZigBee Smart Energy version a device behaves as (seed 000 DIT.9: "ZigBee 1.2a" /
"ZigBee 1.4")."""
ZigbeeStack = Literal["R20", "R21", "R22", "R23"]
"""ZigBee PRO stack revision of a CH image."""

class ChImage(BaseModel):
    """A Communications Hub firmware image, as data (the emulator runs no code from it).

    Attributes:
        version: the CH firmware version (DUIS SR 11.2 reads it), e.g. ``CH-EMU-2.0.0``.
        chts_version: the CHTS version it implements, e.g. ``CHTS v1.1``.
        zigbee_stack: ZigBee PRO stack revision (``R20`` .. ``R23``).
        se_version: ZigBee Smart Energy version of the CH (seed 000 DIT.9: v1.1 CHs
            "operate to ZigBee 1.4").
        reboot_s: emulated seconds the CH is silent while it reboots into the image.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=64)
    chts_version: str = Field(default="", max_length=32)
    zigbee_stack: ZigbeeStack = "R22"
    se_version: SeVersion = "1.4"
    reboot_s: float = Field(default=30.0, gt=0, le=3600)

    @property
    def verifies_link_keys(self) -> bool:
        """The trust centre answers APS Verify-Key (ZigBee PRO R21 and later)."""
        return self.zigbee_stack >= "R21"

    def describe(self) -> str:
        """One line: ``CH-EMU-2.0.0 (CHTS v1.1, ZigBee PRO R22, SE 1.4)``."""
        chts = f"{self.chts_version}, " if self.chts_version else ""
        return (f"{self.version} ({chts}ZigBee PRO {self.zigbee_stack}, "
                f"SE {self.se_version})")


#: what an emulated CH runs before any upgrade: a CHTS v1.0 CH (SE 1.2a on R20, assumed)
DEFAULT_CH_IMAGE = ChImage(version="CH-EMU-1.0.0", chts_version="CHTS v1.0",
                           zigbee_stack="R20", se_version="1.2a")
