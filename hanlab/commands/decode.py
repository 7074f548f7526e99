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
from typing import TYPE_CHECKING, Annotated, BinaryIO, NamedTuple

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

if TYPE_CHECKING:
    from concurrent.futures import Future

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
#: cost of a frame skipped before a process's run (read, not built) relative to one it
#: writes: 0.05-0.06 for DLT 195 (issue 15); other link types build what they skip.
SKIP_COST = 0.05
#: frames after a run's nominal end where it may hand over to the next run (the two
#: decoders' APS reassembly must agree there: at most the reassembly time-out after it).
OVERLAP_FRAMES = 4_000
#: every how many frames of the overlap the two runs compare their state.
JOIN_STEP = 4


def _chunk_bounds(total: int, jobs: int) -> list[int]:
    """Frame indices where each process's run starts (and ``total``), balanced so that
    every process does the same work: process k also skips the frames before its run."""
    weights = [(1 - SKIP_COST) ** k for k in range(jobs)]
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
                start: int, stop: int | None, join_points: frozenset[int],
                addresses_at: int | None, scan: bool, out_path: Path) -> ChunkSummary:
    ring = Keyring.load(keys) if keys is not None else Keyring()
    with out_path.open("wb") as out:
        return decode_to(out, file, ring, as_json=as_json, filters=filters, start=start,
                         stop=stop, join_points=join_points, scan=scan,
                         addresses_at=addresses_at)


class _Join(NamedTuple):
    """Where run k-1 hands over to run k: ``frame`` (``None``: nowhere) and whether run k
    must be decoded again with the scan of the frames before it (``rescan``)."""

    frame: int | None
    rescan: bool


def _join(before: ChunkSummary, after: ChunkSummary, known: frozenset[int]) -> _Join:
    """The first frame of the overlap where run ``after`` prints what one process would.

    There both decoders held the same APS fragments, so their state is the same but for
    the address map: ``after`` began with an empty one (no scan), and one process would
    also hold ``known``, the short addresses learned before ``after``'s run. That changes
    nothing from a frame on after which ``after`` never looked up one of them in vain
    (its ``address_misses``). A run that did is decoded again with the scan
    (``rescan``); a run that began with the scan has no such misses.
    """
    common = sorted(i for i in before.joins.keys() & after.joins.keys()
                    if before.joins[i][0] == after.joins[i][0])
    if not common:
        return _Join(None, False)
    after_miss = max((i for a, i in after.address_misses.items() if a in known), default=-1)
    frame = next((i for i in common if i > after_miss), None)
    return _Join(frame, frame is None)


def _spans(summaries: list[ChunkSummary], joins: list[_Join]) -> list[tuple[int, int | None]]:
    """``(first octet, end octet or None)`` of each run's output to copy."""
    spans: list[tuple[int, int | None]] = []
    begin = 0
    for k, join in enumerate(joins):
        assert join.frame is not None
        spans.append((begin, summaries[k].joins[join.frame][1]))
        begin = summaries[k + 1].joins[join.frame][1]
    spans.append((begin, None))
    return spans


def _joins(summaries: list[ChunkSummary]) -> list[_Join] | None:
    """The :class:`_Join` of each pair of neighbouring runs, or ``None`` where one process
    must decode the file: a key learned before the last run could change what later runs
    print, and runs whose overlap holds no common state cannot be joined."""
    joins: list[_Join] = []
    known: frozenset[int] = frozenset()
    for k in range(1, len(summaries)):
        before = summaries[k - 1]
        if before.learned_keys or before.addresses is None:
            return None
        known |= before.addresses
        join = _join(before, summaries[k], known)
        if join.frame is None and not join.rescan:
            return None
        joins.append(join)
    return joins


def decode_parallel(out: BinaryIO, file: Path, ring: Keyring, keys: Path | None, jobs: int, *,
                    as_json: bool = False, filters: list[tuple[str, str]] | None = None,
                    min_frames_per_job: int = MIN_FRAMES_PER_JOB) -> None:
    """``hanlab decode --jobs N``: decode ``file`` in ``jobs`` processes, in frame order.

    The output is byte for byte that of one process. Process k skips the frames before
    its run unread and decodes from there with an empty address map, going on
    :data:`OVERLAP_FRAMES` past its run's end. The outputs are joined where both runs
    held the same APS fragments and the empty map has stopped mattering (see
    :func:`_join`); a run for which it never stopped is decoded again after scanning
    the headers of every frame before it (the exact map), and where no join exists one
    process decodes the file. Each run goes to a temporary file, copied to ``out`` in
    order, so memory does not grow with the capture.

    Args:
        ring: the keys of ``keys`` (used as they are where one process decodes).
        keys: the keys file each process loads, or ``None``.
        jobs: processes; fewer when the file has under ``min_frames_per_job`` per process.
    """
    import multiprocessing
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
    with tempfile.TemporaryDirectory(prefix="hanlab-decode-") as tmp, \
            ProcessPoolExecutor(jobs, mp_context=context) as pool:
        paths = [Path(tmp) / f"run{k}" for k in range(jobs)]

        def run(k: int, scan: bool) -> Future[ChunkSummary]:
            last = k == jobs - 1
            return pool.submit(
                _decode_job, file, keys, as_json, filters, bounds[k],
                None if last else bounds[k + 1] + OVERLAP_FRAMES,
                (windows[k] if k else frozenset()) | (frozenset() if last else windows[k + 1]),
                None if last else bounds[k + 1], scan, paths[k])

        joins: list[_Join] | None = None
        try:
            summaries = [future.result() for future in [run(k, False) for k in range(jobs)]]
            joins = _joins(summaries)
            rescans = [k for k, join in enumerate(joins or [], 1) if join.rescan]
            if rescans:
                again = {k: run(k, True) for k in rescans}
                for k, future in again.items():
                    summaries[k] = future.result()
                joins = _joins(summaries)
                if joins is not None and any(join.frame is None for join in joins):
                    joins = None
        except Exception:
            joins = None  # e.g. a damaged file: one process reports it exactly
        if joins is None:
            decode_to(out, file, ring, as_json=as_json, filters=filters)
            return
        _copy_runs(out, paths, _spans(summaries, joins))


def _copy_runs(out: BinaryIO, paths: list[Path], spans: list[tuple[int, int | None]]) -> None:
    """Copy each run's span of output to ``out``, in order."""
    import shutil

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
