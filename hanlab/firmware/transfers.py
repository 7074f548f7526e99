"""OTA transfers reconstructed from captures (``hanlab firmware transfers``).

Every OTA Upgrade cluster command (ZCL 07-5123 §11.13) the keys let us read is grouped
per device (NWK short address of the client, its EUI-64 where a secured frame names it)
and image (manufacturer code, image type, file version). Per transfer: first and last
frame, Image Notify / Query Next Image, every Image Block Response (offset, octets),
retries (a block request for an offset already asked for), gaps (a pause between
consecutive block requests over ``gap_s``), WAIT_FOR_DATA answers, missing byte ranges of
``[0, image size)``, duration, throughput per band, the Upgrade End status; the image
reassembled from the blocks and its sha256, checked against the catalogue. With a DUIS
log the transfer is tied to the SR 11.1 request acknowledged last before it began.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanlab.frames import Frame
from hanlab.zigbee.common import eui64_str
from hanlab.zigbee.frame import DecodedFrame, Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.ota import (
    IMAGE_BLOCK_REQUEST,
    IMAGE_BLOCK_RESPONSE,
    IMAGE_NOTIFY,
    QUERY_NEXT_IMAGE_REQUEST,
    QUERY_NEXT_IMAGE_RESPONSE,
    STATUS_SUCCESS,
    STATUS_WAIT_FOR_DATA,
    UPGRADE_END_REQUEST,
    UPGRADE_END_RESPONSE,
    decode_ota_zcl,
)

DEFAULT_GAP_S = 5.0


@dataclass
class Transfer:
    """One device's transfer of one image, as the captures show it (see the module doc)."""

    device_short: int
    band: str
    manufacturer_code: int
    image_type: int
    file_version: int
    device_eui64: str | None = None
    image_size_octets: int | None = None
    start_ns: int = 0
    end_ns: int = 0
    notifies: int = 0
    queries: int = 0
    block_requests: int = 0
    retries: int = 0
    waits: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    blocks: dict[int, bytes] = field(default_factory=dict)
    upgrade_end_status: int | None = None
    upgrade_end_response: bool = False
    request_id: str | None = None
    catalogue_match: str | None = None
    _requested: set[int] = field(default_factory=set)
    _last_request_ns: int | None = None

    @property
    def bytes_received(self) -> int:
        """Distinct image octets seen in Image Block Responses."""
        return self.image_size_octets - sum(b - a for a, b in self.missing_ranges()) \
            if self.image_size_octets is not None else sum(len(d) for d in self.blocks.values())

    def missing_ranges(self) -> list[tuple[int, int]]:
        """``[start, end)`` octet ranges of the image no block covered."""
        if self.image_size_octets is None:
            return []
        out, covered = [], 0
        for offset in sorted(self.blocks):
            if offset > covered:
                out.append((covered, offset))
            covered = max(covered, offset + len(self.blocks[offset]))
        if covered < self.image_size_octets:
            out.append((covered, self.image_size_octets))
        return out

    def image(self) -> bytes | None:
        """The file reassembled from the blocks, or ``None`` while octets are missing."""
        if self.image_size_octets is None or self.missing_ranges():
            return None
        buf = bytearray(self.image_size_octets)
        for offset, data in self.blocks.items():
            buf[offset:offset + len(data)] = data
        return bytes(buf)

    @property
    def duration_s(self) -> float:
        """From the first to the last OTA frame of the transfer, seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    def summary(self) -> dict[str, Any]:
        """The transfer as plain data (JSON)."""
        image = self.image()
        duration_s = self.duration_s
        return {
            "device_short": f"0x{self.device_short:04x}", "device_eui64": self.device_eui64,
            "band": self.band, "manufacturer_code": f"0x{self.manufacturer_code:04X}",
            "image_type": f"0x{self.image_type:04X}",
            "file_version": f"0x{self.file_version:08X}",
            "image_size_octets": self.image_size_octets, "start_ns": self.start_ns,
            "end_ns": self.end_ns, "duration_s": round(duration_s, 6),
            "blocks": len(self.blocks), "bytes": self.bytes_received,
            "block_requests": self.block_requests, "retries": self.retries,
            "waits": self.waits, "notifies": self.notifies,
            "gaps": [{"start_ns": a, "duration_s": round((b - a) / 1e9, 3)}
                     for a, b in self.gaps],
            "missing_ranges": [list(r) for r in self.missing_ranges()],
            "throughput_bps": round(8 * self.bytes_received / duration_s, 1)
            if duration_s > 0 else None,
            "complete": image is not None,
            "upgrade_end_status": self.upgrade_end_status,
            "sha256": None if image is None else hashlib.sha256(image).hexdigest(),
            "catalogue_match": self.catalogue_match, "request_id": self.request_id,
        }


class TransferTracker:
    """Builds :class:`Transfer` records frame by frame (offline and on a rig's live bus).

    Feed it every decoded frame in time order (:meth:`feed`); frames without an OTA
    Upgrade command only teach NWK short address → EUI-64 pairs. Live, at most
    ``max_transfers`` are kept (the oldest go first; each holds up to its image's octets).

    Args:
        gap_s: a pause between consecutive Image Block Requests longer than this is a gap.
        max_transfers: transfers kept (``None``: all, as offline).
    """

    def __init__(self, *, gap_s: float = DEFAULT_GAP_S,
                 max_transfers: int | None = None) -> None:
        self._by_key: dict[tuple[int, int, int], Transfer] = {}
        self._latest: dict[int, Transfer] = {}
        self._euis: dict[int, str] = {}
        self._gap_ns = int(gap_s * 1e9)
        self._max = max_transfers

    def feed(self, frame: Frame, d: DecodedFrame) -> tuple[Transfer, int] | None:
        """Apply one decoded frame; ``(transfer, OTA command id)`` when it carried an OTA
        Upgrade command of a transfer (ZCL 07-5123 §11.13), else ``None``."""
        nwk, zcl = d.nwk, d.zcl
        if nwk is not None and nwk.src not in (None, 0x0000):
            src64 = nwk.src64 if nwk.src64 is not None else getattr(nwk.aux, "src64", None)
            if src64 is not None:  # the NWK header or its auxiliary security header
                self._euis[nwk.src] = eui64_str(src64)
        if nwk is None or zcl is None:
            return None
        cmd = decode_ota_zcl(zcl)
        if cmd is None:
            return None
        addr = nwk.src if cmd.direction == 0 else nwk.dst
        if addr is None:
            return None
        device: int = addr
        f = cmd.fields
        ident = (f.get("manufacturer_code"), f.get("image_type"), f.get("file_version"))
        t: Transfer | None
        if cmd.command_id == QUERY_NEXT_IMAGE_REQUEST and cmd.direction == 0:
            ident = (None, None, None)  # names the running version, not the new one
        if None not in ident:
            key = (device, int(str(ident[1])), int(str(ident[2])))
            t = self._by_key.get(key)
            if t is None:
                t = self._by_key[key] = Transfer(device, str(frame.band), int(str(ident[0])),
                                                 int(str(ident[1])), int(str(ident[2])),
                                                 start_ns=frame.ts_ns)
                self._forget_oldest()
            self._latest[device] = t
        else:
            t = self._latest.get(device)
            if t is None:
                return None
        t.end_ns = frame.ts_ns
        t.device_eui64 = t.device_eui64 or self._euis.get(device)
        _apply(t, cmd.command_id, cmd.direction, f, cmd.data, frame.ts_ns, self._gap_ns)
        return t, cmd.command_id

    def _forget_oldest(self) -> None:
        if self._max is None or len(self._by_key) <= self._max:
            return
        key, old = min(self._by_key.items(), key=lambda kv: kv[1].end_ns)
        del self._by_key[key]
        if self._latest.get(old.device_short) is old:
            del self._latest[old.device_short]

    def transfers(self) -> list[Transfer]:
        """The transfers seen (any OTA activity beyond the key), by start time."""
        for t in self._by_key.values():
            t.device_eui64 = t.device_eui64 or self._euis.get(t.device_short)
        return sorted((t for t in self._by_key.values() if t.block_requests or t.blocks
                       or t.queries or t.notifies), key=lambda t: t.start_ns)


def track_transfers(captures: Iterable[Path], keyring: Keyring | None = None, *,
                    gap_s: float = DEFAULT_GAP_S) -> list[Transfer]:
    """Every OTA transfer in ``captures`` (frames in time order across the files).

    Raises:
        CaptureFormatError: a capture cannot be read.
    """
    from hanlab.capture.reader import read_frames

    frames = sorted((f for path in captures for f in read_frames(path)),
                    key=lambda f: f.ts_ns)
    decoder = Decoder(keyring or Keyring())
    tracker = TransferTracker(gap_s=gap_s)
    for frame in frames:
        d = decoder.decode(frame.psdu, frame.ts_ns, fcs_ok=frame.fcs_ok)
        d.decode_all()
        tracker.feed(frame, d)
    return tracker.transfers()


def _apply(t: Transfer, command_id: int, direction: int, f: dict[str, int], data: bytes,
           ts_ns: int, gap_ns: int) -> None:
    if direction == 1 and command_id == IMAGE_NOTIFY:
        t.notifies += 1
    elif direction == 0 and command_id == QUERY_NEXT_IMAGE_REQUEST:
        t.queries += 1
    elif direction == 1 and command_id == QUERY_NEXT_IMAGE_RESPONSE:
        if f.get("status") == STATUS_SUCCESS:
            t.image_size_octets = f.get("image_size_octets")
    elif direction == 0 and command_id == IMAGE_BLOCK_REQUEST:
        t.block_requests += 1
        offset = f.get("file_offset", 0)
        if offset in t._requested:
            t.retries += 1
        t._requested.add(offset)
        if t._last_request_ns is not None and ts_ns - t._last_request_ns > gap_ns:
            t.gaps.append((t._last_request_ns, ts_ns))
        t._last_request_ns = ts_ns
    elif direction == 1 and command_id == IMAGE_BLOCK_RESPONSE:
        if f.get("status") == STATUS_SUCCESS and data:
            t.blocks[f.get("file_offset", 0)] = data
        elif f.get("status") == STATUS_WAIT_FOR_DATA:
            t.waits += 1
    elif direction == 0 and command_id == UPGRADE_END_REQUEST:
        t.upgrade_end_status = f.get("status")
    elif direction == 1 and command_id == UPGRADE_END_RESPONSE:
        t.upgrade_end_response = True


def match_catalogue(transfers: Iterable[Transfer], catalogue: Any) -> None:
    """Set each complete transfer's ``catalogue_match``: the entry path whose sha256 equals
    the reassembled image's, ``"sha256 mismatch: <path>"`` when the entry with that
    identity differs, else ``None``."""
    for t in transfers:
        image = t.image()
        if image is None:
            continue
        digest = hashlib.sha256(image).hexdigest()
        same = [e for e in catalogue.entries if e.sha256 == digest]
        if same:
            t.catalogue_match = same[0].path
            continue
        named = [e for e in catalogue.entries if e.file_version == t.file_version
                 and e.image_type == t.image_type
                 and e.manufacturer_code == t.manufacturer_code]
        if named:
            t.catalogue_match = f"sha256 mismatch: {named[0].path}"


def tie_to_requests(transfers: Iterable[Transfer], duis_log: Path) -> None:
    """Tie each transfer to the SR 11.1 acknowledged (I0) last before it began, whose
    DeviceIDList (when the log kept the XML) names the device."""
    from hanlab.duis.log import read_duis_log

    acks = sorted((e for e in read_duis_log(duis_log)
                   if e.get("sr_variant") == "11.1" and e.get("kind") == "ack"
                   and e.get("response_code") == "I0"), key=lambda e: int(e["ts_ns"]))
    for t in transfers:
        before = [e for e in acks if int(e["ts_ns"]) <= t.start_ns
                  and (t.device_eui64 is None or "xml" not in e
                       or t.device_eui64 in str(e.get("xml")))]
        if before:
            t.request_id = str(before[-1]["request_id_text"])


def format_transfer(t: Transfer) -> str:
    """One line per transfer."""
    s = t.summary()
    missing = s["missing_ranges"]
    return (f"{s['device_eui64'] or s['device_short']} {s['band']} type {s['image_type']} ver "
            f"{s['file_version']}: {s['blocks']} blocks {s['bytes']}/{s['image_size_octets']}"
            f" octets in {s['duration_s']:.3f} s ({s['throughput_bps']} b/s), retries "
            f"{s['retries']}, waits {s['waits']}, gaps {len(s['gaps'])}, missing "
            f"{missing or 'none'}, end status {s['upgrade_end_status']}, sha256 "
            f"{(s['sha256'] or '-')[:16]} catalogue {s['catalogue_match'] or '-'}"
            + (f", SR {s['request_id']}" if s["request_id"] else ""))


def transfers_json(transfers: Iterable[Transfer]) -> str:
    """JSON Lines of the summaries."""
    return "".join(json.dumps(t.summary()) + "\n" for t in transfers)
