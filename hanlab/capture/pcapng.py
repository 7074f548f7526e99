"""Writing pcapng with the IEEE 802.15.4 TAP link type (DLT 283), crash-safe.

File layout (pcapng draft, IETF opsawg): one Section Header Block, one Interface
Description Block per sniffer (``if_name`` = sniffer id, ``if_description`` =
band/page/channel, ``if_tsresol`` = 9, i.e. nanosecond timestamps), then Enhanced Packet
Blocks. Each packet is a TAP header (IEEE 802.15.4 TAP: version 0, TLVs FCS type, channel
assignment with the channel page, RSS in dBm, LQI) followed by the PSDU and its FCS.

Crash safety: blocks are assembled in memory and handed to the kernel with one
``os.write`` per :meth:`PcapngWriter.flush`, always whole blocks. A ``kill -9`` during a
write that spans several pages can leave it cut at a page boundary (Linux checks for a
fatal signal between the pages it copies), so no block crosses a 4 KiB boundary of the
file: where the next block would, a filler block (a block type reserved for local use,
which tshark and hanlab's reader skip) fills the page first. Any cut therefore ends on a
block boundary and tshark reads every block before it. The caller flushes at least every
``flush_interval_s`` (the capture sink does it whenever it is idle and at least every
0.25 s). A new file never exists without its SHB and first IDBs (see
:class:`PcapngWriter`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from hanlab import __version__
from hanlab.fcs import fcs16
from hanlab.frames import Frame

LINKTYPE_IEEE802_15_4_TAP: Final = 283
SNAPLEN: Final = 0xFFFF

_EPB_HEAD: Final = struct.Struct("<IIIIIII")
#: the bound ``pack`` of :data:`_EPB_HEAD`, looked up once (not by name per frame)
_EPB_PACK: Final = _EPB_HEAD.pack
_U32: Final = struct.Struct("<I")
_PADDING: Final = (b"", b"\0", b"\0\0", b"\0\0\0")
#: captured length -> an EPB's padding and trailing block length, built once per length
_EPB_TRAILERS: Final[dict[int, bytes]] = {}
_TLV_RSS: Final = struct.Struct("<HHf")
#: TAP FCS type TLV: type 0, length 1, value (0 none, 1 16-bit CRC), 3 padding octets.
_TLV_FCS16: Final = struct.pack("<HHB3x", 0, 1, 1)
_TLV_FCS_NONE: Final = struct.pack("<HHB3x", 0, 1, 0)


#: the file page no block may cross (see the module docstring)
PAGE_OCTETS: Final = 4096
#: block type of filler blocks: bit 31 set, "reserved for local use" (pcapng §4)
FILLER_BLOCK_TYPE: Final = 0x8000484C
_FILLER_MIN: Final = 12  # a block with an empty body


def _filler_before(offset: int, length: int) -> bytes:
    """The filler to put at file ``offset`` so that a block of ``length`` octets after it
    crosses no page boundary and leaves no gap smaller than a filler; ``b""`` if none."""
    room = PAGE_OCTETS - offset % PAGE_OCTETS
    if length <= room and room - length not in (4, 8):
        return b""
    if room == PAGE_OCTETS or room < _FILLER_MIN or length > PAGE_OCTETS - _FILLER_MIN:
        return b""  # a block too big for one page: it cannot be kept whole on a cut
    return _U32.pack(FILLER_BLOCK_TYPE) + _U32.pack(room) + bytes(room - 12) + _U32.pack(room)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    """``os.write`` until every octet of ``data`` is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def section_header_block(application: str = f"hanlab {__version__}") -> bytes:
    """A little-endian SHB with ``shb_userappl`` set (section length unknown)."""
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    body += _option(4, application.encode()) + _option(0, b"")
    return _block(0x0A0D0D0A, body)


def interface_description_block(name: str, description: str) -> bytes:
    """An IDB for DLT 283 with ``if_name``, ``if_description`` and ``if_tsresol`` = 9 (ns)."""
    body = struct.pack("<HHI", LINKTYPE_IEEE802_15_4_TAP, 0, SNAPLEN)
    body += _option(2, name.encode()) + _option(3, description.encode())
    body += _option(9, bytes([9])) + _option(0, b"")
    return _block(0x00000001, body)


def interface_statistics_block(
    if_id: int, ts_ns: int, start_ns: int, end_ns: int, comment: str
) -> bytes:
    """An ISB carrying ``isb_starttime``/``isb_endtime`` (ns) and an ``opt_comment``.

    Used to record a capture gap (e.g. an unplugged sniffer) inside the file.
    """
    body = struct.pack("<III", if_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF)
    body += _option(1, comment.encode())
    body += _option(2, struct.pack("<II", start_ns >> 32, start_ns & 0xFFFFFFFF))
    body += _option(3, struct.pack("<II", end_ns >> 32, end_ns & 0xFFFFFFFF))
    body += _option(0, b"")
    return _block(0x00000005, body)


def tap_header(frame: Frame, channel_tlv: bytes) -> bytes:
    """The TAP header of ``frame``: FCS type, channel assignment, RSS and LQI TLVs."""
    tlvs = _TLV_FCS_NONE if frame.fcs_ok is None else _TLV_FCS16
    tlvs += channel_tlv
    if frame.rssi_dbm is not None:
        tlvs += _TLV_RSS.pack(1, 4, frame.rssi_dbm)
    if frame.lqi is not None:
        tlvs += struct.pack("<HHB3x", 10, 1, frame.lqi & 0xFF)
    return struct.pack("<BBH", 0, 0, 4 + len(tlvs)) + tlvs


def channel_tlv(page: int, channel: int) -> bytes:
    """TAP channel assignment TLV (type 3): channel (u16), page (u8), padding."""
    return struct.pack("<HHHB1x", 3, 3, channel, page)


class PcapngWriter:
    """One pcapng file of TAP frames; blocks buffered and written whole.

    The file never exists without its Section Header Block and the IDBs of
    ``interfaces`` (issue 14 item 12): they are written to ``<path>.part`` first, which
    is then linked to ``path`` (failing if ``path`` exists) and unlinked, so a
    ``kill -9`` at any moment leaves either no file or a readable one.

    Args:
        path: the file to create (it must not exist).
        interfaces: (sniffer id, description) of the interfaces to declare at once, with
            ids 0, 1, … in order; more are added by :meth:`interface`.

    Raises:
        OSError: the file cannot be created or written (``FileExistsError`` if ``path``
            exists).
    """

    def __init__(self, path: Path, interfaces: Sequence[tuple[str, str]] = ()) -> None:
        self.path = path
        self._interfaces: dict[str, int] = {}
        head = bytearray(section_header_block())
        for name, description in interfaces:
            if name not in self._interfaces:
                self._interfaces[name] = len(self._interfaces)
                idb = interface_description_block(name, description)
                head += _filler_before(len(head), len(idb)) + idb
        part = path.with_name(path.name + ".part")
        self._fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(self._fd, head)
            os.link(part, path)
        except BaseException:
            os.close(self._fd)
            os.unlink(part)
            raise
        os.unlink(part)
        #: blocks (and the parts of blocks) assembled since the last flush, in file order,
        #: joined once by :meth:`flush`; a frame's PSDU goes in as it is, not copied
        self._parts: list[bytes] = []
        self._pending = 0  # octets in _parts
        self._channel_tlvs: dict[tuple[int, int], bytes] = {}
        self._plain_headers: dict[tuple[tuple[int, int], bool], bytes] = {}
        #: the plain TAP header last written, and its channel and FCS type
        self._last_page = self._last_channel = -1
        self._last_no_fcs = False
        self._last_head = b""
        self.size_bytes = len(head)
        self.frames = 0
        #: frames that could not be written (out of range), skipped
        self.skipped = 0
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes assembled but not yet written to the kernel."""
        return self._pending

    def interface(self, name: str, description: str) -> int:
        """The interface id of sniffer ``name``, adding its IDB on first use."""
        if_id = self._interfaces.get(name)
        if if_id is None:
            if_id = self._interfaces[name] = len(self._interfaces)
            self._append(interface_description_block(name, description))
        return if_id

    def write(self, if_id: int, frame: Frame) -> None:
        """Append one EPB for ``frame`` on interface ``if_id`` (buffered).

        A frame whose fields cannot be written (a timestamp of 2^64 ns or more, a channel
        beyond 16 bits, an RSSI beyond a float …) is skipped whole and counted in
        :attr:`skipped`; it never stops the writer (issue 14 item 8). Sources range-check
        their frames first (:func:`hanlab.frames.checked_frames`), so this is the last
        guard.
        """
        mark, pending = len(self._parts), self._pending
        try:
            self._write(if_id, frame)
        except (struct.error, OverflowError, ValueError, TypeError, AttributeError):
            del self._parts[mark:]
            self._pending = pending
            self.skipped += 1

    def _tap_head(self, frame: Frame) -> bytes:
        """The TAP header of ``frame``; a constant one per (channel, FCS type) is cached."""
        key = (frame.page, frame.channel)
        ctlv = self._channel_tlvs.get(key)
        if ctlv is None:
            ctlv = self._channel_tlvs[key] = channel_tlv(frame.page, frame.channel)
        if frame.rssi_dbm is not None or frame.lqi is not None:
            return tap_header(frame, ctlv)
        hkey = (key, frame.fcs_ok is None)
        head = self._plain_headers.get(hkey)
        if head is None:
            head = self._plain_headers[hkey] = tap_header(frame, ctlv)
        return head

    def write_frames(self, frames: Sequence[Frame], if_id_of: Callable[[str], int]) -> None:
        """:meth:`write` each of ``frames`` on the interface ``if_id_of(sniffer id)`` gives
        (called when the sniffer id changes from the frame before): one compiled loop."""
        sid: str | None = None
        if_id = 0
        for frame in frames:
            if frame.sniffer_id != sid:
                sid = frame.sniffer_id
                if_id = if_id_of(sid)
            self.write(if_id, frame)

    def _write(self, if_id: int, frame: Frame) -> None:
        psdu = frame.psdu
        fcs_ok = frame.fcs_ok
        plain = frame.rssi_dbm is None and frame.lqi is None
        if (plain and frame.channel == self._last_channel and frame.page == self._last_page
                and (fcs_ok is None) is self._last_no_fcs):
            head = self._last_head  # the plain header of the frame before: no tuple, no hash
        else:
            head = self._tap_head(frame)
            if plain:
                self._last_page, self._last_channel = frame.page, frame.channel
                self._last_no_fcs, self._last_head = fcs_ok is None, head
        fcs_octets = b""
        if fcs_ok is not None:
            fcs = fcs16(psdu)
            if not fcs_ok:
                fcs ^= 0xFFFF
            fcs_octets = fcs.to_bytes(2, "little")
        caplen = len(head) + len(psdu) + len(fcs_octets)
        pad = -caplen % 4
        blen = 32 + caplen + pad
        ts = frame.ts_ns
        epb = _EPB_PACK(6, blen, if_id, ts >> 32, ts & 0xFFFFFFFF, caplen, caplen)
        trailer = _EPB_TRAILERS.get(caplen)
        if trailer is None:
            trailer = _EPB_TRAILERS[caplen] = _PADDING[pad] + _U32.pack(blen)
        # everything is built: nothing below raises, so a skipped frame leaves no part
        parts = self._parts
        offset = self.size_bytes + self._pending
        room = PAGE_OCTETS - offset % PAGE_OCTETS
        if blen > room or room - blen in (4, 8):
            filler = _filler_before(offset, blen)
            parts.append(filler)
            self._pending += len(filler)
        parts.append(epb)
        parts.append(head)
        parts.append(psdu)
        if fcs_octets:
            parts.append(fcs_octets)
        parts.append(trailer)
        self._pending += blen
        self.frames += 1

    def _append(self, block: bytes) -> None:
        """Append a whole block, after a filler where it would cross a page."""
        filler = _filler_before(self.size_bytes + self._pending, len(block))
        self._parts.append(filler + block)
        self._pending += len(filler) + len(block)

    def write_annotated(self, if_id: int, frame: Frame, comments: Sequence[str]) -> None:
        """Append one EPB for ``frame`` carrying each of ``comments`` as an
        ``opt_comment`` option (pcapng option 1; Wireshark's ``frame.comment``), e.g.
        ``hanlab evidence`` and ``hanlab annotate``. Not the capture hot path."""
        ctlv = channel_tlv(frame.page, frame.channel)
        data = tap_header(frame, ctlv) + frame.psdu
        if frame.fcs_ok is not None:
            fcs = fcs16(frame.psdu)
            data += (fcs if frame.fcs_ok else fcs ^ 0xFFFF).to_bytes(2, "little")
        options = b"".join(_option(1, c.encode("utf-8")) for c in comments)
        if options:
            options += _option(0, b"")
        ts = frame.ts_ns
        body = struct.pack("<IIIII", if_id, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
        body += data + _PADDING[-len(data) % 4] + options
        self._append(_block(6, body))
        self.frames += 1

    def write_gap(self, if_id: int, start_ns: int, end_ns: int, reason: str) -> None:
        """Record a capture gap on interface ``if_id`` as an Interface Statistics Block."""
        self._append(interface_statistics_block(
            if_id, end_ns, start_ns, end_ns, f"hanlab gap: {reason}"
        ))

    def flush(self) -> None:
        """Hand every assembled block to the kernel in one write."""
        if self._parts and not self.closed:
            data = b"".join(self._parts)
            _write_all(self._fd, data)
            self.size_bytes += len(data)
            self._parts = []
            self._pending = 0

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        if not self.closed:
            self.flush()
            os.close(self._fd)
            self.closed = True
