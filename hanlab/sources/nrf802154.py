"""nRF 802.15.4 sniffer source: Nordic's sniffer firmware over a USB CDC ACM serial port.

The dongle (nRF52840, USB VID 0x1915 PID 0x154B; older firmware 0x154A) speaks a text
protocol (Nordic "nRF Sniffer for 802.15.4", firmware and extcap):

* host → dongle, one command per line: ``sleep`` (stop receiving), ``shell echo off``
  (newer, Zephyr-shell firmware: stop echoing commands), ``channel N`` (11-26),
  ``receive`` (start receiving);
* dongle → host, one line per frame:
  ``received: <hex PSDU with FCS> power: <dBm> lqi: <0-255> time: <µs since boot>``.
  ``time`` is taken when the last symbol of the frame was received (nRF 802.15.4 radio
  driver, ``nrf_802154_received_timestamp_raw``): 32-bit in older firmware (wraps every
  2^32 µs), 64-bit in newer. Only frames whose CRC passed are delivered; the printed FCS
  "may be modified by the hardware", so it is not re-checked unless asked to.

Frames are stamped with the dongle's own clock, aligned to host UTC by
:class:`~hanlab.sources.clock.ClockAligner` (``ts_source`` SNIFFER; ``sniffer_ts_ns`` is
the raw, unwrapped end-of-frame reading). ``ts_ns`` is the start of the frame: the
end-of-frame time minus the frame's airtime, (SHR 5 + PHR 1 + PSDU) octets × 32 µs
(IEEE 802.15.4-2015 §12.2, O-QPSK 250 kb/s).

Latency (issue 6, ``benchmarks/serial_ingest.py``), faults and reopening (issue 6, item
4) are those of every serial sniffer (:mod:`hanlab.sources.serial_sniffer`): one
``os.read`` per wake-up, the lines of a read parsed at once, one event-loop hop to the
rig's bus; an unplug is one ``gap`` event and the frames before and after go to the same
output. Lines that are not frames are counted (``bad_lines``, ``bad_frames``), never
fatal.
"""

from __future__ import annotations

import binascii
from typing import Literal

from hanlab.errors import BadInputError
from hanlab.fcs import check_fcs16
from hanlab.frames import MAX_PSDU_OCTETS, Frame, TsSource
from hanlab.sources.serial_sniffer import SerialSnifferSettings, SerialSnifferSource

#: USB identity of the nRF Sniffer for 802.15.4 (Nordic VID, sniffer PID; 0x154A older).
NORDIC_VID = 0x1915
SNIFFER_PID = 0x154B

#: O-QPSK 250 kb/s: 32 µs per octet; SHR (4 preamble + 1 SFD) and PHR are 6 octets.
_OCTET_NS = 32_000
_SHR_PHR_OCTETS = 6

#: lines the dongle prints that are not frames and not faults (echo, prompts, replies).
_SHELL_PREFIXES = (b"sleep", b"channel", b"receive", b"shell", b"uart:~$", b"\x1b[")


class Nrf802154Settings(SerialSnifferSettings):
    """``settings:`` of an ``nrf802154`` sniffer in a rig file: those of every serial
    sniffer (:class:`~hanlab.sources.serial_sniffer.SerialSnifferSettings`: ``port``,
    ``min_delay_us``, reopening, USB identity, defaulting to the nRF sniffer's) and:

    Attributes:
        timer_bits: 32 or 64 for the firmware's ``time:`` counter, or ``None`` to detect.
        timestamp_reference: what ``time:`` marks: ``end_of_frame`` (Nordic firmware)
            or ``start_of_frame``.
        fcs_check: ``hardware`` trusts the radio's CRC check; ``recompute`` checks the
            printed FCS again.
    """

    timer_bits: Literal[32, 64] | None = None
    timestamp_reference: Literal["end_of_frame", "start_of_frame"] = "end_of_frame"
    fcs_check: Literal["hardware", "recompute"] = "hardware"
    usb_vid: int | None = NORDIC_VID
    usb_pid: int | None = SNIFFER_PID


class ParsedLine:
    """One ``received:`` line, parsed: PSDU with FCS, power (dBm), LQI, raw µs time."""

    __slots__ = ("lqi", "power_dbm", "psdu_fcs", "time_us")

    def __init__(self, psdu_fcs: bytes, power_dbm: int, lqi: int, time_us: int) -> None:
        self.psdu_fcs = psdu_fcs
        self.power_dbm = power_dbm
        self.lqi = lqi
        self.time_us = time_us


#: a ``power:`` beyond ± this many dBm is a corrupt line, not a reading
MAX_POWER_DBM = 1000


def parse_line(line: bytes) -> ParsedLine | None:
    """Parse one line of the dongle's output (without its line end).

    Returns:
        the parsed frame line, or ``None`` if the line is not a well-formed
        ``received:`` line (the caller counts it), including a ``power:`` beyond
        ±:data:`MAX_POWER_DBM` (a corrupt line; issue 14 item 10). A plausible power outside
        [-128, 127] dBm is kept here and clamped with the other range checks
        (:func:`hanlab.frames.checked_frames`).
    """
    parts = line.split()
    if (
        len(parts) != 8
        or parts[0] != b"received:"
        or parts[2] != b"power:"
        or parts[4] != b"lqi:"
        or parts[6] != b"time:"
    ):
        return None
    try:
        psdu_fcs = binascii.a2b_hex(parts[1])
        power_dbm = int(parts[3])
        lqi = int(parts[5])
        time_us = int(parts[7])
    except (binascii.Error, ValueError):
        return None
    if not 3 <= len(psdu_fcs) <= MAX_PSDU_OCTETS or not 0 <= lqi <= 255 \
            or not -MAX_POWER_DBM <= power_dbm <= MAX_POWER_DBM:
        return None
    return ParsedLine(psdu_fcs, power_dbm, lqi, time_us)


#: a line longer than this without a line end is garbage: dropped
_MAX_LINE_OCTETS = 4096


class Nrf802154Source(SerialSnifferSource[Nrf802154Settings]):
    """Frames from one nRF 802.15.4 sniffer dongle (issue 6, items 2-4).

    Args:
        spec: the sniffer; ``page`` must be 0 (the nRF52840 sniffs 2.4 GHz only).
        report: receives ``gap`` and ``info`` events.
        host_clock_ns: host UTC clock in ns (injected by tests for virtual time).

    Raises (from ``start``):
        BadInputError: the spec is not a 2.4 GHz channel.
        SourceError: the port cannot be opened.
    """

    Settings = Nrf802154Settings
    DRIVER_COUNTERS = ("lines", "bad_lines", "bad_frames", "shell_lines")
    #: a partial line carried to the next read
    _carry = b""

    def timer_bits(self) -> int | None:
        """The configured ``timer_bits`` (``None``: detect 32 or 64)."""
        return self.settings.timer_bits

    def check_spec(self, page: int, channel: int) -> None:
        """Refuse anything but page 0, channels 11-26 (BadInputError)."""
        if page != 0 or not 11 <= channel <= 26:
            raise BadInputError(
                f"sniffer {self.sniffer_id}: the nRF 802.15.4 sniffer receives 2.4 GHz only "
                f"(page 0, channels 11-26), not page {page} channel {channel}"
            )

    def reset_parser(self) -> None:
        """Drop a partial line left from the previous connection."""
        self._carry = b""

    async def configure(self) -> None:
        """``sleep``, ``shell echo off``, ``channel N``, ``receive`` (no replies awaited)."""
        self._commands(b"", b"sleep", b"shell echo off", b"channel %d" % self.channel,
                       b"receive")

    def stop_bytes(self) -> bytes:
        """``sleep``."""
        return b"sleep\r\n"

    def _commands(self, *commands: bytes) -> None:
        self.write(b"".join(c + b"\r\n" for c in commands))

    async def set_channel(self, channel: int) -> None:
        """Change channel while running (``sleep``, ``channel N``, ``receive``).

        Lines already in flight when the command is written are labelled with the old
        channel, so frames from the last few ms before the change may carry the new one.

        Raises:
            BadInputError: ``channel`` is not 11-26.
        """
        if not 11 <= channel <= 26:
            raise BadInputError(f"channel {channel} is not a 2.4 GHz channel (11-26)")
        self.channel = channel
        self._commands(b"sleep", b"channel %d" % channel, b"receive")
        self.emit("info", channel=channel, what="channel_changed")

    # -- receiving ----------------------------------------------------------------------

    def on_data(self, data: bytes, host_rx_ns: int) -> None:
        """Split ``data`` into lines (carrying a partial one) and parse them."""
        if self._carry:
            data = self._carry + data
        lines = data.replace(b"\r", b"\n").split(b"\n")
        self._carry = lines.pop()
        if len(self._carry) > _MAX_LINE_OCTETS:  # no line end for too long: garbage
            lines.append(self._carry)
            self._carry = b""
        if lines:
            self._on_lines(lines, host_rx_ns)

    def _on_lines(self, lines: list[bytes], host_rx_ns: int) -> None:
        self.note_rx(host_rx_ns)
        out = self.pending
        counters = self.counters
        recompute = self.settings.fcs_check == "recompute"
        end_ref = self.settings.timestamp_reference == "end_of_frame"
        for line in lines:
            if not line:
                continue
            counters["lines"] += 1
            try:
                frame = self._frame_of(line, host_rx_ns, recompute, end_ref)
            except Exception:  # one bad line never loses the rest of the read
                counters["bad_lines"] += 1
                continue
            if frame is not None:
                out.append(frame)
                counters["frames"] += 1
        if out:
            self.wake()

    def _frame_of(self, line: bytes, host_rx_ns: int, recompute: bool,
                  end_ref: bool) -> Frame | None:
        """The frame of one output line, or ``None`` (counted) if it carries none."""
        counters = self.counters
        spec = self.spec
        parsed = parse_line(line)
        if parsed is None:
            if line.startswith(b"received:"):
                counters["bad_frames"] += 1
            elif line.lstrip().startswith(_SHELL_PREFIXES):
                counters["shell_lines"] += 1
            else:
                counters["bad_lines"] += 1
            return None
        psdu_fcs = parsed.psdu_fcs
        airtime_ns = (len(psdu_fcs) + _SHR_PHR_OCTETS) * _OCTET_NS
        ts_ns, sniffer_ns = self.aligned_ns(
            parsed.time_us, host_rx_ns, to_start_ns=airtime_ns if end_ref else 0,
            to_end_ns=0 if end_ref else airtime_ns)
        fcs_ok = True
        if recompute and not check_fcs16(psdu_fcs):
            fcs_ok = False
            counters["fcs_errors"] += 1
        return Frame(ts_ns, spec.sniffer_id, spec.band, 0, self.channel, psdu_fcs[:-2], fcs_ok,
                     float(parsed.power_dbm), parsed.lqi, TsSource.SNIFFER, sniffer_ns)
