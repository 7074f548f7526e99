"""Triage bundles and annotated captures (issue 10, item 6; seed 000 DIT.EX.8 "evidence
captured"; DESIGN.md "Wireshark's tools": standard files Wireshark opens).

Frame membership comes from the correlator itself (``on_frames`` of
:class:`~hanlab.correlate.correlator.Correlator`, through
:func:`hanlab.correlate.offline.analyse`): the frames it tied to an exchange's command and
response are that exchange's frames, at the level the keys allowed.

Every frame of an exchange gets one pcapng ``opt_comment`` on its Enhanced Packet Block
(Wireshark: ``frame.comment``)::

    hanlab: RequestID=90-B3-…:00-DB-…:1796120992756 SR=4.1.1 segment=han_command
    match=exact frame=1/3

(``segment`` is ``han_command`` or ``han_response``, the timing segment the frame is part
of; an alert's frames say ``ResponseID=… alert=8F0A segment=alert``.)

A **triage bundle** (:func:`build_bundle`, ``hanlab evidence``) of one step is a folder
(or the same as a ZIP)::

    README.txt            what is here and how to open it
    frames.pcapng         every frame of every band from the request − margin to the end
                          of the exchange + margin, time-ordered, one interface per
                          capture file, the exchange's frames commented as above
    wireshark/zigbee_pc_keys   the keys as a Wireshark UAT file (a secret: mode 600, its
                          folder 700); open with WIRESHARK_CONFIG_DIR=wireshark
    duis/NN-<kind>.xml    request, acknowledgement, response and alerts, as sent and
                          received (when the DUIS log kept XML: ``duis.keep_xml``),
    duis/log.json         else (and always) the DUIS log lines of the exchange
    timeline.txt, timeline.html   DUIS documents and HAN frames in time order
    bundle.json           the step, the exchange, the window, file list with SHA-256

Times in the bundle are those of the captures and the DUIS log (the lab's HAN clock),
ns since the UNIX epoch, UTC. Key material is written only to the keys file, never
printed or logged.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanlab.correlate.exchange import Exchange
from hanlab.errors import BadInputError
from hanlab.frames import Frame
from hanlab.zigbee.keyring import Keyring

__all__ = ["FrameKey", "Membership", "annotate_captures", "build_bundle", "correlate_frames",
           "find_step", "frame_comment"]

#: (capture file name, ts_ns, PSDU): a frame found again in its file
FrameKey = tuple[str, int, bytes]


@dataclass
class Membership:
    """One exchange and the frames the correlator tied to it."""

    exchange: Exchange
    command: list[Frame] = field(default_factory=list)
    response: list[Frame] = field(default_factory=list)

    def frames(self) -> list[tuple[str, Frame]]:
        """``(segment, frame)`` of the command then the response, in feed order."""
        segment = "alert" if self.exchange.kind == "alert" else "han_response"
        return [("han_command", f) for f in self.command] + [(segment, f)
                                                             for f in self.response]


def frame_comment(exchange: Exchange, segment: str, number: int, total: int) -> str:
    """The ``opt_comment`` of one frame of ``exchange`` (format in the module docstring)."""
    if exchange.kind == "alert":
        return (f"hanlab: ResponseID={exchange.request_id} alert={exchange.alert_code} "
                f"segment={segment} match={exchange.match_level} frame={number}/{total}")
    return (f"hanlab: RequestID={exchange.request_id} SR={exchange.sr_variant} "
            f"segment={segment} match={exchange.match_level} frame={number}/{total}")


def correlate_frames(captures: Sequence[Path], duis_log: Path | Iterable[Any], *,
                     keyring: Keyring | None = None,
                     device_roles: Mapping[str, str] | None = None) -> list[Membership]:
    """Every exchange of ``captures`` and the DUIS log with its frames (each frame's
    ``sniffer_id`` is its capture's file name).

    Raises:
        BadInputError: an unreadable capture or DUIS log.
    """
    from hanlab.correlate.offline import analyse

    out: list[Membership] = []

    def tied(exchange: Exchange, command: list[Frame], response: list[Frame]) -> None:
        out.append(Membership(exchange, command, response))

    analyse(list(captures), duis_log, keyring=keyring, device_roles=device_roles,
            on_frames=tied, sniffer_ids=[Path(p).name for p in captures])
    return out


def _comments(members: Iterable[Membership]) -> dict[FrameKey, list[str]]:
    comments: dict[FrameKey, list[str]] = {}
    for member in members:
        frames = member.frames()
        for number, (segment, frame) in enumerate(frames, start=1):
            key = (frame.sniffer_id, frame.ts_ns, frame.psdu)
            comments.setdefault(key, []).append(
                frame_comment(member.exchange, segment, number, len(frames)))
    return comments


def _write_frames(path: Path, captures: Sequence[Path], comments: Mapping[FrameKey, list[str]],
                  start_ns: int | None = None, end_ns: int | None = None) -> tuple[int, int]:
    """Frames of ``captures`` (time-ordered, within the window if given) into a new
    pcapng with their comments; ``(frames written, frames commented)``."""
    import heapq

    from hanlab.capture.pcapng import PcapngWriter
    from hanlab.capture.reader import read_frames

    writer = PcapngWriter(path)
    written = commented = 0
    try:
        ifaces = {Path(p).name: writer.interface(Path(p).stem, f"from {Path(p).name}")
                  for p in captures}
        streams = [read_frames(p, Path(p).name) for p in captures]
        for frame in heapq.merge(*streams, key=lambda f: f.ts_ns):
            if start_ns is not None and frame.ts_ns < start_ns:
                continue
            if end_ns is not None and frame.ts_ns > end_ns:
                continue
            notes = comments.get((frame.sniffer_id, frame.ts_ns, frame.psdu), [])
            writer.write_annotated(ifaces[frame.sniffer_id], frame, notes)
            written += 1
            commented += bool(notes)
            if writer.pending_bytes > 1 << 20:
                writer.flush()
    finally:
        writer.close()
    return written, commented


def annotate_captures(captures: Sequence[Path], duis_log: Path, out: Path, *,
                      keyring: Keyring | None = None,
                      device_roles: Mapping[str, str] | None = None) -> list[Path]:
    """``hanlab annotate``: each capture again, whole, with every exchange's frames
    commented; written to ``out`` (a ``.pcapng`` file for one capture, else a folder of
    files named as the captures). The paths written.

    Raises:
        BadInputError: unreadable inputs, or ``out`` exists as a file for several captures.
    """
    members = correlate_frames(captures, duis_log, keyring=keyring, device_roles=device_roles)
    comments = _comments(members)
    if len(captures) == 1 and out.suffix == ".pcapng":
        targets = [out]
        out.parent.mkdir(parents=True, exist_ok=True)
    else:
        if out.exists() and not out.is_dir():
            raise BadInputError(f"{out}: exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / Path(p).name for p in captures]
    for capture, target in zip(captures, targets, strict=True):
        if target.resolve() == Path(capture).resolve():
            raise BadInputError(f"{target}: would overwrite its own capture")
        target.unlink(missing_ok=True)
        _write_frames(target, [capture], comments)
    return targets


def find_step(record: Mapping[str, Any], step: str | None) -> list[dict[str, Any]]:
    """The steps of ``record`` that ``step`` names: its 1-based position in the record,
    a step key ``variant#repetition/index``, or a RequestID; ``None``: every failed
    mandatory step.

    Raises:
        BadInputError: no such step (or, for ``None``, no failed step).
    """
    from hanlab.reports.analysis import step_request_id
    from hanlab.reports.model import step_key

    steps = list(record.get("steps") or [])
    if step is None:
        found = [s for s in steps if s.get("status") == "failed" and not s.get("optional")]
        if not found:
            raise BadInputError(f"job {record.get('id')}: no failed step",
                                hint="name a step: its number, variant#rep/index or RequestID")
        return found
    if step.isdigit() and 1 <= int(step) <= len(steps):
        return [steps[int(step) - 1]]
    found = [s for s in steps if step in (step_key(s), step_request_id(s))]
    if not found:
        raise BadInputError(f"job {record.get('id')}: no step {step!r}",
                            hint=f"1..{len(steps)}, variant#rep/index or a RequestID")
    return found


def _duis_lines(record: Mapping[str, Any], captures_dir: Path) -> list[dict[str, Any]]:
    """The job's DUIS log lines, plus the rig log's lines for the job's RequestIDs that
    came after the job's log closed (a late response)."""
    from hanlab.duis.log import read_duis_log

    path = Path(str(record.get("duis_log") or ""))
    if not path.is_absolute():
        path = captures_dir / path
    if not path.is_file():
        alt = captures_dir / "jobs" / str(record.get("id")) / "duis.jsonl"
        if not alt.is_file():
            raise BadInputError(f"{path}: the job's DUIS log is missing",
                                hint="give --captures DIR, the lab output folder")
        path = alt
    lines = read_duis_log(path)
    rig_log = captures_dir / f"{record.get('rig')}_duis.jsonl"
    if rig_log.is_file():
        ids = {line.get("request_id_text") for line in lines if line.get("request_id_text")}
        seen = {(line.get("ts_ns"), line.get("kind")) for line in lines}
        last = max((int(line["ts_ns"]) for line in lines), default=0)
        for line in read_duis_log(rig_log):
            if (line.get("request_id_text") in ids and int(line.get("ts_ns") or 0) > last
                    and (line.get("ts_ns"), line.get("kind")) not in seen):
                lines.append(line)
    lines.sort(key=lambda line: int(line.get("ts_ns") or 0))
    return lines


def build_bundle(record: Mapping[str, Any], step: Mapping[str, Any], out: Path, *,
                 captures_dir: Path, keyring: Keyring | None,
                 device_roles: Mapping[str, str] | None = None,
                 margin_s: float = 2.0) -> Path:
    """The triage bundle of one step of a job (contents in the module docstring);
    ``out`` is a folder, or a ``.zip`` file. The path written.

    Args:
        record: the JOB record.
        step: one of its steps (:func:`find_step`).
        captures_dir: the folder holding ``record["captures"]`` (the lab output folder).
        keyring: the rig's keys (decryption and the ``zigbee_pc_keys`` file), or ``None``.
        device_roles: EUI-64 -> role, e.g. from the rig file.
        margin_s: seconds of traffic kept before and after the exchange.

    Raises:
        BadInputError: a capture or the DUIS log is missing; the step has no RequestID.
    """
    from hanlab.correlate.events import DuisEvent
    from hanlab.reports.analysis import step_request_id
    from hanlab.reports.model import step_key

    captures = [captures_dir / name for name in record.get("captures") or []]
    missing = [p for p in captures if not p.is_file()]
    if missing or not captures:
        raise BadInputError(f"{missing[0] if missing else 'captures'}: the job's capture "
                            "is missing" if missing else f"job {record.get('id')} names "
                            "no captures", hint="give --captures DIR, the lab output folder")
    request_id = step_request_id(dict(step))
    lines = _duis_lines(record, captures_dir)
    events = sorted((DuisEvent.from_log_line(line, where=f"duis log line {n}")
                     for n, line in enumerate(lines, start=1)), key=lambda e: e.ts_ns)
    members = correlate_frames(captures, events, keyring=keyring, device_roles=device_roles)
    mine = [m for m in members if request_id and m.exchange.request_id == request_id]
    exchange = mine[0].exchange if mine else None
    own = [line for line in lines if request_id and line.get("request_id_text") == request_id]
    times = [int(line["ts_ns"]) for line in own]
    frames = [f for m in mine for _, f in m.frames()]
    times += [f.ts_ns for f in frames]
    if exchange is not None:
        times += [t for t in (exchange.command_end_ts_ns, exchange.response_end_ts_ns) if t]
    if not times:
        raise BadInputError(f"job {record.get('id')} step {step_key(dict(step))}: no DUIS "
                            "request or HAN frame to bundle (the step sent no SR)")
    margin = int(margin_s * 1e9)
    start_ns, end_ns = min(times) - margin, max(times) + margin
    target = step.get("target_eui64")
    alerts = [line for line in lines if line.get("kind") == "alert"
              and start_ns <= int(line["ts_ns"]) <= end_ns
              and (target is None or target in str(line.get("response_id") or ""))]
    docs = sorted(own + [a for a in alerts if a not in own], key=lambda x: int(x["ts_ns"]))

    zip_out = out.suffix == ".zip"
    folder = Path(tempfile.mkdtemp(prefix="hanlab-bundle-")) if zip_out else out
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written, commented = _write_frames(folder / "frames.pcapng", captures,
                                           _comments(mine), start_ns, end_ns)
        files = ["frames.pcapng"]
        if keyring is not None:
            keys = folder / "wireshark"
            keys.mkdir(mode=0o700, exist_ok=True)
            os.chmod(keys, 0o700)
            fd = os.open(keys / "zigbee_pc_keys", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in keyring.wireshark_uat_lines()))
            os.chmod(keys / "zigbee_pc_keys", 0o600)
            files.append("wireshark/zigbee_pc_keys")
        files += _write_duis(folder / "duis", docs)
        timeline = _timeline(docs, mine, request_id)
        (folder / "timeline.txt").write_text(_timeline_text(timeline, record, step),
                                             encoding="utf-8")
        (folder / "timeline.html").write_text(_timeline_html(timeline, record, step),
                                              encoding="utf-8")
        files += ["timeline.txt", "timeline.html"]
        xml_kept = any("xml" in d for d in docs)
        (folder / "README.txt").write_text(_readme(record, step, request_id, xml_kept,
                                                   keyring is not None), encoding="utf-8")
        files.append("README.txt")
        manifest = {
            "schema": 1, "job_id": record.get("id"), "rig": record.get("rig"),
            "step": step_key(dict(step)), "step_record": dict(step),
            "request_id": request_id, "window_ns": [start_ns, end_ns],
            "margin_s": margin_s, "frames": written, "frames_of_exchange": commented,
            "exchange": None if exchange is None else exchange.to_dict(),
            "captures": [p.name for p in captures], "duis_xml_kept": xml_kept,
            "files": {name: _sha256(folder / name) for name in files}}
        (folder / "bundle.json").write_text(json.dumps(manifest, indent=1),
                                            encoding="utf-8")
        if zip_out:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as binary, zipfile.ZipFile(
                    binary, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(folder).as_posix())
            os.chmod(out, 0o600)
    finally:
        if zip_out:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_duis(folder: Path, docs: list[dict[str, Any]]) -> list[str]:
    folder.mkdir(exist_ok=True)
    names: list[str] = []
    counts: dict[str, int] = {}
    for number, doc in enumerate(docs, start=1):
        kind = str(doc.get("kind"))
        counts[kind] = counts.get(kind, 0) + 1
        if doc.get("xml"):
            name = f"{number:02d}-{kind}{'' if counts[kind] == 1 else counts[kind]}.xml"
            (folder / name).write_text(str(doc["xml"]), encoding="utf-8")
            names.append(f"duis/{name}")
    (folder / "log.json").write_text(json.dumps(
        [{k: v for k, v in d.items() if k != "xml"} for d in docs], indent=1),
        encoding="utf-8")
    names.append("duis/log.json")
    return names


def _timeline(docs: list[dict[str, Any]], members: list[Membership],
              request_id: str | None) -> list[tuple[int, str, str]]:
    """``(ts_ns, where, what)`` in time order."""
    rows: list[tuple[int, str, str]] = []
    for doc in docs:
        what = f"{doc.get('kind')} {doc.get('direction')}"
        if doc.get("response_code"):
            what += f" {doc['response_code']}"
        if doc.get("alert_code") or doc.get("dcc_alert_code"):
            what += f" alert {doc.get('alert_code') or doc.get('dcc_alert_code')}"
        ident = doc.get("request_id_text") or doc.get("response_id") or ""
        rows.append((int(doc["ts_ns"]), "DUIS",
                     f"{what} SR {doc.get('sr_variant') or '—'} {ident}"))
    for member in members:
        frames = member.frames()
        for number, (segment, frame) in enumerate(frames, start=1):
            rows.append((frame.ts_ns, f"HAN {frame.band.value} p{frame.page}c{frame.channel}",
                         f"{segment} frame {number}/{len(frames)} {len(frame.psdu)} octets"
                         f"{'' if frame.fcs_ok is not False else ' BAD FCS'}"))
    rows.sort(key=lambda row: row[0])
    if request_id and not members:
        rows.append((rows[-1][0] if rows else 0, "note",
                     "no HAN frame was tied to this request by the correlator"))
    return rows


def _utc(ts_ns: int) -> str:
    from hanlab.reports.analysis import format_ns

    return f"{format_ns(ts_ns)[:-1]}.{ts_ns % 1_000_000_000:09d}Z"


def _timeline_text(rows: list[tuple[int, str, str]], record: Mapping[str, Any],
                   step: Mapping[str, Any]) -> str:
    t0 = rows[0][0] if rows else 0
    lines = [f"Timeline of job {record.get('id')} step {step.get('index')} "
             f"({step.get('scenario')}/{step.get('variant')} #{step.get('repetition')}, "
             f"SR {step.get('sr_variant')}, outcome {step.get('outcome')})",
             f"{'UTC':31} {'+ms':>10}  {'where':22} what"]
    lines += [f"{_utc(ts):31} {(ts - t0) / 1e6:10.3f}  {where:22} {what}"
              for ts, where, what in rows]
    return "\n".join(lines) + "\n"


def _timeline_html(rows: list[tuple[int, str, str]], record: Mapping[str, Any],
                   step: Mapping[str, Any]) -> str:
    t0 = rows[0][0] if rows else 0
    e = html.escape
    body = "".join(
        f"<tr class='{'duis' if where == 'DUIS' else 'han'}'><td>{e(_utc(ts))}</td>"
        f"<td class=num>{(ts - t0) / 1e6:,.3f}</td><td>{e(where)}</td><td>{e(what)}</td></tr>"
        for ts, where, what in rows)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Timeline "
        f"{e(str(record.get('id')))}</title><style>body{{font:13px sans-serif;margin:20px}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "font-family:monospace;font-size:12px}.num{text-align:right}tr.duis{background:"
        "#eef3fb}th{background:#eee}</style></head><body>"
        f"<h1>Job {e(str(record.get('id')))} step {e(str(step.get('index')))}</h1>"
        f"<p>{e(str(step.get('scenario')))}/{e(str(step.get('variant')))} "
        f"#{e(str(step.get('repetition')))}, SR {e(str(step.get('sr_variant')))} to "
        f"{e(str(step.get('target_role')))} {e(str(step.get('target_eui64')))}: "
        f"<b>{e(str(step.get('outcome')))}</b> — {e(str(step.get('detail') or ''))}</p>"
        "<table><tr><th>UTC</th><th>+ms</th><th>where</th><th>what</th></tr>"
        f"{body}</table></body></html>")


def _readme(record: Mapping[str, Any], step: Mapping[str, Any], request_id: str | None,
            xml_kept: bool, keys: bool) -> str:
    no_keys = "" if keys else " - not written: no keys given"
    xml = "the DUIS documents as XML, and " if xml_kept else ""
    no_xml = "" if xml_kept else "; the DUIS log kept no XML (duis.keep_xml: false)"
    return f"""hanlab triage bundle
job {record.get('id')} on rig {record.get('rig')}, step {step.get('index')} of
{step.get('scenario')}/{step.get('variant')} #{step.get('repetition')}:
SR {step.get('sr_variant')} to {step.get('target_role')} {step.get('target_eui64')},
outcome {step.get('outcome')}: {step.get('detail') or ''}
RequestID {request_id or '(none)'}

frames.pcapng      every band's frames around the exchange; the exchange's own frames carry
                   a comment:
                   tshark -r frames.pcapng -Y 'frame.comment contains "{request_id}"'
wireshark/         zigbee_pc_keys (SECRET, mode 600){no_keys}:
                   WIRESHARK_CONFIG_DIR=wireshark wireshark frames.pcapng
duis/              {xml}log.json (the DUIS log lines{no_xml})
timeline.txt/html  DUIS documents and HAN frames in time order
bundle.json        step, exchange, window, SHA-256 of each file
"""
