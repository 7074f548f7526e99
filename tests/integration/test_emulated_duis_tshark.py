"""DUIS -> HAN -> tshark (issue 4, done-when): real DUIS requests, one of each SR variant the
emulator supports, go through the DUIS client, the emulated DCC and the emulated HAN of
``rigs/emulated-dual-band.yaml``; the HAN's frames are written to pcapng per band and tshark,
given the rig's keys, dissects them. Every GBCS command and response on the air is a GBCS
Message whose Originator Counter and Message Code are those the DUIS request implies: the
RequestID counter and ``plan_command(variant, device type)``'s Message Code (which is
``message_code_for`` wherever that is unambiguous), or, where the DCC's Access Control
Broker originates the command, the RequestID counter as Supplementary Remote Party Counter
(DESIGN.md, GBCS v5.x §4.3.1.6). Commands to the CHF and GPF themselves never cross the
HAN: they are checked in the ground truth and the DUIS responses instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hanlab.capture.pcapng import PcapngWriter
from hanlab.duis.catalogue import ServiceRequestMappingError, all_variants, message_code_for
from hanlab.duis.client import DuisExchange
from hanlab.duis.xml import sr_element
from hanlab.emulator.dcc import plan_command
from hanlab.emulator.han import EmulatedHan
from hanlab.emulator.han.medium import Transmission
from hanlab.frames import Band, Frame, TsSource, band_of
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.emulation import EmulationSettings
from hanlab.scenarios.bodies import BODY_ELEMENTS
from tests.integration.dcc_harness import IMPORT_SUPPLIER, build_edges, dcc_on_han

RIG = Path(__file__).resolve().parents[2] / "rigs" / "emulated-dual-band.yaml"
FAST = EmulationSettings(time_scale=20.0, wake_interval_s=2.0, ch_processing_s=0.05)
DCC = {"dcc_response_timeout_s": 20.0, "response_timeout_s": 30.0}
GBCS_FIELDS = ("gbcs_message.grouping_header.cra_flag",
               "gbcs_message.grouping_header.originator_counter",
               "gbcs_message.grouping_header.message_code",
               "gbcs_message.grouping_header.supplementary_remote_party_counter")
#: HAN devices a variant mapped to ``ANY`` (the CS use cases) goes to, in turn.
ANY_TARGETS = ("ESME", "IHD", "HCALCS", "PPMID", "GSME")
#: ANY-mapped variants also sent to the GPF and CHF themselves (handover, credentials, joins).
CH_ANY = {"GPF": ("6.15.2", "6.17", "6.21", "6.23", "8.7.2"), "CHF": ("6.15.2", "6.17")}


@dataclass(frozen=True)
class Planned:
    """One SR to send: variant, target, the Message Code and originator form it implies."""

    variant: str
    role: str
    target: Eui64
    message_code: int
    dcc_originated: bool
    from_catalogue: bool


class Capture:
    """The HAN's frames, per band, into pcapng (as the rig's emulated sniffers write them)."""

    def __init__(self, folder: Path, han: EmulatedHan) -> None:
        self.writers = {band: PcapngWriter(folder / f"{band.value}.pcapng") for band in Band}
        self.ifaces = {band: w.interface(f"emu-{band.value}", band.value)
                       for band, w in self.writers.items()}
        self.frames = 0
        self._removers = [han.add_tap(band, self.heard) for band in Band]

    def heard(self, tx: Transmission, page: int, channel: int) -> None:
        band = band_of(page, channel)
        self.frames += 1
        self.writers[band].write(self.ifaces[band], Frame(
            tx.start_ns, f"emu-{band.value}", band, page, channel, tx.psdu, not tx.collided,
            None, None, TsSource.EMULATED))

    def close(self) -> None:
        for remove in self._removers:
            remove()
        for writer in self.writers.values():
            writer.close()


def plan(devices: dict[str, list[Eui64]]) -> list[Planned]:
    """One request of each device SR variant, spread over the rig's devices."""
    turn: dict[str, itertools.cycle[Eui64]] = {r: itertools.cycle(e) for r, e in devices.items()}
    any_turn = itertools.cycle(ANY_TARGETS)
    out: list[Planned] = []
    for entry in all_variants():
        if entry.non_device:
            continue
        types = [t for t in dict.fromkeys(m.device_type for m in entry.gbcs) if t in devices]
        roles = types[:1] if types else ([next(any_turn)] if entry.gbcs else [])
        roles += [r for r, variants in CH_ANY.items()
                  if entry.service_reference_variant in variants]
        for role in roles:
            try:
                command = plan_command(entry.service_reference_variant, role)
            except ServiceRequestMappingError:
                continue
            unambiguous = None
            with contextlib.suppress(ServiceRequestMappingError):
                unambiguous = message_code_for(entry.service_reference_variant, role)
            # where the catalogue is unambiguous the DCC must use its Message Code
            assert unambiguous in (None, command.message_code)
            out.append(Planned(entry.service_reference_variant, role, next(turn[role]),
                               command.message_code, command.dcc_originated,
                               unambiguous is not None))
    return out


def tshark_gbcs(tshark: str, path: Path, config: Path) -> list[tuple[int, int, int, int | None]]:
    """``(CRA flag, Originator Counter, Message Code, Supplementary Remote Party Counter)``
    of every GBCS Message tshark dissects in ``path``."""
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=f", "-Y", "gbcs_message"]
    for name in GBCS_FIELDS:
        cmd += ["-e", name]
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(config)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         timeout=120).stdout
    rows = []
    for line in out.splitlines():
        cra, counter, code, supplementary = line.split("|")
        if cra:
            rows.append((int(cra, 16), int(counter), int(code, 16),
                         int(supplementary) if supplementary else None))
    return rows


def write_keys(folder: Path, han: EmulatedHan) -> Path:
    """A Wireshark profile folder holding the rig's keys (``zigbee_pc_keys`` UAT)."""
    folder.mkdir()
    (folder / "zigbee_pc_keys").write_text("\n".join(han.keyring().wireshark_uat_lines()) + "\n")
    return folder


async def test_every_sr_variant_reaches_tshark_with_its_counter(
        tshark: str, tmp_path: Path) -> None:
    started = time.monotonic()
    edges = build_edges(RIG, FAST)
    han, truth = edges.han, edges.truth
    capture = Capture(tmp_path, han)  # tapped before the joins: tshark sees the tunnels open
    devices: dict[str, list[Eui64]] = defaultdict(list)
    for device in edges.rig.devices:
        if not device.spare:  # a spare is on the bench, off the HAN (issue 13 item 1)
            devices[device.role.value].append(Eui64.parse(device.eui64))
    planned = plan(devices)
    exchanges: dict[Planned, DuisExchange] = {}
    async with dcc_on_han(edges, tmp_path / "counters", **DCC) as (client, dcc):
        locks: dict[Eui64, asyncio.Lock] = defaultdict(asyncio.Lock)

        async def send(item: Planned) -> None:
            async with locks[item.target]:  # RequestID counters rise per target
                body = sr_element(BODY_ELEMENTS.get(item.variant, "Body"))
                exchanges[item] = await client.send(
                    IMPORT_SUPPLIER, item.target, item.variant, body)

        await asyncio.gather(*(send(item) for item in planned))
        assert dcc.invalid_documents == []
        assert dcc.stats.refused == {}
    capture.close()
    config = write_keys(tmp_path / "wireshark", han)

    assert all(e.response is not None and e.response.response_code == "I0"
               for e in exchanges.values())
    on_air = [row for band in Band for row in tshark_gbcs(tshark, capture.writers[band].path,
                                                          config)]
    commands = [row for row in on_air if row[0] == 1]
    responses = {(row[1], row[2]) for row in on_air if row[0] == 2}
    over_han = {p: e for p, e in exchanges.items() if p.role not in ("CHF", "GPF")}
    matched = 0
    missing: list[str] = []
    for item, exchange in over_han.items():
        counter = exchange.request_id.counter
        if item.dcc_originated:
            found = [c for c in commands if c[3] == counter and c[2] == item.message_code]
        else:
            found = [c for c in commands if c[1] == counter and c[2] == item.message_code]
        answered = [c for c in found if (c[1], c[2]) in responses]
        if len(found) == 1 and answered:
            matched += 1
        else:
            missing.append(f"SR {item.variant} to {item.role} {exchange.request_id}: "
                           f"{len(found)} command(s), {len(answered)} answered on air")
    assert not missing, "\n".join(missing)
    # Nothing on the air that no request caused (alerts, CRA flag 3, aside).
    assert len(commands) == len(over_han)
    assert len(responses) == len(over_han)
    # The CHF and GPF answered theirs without a HAN frame, after their processing time.
    own = {p: e for p, e in exchanges.items() if p.role in ("CHF", "GPF")}
    processed = {(str(e["device"]), int(str(e["message_code"]))) for e in truth.events
                 if e["event"] == "processing_end"}
    names = {han.chf.eui: han.chf.name, han.gpf.eui: han.gpf.name}
    assert all((names[p.target], p.message_code) in processed for p in own)
    variants = {p.variant for p in exchanges}
    elapsed_s = time.monotonic() - started
    print(f"\n{len(variants)} SR variants, {len(exchanges)} requests ({len(over_han)} over "
          f"the HAN, {len(own)} to the CHF/GPF), {matched} commands and responses matched on "
          f"air ({sum(p.from_catalogue for p in over_han)} with message_code_for's code), "
          f"{sum(p.dcc_originated for p in over_han)} DCC-originated, "
          f"{capture.frames} frames, {elapsed_s:.1f} s")
    assert elapsed_s < 60
