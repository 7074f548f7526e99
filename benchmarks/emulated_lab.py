"""Emulated lab benchmark: 8 dual-band rigs (8 CHs, 56 devices), one SR per second per rig.

Each rig is an emulated dual-band CH with 2 ESMEs, 2 GSMEs, IHD, PPMID and HCALCS (two of
them on sub-GHz), its built-in traffic generator queuing one SR per second at the CHF, and
two emulated sniffers (2.4 GHz and sub-GHz). The lab runs under the real daemon
(:class:`hanlab.runtime.lab.LabRuntime`) in real time for ``--duration-s`` (60 by
default) twice, each in a fresh process:

* **hanlab**: capture to per-band pcapng and MQTT to the embedded broker on;
* **baseline**: the same lab with MQTT off (``--no-mqtt``). The daemon has no switch to
  turn capture off, so the baseline still writes pcapng: the difference is MQTT's cost.

Printed: CPU time of the hanlab process (user + system, ``getrusage(RUSAGE_SELF)``) as a
fraction of one core over the wall time, frames captured and SRs answered. Target: below
0.5 of a core with capture and MQTT on.

Run:  python benchmarks/emulated_lab.py [--duration-s 60] [--rigs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import report

ROLES = [("ESME", "2.4GHz"), ("ESME", "subGHz"), ("GSME", "2.4GHz"), ("GSME", "subGHz"),
         ("IHD", "2.4GHz"), ("PPMID", "2.4GHz"), ("HCALCS", "2.4GHz")]


def _rig_yaml(index: int) -> str:
    devices = [f"  - {{role: CHF, eui64: 00-DB-13-00-00-{index:02X}-00-01}}",
               f"  - {{role: GPF, eui64: 00-DB-13-00-00-{index:02X}-00-02}}"]
    for n, (role, band) in enumerate(ROLES, start=1):
        devices.append(f"  - {{role: {role}, eui64: 00-DB-13-00-00-{index:02X}-01-{n:02X}, "
                       f"band: {band}}}")
    return f"""name: bench-{index}
ch_variant: dual_band
devices:
{chr(10).join(devices)}
sniffers:
  - id: emu-2g4
    driver: emulated
    page: 0
    channel: {11 + index % 16}
    settings: &s
      rig_file: bench-{index}.yaml
      jitter_us: 2.0
      han:
        seed: {index}
        traffic: {{enabled: true, interval_s: 1.0}}
        devices:
          - {{role: GSME, eui64: 00-DB-13-00-00-{index:02X}-01-03, wake_interval_s: 5}}
          - {{role: GSME, eui64: 00-DB-13-00-00-{index:02X}-01-04, band: subGHz,
             wake_interval_s: 5}}
  - id: emu-subghz
    driver: emulated
    page: 28
    channel: {index}
    settings: *s
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child(folder: Path, rigs: int, duration_s: float, mqtt: bool) -> None:
    """Run the lab in this process and print a JSON line of figures."""
    from hanlab.config.loader import load_lab
    from hanlab.emulator.han.registry import han_of
    from hanlab.runtime.lab import LabOptions, LabRuntime

    for index in range(rigs):
        (folder / f"bench-{index}.yaml").write_text(_rig_yaml(index))
    (folder / "lab.yaml").write_text(
        "name: bench\nrigs:\n" + "".join(f"  - bench-{i}.yaml\n" for i in range(rigs))
        + f"broker: {{port: {_free_port()}}}\n")
    lab = load_lab(folder / "lab.yaml")
    supervisor = LabRuntime(lab, LabOptions(mqtt=mqtt, out=folder / "captures",
                                            duration_s=duration_s, api=False))
    responses = {"n": 0}

    def count(_sup: LabRuntime) -> None:
        async def sample() -> None:
            await asyncio.sleep(duration_s - 0.5)
            responses["n"] = sum(h.counters["responses"] for i in range(rigs)
                                 if (h := han_of(f"bench-{i}")) is not None)
        task = asyncio.get_running_loop().create_task(sample())
        tasks.append(task)

    tasks: list[asyncio.Task[None]] = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    asyncio.run(supervisor.run(on_start=count))
    wall_s = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    size = sum(p.stat().st_size for p in (folder / "captures").glob("*.pcapng"))
    print(json.dumps({"cpu_s": cpu_s, "wall_s": wall_s, "responses": responses["n"],
                      "pcapng_bytes": size}))


def run(rigs: int, duration_s: float, mqtt: bool) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter and return its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--child", tmp, "--rigs", str(rigs),
             "--duration-s", str(duration_s), *([] if mqtt else ["--no-mqtt"])],
            capture_output=True, text=True, check=True, timeout=duration_s * 4 + 120)
    last = [line for line in out.stdout.splitlines() if line.startswith("{")][-1]
    figures: dict[str, float] = json.loads(last)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--no-mqtt", action="store_true")
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.rigs, args.duration_s, not args.no_mqtt)
        return
    full = run(args.rigs, args.duration_s, mqtt=True)
    base = run(args.rigs, args.duration_s, mqtt=False)
    def core(figures: dict[str, float]) -> str:
        return f"{figures['cpu_s'] / figures['wall_s']:.3f}"

    report(f"Emulated lab: {args.rigs} dual-band rigs, {args.rigs * 7} devices, "
           f"1 SR/s/rig, {args.duration_s:.0f} s", [
               ("CPU (fraction of one core)", core(full), core(base)),
               ("CPU time (s)", f"{full['cpu_s']:.2f}", f"{base['cpu_s']:.2f}"),
               ("SRs answered", f"{full['responses']:.0f}", f"{base['responses']:.0f}"),
               ("pcapng bytes", f"{full['pcapng_bytes']:.0f}", f"{base['pcapng_bytes']:.0f}"),
           ])
    print("  hanlab = capture + MQTT on; baseline = same lab, MQTT off")
    met = full["cpu_s"] / full["wall_s"] < 0.5
    print(f"  target: below 0.5 of a core -> {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
