"""The decode listing: one line or one flat JSON object per frame (``hanlab decode``).

:func:`decode_to` reads a capture, decodes each frame (:class:`~hanlab.zigbee.frame.Decoder`)
and writes :func:`frame_line` or :func:`frame_fields` for it, in blocks. This is the hot
loop of ``hanlab decode``; it is compiled with the codec (:mod:`hanlab._compiled`), and
the command module (:mod:`hanlab.commands.decode`) keeps the command line and ``--jobs``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final, NamedTuple

import orjson

from hanlab.capture.reader import read_frames
from hanlab.frames import BAND_TEXT, Frame
from hanlab.zigbee.aps import APS_COMMAND_NAMES, PROFILE_NAMES
from hanlab.zigbee.common import eui64_str, name_of
from hanlab.zigbee.frame import DecodedFrame, Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import FRAME_TYPE_NAMES, MAC_COMMAND_NAMES
from hanlab.zigbee.nwk import NWK_COMMAND_NAMES, NWK_FRAME_TYPE_NAMES
from hanlab.zigbee.ota import decode_ota_zcl, ota_fields, ota_summary

#: ``0x1a2b`` strings of the short addresses seen so far (a capture has few).
_SHORT: Final[dict[int, str]] = {}


def _short(addr: int | None) -> str | None:
    """A short address or PAN ID as ``0x1a2b`` (``None`` stays ``None``), cached."""
    if addr is None:
        return None
    text = _SHORT.get(addr)
    if text is None:
        text = _SHORT[addr] = f"0x{addr:04x}"
    return text


#: the file names of the bands (``Band.value`` is a slow enum property, per frame).
#: ``2.4GHz/0:11`` strings by ``page << 8 | channel`` (a capture has few).
_WHERE: Final[dict[int, str]] = {}


def _where(frame: Frame) -> str:
    """``band/page:channel`` of ``frame``, cached."""
    key = frame.page << 8 | frame.channel
    text = _WHERE.get(key)
    if text is None:
        text = _WHERE[key] = f"{BAND_TEXT[frame.band]}/{frame.page}:{frame.channel}"
    return text


def _seconds(ts_ns: int) -> str:
    """``ts_ns`` as seconds with 9 decimals (``1706748028.894546000``)."""
    if ts_ns >= 1_000_000_000:
        digits = str(ts_ns)
        return f"{digits[:-9]}.{digits[-9:]}"
    return f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000:09d}"


#: the decimal strings of 0-255 (sequence numbers, radius, TSN: most numbers of a line).
_DECIMAL: Final[tuple[str, ...]] = tuple(str(i) for i in range(256))


def _num(value: int | None) -> str:
    """``str(value)``, from :data:`_DECIMAL` for 0-255 (``None`` is ``"None"``)."""
    if value is not None and 0 <= value < 256:
        return _DECIMAL[value]
    return str(value)


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
        "index": d.index, "ts_ns": frame.ts_ns, "band": BAND_TEXT[frame.band], "page": frame.page,
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
    # one f-string at the end: each piece below carries its own "  " separator
    layers = "mac"
    mac = d.mac
    if mac is None:
        mac_text = "? #None - -> -"
        tail = ""
    else:
        mac_text = (f"{FRAME_TYPE_NAMES[mac.frame_type]} #{_num(mac.seq)} "
                    f"{_addr(mac.src_mode, mac.src_addr) or '-'} -> "
                    f"{_addr(mac.dst_mode, mac.dst_addr) or '-'}")
        command = mac.command_id
        tail = "" if command is None else "  " + name_of(MAC_COMMAND_NAMES, command)
    nwk_text = ""
    nwk = d.nwk
    if nwk is not None:
        layers = "mac+nwk"
        nwk_text = (f"  NWK {_short(nwk.src)} -> {_short(nwk.dst)} seq {_num(nwk.seq)} "
                    f"r{_num(nwk.radius)}")
        if nwk.security:
            nwk_text += "  nwk:ENCRYPTED" if nwk.payload is None else "  nwk:decrypted"
        command = nwk.command_id
        if command is not None:
            tail += "  " + name_of(NWK_COMMAND_NAMES, command)
    aps_text = gbcs_text = ""
    aps = d.aps
    zcl = d.zcl
    if aps is not None:
        layers += "+aps"
        if aps.security:
            aps_text = "  aps:ENCRYPTED" if aps.payload is None else "  aps:decrypted"
        command = aps.command_id
        if command is not None:
            aps_text += f"  APS {name_of(APS_COMMAND_NAMES, command)}"
        if zcl is not None:
            layers += "+zcl"
            aps_text += (f"  {zcl.cluster_name}/{zcl.command_name} tsn {_num(zcl.tsn)} "
                         f"{'to-client' if zcl.direction else 'to-server'}")
            ota = decode_ota_zcl(zcl)
            if ota is not None:
                aps_text += "  " + ota_summary(ota_fields(ota))
            data = zcl.tunnel_data
            if data is not None and gbcs is not None:
                g = _gbcs_fields(gbcs, data)
                if g.get("gbcs.tunnel_command"):
                    layers += "+gbcs"
                    gbcs_text = (f"  GBCS {g['gbcs.tunnel_command']} CRA {g['gbcs.cra_flag']} "
                                 f"counter {g['gbcs.originator_counter']} "
                                 f"code {g['gbcs.message_code']}")
        elif aps.cluster is not None:
            profile = None if aps.profile is None else name_of(PROFILE_NAMES, aps.profile)
            aps_text += f"  {profile} cluster {_short(aps.cluster)}"
    error_text = "" if d.error is None else f"  error: {d.error}"
    return (f"{_seconds(frame.ts_ns)}  {_where(frame)}  {layers}  {mac_text}{nwk_text}"
            f"{aps_text}{tail}{gbcs_text}{error_text}")


#: every field name :func:`frame_fields` can give (what ``--filter`` accepts).
FIELD_NAMES: Final[tuple[str, ...]] = (
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


def _matches(fields: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    for field, value in filters:
        have = fields.get(field)
        if have is None:
            return False
        if str(have).lower() != value.lower() and json.dumps(have) != value.lower():
            return False
    return True


#: frames per write: output leaves in blocks of this many lines, not line by line.
WRITE_BATCH: Final = 2048


def decode_to(out: BinaryIO, file: Path, ring: Keyring, *, as_json: bool = False,
              filters: list[tuple[str, str]] | None = None, start: int = 0,
              stop: int | None = None, decoder: Decoder | None = None,
              join_points: frozenset[int] = frozenset(), scan: bool = True,
              addresses_at: int | None = None) -> ChunkSummary:
    """Decode frames ``start`` (0-based) up to ``stop`` of ``file`` and write them to ``out``.

    With ``scan``, frames before ``start`` are decoded only as deep as the state later
    frames need (MAC and NWK headers: the short-to-EUI-64 address map), without
    decryption. Without it they are skipped unread and the map starts empty: what that
    changed is in the summary's ``address_misses`` (``hanlab decode --jobs``).

    Args:
        out: a binary stream; UTF-8 lines (one-line form, or JSON with ``as_json``).
        ring: the keys; keys learned from Transport Key commands are added to it.
        filters: ``(field, value)`` pairs every written frame matches.
        start, stop: the frames to write, by index in the capture (``stop`` ``None``: to
            the end).
        decoder: the decoding session to use (a new one on ``ring`` if ``None``).
        join_points: frame indices at which to note the APS reassembly state and how many
            octets have been written (where two runs' outputs can be joined).
        scan: learn the address map from the frames before ``start`` (see above).
        addresses_at: the frame index at which to note the short addresses the map holds
            (``addresses`` of the summary).

    Returns:
        What later frames of the capture could depend on (see :class:`ChunkSummary`).
    """
    decoder = decoder if decoder is not None else Decoder(ring)
    keys_before = len(ring.network_keys) + len(ring.link_keys)
    gbcs = _gbcs_parser()
    frames = read_frames(file, skip_frames=0 if scan else start)
    if start and scan:
        learn = decoder.learn_addresses
        for _, frame in zip(range(start), frames, strict=False):
            learn(frame.psdu, frame.fcs_ok)
    addresses: frozenset[int] | None = None
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
        if index == addresses_at:
            addresses = frozenset(decoder.address_map)
        d = decoder.decode(frame.psdu, frame.ts_ns, index, frame.fcs_ok)  # a native call
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
    if addresses is None and index == addresses_at:
        addresses = frozenset(decoder.address_map)  # at the end of the file
    return ChunkSummary(
        frames=index - start,
        learned_keys=len(ring.network_keys) + len(ring.link_keys) - keys_before,
        joins=joins,
        addresses=addresses,
        address_misses=dict(decoder.address_misses),
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
        addresses: the short addresses in the address map at frame ``addresses_at``
            (``None`` if the run did not reach it).
        address_misses: short address -> last frame index where an APS decryption found
            no EUI-64 for it in the map (:attr:`~hanlab.zigbee.frame.Decoder.address_misses`).
    """

    frames: int
    learned_keys: int
    joins: dict[int, tuple[bytes, int]]
    addresses: frozenset[int] | None
    address_misses: dict[int, int]


