"""``hanlab decode`` and ``hanlab keys export-wireshark``: read captures as a triage engineer.

``hanlab decode FILE [--keys KEYS] [--json] [--filter FIELD=VALUE …]`` prints one line per
frame (time, band/channel, MAC and NWK addresses, layers, cluster/command, GBCS tunnel
command, CRA flag, Originator Counter and Message Code where visible, decryption status),
or with ``--json`` one JSON object per frame with the stable, flat field names of
:func:`frame_fields`. ``hanlab keys export-wireshark KEYS`` prints the keys as Wireshark
``zigbee_pc_keys`` UAT lines, so Wireshark decrypts exactly what hanlab decrypts.
Key material is never printed by ``decode``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from hanlab.errors import BadInputError, did_you_mean
from hanlab.secrets_file import load_keys_file
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.listing import (
    FIELD_NAMES,
    ChunkSummary,
    _gbcs_parser,
    decode_to,
    frame_fields,
    frame_line,
)

__all__ = ["FIELD_NAMES", "_gbcs_parser", "decode_parallel", "decode_to", "frame_fields",
           "frame_line"]

keys_app = typer.Typer(help="Keys files: export them for other tools.", no_args_is_help=True)


def _parse_filters(filters: list[str]) -> list[tuple[str, str]]:
    """``FIELD=VALUE`` items as pairs.

    Raises:
        BadInputError: an item without ``=``, or a FIELD that :func:`frame_fields` never
            gives (the message names the closest field and lists the known ones; issue 14
            item 7).
    """
    out = []
    for item in filters:
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise BadInputError(f"--filter {item!r}: use FIELD=VALUE, e.g. nwk.src=0x1a2b")
        if field not in FIELD_NAMES:
            raise BadInputError(
                f"--filter {field}: unknown field{did_you_mean(field, FIELD_NAMES)}; "
                f"known fields: {', '.join(FIELD_NAMES)}")
        out.append((field, value.strip()))
    return out


#: below this many frames per process, ``--jobs`` decodes in one process.
MIN_FRAMES_PER_JOB = 10_000
#: cost of a frame before a process's run (headers only) relative to one it writes.
SCAN_COST = 0.35
#: frames after a run's nominal end where it may hand over to the next run (the two
#: decoders' APS reassembly must agree there: at most the reassembly time-out after it).
OVERLAP_FRAMES = 4_000
#: every how many frames of the overlap the two runs compare their state.
JOIN_STEP = 4


def _chunk_bounds(total: int, jobs: int) -> list[int]:
    """Frame indices where each process's run starts (and ``total``), balanced so that
    every process does the same work: process k also scans the frames before its run."""
    weights = [(1 - SCAN_COST) ** k for k in range(jobs)]
    load = 1 / sum(weights)
    bounds = [0]
    for k in range(jobs - 1):
        bounds.append(min(total, round(bounds[-1] + load * weights[k] * total)))
    return [*bounds, total]


def _estimate_frames(file: Path) -> int:
    """Frames in ``file``, estimated from its size and its first frames."""
    from hanlab.capture.reader import read_frames

    size = file.stat().st_size
    octets = count = 0
    for frame in read_frames(file):
        octets += len(frame.psdu) + 34  # pcapng EPB: 28 header, 4 trailer, FCS, padding
        count += 1
        if count >= 2000:
            break
    return size * count // max(octets, 1)


def _decode_job(file: Path, keys: Path | None, as_json: bool, filters: list[tuple[str, str]],
                start: int, stop: int | None, join_points: frozenset[int], out_path: Path
                ) -> ChunkSummary:
    ring = Keyring.load(keys) if keys is not None else Keyring()
    with out_path.open("wb") as out:
        return decode_to(out, file, ring, as_json=as_json, filters=filters, start=start,
                         stop=stop, join_points=join_points)


def _joins(summaries: list[ChunkSummary]) -> list[tuple[int, int | None]] | None:
    """``(first octet, end octet or None)`` of each run's output to copy, or ``None`` where
    one process must decode the file.

    Runs k and k+1 are joined at the first frame of the overlap where both decoders held
    the same APS fragments: there their whole state is the same (the exact address map
    from the scan, the file's keys, the same reassembly), so run k+1 prints from there
    what one process would. A key learned before the last run could change what later
    runs print, so then one process decodes the file.
    """
    spans: list[tuple[int, int | None]] = []
    begin = 0
    for k, summary in enumerate(summaries):
        if k == len(summaries) - 1:
            spans.append((begin, None))
            break
        after = summaries[k + 1]
        common = sorted(i for i in summary.joins.keys() & after.joins.keys()
                        if summary.joins[i][0] == after.joins[i][0])
        if summary.learned_keys or not common:
            return None
        spans.append((begin, summary.joins[common[0]][1]))
        begin = after.joins[common[0]][1]
    return spans


def decode_parallel(out: BinaryIO, file: Path, ring: Keyring, keys: Path | None, jobs: int, *,
                    as_json: bool = False, filters: list[tuple[str, str]] | None = None,
                    min_frames_per_job: int = MIN_FRAMES_PER_JOB) -> None:
    """``hanlab decode --jobs N``: decode ``file`` in ``jobs`` processes, in frame order.

    The output is byte for byte that of one process. Process k decodes its run of frames
    after scanning the headers of every frame before it (the address map), and goes on
    :data:`OVERLAP_FRAMES` past its run's end; the outputs are joined where both runs
    held the same APS fragments (see :func:`_joins`), else the file is decoded in one process.
    Each run goes to a temporary file, copied to ``out`` in order, so memory does not grow
    with the capture.

    Args:
        ring: the keys of ``keys`` (used as they are where one process decodes).
        keys: the keys file each process loads, or ``None``.
        jobs: processes; fewer when the file has under ``min_frames_per_job`` per process.
    """
    import multiprocessing
    import shutil
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    filters = filters or []
    total = _estimate_frames(file)
    jobs = max(1, min(jobs, total // max(min_frames_per_job, 1)))
    if jobs == 1:
        decode_to(out, file, ring, as_json=as_json, filters=filters)
        return
    bounds = _chunk_bounds(total, jobs)
    windows = [frozenset(range(b, b + OVERLAP_FRAMES, JOIN_STEP)) for b in bounds]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with tempfile.TemporaryDirectory(prefix="hanlab-decode-") as tmp:
        paths = [Path(tmp) / f"run{k}" for k in range(jobs)]
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(
                _decode_job, file, keys, as_json, filters, bounds[k],
                bounds[k + 1] + OVERLAP_FRAMES if k < jobs - 1 else None,
                (windows[k] if k else frozenset()) | (windows[k + 1] if k < jobs - 1
                                                      else frozenset()),
                paths[k]) for k in range(jobs)]
            try:
                spans = _joins([future.result() for future in futures])
            except Exception:
                spans = None  # e.g. a damaged file: one process reports it exactly
        if spans is None:
            decode_to(out, file, ring, as_json=as_json, filters=filters)
            return
        for path, (first, end) in zip(paths, spans, strict=True):
            with path.open("rb") as run:
                run.seek(first)
                if end is None:
                    shutil.copyfileobj(run, out, 1 << 20)
                else:
                    left = end - first
                    while left > 0:
                        block = run.read(min(left, 1 << 20))
                        if not block:
                            break
                        out.write(block)
                        left -= len(block)


def decode(
    files: Annotated[list[Path], typer.Argument(
        help="pcap or pcapng captures of 802.15.4 frames, decoded one after the other.")],
    keys: Annotated[Path | None, typer.Option("--keys", help="YAML keys file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per frame.")] = False,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", help="Only frames whose FIELD equals VALUE (repeatable), e.g. "
                         "aps.cluster=0x0704, nwk.src=0x1a2b, zcl.command=TransferData.")
    ] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", min=1, help="Decode in N processes (same output, in frame order).")
    ] = 1,
) -> None:
    """Decode captures: one line (or JSON object) per frame, decrypting with KEYS.

    Several files (e.g. a glob over a run's rotated files) are decoded in the order given,
    each from its first frame; keys learned in one file serve the next.

    Example:

      hanlab decode run.pcapng --keys lab-keys.yaml --filter aps.cluster=0x0704

      hanlab decode night.pcapng --keys lab-keys.yaml --json --jobs 2 > night.jsonl
    """
    ring = load_keys_file(keys) if keys is not None else Keyring()
    wanted = _parse_filters(filters or [])
    sys.stdout.flush()
    out = sys.stdout.buffer
    for file in files:
        if jobs > 1 and len(files) == 1:
            decode_parallel(out, file, ring, keys, jobs, as_json=as_json, filters=wanted)
        else:
            decode_to(out, file, ring, as_json=as_json, filters=wanted)
    out.flush()


@keys_app.command("export-wireshark")
def export_wireshark(
    keys: Annotated[Path, typer.Argument(help="YAML keys file.")],
) -> None:
    """Print the keys as Wireshark ``zigbee_pc_keys`` UAT lines (a secret: redirect to a file).

    Example:

      hanlab keys export-wireshark lab-keys.yaml > ~/.config/wireshark/zigbee_pc_keys
    """
    for line in load_keys_file(keys).wireshark_uat_lines():
        sys.stdout.write(line + "\n")


@keys_app.command("emulated")
def emulated_keys(
    rig_file: Annotated[Path, typer.Argument(help="Rig file of an emulated rig.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Keys file to write (mode 600).")],
) -> None:
    """Write the keys of an emulated rig (network key, every link key) as a keys file.

    The file is what `hanlab decode --keys` and `hanlab keys export-wireshark` read.

    Example:

      hanlab keys emulated rigs/emulated-dual-band.yaml -o dual.keys.yaml

      hanlab decode captures/emulated-dual-band_subGHz_*.pcapng --keys dual.keys.yaml
    """
    ring = emulated_keyring(rig_file)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.dump_yaml())
    os.chmod(out, 0o600)
    sys.stderr.write(f"wrote {out} (network key and {len(ring.link_keys) - 1} link keys)\n")


def emulated_keyring(rig_file: Path) -> Keyring:
    """The keys of an emulated rig (network key, every link key), as the emulated HAN
    built from the rig file has them.

    Raises:
        BadInputError: the rig has no emulated sniffer; ConfigError: a bad rig file.
    """
    from hanlab.config import load_rig
    from hanlab.emulator.han.registry import build_han
    from hanlab.emulator.han.settings import HanSettings
    from hanlab.sources.emulated import EmulatedSnifferSettings

    rig, settings = load_rig(rig_file)
    emulated = [s for s in settings.values() if isinstance(s, EmulatedSnifferSettings)]
    if not emulated:
        raise BadInputError(f"{rig_file}: rig {rig.name} has no emulated sniffer")
    han = build_han(rig.name, emulated[0].han or HanSettings(), rig_config=rig)
    ring: Keyring = han.keyring()
    return ring


def register(app: typer.Typer) -> None:
    """Add ``decode`` and the ``keys`` group to the hanlab CLI."""
    app.command("decode")(decode)
    app.add_typer(keys_app, name="keys")
