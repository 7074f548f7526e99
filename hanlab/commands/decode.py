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

import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NamedTuple

import orjson
import typer

from hanlab.errors import BadInputError, did_you_mean
from hanlab.frames import Frame
from hanlab.secrets_file import load_keys_file
from hanlab.zigbee.aps import APS_COMMAND_NAMES, PROFILE_NAMES
from hanlab.zigbee.common import eui64_str, name_of
from hanlab.zigbee.frame import DecodedFrame, Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import FRAME_TYPE_NAMES, MAC_COMMAND_NAMES
from hanlab.zigbee.nwk import NWK_COMMAND_NAMES, NWK_FRAME_TYPE_NAMES
from hanlab.zigbee.ota import decode_ota_zcl, ota_fields, ota_summary

keys_app = typer.Typer(help="Keys files: export them for other tools.", no_args_is_help=True)


#: ``0x1a2b`` strings of the short addresses seen so far (a capture has few).
_SHORT: dict[int, str] = {}


def _short(addr: int | None) -> str | None:
    """A short address or PAN ID as ``0x1a2b`` (``None`` stays ``None``), cached."""
    if addr is None:
        return None
    text = _SHORT.get(addr)
    if text is None:
        text = _SHORT[addr] = f"0x{addr:04x}"
    return text


def _addr(mode: int, addr: int | None) -> str | None:
    if addr is None:
        return None
    return _short(addr) if mode == 2 else eui64_str(addr)


def _gbcs_parser() -> Callable[[bytes], Any] | None:
    try:
        module = importlib.import_module("hanlab.gbcs.tunnel")
    except ImportError:
        return None
    parser: Callable[[bytes], Any] | None = getattr(module, "parse_tunnel_payload", None)
    return parser


def frame_fields(frame: Frame, d: DecodedFrame, gbcs: Callable[[bytes], Any] | None
                 ) -> dict[str, Any]:
    """The stable flat fields of one decoded frame (``None`` where a layer is absent).

    Names: ``index``, ``ts_ns``, ``band``, ``page``, ``channel``, ``fcs_ok``, ``mac.*``,
    ``nwk.*``, ``aps.*``, ``zcl.*``, ``ota.*`` (OTA Upgrade cluster 0x0019 commands,
    :mod:`hanlab.zigbee.ota`), ``gbcs.*``, ``error``; short addresses as ``0x1a2b``,
    EUI-64 in DUIS form, ``*.decrypted`` ``true``/``false``/``null`` (not secured).
    """
    d.decode_all()
    out: dict[str, Any] = {
        "index": d.index, "ts_ns": frame.ts_ns, "band": frame.band.value, "page": frame.page,
        "channel": frame.channel, "fcs_ok": frame.fcs_ok,
    }
    mac = d.mac
    if mac is not None:
        command = mac.command_id
        out["mac.type"] = FRAME_TYPE_NAMES[mac.frame_type]
        out["mac.seq"] = mac.seq
        out["mac.src"] = _addr(mac.src_mode, mac.src_addr)
        out["mac.dst"] = _addr(mac.dst_mode, mac.dst_addr)
        out["mac.dst_pan"] = _short(mac.dst_pan)
        out["mac.src_pan"] = _short(mac.src_pan)
        out["mac.security"] = mac.security
        out["mac.command"] = None if command is None else name_of(MAC_COMMAND_NAMES, command)
    nwk = d.nwk
    if nwk is not None:
        command = nwk.command_id
        out["nwk.type"] = NWK_FRAME_TYPE_NAMES[nwk.frame_type]
        out["nwk.src"] = _short(nwk.src)
        out["nwk.dst"] = _short(nwk.dst)
        out["nwk.src64"] = None if nwk.src64 is None else eui64_str(nwk.src64)
        out["nwk.seq"] = nwk.seq
        out["nwk.radius"] = nwk.radius
        out["nwk.decrypted"] = None if not nwk.security else nwk.payload is not None
        out["nwk.key"] = nwk.key_label
        out["nwk.command"] = None if command is None else name_of(NWK_COMMAND_NAMES, command)
    aps = d.aps
    if aps is not None:
        command = aps.command_id
        out["aps.type"] = aps.frame_type_name
        out["aps.cluster"] = _short(aps.cluster)
        out["aps.profile"] = None if aps.profile is None else name_of(PROFILE_NAMES,
                                                                      aps.profile)
        out["aps.src_ep"] = aps.src_endpoint
        out["aps.dst_ep"] = aps.dst_endpoint
        out["aps.counter"] = aps.counter
        out["aps.decrypted"] = None if not aps.security else aps.payload is not None
        out["aps.key"] = aps.key_label
        out["aps.block"] = aps.block
        out["aps.reassembled"] = d.reassembled
        out["aps.command"] = None if command is None else name_of(APS_COMMAND_NAMES, command)
    zcl = d.zcl
    if zcl is not None:
        out["zcl.type"] = "cluster-specific" if zcl.frame_type == 1 else "profile-wide"
        out["zcl.cluster"] = zcl.cluster_name
        out["zcl.tsn"] = zcl.tsn
        out["zcl.cmd"] = zcl.command_id
        out["zcl.command"] = zcl.command_name
        out["zcl.direction"] = "to-client" if zcl.direction else "to-server"
        out["zcl.manufacturer_code"] = zcl.manufacturer_code
        ota = decode_ota_zcl(zcl)
        if ota is not None:
            out.update(ota_fields(ota))
        data = zcl.tunnel_data
        if data is not None and gbcs is not None:
            out.update(_gbcs_fields(gbcs, data))
    out["error"] = None if d.error is None else str(d.error)
    return out


def _gbcs_fields(parse: Callable[[bytes], Any], data: bytes) -> dict[str, Any]:
    try:
        tunnel = parse(data)
    except Exception as exc:  # a colleague's parser must not stop the listing
        return {"gbcs.error": f"{exc.__class__.__name__}: {exc}"}
    out: dict[str, Any] = {"gbcs.tunnel_command": getattr(tunnel, "command_name", None)}
    message = getattr(tunnel, "message", None)
    cra = getattr(message, "cra_flag", None)
    counter = getattr(message, "originator_counter", None)
    code = getattr(message, "message_code", None)
    out.update({
        "gbcs.cra_flag": None if cra is None else int(cra),
        "gbcs.originator_counter": counter,
        "gbcs.message_code": None if code is None else f"0x{int(code):04X}",
    })
    return out


def frame_line(frame: Frame, d: DecodedFrame, gbcs: Callable[[bytes], Any] | None) -> str:
    """The one-line form of a decoded frame, straight from the layers (no field dict).

    Time (s.ns since the epoch), band/page:channel, layers, MAC type, sequence number and
    addresses, NWK addresses, sequence number and radius, decryption status, ZCL cluster,
    command, TSN and direction (or APS profile and cluster), MAC/NWK command, the GBCS
    tunnel command, CRA flag, Originator Counter and Message Code, and the decode error.
    Values are formatted as in :func:`frame_fields`.
    """
    d.decode_all()
    ts_ns = frame.ts_ns
    parts = [f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000:09d}",
             f"{frame.band.value}/{frame.page}:{frame.channel}", ""]
    layers = "mac"
    tail: list[str] = []
    mac = d.mac
    if mac is None:
        parts.append("? #None - -> -")
    else:
        parts.append(f"{FRAME_TYPE_NAMES[mac.frame_type]} #{mac.seq} "
                     f"{_addr(mac.src_mode, mac.src_addr) or '-'} -> "
                     f"{_addr(mac.dst_mode, mac.dst_addr) or '-'}")
        command = mac.command_id
        if command is not None:
            tail.append(name_of(MAC_COMMAND_NAMES, command))
    nwk = d.nwk
    if nwk is not None:
        layers = "mac+nwk"
        parts.append(f"NWK {_short(nwk.src)} -> {_short(nwk.dst)} seq {nwk.seq} r{nwk.radius}")
        if nwk.security:
            parts.append("nwk:ENCRYPTED" if nwk.payload is None else "nwk:decrypted")
        command = nwk.command_id
        if command is not None:
            tail.append(name_of(NWK_COMMAND_NAMES, command))
    aps = d.aps
    zcl = d.zcl
    gbcs_line = None
    if aps is not None:
        layers += "+aps"
        if aps.security:
            parts.append("aps:ENCRYPTED" if aps.payload is None else "aps:decrypted")
        command = aps.command_id
        if command is not None:
            parts.append(f"APS {name_of(APS_COMMAND_NAMES, command)}")
        if zcl is not None:
            layers += "+zcl"
            parts.append(f"{zcl.cluster_name}/{zcl.command_name} tsn {zcl.tsn} "
                         f"{'to-client' if zcl.direction else 'to-server'}")
            ota = decode_ota_zcl(zcl)
            if ota is not None:
                parts.append(ota_summary(ota_fields(ota)))
            data = zcl.tunnel_data
            if data is not None and gbcs is not None:
                g = _gbcs_fields(gbcs, data)
                if g.get("gbcs.tunnel_command"):
                    layers += "+gbcs"
                    gbcs_line = (f"GBCS {g['gbcs.tunnel_command']} CRA {g['gbcs.cra_flag']} "
                                 f"counter {g['gbcs.originator_counter']} "
                                 f"code {g['gbcs.message_code']}")
        elif aps.cluster is not None:
            profile = None if aps.profile is None else name_of(PROFILE_NAMES, aps.profile)
            parts.append(f"{profile} cluster {_short(aps.cluster)}")
    parts.extend(tail)
    if gbcs_line is not None:
        parts.append(gbcs_line)
    if d.error is not None:
        parts.append(f"error: {d.error}")
    parts[2] = layers
    return "  ".join(parts)


#: every field name :func:`frame_fields` can give (what ``--filter`` accepts).
FIELD_NAMES: tuple[str, ...] = (
    "index", "ts_ns", "band", "page", "channel", "fcs_ok",
    "mac.type", "mac.seq", "mac.src", "mac.dst", "mac.dst_pan", "mac.src_pan",
    "mac.security", "mac.command",
    "nwk.type", "nwk.src", "nwk.dst", "nwk.src64", "nwk.seq", "nwk.radius",
    "nwk.decrypted", "nwk.key", "nwk.command",
    "aps.type", "aps.cluster", "aps.profile", "aps.src_ep", "aps.dst_ep", "aps.counter",
    "aps.decrypted", "aps.key", "aps.block", "aps.reassembled", "aps.command",
    "zcl.type", "zcl.cluster", "zcl.tsn", "zcl.cmd", "zcl.command", "zcl.direction",
    "zcl.manufacturer_code",
    "gbcs.tunnel_command", "gbcs.cra_flag", "gbcs.originator_counter",
    "gbcs.message_code", "gbcs.error", "error",
)


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


def _matches(fields: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    for field, value in filters:
        have = fields.get(field)
        if have is None:
            return False
        if str(have).lower() != value.lower() and json.dumps(have) != value.lower():
            return False
    return True


#: frames per write: output leaves in blocks of this many lines, not line by line.
WRITE_BATCH = 2048


def decode_to(out: BinaryIO, file: Path, ring: Keyring, *, as_json: bool = False,
              filters: list[tuple[str, str]] | None = None, start: int = 0,
              stop: int | None = None, decoder: Decoder | None = None,
              join_points: frozenset[int] = frozenset()) -> ChunkSummary:
    """Decode frames ``start`` (0-based) up to ``stop`` of ``file`` and write them to ``out``.

    Frames before ``start`` are decoded only as deep as the state later frames need
    (MAC and NWK headers: the short-to-EUI-64 address map), without decryption.

    Args:
        out: a binary stream; UTF-8 lines (one-line form, or JSON with ``as_json``).
        ring: the keys; keys learned from Transport Key commands are added to it.
        filters: ``(field, value)`` pairs every written frame matches.
        start, stop: the frames to write, by index in the capture (``stop`` ``None``: to
            the end).
        decoder: the decoding session to use (a new one on ``ring`` if ``None``).
        join_points: frame indices at which to note the APS reassembly state and how many
            octets have been written (where two runs' outputs can be joined).

    Returns:
        What later frames of the capture could depend on (see :class:`ChunkSummary`).
    """
    from hanlab.capture.reader import read_frames

    decoder = decoder if decoder is not None else Decoder(ring)
    keys_before = len(ring.network_keys) + len(ring.link_keys)
    gbcs = _gbcs_parser()
    frames = read_frames(file)
    if start:
        scan = Decoder(Keyring(well_known_tc_link_key=False))
        scan.address_map = decoder.address_map
        for index, frame in zip(range(start), frames, strict=False):
            scan.decode(frame.psdu, frame.ts_ns, index, frame.fcs_ok).nwk  # noqa: B018
    decode = decoder.decode
    lines: list[str] = []  # the one-line form, encoded once per batch
    blobs: list[bytes] = []  # JSON
    written = 0
    joins: dict[int, tuple[bytes, int]] = {}
    reassembler = decoder.reassembler
    index = start
    for frame in frames:
        if stop is not None and index >= stop:
            break
        if index in join_points:
            written += _flush(out, lines, blobs)
            joins[index] = (reassembler.state_digest(), written)
        d = decode(frame.psdu, frame.ts_ns, index, frame.fcs_ok)
        index += 1
        if as_json or filters:
            fields = frame_fields(frame, d, gbcs)
            if filters and not _matches(fields, filters):
                continue
            if as_json:
                blobs.append(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))
            else:
                lines.append(frame_line(frame, d, gbcs))
        else:
            lines.append(frame_line(frame, d, gbcs))
        if len(lines) + len(blobs) >= WRITE_BATCH:
            written += _flush(out, lines, blobs)
    _flush(out, lines, blobs)
    return ChunkSummary(
        frames=index - start,
        learned_keys=len(ring.network_keys) + len(ring.link_keys) - keys_before,
        joins=joins,
    )


def _flush(out: BinaryIO, lines: list[str], blobs: list[bytes]) -> int:
    """Write the batch; the number of octets written."""
    data = b""
    if lines:
        lines.append("")
        data = "\n".join(lines).encode()
        lines.clear()
    if blobs:
        data += b"".join(blobs)
        blobs.clear()
    out.write(data)
    return len(data)


class ChunkSummary(NamedTuple):
    """What decoding one run of frames left behind that later frames could depend on.

    Attributes:
        frames: frames decoded (and written unless filtered out).
        learned_keys: keys learned from Transport Key commands.
        joins: frame index -> (APS reassembly state digest, octets written before it) at
            each of the ``join_points``.
    """

    frames: int
    learned_keys: int
    joins: dict[int, tuple[bytes, int]]


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
