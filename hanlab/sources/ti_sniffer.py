"""TI SmartRF Packet Sniffer 2 firmware (CC1352/CC1312 LaunchPads): GB sub-GHz frames with
the radio's own µs timestamps (issue 13, item 5).

The board (LAUNCHXL-CC1352R1/P1/P7, CC1312R1; USB is the on-board XDS110 debugger,
VID:PID ``0451:bef3``, whose first serial port, interface 00, is the sniffer's UART)
runs TI's ``sniffer_fw`` and speaks a binary packet protocol. Sources:

* [TI-UG] TI, *SmartRF Packet Sniffer 2 User's Guide* v1.9/1.10, "Packet Sniffer
  Firmware » Firmware Reference » Command Interface",
  https://software-dl.ti.com/lprf/packet_sniffer_2/docs/user_guide/html/sniffer_fw/firmware/command_interface.html
  (general packet format, byte order, UART settings, commands).
* [TUX] Aceno Tecnologia, *tuxniffer* README, "Texas Instruments Documentation Issues",
  https://github.com/AcenoTecnologia/tuxniffer (what ``sniffer_fw`` 1.10 on CC1352P1 and
  CC1352P7 really sends, where it differs from [TI-UG]; PHY indices of LP-CC1352P7).
* [DM] S. Del Moral, ``SmartRfDevice`` (MIT), an independent host driver for CC1352R1
  (data packets without FCS, status bit 7 = FCS OK, PING reply layout, 3 Mbaud in 1.9.0).

The protocol as implemented here (facts from the sources, our own code):

* Every packet: SOF ``0x40 0x53`` | Packet Info (1) | Length (2, little endian) |
  Payload (Length octets) | FCS (1) | EOF ``0x40 0x45`` [TI-UG Table 2]. Packet Info is
  category (bits 7-6: 1 command, 2 command response, 3 data/error) and type (bits 5-0).
  FCS = (Info + both Length octets + every Payload octet) mod 256 [TI-UG, DM].
  *Ambiguous*: [TI-UG] shows the FCS on every packet; [DM] and [TUX] find none on data
  and error packets (category 3). The decoder takes both: it looks for EOF right after
  the payload, else one octet later (which of the two cannot be confused).
* No byte stuffing: SOF and EOF octets may occur inside a payload, so framing is
  validated (Length bound, EOF where the Length says, FCS where present, and the 802.15.4
  CRC of a frame whose status says FCS OK); a packet that fails is skipped by one octet
  and the stream is searched again for SOF, so garbage costs at most the frames it
  overlaps (counted: ``resync_octets``, ``bad_packets``).
* Commands (host → dongle, category 1): PING 0x40, START 0x41, STOP 0x42, PAUSE 0x43,
  RESUME 0x44, CFG_FREQUENCY 0x45 (payload: MHz as uint16 then the fraction × 65536 as
  uint16), CFG_PHY 0x47 (payload: the board's PHY index) [TI-UG]. Each is answered
  (category 2) with a status octet (0 OK, 1 timeout, 2 FCS error, 3 invalid command,
  4 invalid state); PING's answer adds chip ID (2), chip revision (1), firmware ID (1)
  and firmware revision (2) [DM]. Commands are synchronous: the driver waits for each
  answer. PAUSE and RESUME are not in ``sniffer_fw`` 1.10 [TUX]: not used.
* Data packets (Info 0xC0): Timestamp (6, little endian, µs) | Payload | RSSI (1, signed
  dBm) | Status (1, bit 7 = FCS OK) [TI-UG, DM]. *Ambiguous*: [TUX] finds one more octet
  between the timestamp and the PSDU that [TI-UG] does not show (on O-QPSK: the PHR);
  the PSDU ends with its own 2-octet FCS [TUX]. Setting ``header_octets`` says how many
  octets precede the PSDU; by default (``None``) it is found from the first frames whose
  status says FCS OK (0, 1 or 2 octets: the offset at which the 802.15.4 CRC checks; kept
  once three frames agree, found again on each open). Error packets (Info 0xC1) carry
  an error code; counted and reported.
* UART: 8N1, no flow control; 921600 baud in [TI-UG] (≤ 1.8.0), 3 000 000 baud in the
  1.9.0+ firmware source [TUX, DM] (default here; through the XDS110 the speed matters).
* PHY indices depend on the board and firmware: for LP-CC1352P7 with ``sniffer_fw``
  1.10, 0x0B is "ZigBee 868/915 MHz 100 kbps 2-GFSK" and 0x12 "IEEE 802.15.4 2.4 GHz
  O-QPSK" [TUX]; a CC1352R1 with older firmware used 0x09 and 0x0D [DM]. Settings
  ``phy_index_sub_ghz`` / ``phy_index_2g4`` take the board's values.

Timestamps: the 48-bit µs count (unwrapped across its 2^48 µs wrap with
:class:`~hanlab.sources.clock.TimerUnwrapper`) is aligned to host UTC exactly as the nRF
sniffer's (:mod:`hanlab.sources.serial_sniffer`, ``sources/clock.py``). What instant it
marks: *ambiguous* in [TI-UG]; the CC13x2 RF core stamps received packets at the end of
the sync word / SFD (CC13x2 Technical Reference Manual SWCU185, RF core "rxConf
bAppendTimestamp"), so ``timestamp_reference`` defaults to ``end_of_sfd`` and the frame's
``ts_ns`` is that minus the SHR (GB sub-GHz: 10 octets × 80 µs, :mod:`hanlab.phy`).

Channels: the spec's channel page and channel give the frequency
(:func:`hanlab.phy.centre_frequency_khz`; GB sub-GHz pages 28-31, and page 0 for 2.4 GHz
on the same board), unless ``frequency_mhz`` overrides it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal, NamedTuple

from pydantic import Field

from hanlab.fcs import check_fcs16
from hanlab.frames import MAX_PSDU_OCTETS, Band, Frame, TsSource, band_of
from hanlab.phy import centre_frequency_khz, phy_for
from hanlab.sources.base import EventReporter, SourceSpec, now_ns
from hanlab.sources.serial_sniffer import SerialSnifferSettings, SerialSnifferSource

#: USB identity of the XDS110 debug probe on TI LaunchPads (CC1352R1/P1/P7, CC1312R1).
TI_VID = 0x0451
XDS110_PID = 0xBEF3

SOF = b"\x40\x53"
EOF = b"\x40\x45"
#: largest Payload [TI-UG Table 2: 0-2049 octets]
MAX_PAYLOAD_OCTETS = 2049
_HEADER_OCTETS = 5  # SOF, Info, Length

CATEGORY_COMMAND, CATEGORY_RESPONSE, CATEGORY_DATA = 1, 2, 3
PING, START, STOP, PAUSE, RESUME, CFG_FREQUENCY, CFG_PHY = (
    0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x47)
INFO_DATA, INFO_ERROR = 0xC0, 0xC1
COMMAND_NAMES = {PING: "PING", START: "START", STOP: "STOP", PAUSE: "PAUSE",
                 RESUME: "RESUME", CFG_FREQUENCY: "CFG_FREQUENCY", CFG_PHY: "CFG_PHY"}
#: response status octet [TI-UG, DM]
STATUS_NAMES = {0: "OK", 1: "timeout", 2: "FCS error", 3: "invalid command",
                4: "invalid state"}
STATUS_OK, STATUS_INVALID_STATE = 0, 4
#: data packet: Timestamp (6) ... RSSI (1), Status (1)
TIMESTAMP_OCTETS = 6
STATUS_FCS_OK = 0x80
#: the RF core's "no RSSI" value
RSSI_INVALID = -128
#: longest payloads the dongle sends: a data packet holds timestamp, up to 2 header
#: octets, a PSDU of at most aMaxPhyPacketSize (127) octets, RSSI and status; answers
#: and error reports are a few octets (PING's: 7)
MAX_DATA_PAYLOAD_OCTETS = TIMESTAMP_OCTETS + 2 + MAX_PSDU_OCTETS + 2
MAX_SHORT_PAYLOAD_OCTETS = 32


def max_payload_from_dongle(info: int) -> int:
    """The longest Payload a packet with Info ``info`` from the dongle may carry (0 for
    an Info it never sends: commands, reserved categories, unknown data types)."""
    if info == INFO_DATA:
        return MAX_DATA_PAYLOAD_OCTETS
    if info == INFO_ERROR or info >> 6 == CATEGORY_RESPONSE:
        return MAX_SHORT_PAYLOAD_OCTETS
    return 0


# -- the packet codec ------------------------------------------------------------------


def checksum(info: int, payload: bytes) -> int:
    """The packet FCS: (Info + Length octets + Payload octets) mod 256 [TI-UG, DM]."""
    n = len(payload)
    return (info + (n & 0xFF) + (n >> 8) + sum(payload)) & 0xFF


def encode_packet(info: int, payload: bytes = b"", *, with_fcs: bool = True) -> bytes:
    """One packet on the wire: SOF, Info, Length, Payload, FCS (if ``with_fcs``), EOF.

    Raises:
        ValueError: ``info`` is not an octet or ``payload`` is longer than
            :data:`MAX_PAYLOAD_OCTETS`.
    """
    if not 0 <= info <= 0xFF or len(payload) > MAX_PAYLOAD_OCTETS:
        raise ValueError(f"packet info {info:#x} / payload of {len(payload)} octets")
    fcs = bytes([checksum(info, payload)]) if with_fcs else b""
    return SOF + bytes([info]) + len(payload).to_bytes(2, "little") + payload + fcs + EOF


def frequency_payload(frequency_khz: int) -> bytes:
    """CFG_FREQUENCY payload: integer MHz (uint16) and fraction × 65536 (uint16), little
    endian [TI-UG; DM, TUX agree].

    Raises:
        ValueError: not a frequency the field holds (0 to 65535 MHz).
    """
    mhz, khz = divmod(frequency_khz, 1000)
    if not 0 <= mhz <= 0xFFFF:
        raise ValueError(f"frequency {frequency_khz} kHz out of range")
    return mhz.to_bytes(2, "little") + (khz * 65536 // 1000).to_bytes(2, "little")


class Packet(NamedTuple):
    """One decoded packet: Info octet, Payload, and whether an FCS octet was present
    and right (``None``: absent, as on data packets of ``sniffer_fw`` 1.10)."""

    info: int
    payload: bytes
    fcs_ok: bool | None

    @property
    def category(self) -> int:
        """Packet category (bits 7-6 of Info)."""
        return self.info >> 6


class PacketDecoder:
    """Finds packets in the byte stream from the dongle, resynchronising after garbage.

    Args:
        accept: called with each well-framed packet; returning ``False`` rejects it as
            a false frame (the search resumes one octet after its SOF).
        max_payload: the longest Payload a packet with a given Info octet may have (a
            longer Length, or 0 for an Info the dongle never sends, is rejected at once:
            a false SOF in garbage then costs no wait for octets that never belong to it).

    Attributes:
        resync_octets: octets skipped looking for SOF (garbage, or a rejected packet's).
        bad_packets: packets rejected (wrong FCS, no EOF where the Length says, a Length
            beyond :data:`MAX_PAYLOAD_OCTETS`, or ``accept`` said no).
    """

    def __init__(
        self,
        accept: Callable[[Packet], bool] = lambda _packet: True,
        max_payload: Callable[[int], int] = lambda _info: MAX_PAYLOAD_OCTETS,
    ) -> None:
        self._accept = accept
        self._max_payload = max_payload
        self._buf = bytearray()
        self.resync_octets = 0
        self.bad_packets = 0

    def reset(self) -> None:
        """Forget a partial packet (a new connection)."""
        self._buf.clear()

    @property
    def buffered_octets(self) -> int:
        """Octets held, waiting for the rest of a packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        """Add ``data``; return the packets it completes, in order."""
        buf = self._buf
        buf += data
        out: list[Packet] = []
        pos = 0
        n = len(buf)
        while True:
            start = buf.find(SOF, pos)
            if start < 0:
                keep = n - 1 if n > pos and buf[-1] == SOF[0] else n
                self.resync_octets += keep - pos
                pos = keep
                break
            self.resync_octets += start - pos
            pos = start
            if n - pos < _HEADER_OCTETS:
                break
            info = buf[pos + 2]
            length = buf[pos + 3] | buf[pos + 4] << 8
            end = pos + _HEADER_OCTETS + length
            if length > min(MAX_PAYLOAD_OCTETS, self._max_payload(info)):
                pos = self._reject(pos)
                continue
            if n < end + 2:
                break
            if buf[end:end + 2] == EOF:
                packet = Packet(info, bytes(buf[pos + _HEADER_OCTETS:end]), None)
                after = end + 2
            elif n < end + 3:
                break
            elif buf[end + 1:end + 3] == EOF:
                payload = bytes(buf[pos + _HEADER_OCTETS:end])
                packet = Packet(info, payload, buf[end] == checksum(info, payload))
                after = end + 3
            else:
                pos = self._reject(pos)
                continue
            if packet.fcs_ok is False or not self._accept(packet):
                pos = self._reject(pos)
                continue
            out.append(packet)
            pos = after
        del buf[:pos]
        return out

    def _reject(self, pos: int) -> int:
        self.bad_packets += 1
        self.resync_octets += 1
        return pos + 1


class DataPacket(NamedTuple):
    """The payload of a data packet (Info 0xC0), split: raw µs timestamp, PSDU with its
    FCS, RSSI in dBm (``None`` if the radio had none), and the status octet."""

    time_us: int
    psdu_fcs: bytes
    rssi_dbm: int | None
    status: int

    @property
    def fcs_ok(self) -> bool:
        """Whether the radio's CRC check passed (status bit 7)."""
        return bool(self.status & STATUS_FCS_OK)


def parse_data(payload: bytes, header_octets: int) -> DataPacket | None:
    """Split a data packet's payload, ``header_octets`` octets between timestamp and PSDU.

    Returns:
        the parts, or ``None`` if the PSDU would be shorter than 3 or longer than
        :data:`~hanlab.frames.MAX_PSDU_OCTETS` octets.
    """
    psdu_fcs = payload[TIMESTAMP_OCTETS + header_octets:-2]
    if not 3 <= len(psdu_fcs) <= MAX_PSDU_OCTETS:
        return None
    rssi = int.from_bytes(payload[-2:-1], "little", signed=True)
    return DataPacket(int.from_bytes(payload[:TIMESTAMP_OCTETS], "little"), psdu_fcs,
                      None if rssi == RSSI_INVALID else rssi, payload[-1])


#: header sizes tried, the one ``sniffer_fw`` 1.10 sends [TUX] first
HEADER_OCTETS_TRIED = (1, 0, 2)
#: agreeing frames before a detected header size is kept (a CRC matches at a wrong
#: offset by chance once in 65536 frames; three in a row, once in 2^48)
HEADER_VOTES = 3


def find_header_octets(payload: bytes) -> int | None:
    """How many octets precede the PSDU in a data packet whose status says FCS OK: the
    first of :data:`HEADER_OCTETS_TRIED` at which the PSDU's 802.15.4 CRC checks, or
    ``None``."""
    for header in HEADER_OCTETS_TRIED:
        parsed = parse_data(payload, header)
        if parsed is not None and check_fcs16(parsed.psdu_fcs):
            return header
    return None


# -- the driver -----------------------------------------------------------------------


class DongleRefused(OSError):
    """The dongle answered a command with a status other than OK, or not at all (an
    OSError: reopening retries it after the backoff)."""


class TiSnifferSettings(SerialSnifferSettings):
    """``settings:`` of a ``ti-smartrf-sniffer2`` sniffer in a rig file: those of every
    serial sniffer (:class:`~hanlab.sources.serial_sniffer.SerialSnifferSettings`:
    ``port``, ``min_delay_us``, reopening, USB identity, defaulting to the XDS110's
    application UART, interface 0) and:

    Attributes:
        baudrate: UART speed, 3 000 000 for ``sniffer_fw`` ≥ 1.9.0 (921600 before).
        phy_index_sub_ghz: the board's CFG_PHY index of the GB sub-GHz PHY (ZigBee
            868 MHz 100 kb/s 2-GFSK; 0x0B on LP-CC1352P7 with ``sniffer_fw`` 1.10).
        phy_index_2g4: the board's index of IEEE 802.15.4 2.4 GHz O-QPSK (page 0).
        frequency_mhz: tune here instead of the channel's centre frequency.
        header_octets: octets between the timestamp and the PSDU (``None``: detect).
        timer_bits: width of the data packets' µs timestamp (48 per [TI-UG]).
        timestamp_reference: what the timestamp marks: ``end_of_sfd`` (RF core),
            ``start_of_frame`` or ``end_of_frame``.
        command_timeout_s: how long to wait for the answer to each command.
    """

    baudrate: int = 3_000_000
    phy_index_sub_ghz: int = Field(default=0x0B, ge=0, le=255)
    phy_index_2g4: int = Field(default=0x12, ge=0, le=255)
    frequency_mhz: float | None = Field(default=None, gt=0, lt=65536)
    header_octets: int | None = Field(default=None, ge=0, le=2)
    timer_bits: Literal[32, 48, 64] = 48
    timestamp_reference: Literal["end_of_sfd", "start_of_frame", "end_of_frame"] = "end_of_sfd"
    command_timeout_s: float = Field(default=1.0, gt=0)
    usb_vid: int | None = TI_VID
    usb_pid: int | None = XDS110_PID
    usb_interface: int | None = Field(default=0, ge=0, le=255)


class TiSnifferSource(SerialSnifferSource[TiSnifferSettings]):
    """Frames from one TI SmartRF Packet Sniffer 2 dongle (see the module docstring).

    Args:
        spec: the sniffer: a GB sub-GHz page 28-31 channel, or page 0 (2.4 GHz).
        report: receives ``gap`` and ``info`` events (``info`` ``what: firmware`` with the
            PING answer on each open; ``what: dongle_error`` for error packets).
        host_clock_ns: host UTC clock in ns (injected by tests for virtual time).

    Raises (from ``start``):
        BadInputError: the spec's page/channel is not one hanlab knows.
        SourceError: the port cannot be opened, or the dongle does not answer or refuses
            its configuration (the error names the command and status).
    """

    Settings = TiSnifferSettings
    DRIVER_COUNTERS = ("packets", "bad_packets", "resync_octets", "bad_frames", "responses",
                       "unexpected_responses", "dongle_errors", "header_detections")

    def __init__(
        self,
        spec: SourceSpec,
        report: EventReporter | None = None,
        *,
        host_clock_ns: Callable[[], int] = now_ns,
    ) -> None:
        super().__init__(spec, report, host_clock_ns=host_clock_ns)
        self._decoder = PacketDecoder(self._accept, max_payload_from_dongle)
        self._command_lock = asyncio.Lock()
        self._header_octets = self.settings.header_octets
        self._header_votes: dict[int, int] = {}
        self._reply: asyncio.Future[Packet] | None = None
        #: the PING answer of the last open: chip ID, revisions
        self.firmware: dict[str, int] = {}

    def timer_bits(self) -> int | None:
        """The configured ``timer_bits`` (48 per [TI-UG])."""
        return self.settings.timer_bits

    def check_spec(self, page: int, channel: int) -> None:
        """Any page/channel hanlab knows (BadInputError otherwise)."""
        band_of(page, channel)

    def reset_parser(self) -> None:
        """Drop a partial packet left from the previous connection; detect the header
        size again (the board may have other firmware now)."""
        self._decoder.reset()
        self._header_octets = self.settings.header_octets
        self._header_votes = {}

    def stop_bytes(self) -> bytes:
        """The STOP command."""
        return encode_packet(STOP)

    # -- commands ---------------------------------------------------------------------

    async def command(self, info: int, payload: bytes = b"", *,
                      tolerate: tuple[int, ...] = ()) -> Packet:
        """Send one command and wait for its answer (commands are synchronous).

        Args:
            info: the command's Info octet (e.g. :data:`PING`).
            payload: its payload.
            tolerate: statuses besides OK that are not errors.

        Raises:
            DongleRefused: no answer within ``command_timeout_s``, or a status other
                than OK and ``tolerate``.
        """
        async with self._command_lock:  # one command in flight: answers are not tagged
            return await self._command(info, payload, tolerate)

    async def _command(self, info: int, payload: bytes, tolerate: tuple[int, ...]) -> Packet:
        name = COMMAND_NAMES.get(info, f"{info:#04x}")
        self._reply = reply = asyncio.get_running_loop().create_future()
        try:
            self.write(encode_packet(info, payload))
            try:
                async with asyncio.timeout(self.settings.command_timeout_s):
                    answer: Packet = await reply
            except TimeoutError:
                raise DongleRefused(
                    f"no answer to {name} within {self.settings.command_timeout_s} s "
                    f"(is this SmartRF Packet Sniffer 2 firmware at {self.settings.baudrate} "
                    "baud?)") from None
        finally:
            self._reply = None
        status = answer.payload[0] if answer.payload else -1
        if status != STATUS_OK and status not in tolerate:
            raise DongleRefused(
                f"{name} refused: status {status} ({STATUS_NAMES.get(status, 'unknown')})")
        return answer

    def _phy_index(self, page: int) -> int:
        s = self.settings
        return s.phy_index_2g4 if page == 0 else s.phy_index_sub_ghz

    def _frequency_khz(self, page: int, channel: int) -> int:
        override = self.settings.frequency_mhz
        return round(override * 1000) if override else centre_frequency_khz(page, channel)

    async def configure(self) -> None:
        """PING (firmware identity), STOP, CFG_PHY, CFG_FREQUENCY, START, each answered."""
        answer = await self.command(PING)
        p = answer.payload
        if len(p) >= 7:
            self.firmware = {
                "chip_id": int.from_bytes(p[1:3], "little"), "chip_rev": p[3],
                "fw_id": p[4], "fw_rev": int.from_bytes(p[5:7], "little")}
            self.emit("info", what="firmware", **self.firmware)
        await self.command(STOP, tolerate=(STATUS_INVALID_STATE,))
        await self.command(CFG_PHY, bytes([self._phy_index(self.page)]))
        await self.command(CFG_FREQUENCY,
                           frequency_payload(self._frequency_khz(self.page, self.channel)))
        await self.command(START)

    async def set_channel(self, channel: int, page: int | None = None) -> None:
        """Retune while running: STOP, CFG_PHY if the band changes, CFG_FREQUENCY, START.

        Raises:
            BadInputError: ``page``/``channel`` is not one hanlab knows.
            DongleRefused: the dongle refused or did not answer.
        """
        page = self.page if page is None else page
        new_band = band_of(page, channel)
        await self.command(STOP, tolerate=(STATUS_INVALID_STATE,))
        if new_band is not band_of(self.page, self.channel):
            await self.command(CFG_PHY, bytes([self._phy_index(page)]))
        await self.command(CFG_FREQUENCY, frequency_payload(self._frequency_khz(page, channel)))
        self.page, self.channel = page, channel
        await self.command(START)
        self.emit("info", page=page, channel=channel, what="channel_changed")

    # -- receiving ----------------------------------------------------------------------

    def _accept(self, packet: Packet) -> bool:
        """Reject a "data packet" whose status says FCS OK but whose CRC does not check
        at the known header size: a false frame found inside garbage or a payload."""
        if packet.info != INFO_DATA:
            return True
        if len(packet.payload) < TIMESTAMP_OCTETS + 5 or not packet.payload[-1] & STATUS_FCS_OK:
            return True
        if self._header_octets is None:
            found = find_header_octets(packet.payload)
            if found is None:
                return False
            votes = self._header_votes
            votes[found] = votes.get(found, 0) + 1
            if votes[found] >= HEADER_VOTES:
                self._header_octets = found
                self.counters["header_detections"] += 1
                self.emit("info", what="header_octets", header_octets=found)
            return True
        parsed = parse_data(packet.payload, self._header_octets)
        return parsed is not None and check_fcs16(parsed.psdu_fcs)

    def _header_for(self, payload: bytes) -> int:
        """The header size of this data packet: the kept one, else (still detecting) the
        one its CRC shows, else the most voted, else 1 [TUX]."""
        if self._header_octets is not None:
            return self._header_octets
        found = find_header_octets(payload) if payload[-1:] and payload[-1] & STATUS_FCS_OK \
            else None
        if found is not None:
            return found
        votes = self._header_votes
        return max(votes, key=votes.__getitem__) if votes else HEADER_OCTETS_TRIED[0]

    def on_data(self, data: bytes, host_rx_ns: int) -> None:
        """Decode packets from ``data``; frames to ``pending``, answers to the waiting
        command, errors counted and reported."""
        self.note_rx(host_rx_ns)
        decoder = self._decoder
        try:
            packets = decoder.feed(data)
        except Exception:  # never let a decoder fault take the port down
            decoder.reset()
            packets = []
        counters = self.counters
        counters["resync_octets"] = decoder.resync_octets
        counters["bad_packets"] = decoder.bad_packets
        out = self.pending
        before = len(out)
        for packet in packets:
            counters["packets"] += 1
            try:
                self._dispatch(packet, host_rx_ns)
            except Exception:  # one bad packet never loses the rest of the read
                counters["bad_frames"] += 1
        if len(out) > before:
            self.wake()

    def _dispatch(self, packet: Packet, host_rx_ns: int) -> None:
        counters = self.counters
        if packet.info == INFO_DATA:
            frame = self._frame_of(packet.payload, host_rx_ns)
            if frame is None:
                counters["bad_frames"] += 1
            else:
                self.pending.append(frame)
                counters["frames"] += 1
        elif packet.info == INFO_ERROR:
            counters["dongle_errors"] += 1
            self.emit("info", what="dongle_error", code=packet.payload.hex())
        elif packet.category == CATEGORY_RESPONSE:
            counters["responses"] += 1
            reply = self._reply
            if reply is not None and not reply.done():
                reply.set_result(packet)
            else:
                counters["unexpected_responses"] += 1
        else:
            counters["bad_frames"] += 1

    def _frame_of(self, payload: bytes, host_rx_ns: int) -> Frame | None:
        """The frame of a data packet's payload, or ``None`` if it holds none."""
        parsed = parse_data(payload, self._header_for(payload))
        if parsed is None:
            return None
        page, channel = self.page, self.channel
        phy = phy_for(page, channel)
        psdu = parsed.psdu_fcs[:-2]
        airtime_ns = phy.airtime_ns(len(psdu))
        to_start_ns = {"end_of_sfd": phy.shr_ns, "end_of_frame": airtime_ns,
                       "start_of_frame": 0}[self.settings.timestamp_reference]
        ts_ns, sniffer_ns = self.aligned_ns(parsed.time_us, host_rx_ns,
                                            to_start_ns=to_start_ns,
                                            to_end_ns=airtime_ns - to_start_ns)
        if not parsed.fcs_ok:
            self.counters["fcs_errors"] += 1
        band = Band.GHZ_2_4 if page == 0 else Band.SUB_GHZ
        rssi = None if parsed.rssi_dbm is None else float(parsed.rssi_dbm)
        return Frame(ts_ns, self.sniffer_id, band, page, channel, psdu, parsed.fcs_ok, rssi,
                     None, TsSource.SNIFFER, sniffer_ns)
