"""Emulated edges of a rig: the emulated DCC (``hanlab.emulator.dcc``), the emulated HAN
(``hanlab.emulator.han``), the boundary between them (``dcc_link``) and the ground-truth log
(``truth``). Import the subpackages directly; nothing is imported here."""
