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

from enum import IntEnum, StrEnum
from typing import NamedTuple

from hanlab.errors import BadInputError


class Band(StrEnum):
    """A HAN radio band. The value is the name used in files, topics and reports."""

    GHZ_2_4 = "2.4GHz"
    SUB_GHZ = "subGHz"


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
PAGE_CHANNELS: dict[int, range] = {
    0: range(11, 27),
    28: range(0, 27),
    29: range(27, 35),
    30: range(35, 62),
    31: range(0, 27),
}

#: PSDU size limit, aMaxPhyPacketSize (IEEE 802.15.4-2015 §11.3), FCS included.
MAX_PSDU_OCTETS = 127


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


class Frame(NamedTuple):
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
    """

    ts_ns: int
    sniffer_id: str
    band: Band
    page: int
    channel: int
    psdu: bytes
    fcs_ok: bool | None
    rssi_dbm: float | None = None
    lqi: int | None = None
    ts_source: TsSource = TsSource.CAPTURE
    sniffer_ts_ns: int | None = None


#: A batch of frames from one source, in the order the source delivered them.
FrameBatch = list[Frame]
