"""The emulated HAN (DESIGN.md, Emulation): media per band and channel with real airtime,
CSMA-CA, ACKs and collisions (:mod:`.medium`, :mod:`.phy`), ZigBee nodes in the roles of a
GB meter set with the GBCS tunnel (:mod:`.nodes`, :mod:`.content`), one HAN per rig with
traffic generator, faults and the DCC boundary (:mod:`.han`), shared by the rig's emulated
sniffers (:mod:`.registry`, :mod:`hanlab.sources.emulated`)."""

from hanlab.emulator.han.han import EmulatedHan
from hanlab.emulator.han.medium import MemoryTruth
from hanlab.emulator.han.registry import build_han, han_of
from hanlab.emulator.han.settings import EmulatedDevice, FaultEvent, HanSettings

__all__ = ["EmulatedDevice", "EmulatedHan", "FaultEvent", "HanSettings", "MemoryTruth",
           "build_han", "han_of"]
