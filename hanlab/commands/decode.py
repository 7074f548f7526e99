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
from typing import Annotated, Any

import typer

from hanlab.errors import BadInputError
from hanlab.frames import Frame
from hanlab.zigbee.aps import APS_COMMAND_NAMES, PROFILE_NAMES
from hanlab.zigbee.common import eui64_str, name_of
from hanlab.zigbee.frame import DecodedFrame, Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import FRAME_TYPE_NAMES, MAC_COMMAND_NAMES
from hanlab.zigbee.nwk import NWK_COMMAND_NAMES, NWK_FRAME_TYPE_NAMES

keys_app = typer.Typer(help="Keys files: export them for other tools.", no_args_is_help=True)


def _addr(mode: int, addr: int | None) -> str | None:
    if addr is None:
        return None
    return f"0x{addr:04x}" if mode == 2 else eui64_str(addr)


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
    ``nwk.*``, ``aps.*``, ``zcl.*``, ``gbcs.*``, ``error``; short addresses as ``0x1a2b``,
    EUI-64 in DUIS form, ``*.decrypted`` ``true``/``false``/``null`` (not secured).
    """
    d.decode_all()
    out: dict[str, Any] = {
        "index": d.index, "ts_ns": frame.ts_ns, "band": str(frame.band), "page": frame.page,
        "channel": frame.channel, "fcs_ok": frame.fcs_ok,
    }
    mac = d.mac
    if mac is not None:
        out.update({
            "mac.type": FRAME_TYPE_NAMES[mac.frame_type], "mac.seq": mac.seq,
            "mac.src": _addr(mac.src_mode, mac.src_addr),
            "mac.dst": _addr(mac.dst_mode, mac.dst_addr),
            "mac.dst_pan": None if mac.dst_pan is None else f"0x{mac.dst_pan:04x}",
            "mac.src_pan": None if mac.src_pan is None else f"0x{mac.src_pan:04x}",
            "mac.security": mac.security,
            "mac.command": None if mac.command_id is None else name_of(MAC_COMMAND_NAMES,
                                                                        mac.command_id),
        })
    nwk = d.nwk
    if nwk is not None:
        out.update({
            "nwk.type": NWK_FRAME_TYPE_NAMES[nwk.frame_type],
            "nwk.src": _addr(2, nwk.src), "nwk.dst": _addr(2, nwk.dst),
            "nwk.src64": None if nwk.src64 is None else eui64_str(nwk.src64),
            "nwk.seq": nwk.seq, "nwk.radius": nwk.radius,
            "nwk.decrypted": d.nwk_decrypted, "nwk.key": nwk.key_label,
            "nwk.command": None if nwk.command_id is None else name_of(NWK_COMMAND_NAMES,
                                                                        nwk.command_id),
        })
    aps = d.aps
    if aps is not None:
        out.update({
            "aps.type": aps.frame_type_name,
            "aps.cluster": None if aps.cluster is None else f"0x{aps.cluster:04x}",
            "aps.profile": None if aps.profile is None else name_of(PROFILE_NAMES, aps.profile),
            "aps.src_ep": aps.src_endpoint, "aps.dst_ep": aps.dst_endpoint,
            "aps.counter": aps.counter, "aps.decrypted": d.aps_decrypted,
            "aps.key": aps.key_label, "aps.block": aps.block,
            "aps.reassembled": d.reassembled,
            "aps.command": None if aps.command_id is None else name_of(APS_COMMAND_NAMES,
                                                                        aps.command_id),
        })
    zcl = d.zcl
    if zcl is not None:
        out.update({
            "zcl.type": "cluster-specific" if zcl.frame_type == 1 else "profile-wide",
            "zcl.cluster": zcl.cluster_name, "zcl.tsn": zcl.tsn, "zcl.cmd": zcl.command_id,
            "zcl.command": zcl.command_name,
            "zcl.direction": "to-client" if zcl.direction else "to-server",
            "zcl.manufacturer_code": zcl.manufacturer_code,
        })
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


def _line(f: dict[str, Any]) -> str:
    ts_ns = f["ts_ns"]
    parts = [f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000:09d}",
             f"{f['band']}/{f['page']}:{f['channel']}",
             f"{f.get('mac.type', '?')} #{f.get('mac.seq')} {f.get('mac.src') or '-'} -> "
             f"{f.get('mac.dst') or '-'}"]
    layers = ["mac"]
    if "nwk.type" in f:
        layers.append("nwk")
        parts.append(f"NWK {f['nwk.src']} -> {f['nwk.dst']} seq {f['nwk.seq']} "
                     f"r{f['nwk.radius']}")
        if f["nwk.decrypted"] is not None:
            parts.append("nwk:decrypted" if f["nwk.decrypted"] else "nwk:ENCRYPTED")
    if "aps.type" in f:
        layers.append("aps")
        if f["aps.decrypted"] is not None:
            parts.append("aps:decrypted" if f["aps.decrypted"] else "aps:ENCRYPTED")
        if f["aps.command"]:
            parts.append(f"APS {f['aps.command']}")
    if "zcl.type" in f:
        layers.append("zcl")
        parts.append(f"{f['zcl.cluster']}/{f['zcl.command']} tsn {f['zcl.tsn']} "
                     f"{f['zcl.direction']}")
    elif f.get("aps.cluster"):
        parts.append(f"{f['aps.profile']} cluster {f['aps.cluster']}")
    for key in ("mac.command", "nwk.command"):
        if f.get(key):
            parts.append(f[key])
    if f.get("gbcs.tunnel_command"):
        layers.append("gbcs")
        parts.append(f"GBCS {f['gbcs.tunnel_command']} CRA {f['gbcs.cra_flag']} counter "
                     f"{f['gbcs.originator_counter']} code {f['gbcs.message_code']}")
    if f["error"]:
        parts.append(f"error: {f['error']}")
    parts.insert(2, "+".join(layers))
    return "  ".join(parts)


def _parse_filters(filters: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in filters:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise BadInputError(f"--filter {item!r}: use FIELD=VALUE, e.g. nwk.src=0x1a2b")
        out.append((field.strip(), value.strip()))
    return out


def _matches(fields: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    for field, value in filters:
        have = fields.get(field)
        if have is None:
            return False
        if str(have).lower() != value.lower() and json.dumps(have) != value.lower():
            return False
    return True


def decode(
    file: Annotated[Path, typer.Argument(help="pcap or pcapng capture of 802.15.4 frames.")],
    keys: Annotated[Path | None, typer.Option("--keys", help="YAML keys file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per frame.")] = False,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", help="Only frames whose FIELD equals VALUE (repeatable), e.g. "
                         "aps.cluster=0x0704, nwk.src=0x1a2b, zcl.command=TransferData.")
    ] = None,
) -> None:
    """Decode a capture: one line (or JSON object) per frame, decrypting with KEYS.

    Example:

      hanlab decode run.pcapng --keys lab-keys.yaml --filter aps.cluster=0x0704
    """
    from hanlab.capture.reader import read_frames

    ring = Keyring.load(keys) if keys is not None else Keyring()
    wanted = _parse_filters(filters or [])
    decoder = Decoder(ring)
    gbcs = _gbcs_parser()
    write = sys.stdout.write
    for frame in read_frames(file):
        d = decoder.decode(frame.psdu, frame.ts_ns, fcs_ok=frame.fcs_ok)
        fields = frame_fields(frame, d, gbcs)
        if wanted and not _matches(fields, wanted):
            continue
        write((json.dumps(fields) if as_json else _line(fields)) + "\n")


@keys_app.command("export-wireshark")
def export_wireshark(
    keys: Annotated[Path, typer.Argument(help="YAML keys file.")],
) -> None:
    """Print the keys as Wireshark ``zigbee_pc_keys`` UAT lines (a secret: redirect to a file).

    Example:

      hanlab keys export-wireshark lab-keys.yaml > ~/.config/wireshark/zigbee_pc_keys
    """
    for line in Keyring.load(keys).wireshark_uat_lines():
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
