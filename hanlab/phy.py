"""PHY timing of the two GB HAN bands: symbol periods, airtime, turnaround, CCA, backoff.

* 2.4 GHz, channel page 0: O-QPSK, 250 kb/s, 62.5 ksymbol/s (16 µs per symbol, 2 symbols
  per octet, 32 µs per octet); SHR 5 octets (preamble 4, SFD 1) and PHR 1 octet, so a PPDU
  lasts (PSDU + 6 octets) × 32 µs with the PSDU counted with its 2-octet FCS
  (IEEE 802.15.4-2015 §12.1, §12.2).
* GB sub-GHz, channel pages 28-31: the ZigBee sub-GHz FSK PHY (IEEE 802.15.4-2015 §20,
  SUN FSK, 2-FSK), 100 ksymbol/s with one bit per symbol (10 µs per symbol, 80 µs per
  octet); SHR = preamble 8 octets + SFD 2 octets, PHR 2 octets (§20.2.2), FCS 2 octets.
  aTurnaroundTime is 1 ms for SUN PHYs (§11.3, Table 11-1), i.e. 100 symbols.

CSMA-CA constants (IEEE 802.15.4-2015 §6.2.5.1, §8.4.2 Table 8-93/8-94): macMinBE 3,
macMaxBE 5, macMaxCSMABackoffs 4, macMaxFrameRetries 3, aCcaTime 8 symbols,
aUnitBackoffPeriod = aTurnaroundTime + aCcaTime (20 symbols on O-QPSK),
macAckWaitDuration = aUnitBackoffPeriod + aTurnaroundTime + phySHRDuration
+ 6 × phySymbolsPerOctet (§8.4.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hanlab.frames import Band, band_of

#: macMinBE, macMaxBE, macMaxCSMABackoffs, macMaxFrameRetries (IEEE 802.15.4-2015 §8.4.3.1).
MAC_MIN_BE: Final = 3
MAC_MAX_BE: Final = 5
MAC_MAX_CSMA_BACKOFFS: Final = 4
MAC_MAX_FRAME_RETRIES: Final = 3
#: aCcaTime in symbols (§11.3).
CCA_SYMBOLS: Final = 8
#: FCS octets appended to every PSDU of both bands (2-octet CRC-16).
FCS_OCTETS: Final = 2


@dataclass(frozen=True, slots=True)
class PhyTiming:
    """Timing of one PHY.

    Attributes:
        band: the band.
        symbol_ns: one symbol period in ns.
        octet_ns: one PSDU octet in ns.
        overhead_octets: SHR + PHR octets sent before the PSDU.
        turnaround_symbols: aTurnaroundTime in symbols.
        cca_symbols: aCcaTime in symbols.
    """

    band: Band
    symbol_ns: int
    octet_ns: int
    overhead_octets: int
    turnaround_symbols: int
    cca_symbols: int = CCA_SYMBOLS

    @property
    def unit_backoff_ns(self) -> int:
        """aUnitBackoffPeriod = aTurnaroundTime + aCcaTime, in ns (§6.2.5.1)."""
        return (self.turnaround_symbols + self.cca_symbols) * self.symbol_ns

    @property
    def turnaround_ns(self) -> int:
        """aTurnaroundTime in ns: RX-to-TX switch, and the gap before an ACK (§6.7.4.2)."""
        return self.turnaround_symbols * self.symbol_ns

    @property
    def cca_ns(self) -> int:
        """aCcaTime in ns."""
        return self.cca_symbols * self.symbol_ns

    @property
    def shr_ns(self) -> int:
        """phySHRDuration in ns (SHR only, PHR excluded)."""
        shr_octets = 5 if self.band is Band.GHZ_2_4 else 10
        return shr_octets * self.octet_ns

    @property
    def ack_wait_ns(self) -> int:
        """macAckWaitDuration in ns (§8.4.3.1): backoff + turnaround + SHR + 6 octets."""
        return self.unit_backoff_ns + self.turnaround_ns + self.shr_ns + 6 * self.octet_ns

    def airtime_ns(self, psdu_octets: int) -> int:
        """Time on air of a PPDU whose PSDU, FCS excluded, has ``psdu_octets`` octets."""
        return (psdu_octets + FCS_OCTETS + self.overhead_octets) * self.octet_ns


#: IEEE 802.15.4-2015 §12: O-QPSK 2.4 GHz.
OQPSK_2G4: Final = PhyTiming(Band.GHZ_2_4, symbol_ns=16_000, octet_ns=32_000, overhead_octets=6,
                      turnaround_symbols=12)
#: ZigBee GB sub-GHz FSK (IEEE 802.15.4-2015 §20 SUN FSK), 100 ksymbol/s.
FSK_SUBGHZ: Final = PhyTiming(Band.SUB_GHZ, symbol_ns=10_000, octet_ns=80_000, overhead_octets=12,
                       turnaround_symbols=100)


def phy_for(page: int, channel: int) -> PhyTiming:
    """The PHY timing of a channel page and channel (page 0 or 28-31).

    Raises:
        BadInputError: page or channel not supported (:func:`hanlab.frames.band_of`).
    """
    return OQPSK_2G4 if band_of(page, channel) is Band.GHZ_2_4 else FSK_SUBGHZ


#: GB sub-GHz channel plan (ZigBee sub-GHz, as used by GBCS dual-band CHs): pages 28-30
#: number the 863-876 MHz band's 200 kHz channels 0-61 from 863.25 MHz; page 31 numbers
#: the 915-921 MHz band's channels 0-26 from 915.35 MHz. page -> (kHz of channel 0).
_SUBGHZ_CHANNEL0_KHZ: Final = {28: 863_250, 29: 863_250, 30: 863_250, 31: 915_350}
_SUBGHZ_SPACING_KHZ: Final = 200


def centre_frequency_khz(page: int, channel: int) -> int:
    """Centre frequency in kHz of ``channel`` on channel ``page``.

    Page 0: 2405 + 5 × (channel − 11) MHz (IEEE 802.15.4-2015 §10.1.2.2). Pages 28-31:
    the GB sub-GHz plan, 200 kHz spacing: 863.25 + 0.2 × channel MHz on pages 28-30
    (channels 0-61, 863-876 MHz), 915.35 + 0.2 × channel MHz on page 31 (channels 0-26,
    915-921 MHz). Source: the ZigBee sub-GHz channel assignment adopted by GBCS for the
    Communications Hub's 868 MHz radio; a rig can override the figure (``frequency_mhz``
    of the TI sniffer driver) where a site's plan differs.

    Raises:
        BadInputError: page or channel not supported (:func:`hanlab.frames.band_of`).
    """
    if band_of(page, channel) is Band.GHZ_2_4:
        return 2_405_000 + 5_000 * (channel - 11)
    return _SUBGHZ_CHANNEL0_KHZ[page] + _SUBGHZ_SPACING_KHZ * channel
