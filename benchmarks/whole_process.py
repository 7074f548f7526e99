"""What users run, whole process, each paired against the real peer doing the same work.

Every row runs two commands as child processes, alternating hanlab and the peer in the
same loop for ``--rounds`` rounds; it prints the median wall time of each, the ratio
hanlab/peer and the peak RSS of each (GNU time's ``%M``, per child; see ``GNU_TIME``).
Output goes to /dev/null (decode) or a temporary folder (capture). Rows, at ×1, ×10 and
×100 (``--sizes``):

* ``hanlab decode`` one-line vs ``tshark -n -r`` (one-line), without and with the Sinope
  network key (tshark: ``-o 'uat:zigbee_pc_keys:"<key>","Normal","sinope"'``);
* ``hanlab decode --json`` vs ``tshark -T fields`` with the equivalent fields, without and
  with the key; before timing, tshark's decryption is checked (frames with an APS
  cluster with the key vs without it, beside hanlab's count of decrypted NWK frames);
* ``hanlab decode --jobs 2`` (key, one-line) vs the same tshark one-line;
* ``hanlab capture --source pcap:IN`` (TAP pcapng out) vs ``tshark -r IN -w OUT`` and vs
  ``editcap IN OUT``;
* ``hanlab analyse`` on the emulated lab's capture (both bands, every key, its DUIS log):
  frames per second, no peer;
* start-up: ``hanlab --help`` and ``hanlab decode`` on a 15-frame file vs ``tshark -r``
  on it;
* ``in-process micro loop``: the decode loop of ``benchmarks/decode.py`` (reader, lazy
  decoder, five fields) in its own process vs the same tshark ``-T fields`` run.

Inputs: ×N of the Sinope capture (38,350 frames) is N copies joined with
``mergecap -a`` in a temporary folder. ×N of the emulated capture is 12·N copies of a
120 s emulated tile (``hanlab.correlate.simulate``, about 3,300 frames), each shifted in
time with its own RequestIDs (as ``benchmarks/correlate.py`` builds its input).

``hanlab`` is the console script beside this Python (no pyenv shim, whose ~0.1 s is not
hanlab's), running this checkout's code (``PYTHONPATH`` set to the repository).

Targets (issue 15): decode ≤ 1.0× tshark at ×10 and ×100; ``--jobs 2`` ≤ 0.6×; start-up
≤ 0.3 s; analyse ≥ 150,000 frames/s; capture ≤ 2× editcap at ×100.

Run: python benchmarks/whole_process.py [--quick] [--sizes 1,10,100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REPO_ROOT, SINOPE, need_corpus

KEY = "60ccee07009651c60e1f8c1b05562f2c"
UAT = f'uat:zigbee_pc_keys:"{KEY}","Normal","sinope"'
#: tshark fields equivalent to hanlab's --json fields (same layers, same values).
TSHARK_FIELDS = (
    "frame.number", "frame.time_epoch", "wpan.frame_type", "wpan.seq_no", "wpan.src16",
    "wpan.src64", "wpan.dst16", "wpan.dst64", "wpan.dst_pan", "wpan.src_pan",
    "wpan.security", "wpan.cmd", "zbee_nwk.frame_type", "zbee_nwk.src", "zbee_nwk.dst",
    "zbee_nwk.src64", "zbee_nwk.seqno", "zbee_nwk.radius", "zbee_nwk.cmd.id",
    "zbee_aps.type", "zbee_aps.cluster", "zbee_aps.profile", "zbee_aps.src", "zbee_aps.dst",
    "zbee_aps.counter", "zbee_aps.cmd.id", "zbee_zcl.type", "zbee_zcl.cmd.tsn",
    "zbee_zcl.cmd.id", "zbee_zcl.dir", "zbee_zcl.cmd.mc",
)
TILE_S = 120.0
TILES_PER_SIZE = 12


class Child:
    """One child process's figures: wall seconds, peak RSS KiB."""

    def __init__(self, wall_s: float, rss_kib: int) -> None:
        self.wall_s = wall_s
        self.rss_kib = rss_kib


#: GNU time, which forks the measured command from its own small process. Linux keeps a
#: process's peak RSS across fork and exec (the forked copy of its parent counts), so a
#: command forked straight from this benchmark, which holds the emulated lab it built,
#: would report at least this process's RSS (editcap: 76 MiB instead of 7).
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_child(argv: list[str], env: dict[str, str], stdout: Path | None = None) -> Child:
    """Run ``argv`` (stdout to ``stdout`` or /dev/null); its wall time and peak RSS
    (measured by GNU time where there is one, else ``os.wait4``: see :data:`GNU_TIME`)."""
    with open(stdout or os.devnull, "wb") as sink, tempfile.NamedTemporaryFile() as rss:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=sink, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        rss_kib = int(Path(rss.name).read_text().split()[-1]) if GNU_TIME else usage.ru_maxrss
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(argv)}")
    return Child(wall, rss_kib)


def paired(rounds: int, env: dict[str, str], ours: list[str], theirs: list[str] | None,
           before: Callable[[], object] | None = None) -> tuple[Child, Child | None]:
    """Alternate the two commands ``rounds`` times (``before`` runs ahead of each of ours);
    the median wall time and the largest peak RSS of each."""
    a: list[Child] = []
    b: list[Child] = []
    for _ in range(rounds):
        if before is not None:
            before()
        a.append(run_child(ours, env))
        if theirs is not None:
            b.append(run_child(theirs, env))

    def med(xs: list[Child]) -> Child:
        return Child(statistics.median(x.wall_s for x in xs), max(x.rss_kib for x in xs))

    return med(a), (med(b) if b else None)


ROWS: list[dict[str, object]] = []


def row(name: str, size: int, frames: int, ours: Child, theirs: Child | None, peer: str,
        target: str = "") -> None:
    """Print and keep one figure."""
    ratio = ours.wall_s / theirs.wall_s if theirs is not None else None
    item = {"row": name, "size": f"x{size}", "frames": frames,
            "hanlab_s": round(ours.wall_s, 3), "hanlab_rss_mib": round(ours.rss_kib / 1024, 1),
            "frames_per_s": round(frames / ours.wall_s) if frames else None,
            "peer": peer, "peer_s": None if theirs is None else round(theirs.wall_s, 3),
            "peer_rss_mib": None if theirs is None else round(theirs.rss_kib / 1024, 1),
            "ratio": None if ratio is None else round(ratio, 2), "target": target}
    ROWS.append(item)
    peer_text = ("" if theirs is None else
                 f"{peer:<22} {theirs.wall_s:7.2f} s {theirs.rss_kib / 1024:6.0f} MiB  "
                 f"ratio {ratio:5.2f}")
    print(f"  {name:<34} x{size:<4} {ours.wall_s:7.2f} s {ours.rss_kib / 1024:6.0f} MiB  "
          f"{frames / ours.wall_s if frames else 0:>10,.0f} fr/s  {peer_text}  {target}",
          flush=True)


def hanlab_argv() -> list[str]:
    """The ``hanlab`` console script beside this Python, else ``python -m hanlab.cli``."""
    script = Path(sys.executable).with_name("hanlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hanlab.cli"]


def build_sinope(tmp: Path, size: int) -> Path:
    """×``size`` of the Sinope capture, joined with ``mergecap -a``."""
    if size == 1:
        return SINOPE
    out = tmp / f"sinope_x{size}.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(out), *[str(SINOPE)] * size], check=True)
    return out


def build_emulated(tmp: Path, size: int) -> tuple[list[Path], Path, Path, int]:
    """×``size`` of the emulated lab's capture: (per-band pcapng, DUIS log, keys, frames)."""
    from benchmarks.correlate import SPACING_NS, duis_lines
    from hanlab.capture.pcapng import PcapngWriter
    from hanlab.correlate.simulate import simulate
    from hanlab.frames import Band

    run = simulate(TILE_S, seed=7)
    copies = TILES_PER_SIZE * size
    folder = tmp / f"emu_x{size}"
    folder.mkdir()
    writers = {band: PcapngWriter(folder / f"{band.value}.pcapng") for band in Band}
    ifaces = {band: w.interface(f"emu-{band.value}", band.value) for band, w in writers.items()}
    for copy in range(copies):
        shift = copy * SPACING_NS
        for frame in run.frames:
            writers[frame.band].write(ifaces[frame.band], frame._replace(ts_ns=frame.ts_ns + shift))
    for writer in writers.values():
        writer.close()
    log = folder / "duis.jsonl"
    with log.open("w") as fh:
        for line in duis_lines(run, copies):
            fh.write(json.dumps(line) + "\n")
    keys = folder / "keys.yaml"
    keys.write_text(run.keyring.dump_yaml())
    keys.chmod(0o600)
    return [w.path for w in writers.values()], log, keys, copies * len(run.frames)


def check_tshark_decrypts(tshark: str, keys: Path, env: dict[str, str]) -> None:
    """tshark really decrypts with the UAT key: APS clusters appear only with it."""
    def clusters(extra: list[str]) -> int:
        out = subprocess.run([tshark, "-n", "-r", str(SINOPE), *extra, "-T", "fields",
                              "-e", "zbee_aps.cluster"], capture_output=True, text=True,
                             check=True).stdout
        return sum(1 for line in out.splitlines() if line.strip())

    ours = subprocess.run([*hanlab_argv(), "decode", str(SINOPE), "--keys", str(keys)],
                          capture_output=True, text=True, check=True, env=env).stdout
    decrypted = ours.count("nwk:decrypted")
    with_key, without = clusters(["-o", UAT]), clusters([])
    print(f"  tshark decryption check (x1): frames with an APS cluster {with_key:,} with the "
          f"key, {without:,} without; hanlab: {decrypted:,} NWK frames decrypted")
    if with_key <= without:
        sys.exit("tshark did not decrypt with the UAT key")


def codec_mode(hanlab: list[str], env: dict[str, str]) -> str:
    """What ``hanlab --version`` says of the codec: ``compiled (mypyc)`` or ``pure Python
    (why)``."""
    out = subprocess.run([*hanlab, "--version"], capture_output=True, text=True, env=env,
                         check=True).stdout
    return out.strip().partition("(codec: ")[2].removesuffix(")")


def same_codec(hanlab: list[str], env: dict[str, str], started: str, where: str) -> None:
    """Stop the run when the codec's mode changed since it started (a compiled module
    edited during the run makes hanlab fall back to the pure-Python modules: every figure
    after that would measure something else)."""
    now = codec_mode(hanlab, env)
    if now != started:
        sys.exit(f"{where}: the codec changed during the run ({started} -> {now}); "
                 f"the figures from here on would not be comparable")


def main() -> None:
    """Run every row at every size and print the table (and ``--json-out`` rows)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="comma-separated multiples")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per row")
    parser.add_argument("--large-rounds", type=int, default=1,
                        help="paired rounds per row at x100 and above")
    parser.add_argument("--quick", action="store_true", help="--sizes 1,10 --rounds 3")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.quick:
        args.sizes = "1,10"
    sizes = [int(s) for s in args.sizes.split(",")]
    need_corpus()
    tshark, editcap = shutil.which("tshark"), shutil.which("editcap")
    if tshark is None or editcap is None or shutil.which("mergecap") is None:
        sys.exit("benchmark needs tshark, editcap and mergecap (apt-get install tshark)")
    # As on a user's machine, where pip byte-compiles at install: a sandbox that sets
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "hanlab")],
                   check=True, env=env)
    hanlab = hanlab_argv()
    fields = [x for f in TSHARK_FIELDS for x in ("-e", f)]
    with tempfile.TemporaryDirectory(prefix="hanlab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        keys = tmp / "sinope.keys.yaml"
        keys.write_text(f'network_keys:\n  - {{key: "{KEY}", label: sinope}}\n')
        keys.chmod(0o600)
        tiny = tmp / "tiny15.pcapng"
        subprocess.run([editcap, "-r", str(SINOPE), str(tiny), "1-15"], check=True)
        codec = codec_mode(hanlab, env)
        print(f"hanlab: {' '.join(hanlab)} (PYTHONPATH={REPO_ROOT}; codec: {codec}); "
              f"peers: {tshark}, {editcap}; peak RSS: "
              + ("GNU time" if GNU_TIME else "os.wait4 (no GNU time here: each figure "
                 "includes this benchmark's own RSS)"))
        check_tshark_decrypts(tshark, keys, env)

        print("\nstart-up (15-frame file)")
        ours, theirs = paired(max(args.rounds, 5), env, [*hanlab, "--help"], None)
        row("hanlab --help", 1, 0, ours, None, "", "target <= 0.3 s")
        ours, theirs = paired(max(args.rounds, 5), env, [*hanlab, "decode", str(tiny)],
                              [tshark, "-n", "-r", str(tiny)])
        row("hanlab decode (15 frames)", 1, 15, ours, theirs, "tshark -r", "target <= 0.3 s")

        for size in sizes:
            same_codec(hanlab, env, codec, f"before x{size}")
            rounds = args.rounds if size < 100 else args.large_rounds
            big = build_sinope(tmp, size)
            frames = 38_350 * size
            print(f"\nx{size}: Sinope capture, {frames:,} frames, {rounds} paired round(s)")
            target = "target <= 1.0" if size >= 10 else ""
            decode_rows = [
                ("decode one-line, no keys", [], [tshark, "-n", "-r", str(big)],
                 "tshark one-line"),
                ("decode one-line, key", ["--keys", str(keys)],
                 [tshark, "-n", "-r", str(big), "-o", UAT], "tshark one-line"),
                ("decode --json, no keys", ["--json"],
                 [tshark, "-n", "-r", str(big), "-T", "fields", *fields], "tshark -T fields"),
                ("decode --json, key", ["--json", "--keys", str(keys)],
                 [tshark, "-n", "-r", str(big), "-o", UAT, "-T", "fields", *fields],
                 "tshark -T fields"),
                ("decode --jobs 2, key", ["--jobs", "2", "--keys", str(keys)],
                 [tshark, "-n", "-r", str(big), "-o", UAT], "tshark one-line"),
            ]
            for name, extra, peer_argv, peer in decode_rows:
                ours, theirs = paired(rounds, env, [*hanlab, "decode", str(big), *extra],
                                      peer_argv)
                row(name, size, frames, ours, theirs, peer,
                    ("target <= 0.6" if "jobs" in name and size >= 10 else target))
            micro_peer = [tshark, "-n", "-r", str(big), "-o", UAT, "-T", "fields",
                          "-e", "frame.time_epoch", "-e", "wpan.src16", "-e", "zbee_nwk.src",
                          "-e", "zbee_aps.cluster", "-e", "zbee_zcl.cmd.tsn"]
            ours, theirs = paired(rounds, env, [sys.executable, str(REPO_ROOT / "benchmarks" /
                                                                   "decode.py"), "--child",
                                                str(big)], micro_peer)
            row("in-process micro loop (decode.py)", size, frames, ours, theirs,
                "tshark -T fields (5)")

            out = tmp / "out"
            capture = [*hanlab, "capture", "--source", f"pcap:{big}", "--out", str(out)]
            clean = functools.partial(shutil.rmtree, out, ignore_errors=True)
            ours, theirs = paired(rounds, env, capture,
                                  [tshark, "-r", str(big), "-w", str(tmp / "tshark.pcapng")],
                                  clean)
            row("capture (pcap -> TAP pcapng)", size, frames, ours, theirs, "tshark -r -w")
            ours, theirs = paired(rounds, env, capture,
                                  [editcap, str(big), str(tmp / "editcap.pcapng")], clean)
            row("capture (pcap -> TAP pcapng)", size, frames, ours, theirs, "editcap",
                "target <= 2.0" if size >= 100 else "")

            captures, log, emu_keys, emu_frames = build_emulated(tmp, size)
            ours, _ = paired(rounds, env, [*hanlab, "analyse", *map(str, captures),
                                           "--duis-log", str(log), "--keys", str(emu_keys)],
                             None)
            row("analyse (emulated lab capture)", size, emu_frames, ours, None, "",
                "target >= 150,000 fr/s")
            shutil.rmtree(tmp / f"emu_x{size}")
            if big != SINOPE:
                big.unlink()
        same_codec(hanlab, env, codec, "at the end")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(ROWS, indent=1) + "\n")


if __name__ == "__main__":
    main()
