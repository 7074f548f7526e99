"""Time to move a 750 KB OTA image (seed 000's maximum) over the emulated HAN, in virtual
time: to an ESME on 2.4 GHz and to a sleepy GSME on sub-GHz. Printed beside the PHY's
theoretical minimum (the image's octets back to back at the PHY rate, no headers, no
turnarounds) and the protocol's airtime: block count, every frame's airtime (requests,
responses, APS fragments, MAC ACKs), and the CH's sub-GHz duty-cycle share.

    python benchmarks/ota_transfer.py [--size-octets 768000] [--gsme-wake-s 30]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings
from hanlab.emulator.han.medium import Transmission
from hanlab.emulator.han.ota import OtaSettings
from hanlab.firmware.emulated import emulated_image
from hanlab.firmware.ota_file import MAX_IMAGE_SIZE_OCTETS
from hanlab.frames import Band, band_of
from hanlab.gbcs.eui64 import Eui64
from hanlab.phy import phy_for

START_NS = 1_750_000_000 * 10**9
USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")


class _Truth:
    """Keeps only what the benchmark needs from the ground truth."""

    def __init__(self) -> None:
        self.blocks: dict[str, int] = defaultdict(int)
        self.complete: dict[str, int] = {}
        self.waits: dict[str, int] = defaultdict(int)

    def record(self, event: str, ts_ns: int, **fields: object) -> None:
        if event == "ota_block":
            self.blocks[str(fields["target"])] += 1
        elif event == "ota_wait":
            self.waits[str(fields["target"])] += 1
        elif event == "ota_complete":
            self.complete[str(fields["device"])] = ts_ns


def run(band: Band, size_octets: int, wake_s: float, ota: OtaSettings) -> dict[str, float]:
    """One transfer on ``band``; figures in seconds, octets and percent."""
    role, model = ("ESME", "emu-esme-a") if band is Band.GHZ_2_4 else ("GSME", "emu-gsme-a")
    eui = "00-DB-12-00-00-00-0B-01"
    device = EmulatedDevice(role=role, eui64=eui, band=band, model=model, wake_interval_s=wake_s)
    truth = _Truth()
    han = EmulatedHan("bench", HanSettings(ota=ota), [device], dual_band=True, truth=truth,
                      start_ns=START_NS)
    airtime_ns: dict[str, int] = defaultdict(int)
    frames = [0]

    def heard(tx: Transmission, page: int, channel: int) -> None:
        if band_of(page, channel) is band:
            frames[0] += 1
            airtime_ns["ch" if tx.sender.short in (0x0000, 0x0001) else "device"] += (
                tx.end_ns - tx.start_ns)

    han.add_tap(band, heard)
    han.run_for(10 + 2 * wake_s)
    image = emulated_image(model, size_octets=size_octets)
    airtime_ns.clear()
    frames[0] = 0
    begin_ns = han.scheduler.now_ns
    assert han.ota.distribute(Eui64.parse(eui), image, requester=USER)
    cpu = time.process_time()
    name = han.devices[0].name
    while name not in truth.complete:
        han.run_for(600)
        if han.scheduler.now_ns - begin_ns > 7 * 86_400 * 10**9:
            raise SystemExit("no completion within 7 emulated days")
    duration_s = (truth.complete[name] - begin_ns) / 1e9
    page, channel = han.channels[band]
    phy = phy_for(page, channel)
    return {
        "duration_s": duration_s, "cpu_s": time.process_time() - cpu,
        "blocks": truth.blocks[name], "frames": frames[0], "waits": truth.waits[name],
        "airtime_s": sum(airtime_ns.values()) / 1e9, "ch_airtime_s": airtime_ns["ch"] / 1e9,
        "phy_min_s": len(image) * phy.octet_ns / 1e9, "image_octets": len(image),
        "duty_pct": 100 * airtime_ns["ch"] / 1e9 / duration_s,
        "window_duty_pct": han.duty_cycle_pct(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-octets", type=int, default=MAX_IMAGE_SIZE_OCTETS)
    parser.add_argument("--gsme-wake-s", type=float, default=30.0)
    args = parser.parse_args()
    ota = OtaSettings()
    print(f"OTA image {args.size_octets} octets; max data size {ota.max_data_size_octets} "
          f"octets per block, MinimumBlockPeriod {ota.min_block_period_ms} ms, GSME wake "
          f"every {args.gsme_wake_s:g} s for {ota.gsme_window_s:g} s, sub-GHz budget "
          f"{ota.duty_cycle_budget_pct:g} % of the CH's duty-cycle window")
    for band in (Band.GHZ_2_4, Band.SUB_GHZ):
        r = run(band, args.size_octets, args.gsme_wake_s, ota)
        who = "ESME, 2.4 GHz" if band is Band.GHZ_2_4 else "GSME, sub-GHz"
        print(f"\n{who}")
        hours = r["duration_s"] / 3600
        print(f"  transfer time        {r['duration_s']:>12.1f} s   ({hours:.2f} h)")
        print(f"  PHY minimum          {r['phy_min_s']:>12.1f} s   (image octets at the PHY "
              f"rate: x{r['duration_s'] / r['phy_min_s']:.0f})")
        ratio = r["airtime_s"] / r["phy_min_s"]
        print(f"  airtime, all frames  {r['airtime_s']:>12.1f} s   (x{ratio:.2f} the PHY "
              f"minimum; CH {r['ch_airtime_s']:.1f} s)")
        print(f"  blocks / frames      {r['blocks']:>12.0f}     / {r['frames']:.0f} "
              f"(WAIT_FOR_DATA {r['waits']:.0f})")
        window = (f"; {r['window_duty_pct']:.3f} % of the last duty-cycle window at the end "
                  "(GBCS duty-cycle management)" if band is Band.SUB_GHZ else
                  " (no duty-cycle limit on 2.4 GHz)")
        print(f"  CH transmit share    {r['duty_pct']:>12.3f} %   over the transfer{window}")
        print(f"  CPU (virtual time)   {r['cpu_s']:>12.1f} s")


if __name__ == "__main__":
    main()
