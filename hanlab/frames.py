"""The frame type that crosses every boundary of hanlab, with bands, pages and channels.

A :class:`Frame` is what one sniffer heard (DESIGN.md, "A frame is what one sniffer heard").
Nothing downstream of a source needs to know which kind of sniffer produced it.

Bands and channel pages follow IEEE 802.15.4-2015 §10.1.3 (channel pages) and the GB
sub-GHz allocation used by GBCS dual-band Communications Hubs:

* 2.4 GHz: page 0, channels 11-26, O-QPSK 250 kb/s (32 µs per octet).
* GB sub-GHz: page 28 channels 0-26, page 29 channels 27-34, page 30 channels 35-61,
  page 31 channels 0-26; 100 ksymbol/s.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from enum import IntEnum, StrEnum
from typing import Any, Final

from hanlab.errors import BadInputError


class Band(StrEnum):
    """A HAN radio band. The value is the name used in files, topics and reports."""

    GHZ_2_4 = "2.4GHz"
    SUB_GHZ = "subGHz"


#: Band -> its value as plain text (a dict lookup: no enum property call on the hot path)
BAND_TEXT: Final[dict[Band, str]] = {band: band.value for band in Band}


class TsSource(IntEnum):
    """Where a frame's ``ts_ns`` came from, which bounds its precision.

    CAPTURE: copied from a capture file. SNIFFER: the sniffer's own clock aligned to host
    UTC. HOST: stamped by the host on receipt (serial and USB latency included).
    EMULATED: the emulator's true time.
    """

    CAPTURE = 0
    SNIFFER = 1
    HOST = 2
    EMULATED = 3


#: Valid channels of each channel page hanlab knows (IEEE 802.15.4-2015 §10.1.3; GB sub-GHz).
PAGE_CHANNELS: Final[dict[int, range]] = {
    0: range(11, 27),
    28: range(0, 27),
    29: range(27, 35),
    30: range(35, 62),
    31: range(0, 27),
}

#: PSDU size limit, aMaxPhyPacketSize (IEEE 802.15.4-2015 §11.3), FCS included.
MAX_PSDU_OCTETS: Final = 127


def band_of(page: int, channel: int) -> Band:
    """Band of a channel page: page 0 is 2.4 GHz, pages 28-31 are GB sub-GHz.

    Raises:
        BadInputError: page or channel is not one hanlab supports.
    """
    channels = PAGE_CHANNELS.get(page)
    if channels is None:
        raise BadInputError(f"channel page {page} is not supported (use 0 or 28-31)")
    if channel not in channels:
        raise BadInputError(
            f"channel {channel} is not on page {page} "
            f"(valid: {channels.start}-{channels.stop - 1})"
        )
    return Band.GHZ_2_4 if page == 0 else Band.SUB_GHZ


#: the fields of a :class:`Frame`, in order (its ``repr``, equality and ``_replace``)
FRAME_FIELDS: Final[tuple[str, ...]] = (
    "ts_ns", "sniffer_id", "band", "page", "channel", "psdu", "fcs_ok", "rssi_dbm", "lqi",
    "ts_source", "sniffer_ts_ns",
)


class Frame:
    """One PSDU as heard by one sniffer.

    Attributes:
        ts_ns: start of reception, ns since the UNIX epoch (UTC).
        sniffer_id: the configured id of the sniffer that heard it.
        band: the band of ``page``/``channel``.
        page: IEEE 802.15.4 channel page (0, or 28-31 for GB sub-GHz).
        channel: channel number on that page.
        psdu: the MAC frame without its FCS (at most 125 octets for a 2-octet FCS).
        fcs_ok: ``True``/``False`` if the sniffer delivered or checked an FCS, ``None``
            if it gave none.
        rssi_dbm: received signal strength in dBm, or ``None``.
        lqi: link quality indicator 0-255, or ``None``.
        ts_source: where ``ts_ns`` came from (:class:`TsSource`).
        sniffer_ts_ns: the sniffer's own raw clock reading in ns before alignment, or ``None``.

    Immutable: its fields are ``Final`` (compiled, assigning one raises
    ``AttributeError``); :meth:`_replace` gives a changed copy. Frames compare equal and
    hash alike when every field does.

    A class rather than a ``NamedTuple``: compiled, it is a native class, built with one
    allocation and read field by field without a tuple lookup. Every frame of a capture
    is built once by a reader or a driver, and that was a fifth of ``hanlab capture``'s
    work per frame (issue 15). Compiled, the constructor checks each field's type
    (``TypeError`` for, e.g., a ``float`` ``ts_ns`` or a ``str`` band); a value of the
    right type but out of range (an RSSI of 10**400, a channel of 70,000) is clamped or
    dropped by :func:`checked_frames` (issue 14 item 8).
    """

    __slots__ = ("band", "channel", "fcs_ok", "lqi", "page", "psdu", "rssi_dbm", "sniffer_id",
                 "sniffer_ts_ns", "ts_ns", "ts_source")

    def __init__(self, ts_ns: int, sniffer_id: str, band: Band, page: int, channel: int,
                 psdu: bytes, fcs_ok: bool | None, rssi_dbm: float | None = None,
                 lqi: int | None = None, ts_source: TsSource = TsSource.CAPTURE,
                 sniffer_ts_ns: int | None = None) -> None:
        self.ts_ns: Final = ts_ns
        self.sniffer_id: Final = sniffer_id
        self.band: Final = band
        self.page: Final = page
        self.channel: Final = channel
        self.psdu: Final = psdu
        self.fcs_ok: Final = fcs_ok
        self.rssi_dbm: Final = rssi_dbm
        self.lqi: Final = lqi
        self.ts_source: Final = ts_source
        self.sniffer_ts_ns: Final = sniffer_ts_ns

    def _values(self) -> tuple[Any, ...]:
        """The fields' values in :data:`FRAME_FIELDS` order."""
        return (self.ts_ns, self.sniffer_id, self.band, self.page, self.channel, self.psdu,
                self.fcs_ok, _raw_rssi(self), self.lqi, self.ts_source, self.sniffer_ts_ns)

    def _replace(self, **changes: Any) -> Frame:
        """A copy with the fields named in ``changes`` replaced.

        Raises:
            TypeError: a name that is not a field.
        """
        fields = dict(zip(FRAME_FIELDS, self._values(), strict=True))
        for name in changes:
            if name not in fields:
                raise TypeError(f"Frame has no field {name!r}")
        fields.update(changes)
        return Frame(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._values() == other._values()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._values() != other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        values = zip(FRAME_FIELDS, self._values(), strict=True)
        return "Frame(" + ", ".join(f"{name}={value!r}" for name, value in values) + ")"


#: A batch of frames from one source, in the order the source delivered them.
FrameBatch = list[Frame]


def batch_counts(batch: FrameBatch) -> tuple[int, int]:
    """(PSDU octets, frames with a failed FCS) of ``batch``: a rig's live statistics."""
    octets = fcs_errors = 0
    for frame in batch:
        octets += len(frame.psdu)
        if frame.fcs_ok is False:
            fcs_errors += 1
    return octets, fcs_errors


def by_band(batch: FrameBatch) -> list[tuple[Band, FrameBatch]]:
    """``batch`` split by band, each part in frame order, bands in :class:`Band` order;
    ``[(band, batch)]`` itself when every frame is of one band (the common case)."""
    if not batch:
        return []
    band = batch[0].band
    for frame in batch:
        if frame.band is not band:
            break
    else:
        return [(band, batch)]
    parts: list[tuple[Band, FrameBatch]] = []
    for b in Band:
        part = [f for f in batch if f.band is b]
        if part:
            parts.append((b, part))
    return parts


#: ``ts_ns`` must lie in [0, TS_NS_LIMIT): a pcapng timestamp is 64 bits, and every
#: consumer treats ``ts_ns`` as a signed 64-bit count (about year 2262).
TS_NS_LIMIT: Final = 1 << 63
#: RSSI range kept (dBm); outside it a value is clamped. The TAP RSS TLV is an IEEE float.
RSSI_DBM_MIN: Final = -128.0
RSSI_DBM_MAX: Final = 127.0
#: LQI range (IEEE 802.15.4-2015 §10.2.6: an integer 0x00-0xff).
LQI_MAX: Final = 255
#: longest PSDU kept from a capture file: what a pcapng record with its TAP header holds
#: (a recorded oversized frame is evidence, e.g. PHY tests; live sniffers keep ≤ 127)
CAPTURED_PSDU_MAX_OCTETS: Final = 0xFFFF - 64


#: looked up once: an enum member read from its class is an attribute lookup per frame
_CAPTURE: Final = TsSource.CAPTURE


def _psdu_limit(frame: Frame) -> int:
    """Longest PSDU (without FCS) kept for ``frame``, in octets."""
    if frame.ts_source == _CAPTURE:
        return CAPTURED_PSDU_MAX_OCTETS
    return MAX_PSDU_OCTETS - (0 if frame.fcs_ok is None else 2)


#: ``frame.rssi_dbm`` as the driver left it: compiled code converts a ``float`` field on
#: reading it, and an absurd int (10**400) would raise there instead of being clamped.
_raw_rssi: Final[Callable[[Frame], Any]] = operator.attrgetter("rssi_dbm")


def _fixed_frame(frame: Frame) -> Frame | None:
    """``frame`` with RSSI and LQI clamped into range, or ``None`` if it must be dropped."""
    ts_ns, page, channel, psdu = frame.ts_ns, frame.page, frame.channel, frame.psdu
    if not isinstance(ts_ns, int) or not 0 <= ts_ns < TS_NS_LIMIT:
        return None
    channels = PAGE_CHANNELS.get(page) if isinstance(page, int) else None
    if channels is None or channel not in channels:
        return None
    if frame.band is not (Band.GHZ_2_4 if page == 0 else Band.SUB_GHZ):
        return None
    if not isinstance(psdu, bytes) or len(psdu) > _psdu_limit(frame):
        return None
    rssi = _raw_rssi(frame)
    if rssi is not None:
        try:
            rssi = float(rssi)
        except (TypeError, ValueError, OverflowError):
            rssi = None
        if rssi is not None:
            rssi = None if rssi != rssi else min(max(rssi, RSSI_DBM_MIN), RSSI_DBM_MAX)
    lqi = frame.lqi
    if lqi is not None:
        lqi = min(max(int(lqi), 0), LQI_MAX) if isinstance(lqi, int) else None
    return frame._replace(rssi_dbm=rssi, lqi=lqi)


def checked_frames(batch: FrameBatch, counters: dict[str, int]) -> FrameBatch:
    """The frames of ``batch`` with every field in range, for every driver (issue 14 item 8).

    Dropped: ``ts_ns`` outside [0, 2^63) ns; a page/channel that is not a valid pair of
    :data:`PAGE_CHANNELS` or disagrees with ``band``; from a live sniffer, a PSDU longer
    than aMaxPhyPacketSize (127 octets with its FCS, IEEE 802.15.4-2015 §11.3), from a
    capture file (``TsSource.CAPTURE``) one longer than a pcapng record holds. Clamped:
    ``rssi_dbm`` to [-128, 127] dBm (NaN becomes ``None``), ``lqi`` to 0-255. Each frame dropped or
    changed adds 1 to ``counters["out_of_range"]``.

    Returns:
        ``batch`` itself when every frame is in range (the common case: a few compares per
        frame), else a new list in the same order.
    """
    lo, hi = RSSI_DBM_MIN, RSSI_DBM_MAX
    ghz_2_4, sub_ghz = Band.GHZ_2_4, Band.SUB_GHZ
    page = -1
    band = ghz_2_4
    first_channel = last_channel = -1  # the page's channels, first and last
    for frame in batch:
        ts_ns, lqi, channel = frame.ts_ns, frame.lqi, frame.channel
        if frame.page != page:  # most batches hold one page: one lookup
            page = frame.page
            channels = PAGE_CHANNELS.get(page)
            first_channel, last_channel = ((channels.start, channels.stop - 1)
                                           if channels is not None else (0, -1))
            band = ghz_2_4 if page == 0 else sub_ghz
        if not (ts_ns >= 0 and (ts_ns >> 62) <= 1  # < TS_NS_LIMIT, in machine words
                and first_channel <= channel <= last_channel
                and len(frame.psdu) <= _psdu_limit(frame)
                and (frame.rssi_dbm is None or lo <= _raw_rssi(frame) <= hi)
                and (lqi is None or 0 <= lqi <= LQI_MAX)
                and frame.band is band):
            break
    else:
        return batch
    out: FrameBatch = []
    for frame in batch:
        fixed = _fixed_frame(frame)
        if fixed != frame:
            counters["out_of_range"] = counters.get("out_of_range", 0) + 1
        if fixed is not None:
            out.append(fixed)
    return out
