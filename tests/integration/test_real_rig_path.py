"""The real-hardware path without hardware (issue 9, done-when): a rig whose sniffer is
the ``nrf802154`` driver on a pseudo-terminal and whose DCC is reached over HTTP as an
external DCC simulator (the lab's ``duis: endpoint`` URL), with no ``emulated`` driver in
its rig file. What a real lab has on its bench stands in as "the world": the emulated
HAN of the single-band rig, its air frames printed by an emulated nRF dongle in the
dongle's serial protocol, and the emulated DCC as a separate HTTP server. A job on the
rig yields exact-level exchanges (the keys from the rig's secrets file) and the timing
report: the code path a real lab runs. The dual-band case adds the TI SmartRF Packet
Sniffer 2 driver on a second pty, printing the sub-GHz air in the TI dongle's protocol
(issue 13 item 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hanlab.config.loader import load_lab
from hanlab.emulator.dcc import DccUser, EmulatedDcc, EmulatedDccSettings
from hanlab.emulator.han.medium import Transmission
from hanlab.frames import Band
from hanlab.gbcs.eui64 import Eui64
from hanlab.runtime.emulation import EmulationSettings, ephemeral_user
from tests.integration.conftest import free_port
from tests.integration.dcc_harness import GAS_SUPPLIER, IMPORT_SUPPLIER, build_edges
from tests.integration.lab_util import DUAL, SINGLE, run_job, running_lab
from tests.tools.nrf_dongle import DongleConfig, EmulatedNrfDongle, fcs16_bytes
from tests.tools.ti_dongle import EmulatedTiDongle, TiDongleConfig


def _write_user(folder: Path, name: str, user: object) -> tuple[Path, Path]:
    key = folder / f"{name}.key"
    cert = folder / f"{name}.pem"
    key.write_bytes(user.signing_key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key.chmod(0o600)
    cert.write_bytes(user.certificate.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM))
    return key, cert


#: the GSME of rigs/emulated-dual-band.yaml on sub-GHz
SUB_GHZ_GSME = "00-DB-12-00-00-00-D2-02"
SNIFFER = ("  - id: {id}\n    driver: {driver}\n    page: {page}\n    channel: {channel}\n"
           "    settings: {{port: {port}}}\n")


@pytest.mark.parametrize("dual", [False, True], ids=["single-band-nrf", "dual-band-nrf-ti"])
async def test_job_on_a_rig_with_real_sniffer_drivers_and_external_dcc(
    tmp_path: Path, dual: bool
) -> None:
    # -- the world: HAN (real time, host clock), its air on pty dongles, a DCC over HTTP
    edges = build_edges(DUAL if dual else SINGLE,
                        EmulationSettings(wake_interval_s=1.0, ch_processing_s=0.02))
    han = edges.han
    users = {"is": ephemeral_user(IMPORT_SUPPLIER, "IS"), "gs": ephemeral_user(GAS_SUPPLIER, "GS")}
    receiver_port = free_port()
    inventory = {Eui64.parse(d.eui64): d.role.value for d in edges.rig.devices}
    dongles: dict[Band, EmulatedNrfDongle | EmulatedTiDongle] = {
        Band.GHZ_2_4: EmulatedNrfDongle(tmp_path / "nrf0", DongleConfig(own_traffic=False,
                                                                        seed=3))}
    sniffers = SNIFFER.format(id="nrf0", driver="nrf802154", page=0, channel=11,
                              port=tmp_path / "nrf0")
    if dual:
        dongles[Band.SUB_GHZ] = EmulatedTiDongle(tmp_path / "ti0",
                                                 TiDongleConfig(own_traffic=False, seed=4))
        sniffers += SNIFFER.format(id="ti0", driver="ti-smartrf-sniffer2", page=28,
                                   channel=12, port=tmp_path / "ti0")
    loop = asyncio.get_running_loop()

    def tap(dongle: EmulatedNrfDongle | EmulatedTiDongle) -> object:
        def on_air(tx: Transmission, page: int, channel: int) -> None:
            del page, channel
            delay_s = max(0.0, (tx.end_ns - time.time_ns()) / 1e9)
            psdu = tx.psdu + fcs16_bytes(tx.psdu)
            loop.call_later(delay_s, dongle.print_heard, psdu, tx.end_ns)
        return on_air

    for band, dongle in dongles.items():
        han.add_tap(band, tap(dongle))  # type: ignore[arg-type]
    dcc = EmulatedDcc(
        EmulatedDccSettings(processing_latency_s=0.001, wan_latency_s=0.001,
                            response_timeout_s=20.0, verify_signatures=True),
        users=[DccUser(u.eui64, f"http://127.0.0.1:{receiver_port}/duis", u.certificate,
                       role=u.role) for u in users.values()], devices=inventory)
    # -- the lab's files: a rig with real sniffer drivers, a lab naming the DCC's URL
    secrets = tmp_path / "keys.yaml"
    secrets.write_text(han.keyring().dump_yaml())
    secrets.chmod(0o600)
    devices = "".join(f"  - {{role: {d.role.value}, eui64: {d.eui64}, model: {d.model}}}\n"
                      for d in edges.rig.devices)
    (tmp_path / "rig.yaml").write_text(
        f"name: bench-rig\nch_variant: {'dual' if dual else 'single'}_band\n"
        f"devices:\n{devices}sniffers:\n{sniffers}secrets: keys.yaml\n")
    is_key, is_cert = _write_user(tmp_path, "is", users["is"])
    gs_key, gs_cert = _write_user(tmp_path, "gs", users["gs"])
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(dcc)
        for dongle in dongles.values():
            await stack.enter_async_context(dongle)
        han.dcc = dcc
        async with han:
            dcc.attach_han(han, devices=list(inventory))
            (tmp_path / "lab.yaml").write_text(
                "name: bench\nrigs: [rig.yaml]\nduis:\n"
                f"  endpoint: {dcc.url}\n  response_timeout_s: 30\n"
                f"  receiver: {{host: 127.0.0.1, port: {receiver_port}}}\n  users:\n"
                f"    - {{name: is, eui64: {IMPORT_SUPPLIER.duis}, role: IS, "
                f"key_file: {is_key}, certificate_file: {is_cert}}}\n"
                f"    - {{name: gs, eui64: {GAS_SUPPLIER.duis}, role: GS, "
                f"key_file: {gs_key}, certificate_file: {gs_cert}}}\n")
            lab = load_lab(tmp_path / "lab.yaml")
            assert {s.driver for r in lab.rigs for s in r.sniffers} == (
                {"nrf802154", "ti-smartrf-sniffer2"} if dual else {"nrf802154"})
            async with running_lab(lab, tmp_path / "out", emulation=EmulationSettings()) \
                    as runtime:
                rig = runtime.runtimes["bench-rig"]
                assert not rig.emulated and rig.duis.dcc is None  # the DCC is external
                deadline = time.monotonic() + 30
                while not all(d.joined for d in han.devices):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # the dongle's clock alignment warms up
                # dual band: the gas reading goes to the sub-GHz GSME (heard by the TI)
                job = await run_job(runtime, 120, rig="bench-rig", scenario="meter-reading",
                                    variants=["electricity-instantaneous",
                                              "gas-instantaneous"],
                                    devices={"GSME": SUB_GHZ_GSME} if dual else {})
                frames = {sid: counts.frames for sid, counts in rig.stats.counts.items()}
    assert job["state"] == "passed", job["detail"]
    sent = [s for s in job["steps"] if s["request_id"]]
    assert len(sent) == 4
    assert all(s["match_level"] == "exact" for s in sent), [s["match_level"] for s in sent]
    assert {e["band"] for e in job["exchanges"]} == ({"2.4GHz", "subGHz"} if dual else {"2.4GHz"})
    rows = job["timings"]["rows"]
    gas_band = "subGHz" if dual else "2.4GHz"
    assert {(r["band"], r["device_role"], r["segment"]) for r in rows} >= {
        ("2.4GHz", "ESME", "han_command"), (gas_band, "GSME", "turnaround"),
        (gas_band, "GSME", "end_to_end")}
    assert all(n > 0 for n in frames.values()) and len(frames) == len(dongles)
    assert dcc.stats.commands_delivered == 4
    assert job["captures"] and all((tmp_path / "out" / c).stat().st_size > 0
                                   for c in job["captures"])
