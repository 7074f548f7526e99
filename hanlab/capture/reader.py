"""Reading pcap and pcapng files into :class:`~hanlab.frames.Frame` s.

Formats: libpcap (µs and ns magic, both byte orders) and pcapng (IETF draft
"PCAP Next Generation Dump File Format": SHB, IDB with ``if_tsresol``, EPB, SPB, the
obsolete Packet Block; other blocks skipped). Several sections and interfaces with
different link types in one file are supported. Link types: see
:mod:`hanlab.capture.linktypes`.

Timestamps are kept as recorded: a frame older than its predecessor is counted in
:attr:`CaptureReader.out_of_order`, never dropped or reordered. A damaged file yields every
frame before the damage and then raises :class:`~hanlab.errors.CaptureFormatError` naming
the byte offset; a single undecodable packet is counted in :attr:`CaptureReader.bad_packets`
and skipped.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from hanlab.capture.linktypes import (
    DECAPSULATORS,
    LINKTYPE_IEEE802_15_4_TAP,
    LINKTYPE_IEEE802_15_4_WITHFCS,
    LINKTYPE_NAMES,
    Decapsulator,
    decap_nofcs,
    decap_tap,
    tap_fcs_ok,
    tap_fields,
)
from hanlab.errors import CaptureFormatError, CaptureOpenError
from hanlab.fcs import fcs16
from hanlab.frames import PAGE_CHANNELS, Band, Frame, TsSource

PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_MAGIC_NS: Final = 0xA1B23C4D
PCAPNG_SHB: Final = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
PCAPNG_IDB: Final = 0x00000001
PCAPNG_PB: Final = 0x00000002
PCAPNG_SPB: Final = 0x00000003
PCAPNG_EPB: Final = 0x00000006
OPT_IF_TSRESOL: Final = 9


def band_for(page: int, channel: int) -> Band:
    """Band of a page/channel seen in a capture; lenient: page 0 is 2.4 GHz, others sub-GHz."""
    return Band.GHZ_2_4 if page == 0 and channel in PAGE_CHANNELS[0] else (
        Band.GHZ_2_4 if page == 0 else Band.SUB_GHZ
    )


def _ts_scale(tsresol: int) -> tuple[int, int, int]:
    """(multiplier, divisor, shift) turning raw pcapng timestamp units into ns."""
    if tsresol & 0x80:
        return 10**9, 1, tsresol & 0x7F
    exp = tsresol & 0x7F
    if exp <= 9:
        return 10 ** (9 - exp), 1, 0
    return 1, 10 ** (exp - 9), 0


class _Tap:
    """What one TAP header says of its frames (the reader's defaults filled in)."""

    __slots__ = ("band", "channel", "fcs_len", "length", "lqi", "page", "rssi")

    def __init__(self, length: int, fcs_len: int, page: int, channel: int,
                 rssi: float | None, lqi: int | None, band: Band) -> None:
        self.length = length
        self.fcs_len = fcs_len
        self.page = page
        self.channel = channel
        self.rssi = rssi
        self.lqi = lqi
        self.band = band


#: distinct TAP headers a reader keeps (RSSI and LQI make a live sniffer's vary)
_TAPS_HELD: Final = 4096

#: stands for a frame that ``skip_frames`` passes over without building it
_SKIPPED: Final = Frame(0, "", Band.GHZ_2_4, 0, 11, b"", None)


#: octets of the file copied at a time for reading its packet blocks (a block longer than
#: this is copied whole)
WINDOW_OCTETS: Final = 1 << 20
#: octets read between two releases of the map's pages already read (:func:`_release`)
RELEASE_OCTETS: Final = 8 << 20
_MADV_DONTNEED: Final[int] = int(getattr(mmap, "MADV_DONTNEED", -1))  # -1: not offered


def _release(buf: mmap.mmap, start: int, end: int) -> int:
    """Take the map's pages in ``[start, end)`` (whole pages) out of this process's
    resident set with ``madvise(MADV_DONTNEED)``; the file's pages stay in the page cache
    and are read again if touched. A capture is read once, front to back, so a reader's
    resident memory stays at a few MiB of the file instead of all of it (``hanlab
    capture`` of Sinope ×100, 288 MB: issue 15). Returns the new start."""
    end -= end % mmap.PAGESIZE
    if end <= start:
        return start
    if _MADV_DONTNEED >= 0:
        with contextlib.suppress(OSError, ValueError):  # refused: the pages just stay
            buf.madvise(_MADV_DONTNEED, start, end - start)
    return end


def _u32le(data: bytes, at: int) -> int:
    """The little-endian unsigned 32-bit integer at ``data[at:at + 4]``."""
    return data[at] | data[at + 1] << 8 | data[at + 2] << 16 | data[at + 3] << 24


class _Interface:
    __slots__ = ("decap", "div", "linktype", "mul", "name", "shift")

    def __init__(self, linktype: int, name: str) -> None:
        self.linktype = linktype
        self.name = name
        self.decap: Decapsulator | None = DECAPSULATORS.get(linktype)
        self.mul, self.div, self.shift = _ts_scale(6)


class CaptureReader:
    """Iterate the 802.15.4 frames of one capture file.

    Args:
        path: a ``.pcap`` or ``.pcapng`` file.
        sniffer_id: the ``sniffer_id`` given to every frame.
        page, channel: used where the capture carries no channel (DLT 195/230); frames
            from TAP or ZEP keep their own.
        skip_frames: this many frames at the start are read and counted but not yielded,
            so the first frame yielded is frame ``skip_frames`` (0-based); with DLT 195
            and TAP they are not even built (no PSDU slice, no FCS check). ``hanlab decode --jobs``
            starts a process's run this way (issue 15).

    Attributes (valid during and after iteration):
        records: packets read; frames: frames read (yielded or skipped); out_of_order:
        frames whose timestamp is older than the previous frame's; bad_packets: packets
        that could not be decapsulated; not_802154: packets that carry no 802.15.4 frame;
        linktypes: link types seen.

    Raises (from iteration):
        CaptureFormatError: the file is missing, not a capture, uses a link type hanlab
            cannot read, holds no 802.15.4 frame at all, or is damaged at some offset
            (after every frame before the damage has been yielded).
    """

    def __init__(
        self, path: Path | str, sniffer_id: str = "file", page: int = 0, channel: int = 11,
        *, skip_frames: int = 0,
    ) -> None:
        self.path = Path(path)
        self.skip_frames = skip_frames
        self.sniffer_id = sniffer_id
        self.page = page
        self.channel = channel
        self.records = 0
        self.frames = 0
        self.out_of_order = 0
        self.bad_packets = 0
        self.not_802154 = 0
        self.linktypes: set[int] = set()
        self.first_bad: str | None = None
        self._bands: dict[tuple[int, int], Band] = {}
        self._last_page = -1
        self._last_channel = -1
        self._last_band = Band.GHZ_2_4

    def __iter__(self) -> Iterator[Frame]:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise CaptureOpenError(self.path, exc) from exc
        # the map keeps its own descriptor: the file is closed before the first frame, so a
        # reader dropped before its end (compiled generators are not closed when freed)
        # leaves no file open; the map goes with the generator
        with fh:
            size = self.path.stat().st_size
            if size < 4:
                raise CaptureFormatError(self.path, 0, "file is empty or too short")
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            magic = struct.unpack_from("<I", buf, 0)[0]
            if magic == PCAPNG_SHB:
                yield from self._pcapng(buf)
            elif magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack_from(
                ">I", buf, 0
            )[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                yield from self._pcap(buf)
            else:
                raise CaptureFormatError(
                    self.path, 0, f"not a pcap or pcapng file (magic 0x{magic:08x})"
                )
        finally:
            buf.close()
        if self.frames == 0 and self.records > 0:
            kinds = ", ".join(f"{lt} ({LINKTYPE_NAMES.get(lt, 'unknown')})"
                              for lt in sorted(self.linktypes))
            raise CaptureFormatError(
                self.path, 0, f"holds no IEEE 802.15.4 frames (link type {kinds})",
                hint=self.first_bad,
            )

    # -- helpers -----------------------------------------------------------------------

    def _check_linktype(self, linktype: int, offset: int) -> None:
        self.linktypes.add(linktype)
        if linktype not in DECAPSULATORS:
            raise CaptureFormatError(
                self.path, offset,
                f"link type {linktype} is not one hanlab reads "
                f"(supported: {', '.join(str(k) for k in sorted(DECAPSULATORS))})",
            )

    def _frame(
        self, iface: _Interface, ts_ns: int, data: bytes, offset: int, orig_len: int
    ) -> Frame | None:
        decap = iface.decap
        assert decap is not None
        try:
            if orig_len > len(data) and iface.linktype == LINKTYPE_IEEE802_15_4_WITHFCS:
                # snaplen cut the FCS off: keep the PSDU, FCS status unknown
                result = decap_nofcs(data[: max(0, orig_len - 2)])
            elif iface.linktype == LINKTYPE_IEEE802_15_4_TAP:
                result = decap_tap(data)  # compiled: a native call
            else:
                result = decap(data)
        except ValueError as exc:
            self.bad_packets += 1
            if self.first_bad is None:
                self.first_bad = f"packet at file byte {offset}: {exc}"
            return None
        if result is None:
            self.not_802154 += 1
            return None
        psdu, fcs_ok, page, channel, rssi, lqi = result
        if page is None:
            page = self.page
        if channel is None:
            channel = self.channel
        if page == self._last_page and channel == self._last_channel:
            band = self._last_band  # the channel of the frame before (no tuple, no hash)
        else:
            key = (page, channel)
            known = self._bands.get(key)
            band = known if known is not None else band_for(page, channel)
            self._bands[key] = band
            self._last_page, self._last_channel, self._last_band = page, channel, band
        return Frame(ts_ns, self.sniffer_id, band, page, channel, psdu, fcs_ok, rssi, lqi,
                     TsSource.CAPTURE, None)

    def _pcap(self, buf: mmap.mmap) -> Iterator[Frame]:
        n = len(buf)
        if n < 24:
            raise CaptureFormatError(self.path, 0, "pcap global header truncated")
        magic_le = struct.unpack_from("<I", buf, 0)[0]
        endian = "<" if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        magic = struct.unpack_from(endian + "I", buf, 0)[0]
        mul = 1 if magic == PCAP_MAGIC_NS else 1000
        linktype = struct.unpack_from(endian + "I", buf, 20)[0] & 0x0FFFFFFF
        self._check_linktype(linktype, 20)
        iface = _Interface(linktype, self.sniffer_id)
        rec = struct.Struct(endian + "IIII").unpack_from
        decap = iface.decap
        fast_withfcs = linktype == 195
        sid, page, channel = self.sniffer_id, self.page, self.channel
        band = band_for(page, channel)
        u16 = struct.Struct("<H").unpack_from
        off = 24
        prev_ts = -1
        skip = self.skip_frames
        released = 0
        while off < n:
            if off - released >= RELEASE_OCTETS:
                released = _release(buf, released, off)
            if off + 16 > n:
                raise CaptureFormatError(self.path, off, "truncated record header")
            sec, frac, incl, orig = rec(buf, off)
            end = off + 16 + incl
            if end > n:
                raise CaptureFormatError(
                    self.path, off, f"truncated record: {incl} octets announced, "
                    f"{n - off - 16} present"
                )
            self.records += 1
            ts_ns = sec * 1_000_000_000 + frac * mul
            frame: Frame | None
            if fast_withfcs and incl >= 2 and orig <= incl:
                if skip:
                    frame = _SKIPPED  # a frame for certain: counted below, not built
                else:
                    data = buf[off + 16 : end]
                    psdu = data[:-2]
                    frame = Frame(ts_ns, sid, band, page, channel, psdu,
                                  fcs16(psdu) == u16(data, incl - 2)[0], None, None,
                                  TsSource.CAPTURE, None)
            else:
                frame = (self._frame(iface, ts_ns, buf[off + 16 : end], off, orig) if decap
                         else None)
            off = end
            if frame is None:
                continue
            if ts_ns < prev_ts:
                self.out_of_order += 1
            prev_ts = ts_ns
            self.frames += 1
            if skip:
                skip -= 1
            else:
                yield frame

    def _pcapng(self, buf: mmap.mmap) -> Iterator[Frame]:
        n = len(buf)
        off = 0
        endian = "<"
        ifaces: list[_Interface] = []
        hdr = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        sid, page, channel = self.sniffer_id, self.page, self.channel
        band = band_for(page, channel)
        CAPTURE = TsSource.CAPTURE
        prev_ts = -1
        skip = self.skip_frames
        released = 0
        taps: dict[bytes, _Tap] = {}
        # a copy of the file from offset ``base``: an EPB is read from it with bytes
        # operations (compiled: native slices and octets), not from the map
        win = b""
        base = 0
        # declared ints: compiled, the fields unpacked below are then native integers
        btype: int
        blen: int
        if_id: int
        ts_hi: int
        ts_lo: int
        caplen: int
        orig: int
        while off < n:
            if off - released >= RELEASE_OCTETS:
                released = _release(buf, released, off)
            if off + 12 > n:
                raise CaptureFormatError(self.path, off, "truncated block header")
            rel = off - base
            if rel + 28 > len(win):
                win = buf[off : off + WINDOW_OCTETS]
                base, rel = off, 0
            if endian == "<":
                # fields read by index: compiled, no struct call, no tuple
                btype = _u32le(win, rel)
                blen = _u32le(win, rel + 4)
            else:
                btype, blen = hdr(buf, off)
            if btype == PCAPNG_SHB:
                bom = struct.unpack_from("<I", buf, off + 8)[0]
                if bom == PCAPNG_BYTE_ORDER_MAGIC:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    raise CaptureFormatError(self.path, off + 8, "bad byte-order magic")
                hdr = struct.Struct(endian + "II").unpack_from
                epb = struct.Struct(endian + "IIIII").unpack_from
                ifaces = []
                btype, blen = hdr(buf, off)
            if blen < 12 or blen % 4:
                raise CaptureFormatError(self.path, off + 4, f"bad block length {blen}")
            end = off + blen
            if end > n:
                raise CaptureFormatError(
                    self.path, off, f"truncated block (type {btype}, {blen} octets announced,"
                    f" {n - off} present)"
                )
            if btype == PCAPNG_EPB:
                if rel + blen > len(win):  # the block runs past the window: a new one
                    win = buf[off : off + max(WINDOW_OCTETS, blen)]
                    base, rel = off, 0
                if rel + 28 > len(win):  # a block shorter than its fields, at the end
                    raise CaptureFormatError(
                        self.path, off + 4, f"enhanced packet block of {blen} octets: "
                        f"shorter than its 28 octets of fields")
                if endian == "<":
                    if_id = _u32le(win, rel + 8)
                    ts_hi = _u32le(win, rel + 12)
                    ts_lo = _u32le(win, rel + 16)
                    caplen = _u32le(win, rel + 20)
                    orig = _u32le(win, rel + 24)
                else:
                    if_id, ts_hi, ts_lo, caplen, orig = epb(buf, off + 8)
                if if_id >= len(ifaces) or 28 + caplen > blen:
                    raise CaptureFormatError(
                        self.path, off, f"enhanced packet block names interface {if_id} "
                        f"or captured length {caplen} that does not exist"
                    )
                iface = ifaces[if_id]
                self.records += 1
                mul = iface.mul
                if iface.div == 1 and not iface.shift:
                    # µs or ns resolution: no division (ns: not even a multiplication).
                    # µs: three products of operands below 2^31, which compiled stay
                    # machine-word arithmetic (raw * 1000 would go through Python ints)
                    ts_ns = ((ts_hi << 32) | ts_lo) if mul == 1 else (
                        ((ts_hi * mul) << 32) + (((ts_lo >> 16) * mul) << 16)
                        + (ts_lo & 0xFFFF) * mul)
                else:
                    ts_ns = (((ts_hi << 32) | ts_lo) * mul // iface.div) >> iface.shift
                if iface.linktype == LINKTYPE_IEEE802_15_4_WITHFCS and caplen >= 2:
                    # hot path for DLT 195, the common sniffer format
                    frame: Frame | None
                    if skip:
                        frame = _SKIPPED  # a frame for certain: counted below, not built
                    else:
                        at = rel + 26 + caplen  # the FCS, in the window
                        if orig > caplen:  # snaplen cut the FCS off
                            psdu = win[rel + 28 : rel + 26 + min(caplen + 2, orig)]
                            fcs_ok = None
                        else:
                            psdu = win[rel + 28 : at]
                            fcs_ok = fcs16(psdu) == win[at] | (win[at + 1] << 8)
                        frame = Frame(ts_ns, sid, band, page, channel, psdu, fcs_ok, None,
                                      None, CAPTURE, None)
                elif iface.linktype == LINKTYPE_IEEE802_15_4_TAP and orig == caplen:
                    # hot path for TAP (what hanlab writes): one slice, and a header seen
                    # before in this file is not parsed again
                    data = win[rel + 28 : rel + 28 + caplen]
                    tap = self._tap(taps, data)
                    if tap is None:  # malformed: the general path counts it
                        frame = self._frame(iface, ts_ns, data, off, orig)
                    elif skip:
                        frame = _SKIPPED
                    else:
                        fcs_len = tap.fcs_len
                        stop = caplen - fcs_len
                        psdu = data[tap.length : stop]
                        if fcs_len == 0:
                            fcs_ok = None
                        elif fcs_len == 2:
                            fcs_ok = fcs16(psdu) == data[stop] | (data[stop + 1] << 8)
                        else:
                            fcs_ok = tap_fcs_ok(psdu, data[stop:])
                        frame = Frame(ts_ns, sid, tap.band, tap.page, tap.channel, psdu,
                                      fcs_ok, tap.rssi, tap.lqi, CAPTURE, None)
                else:
                    frame = self._frame(iface, ts_ns, win[rel + 28 : rel + 28 + caplen], off,
                                        orig)
                if frame is not None:
                    if ts_ns < prev_ts:
                        self.out_of_order += 1
                    prev_ts = ts_ns
                    self.frames += 1
                    if skip:
                        skip -= 1
                    else:
                        yield frame
            elif btype == PCAPNG_IDB:
                linktype = struct.unpack_from(endian + "H", buf, off + 8)[0]
                self._check_linktype(linktype, off + 8)
                iface = _Interface(linktype, f"if{len(ifaces)}")
                self._idb_options(buf, off + 16, end - 4, endian, iface)
                ifaces.append(iface)
            elif btype in (PCAPNG_SPB, PCAPNG_PB):
                if not ifaces:
                    raise CaptureFormatError(self.path, off, "packet block before any IDB")
                if btype == PCAPNG_SPB:
                    iface, caplen, data_off, ts_ns = ifaces[0], blen - 16, off + 12, 0
                    orig = struct.unpack_from(endian + "I", buf, off + 8)[0]
                    caplen = min(caplen, orig)
                else:
                    if_id, _drops, ts_hi, ts_lo, caplen, orig = struct.unpack_from(
                        endian + "HHIIII", buf, off + 8)
                    iface = ifaces[min(if_id, len(ifaces) - 1)]
                    ts_ns = (((ts_hi << 32) | ts_lo) * iface.mul // iface.div) >> iface.shift
                    data_off = off + 28
                self.records += 1
                frame = self._frame(iface, ts_ns, buf[data_off : data_off + caplen], off, orig)
                if frame is not None:
                    self.frames += 1
                    if skip:
                        skip -= 1
                    else:
                        yield frame
            off = end

    def _tap(self, taps: dict[bytes, _Tap], packet: bytes) -> _Tap | None:
        """What the TAP header of ``packet`` says, from ``taps`` (the headers seen before
        in this file) or parsed and added; ``None`` if the header is malformed or the
        packet too short for its FCS (the general path then counts it as a bad packet,
        with the error's offset)."""
        if len(packet) < 4 or packet[0] != 0:
            return None
        length = packet[2] | (packet[3] << 8)
        if length < 4 or length > len(packet):
            return None
        header = packet[:length]
        tap = taps.get(header)
        if tap is None:
            try:
                _, fcs_len, page, channel, rssi, lqi = tap_fields(header)
            except ValueError:
                return None
            if page is None:
                page = self.page
            if channel is None:
                channel = self.channel
            if len(taps) >= _TAPS_HELD:
                taps.clear()
            tap = taps[header] = _Tap(length, fcs_len, page, channel, rssi, lqi,
                                      band_for(page, channel))
        if len(packet) - length < tap.fcs_len:
            return None
        return tap

    def _idb_options(
        self, buf: mmap.mmap, off: int, end: int, endian: str, iface: _Interface
    ) -> None:
        opt = struct.Struct(endian + "HH").unpack_from
        while off + 4 <= end:
            code, length = opt(buf, off)
            if code == 0:
                break
            value = buf[off + 4 : off + 4 + length]
            if code == OPT_IF_TSRESOL and length >= 1:
                iface.mul, iface.div, iface.shift = _ts_scale(value[0])
            elif code == 2:
                iface.name = value.decode("utf-8", "replace")
            off += 4 + ((length + 3) & ~3)


def fill_batch(frames: Iterator[Frame], batch: list[Frame], size: int) -> None:
    """Append frames of ``frames`` to ``batch`` until it holds ``size`` or ``frames`` ends.

    One compiled loop (a file source's batches). Errors of ``frames`` propagate, with
    the frames read before them already in ``batch``.
    """
    if len(batch) >= size:
        return
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            return


def read_frames(
    path: Path | str, sniffer_id: str = "file", page: int = 0, channel: int = 11,
    *, skip_frames: int = 0,
) -> Iterator[Frame]:
    """Yield the 802.15.4 frames of a pcap/pcapng file, from frame ``skip_frames``
    (0-based); see :class:`CaptureReader`."""
    return iter(CaptureReader(path, sniffer_id, page, channel, skip_frames=skip_frames))
