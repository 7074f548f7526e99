"""Lazy layered decoding of PSDUs: MAC → NWK (decrypted) → APS (decrypted, reassembled) → ZCL.

:class:`Decoder` holds what decoding learns across frames (short-to-IEEE address map,
keys from Transport Key commands, APS fragments) and hands out one
:class:`DecodedFrame` per PSDU. A layer is decoded the first time it is asked for, so the
hot path (MAC addresses, NWK source, sequence numbers) never pays for decryption, APS or
ZCL. Nothing raises: a layer that cannot be decoded is ``None`` and :attr:`DecodedFrame.error`
says which layer, at which byte offset, and why.

Stateful effects (address map, key learning, reassembly) happen when a layer is decoded:
decode frames in capture order, as deep as the effects you need (APS for key learning and
reassembly).
"""

from __future__ import annotations

from typing import Final

from hanlab.zigbee.aps import (
    APS_CMD_TRANSPORT_KEY,
    APS_COMMAND,
    APS_DATA,
    APS_INTERPAN,
    PROFILE_ZDP,
    ApsFrame,
    Reassembler,
    decode_aps,
    decode_transport_key,
    decrypt_aps,
)
from hanlab.zigbee.common import DecodeError, LayerError
from hanlab.zigbee.keyring import ORIGIN_LEARNED, Keyring
from hanlab.zigbee.mac import MacFrame, decode_mac
from hanlab.zigbee.nwk import NwkFrame, decode_nwk, decrypt_nwk
from hanlab.zigbee.security import KEY_ID_NETWORK, ZIGBEE_SECURITY_LEVEL
from hanlab.zigbee.zcl import ZclFrame, decode_zcl

#: bits of :attr:`DecodedFrame._done`: which lazy layers have been decoded.
_MAC: Final = 1
_NWK: Final = 2
_APS: Final = 4
_APS_PAYLOAD: Final = 8
_ZCL: Final = 16


class Decoder:
    """Decoding session over one time-ordered stream of frames.

    Args:
        keyring: keys to decrypt with (learned keys are added to it), or ``None``.
        security_level: CCM* level used for NWK and APS (ZigBee forces 5).
        reassembler: APS fragment reassembly (bounded, timed out); a default one if ``None``.
        learn_keys: add keys from readable Transport Key commands to ``keyring``.
    """

    def __init__(
        self,
        keyring: Keyring | None = None,
        *,
        security_level: int = ZIGBEE_SECURITY_LEVEL,
        reassembler: Reassembler | None = None,
        learn_keys: bool = True,
    ) -> None:
        self.keyring = keyring if keyring is not None else Keyring()
        self.security_level = security_level
        self.reassembler = reassembler if reassembler is not None else Reassembler()
        self.learn_keys = learn_keys
        #: short address -> EUI-64 learned from NWK headers and auxiliary headers.
        self.address_map: dict[int, int] = {}
        #: short address -> index of the last frame whose APS decryption looked it up in
        #: :attr:`address_map` and did not find it. ``hanlab decode --jobs`` starts a run
        #: with an empty map and checks these against what the frames before it taught.
        self.address_misses: dict[int, int] = {}
        self._count = 0

    def skip(self) -> None:
        """Count one frame of the stream that is not decoded: its index is used up, so
        the frames after it keep the indices :meth:`decode` would give them."""
        self._count += 1

    def learn_addresses(self, psdu: bytes, fcs_ok: bool | None = None) -> None:
        """Learn from ``psdu`` what :meth:`decode` would put in :attr:`address_map`, and
        nothing else: no decryption, no frame object, errors ignored. ``hanlab decode
        --jobs`` scans the frames before a process's run with it (issue 15)."""
        if fcs_ok is False or len(psdu) < 2:
            return
        fc = psdu[0] | psdu[1] << 8
        if fc & 0x0F != 0x01 or (fc >> 10) & 3 != 2 or fc >> 14 < 2:
            return  # not an unsecured data frame short -> short/extended: no NWK frame
        try:
            mac = decode_mac(psdu)
            nwk = nwk_of(psdu, mac)
        except Exception:  # what decode() records as the frame's error
            return
        if nwk is not None:
            learn_addresses(self.address_map, mac, nwk)

    def decode(self, psdu: bytes, ts_ns: int = 0, index: int | None = None,
               fcs_ok: bool | None = None) -> DecodedFrame:
        """A lazily decoded view of ``psdu`` (FCS excluded).

        Args:
            psdu: the MAC frame octets without FCS.
            ts_ns: the frame's time, ns since the UNIX epoch (for reassembly time-outs).
            index: the frame's index in its capture (for learned keys); counted if ``None``.
            fcs_ok: the sniffer's FCS verdict; with ``False`` only the MAC header is
                decoded (a corrupted payload is not worth reading, as tshark does).
        """
        if index is None:
            index = self._count
        self._count = index + 1
        frame = DecodedFrame(self, psdu, ts_ns, index)
        if fcs_ok is False:
            frame._done |= _NWK  # no NWK frame: stays None
            frame.error = DecodeError("mac", len(psdu), "bad FCS: MAC payload not decoded")
        return frame


def nwk_of(psdu: bytes, mac: MacFrame) -> NwkFrame | None:
    """The NWK frame (ZigBee §3.3) in ``mac``'s payload, not decrypted; ``None`` when the
    MAC frame is not a ZigBee NWK frame (the heuristic: an unsecured MAC data frame to a
    short address from a short or extended address, NWK protocol version 1 or 2, a
    defined NWK frame type).

    Raises:
        LayerError: the NWK header does not parse (with its byte offset in ``psdu``).
    """
    if (mac.frame_type != 1 or mac.security or mac.dst_mode != 2 or mac.src_mode < 2
            or len(mac.payload) < 2):
        return None
    off = mac.payload_offset
    fc = psdu[off]
    if not 1 <= (fc >> 2) & 0xF <= 2 or fc & 3 == 2:
        return None
    return decode_nwk(psdu, off)


def learn_addresses(address_map: dict[int, int], mac: MacFrame, nwk: NwkFrame) -> None:
    """Add what a NWK frame tells of short addresses to ``address_map`` (short -> EUI-64):
    its IEEE source and destination fields (ZigBee §3.3.1.6-7) and the auxiliary header's
    source for the MAC sender (§4.5.1, extended nonce)."""
    if nwk.src64 is not None and nwk.src is not None:
        address_map[nwk.src] = nwk.src64
    if nwk.dst64 is not None and nwk.dst is not None:
        address_map[nwk.dst] = nwk.dst64
    aux = nwk.aux
    if aux is not None and aux.src64 is not None and mac.src_mode == 2:
        address_map[mac.src_addr] = aux.src64  # type: ignore[index]


class DecodedFrame:
    """One PSDU, decoded layer by layer on demand.

    Attributes:
        psdu: the MAC frame octets (FCS excluded).
        ts_ns: the frame's time in ns since the epoch.
        index: the frame's index in its stream.
        error: the first layer that could not be decoded, or ``None``.
    """

    __slots__ = ("_aps", "_aps_payload", "_done", "_mac", "_nwk", "_zcl", "decoder", "error",
                 "index", "psdu", "reassembled", "ts_ns")

    def __init__(self, decoder: Decoder, psdu: bytes, ts_ns: int, index: int) -> None:
        self.decoder = decoder
        self.psdu = psdu
        self.ts_ns = ts_ns
        self.index = index
        self.error: DecodeError | None = None
        # typed layers and a bit per decoded layer (no sentinel object: compiled, the
        # layers' attributes are then read natively)
        self._mac: MacFrame | None = None
        self._nwk: NwkFrame | None = None
        self._aps: ApsFrame | None = None
        self._zcl: ZclFrame | None = None
        self._aps_payload: bytes | None = None
        self._done = 0
        #: whether the APS payload was reassembled from fragments.
        self.reassembled = False

    # -- MAC -----------------------------------------------------------------------------

    @property
    def mac(self) -> MacFrame | None:
        """The MAC frame (IEEE 802.15.4-2015 §7.2), or ``None`` if it does not parse."""
        if not self._done & _MAC:
            self._done |= _MAC
            mac: MacFrame | None
            try:
                mac = decode_mac(self.psdu)
            except LayerError as exc:
                self._fail("mac", exc.offset, exc.reason)
                mac = None
            except Exception as exc:  # safety net: never raise out of the decoder
                self._fail("mac", 0, f"internal decoder error: {exc!r}")
                mac = None
            self._mac = mac
        return self._mac

    def _fail(self, layer: str, offset: int, reason: str) -> None:
        if self.error is None:
            self.error = DecodeError(layer, offset, reason)

    # -- NWK -----------------------------------------------------------------------------

    @property
    def nwk(self) -> NwkFrame | None:
        """The NWK frame (ZigBee §3.3), decrypted when a network key verifies.

        ``None`` when the MAC frame is not a ZigBee NWK frame (the heuristic: an unsecured
        MAC data frame to a short address from a short or extended address, NWK protocol
        version 1 or 2, a defined NWK frame type) or when its header does not parse.
        """
        if not self._done & _NWK:
            self._done |= _NWK
            nwk: NwkFrame | None = None
            mac = self.mac
            if mac is not None:
                try:
                    nwk = nwk_of(self.psdu, mac)
                except LayerError as exc:
                    self._fail("nwk", exc.offset, exc.reason)
                    nwk = None
                except Exception as exc:  # safety net
                    self._fail("nwk", mac.payload_offset, f"internal decoder error: {exc!r}")
                    nwk = None
                if nwk is not None:
                    learn_addresses(self.decoder.address_map, mac, nwk)
                    if nwk.security:
                        self._decrypt_nwk(nwk)
            self._nwk = nwk
        return self._nwk

    def _decrypt_nwk(self, nwk: NwkFrame) -> None:
        keyring = self.decoder.keyring
        candidates = keyring.network_candidates()
        if not candidates:
            return
        # the last key that worked is first: most frames decrypt on the first try
        if decrypt_nwk(self.psdu, nwk, candidates, self.decoder.security_level) \
                and candidates[0][0] != nwk.key_label:
            for i, (label, _) in enumerate(candidates):  # a later key: it goes first
                if label == nwk.key_label:
                    keyring.network_key_worked(i)
                    break

    @property
    def nwk_decrypted(self) -> bool | None:
        """``None`` if the NWK frame is absent or not secured, else whether it decrypted."""
        nwk = self.nwk
        if nwk is None or not nwk.security:
            return None
        return nwk.payload is not None

    # -- APS -----------------------------------------------------------------------------

    @property
    def aps(self) -> ApsFrame | None:
        """The APS frame (ZigBee §2.2.5), decrypted when a link key verifies.

        ``None`` for NWK commands, frames still encrypted, or an APS header that does
        not parse (then :attr:`error` says why).
        """
        if not self._done & _APS:
            self._done |= _APS
            aps: ApsFrame | None = None
            nwk = self.nwk
            if nwk is not None and nwk.payload is not None and nwk.frame_type != 1:
                buf = nwk.payload
                try:
                    aps = decode_aps(buf)
                except LayerError as exc:
                    self._fail("aps", nwk.payload_offset + exc.offset, exc.reason)
                except Exception as exc:  # safety net
                    self._fail("aps", nwk.payload_offset, f"internal decoder error: {exc!r}")
                if aps is not None and aps.security:
                    self._decrypt_aps(buf, nwk, aps)
            self._aps = aps
        return self._aps

    def _decrypt_aps(self, buf: bytes, nwk: NwkFrame, aps: ApsFrame) -> None:
        aux = aps.aux
        assert aux is not None
        decoder = self.decoder
        src64 = nwk.src64
        if src64 is None and nwk.src is not None:
            src64 = decoder.address_map.get(nwk.src)
            if src64 is None:
                decoder.address_misses[nwk.src] = self.index
        dst64 = nwk.dst64
        if dst64 is None and nwk.dst is not None:
            dst64 = decoder.address_map.get(nwk.dst)
            if dst64 is None:
                decoder.address_misses[nwk.dst] = self.index
        keyring = decoder.keyring
        if aux.key_id == KEY_ID_NETWORK:
            decrypt_aps(buf, aps, keyring.network_candidates(), src64, decoder.security_level)
            return
        candidates = keyring.link_candidates(aux.key_id, aux.src64 or src64, dst64)
        if decrypt_aps(buf, aps, candidates, src64, decoder.security_level):
            keyring.link_key_worked(candidates, aps.key_label)

    @property
    def aps_decrypted(self) -> bool | None:
        """``None`` if the APS frame is absent or not secured, else whether it decrypted."""
        aps = self.aps
        if aps is None or not aps.security:
            return None
        return aps.payload is not None

    @property
    def aps_payload(self) -> bytes | None:
        """The APS payload: plaintext, reassembled when the frame completes a message.

        ``None`` while encrypted, for a fragment that does not complete its message, and
        for frames without APS. Readable Transport Key commands teach their key here.
        """
        if not self._done & _APS_PAYLOAD:
            self._done |= _APS_PAYLOAD
            payload: bytes | None = None
            aps = self.aps
            if aps is not None and aps.payload is not None:
                payload = aps.payload
                frag = aps.fragmentation
                if frag and aps.block is not None and aps.counter is not None:
                    nwk = self._nwk
                    payload = self.decoder.reassembler.add(
                        nwk.src if nwk is not None and nwk.src is not None else 0xFFFF,
                        aps.counter, frag, aps.block, payload, self.ts_ns,
                    )
                    self.reassembled = payload is not None
                if (
                    payload
                    and aps.frame_type == APS_COMMAND
                    and payload[0] == APS_CMD_TRANSPORT_KEY
                    and self.decoder.learn_keys
                ):
                    self._learn_key(payload)
            self._aps_payload = payload
        return self._aps_payload

    def _learn_key(self, payload: bytes) -> None:
        try:
            tk = decode_transport_key(payload)
        except LayerError:
            return
        ring = self.decoder.keyring
        label = f"transport-key@{self.index}"
        if tk.is_network_key:
            ring.add_network_key(tk.key, seq=tk.key_seq, label=label, learned_from=self.index,
                                 origin=ORIGIN_LEARNED)
        else:
            devices = tuple(d for d in (tk.dst64, tk.src64) if d is not None)
            ring.add_link_key(tk.key, devices=devices, label=label, learned_from=self.index,
                              origin=ORIGIN_LEARNED)

    # -- ZCL -----------------------------------------------------------------------------

    @property
    def zcl(self) -> ZclFrame | None:
        """The ZCL frame (ZCL 07-5123 §2.4) of an APS data frame outside ZDP, or ``None``."""
        if not self._done & _ZCL:
            self._done |= _ZCL
            zcl: ZclFrame | None = None
            aps = self.aps
            if (
                aps is not None
                and (aps.frame_type == APS_DATA or aps.frame_type == APS_INTERPAN)
                and aps.profile is not None
                and aps.profile != PROFILE_ZDP
                and aps.dst_endpoint != 0
            ):
                payload = self.aps_payload
                if payload is not None:
                    base = 0 if self.reassembled else self._aps_base(aps)
                    try:
                        zcl = decode_zcl(payload, aps.cluster)
                    except LayerError as exc:
                        self._fail("zcl", base + exc.offset, exc.reason)
                    except Exception as exc:  # safety net
                        self._fail("zcl", base, f"internal decoder error: {exc!r}")
            self._zcl = zcl
        return self._zcl

    def _aps_base(self, aps: ApsFrame) -> int:
        nwk = self._nwk
        return (nwk.payload_offset if nwk is not None else 0) + aps.payload_offset

    @property
    def zdp_seq(self) -> int | None:
        """ZDP transaction sequence number of an APS data frame to/from endpoint 0."""
        aps = self.aps
        if aps is not None and aps.frame_type == APS_DATA and aps.profile == PROFILE_ZDP:
            payload = self.aps_payload
            if payload:
                return payload[0]
        return None

    def decode_all(self) -> DecodedFrame:
        """Decode every layer now (MAC, NWK, APS, ZCL); returns ``self``."""
        if self.zcl is None:
            self.aps_payload  # noqa: B018 - reassembly and key learning
        return self

