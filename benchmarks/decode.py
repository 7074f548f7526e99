"""ZigBee decode throughput and memory: hanlab against tshark on the same frames.

Input: the Sinope capture (38,350 frames) repeated 10 times (10 pcapng sections in one
file, 383,500 frames), network key 60ccee07009651c60e1f8c1b05562f2c. Both sides decode
every frame with decryption down to ZCL and print one line per frame with the time, MAC
source, NWK source, APS cluster and ZCL TSN (to /dev/null):

* hanlab: ``read_frames`` → ``Decoder.decode`` → ``.mac`` / ``.nwk`` / ``.aps`` / ``.zcl``
  (each NWK frame decrypted with AES-CCM, no cache of decrypted payloads).
* tshark: ``tshark -r FILE -o 'uat:zigbee_pc_keys:"<key>","Normal","sinope"' -T fields
  -e frame.time_epoch -e wpan.src16 -e zbee_nwk.src -e zbee_aps.cluster -e zbee_zcl.cmd.tsn``.

Each side runs in its own process; wall time and peak RSS come from ``os.wait4``.
Target (issue 3): hanlab wall time / tshark wall time ≤ 1.0, and lower peak memory.

Run: python benchmarks/decode.py [--copies 10] [--tshark-runs-separately]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import SINOPE, need_corpus, report

KEY = "60ccee07009651c60e1f8c1b05562f2c"


def hanlab_child(path: str) -> None:
    """Decode every frame of ``path`` to ZCL and print the five benchmark fields."""
    from hanlab.capture.reader import read_frames
    from hanlab.zigbee.frame import Decoder
    from hanlab.zigbee.keyring import Keyring

    ring = Keyring()
    ring.add_network_key(bytes.fromhex(KEY), label="sinope")
    decoder = Decoder(ring)
    decode = decoder.decode
    out = open(os.devnull, "w", buffering=1 << 20)  # noqa: SIM115 - closed below
    write = out.write
    frames = 0
    for frame in read_frames(path):
        frames += 1
        d = decode(frame.psdu, frame.ts_ns, fcs_ok=frame.fcs_ok)
        mac = d.mac
        src16 = f"0x{mac.src_addr:04x}" if mac is not None and mac.src_mode == 2 else ""
        nwk = d.nwk
        nwk_src = f"0x{nwk.src:04x}" if nwk is not None and nwk.src is not None else ""
        aps = d.aps
        cluster = f"0x{aps.cluster:04x}" if aps is not None and aps.cluster is not None else ""
        zcl = d.zcl
        tsn = str(zcl.tsn) if zcl is not None else ""
        ts_ns = frame.ts_ns
        write(f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000:09d}\t{src16}\t{nwk_src}\t"
              f"{cluster}\t{tsn}\n")
    out.close()
    print(frames, file=sys.stderr)


def measure(argv: list[str]) -> tuple[float, int]:
    """Run ``argv`` with stdout to /dev/null; (wall seconds, peak RSS in KiB)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{argv[0]} failed with status {status}")
    return wall, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tshark-runs-separately", action="store_true",
                        help="run tshark once per copy on the original file instead of once "
                             "on the repeated file")
    args = parser.parse_args()
    if args.child:
        hanlab_child(args.child)
        return
    need_corpus()
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("benchmark needs tshark (apt-get install tshark)")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / f"sinope_x{args.copies}.pcapng"
        big.write_bytes(SINOPE.read_bytes() * args.copies)
        frames = 38_350 * args.copies
        ours_s, ours_kib = measure([sys.executable, __file__, "--child", str(big)])
        tshark_cmd = [tshark, "-n", "-o", f'uat:zigbee_pc_keys:"{KEY}","Normal","sinope"',
                      "-T", "fields", "-e", "frame.time_epoch", "-e", "wpan.src16",
                      "-e", "zbee_nwk.src", "-e", "zbee_aps.cluster", "-e", "zbee_zcl.cmd.tsn"]
        if args.tshark_runs_separately:
            theirs_s, theirs_kib = 0.0, 0
            for _ in range(args.copies):
                wall, kib = measure([*tshark_cmd, "-r", str(SINOPE)])
                theirs_s += wall
                theirs_kib = max(theirs_kib, kib)
        else:
            theirs_s, theirs_kib = measure([*tshark_cmd, "-r", str(big)])
    report(f"decode with decryption to ZCL, {frames:,} frames (baseline: tshark)", [
        ("wall time (s)", f"{ours_s:.2f}", f"{theirs_s:.2f}"),
        ("frames/s", f"{frames / ours_s:,.0f}", f"{frames / theirs_s:,.0f}"),
        ("peak RSS (MiB)", f"{ours_kib / 1024:.1f}", f"{theirs_kib / 1024:.1f}"),
    ])
    print(f"\n  wall-time ratio hanlab/tshark: {ours_s / theirs_s:.2f} (target <= 1.0)")
    print(f"  peak-memory ratio hanlab/tshark: {ours_kib / theirs_kib:.2f} (target < 1.0)")


if __name__ == "__main__":
    main()
