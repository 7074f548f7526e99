"""ZigBee security: auxiliary header, CCM* with AES-128, MMO hash, keyed hash, install codes.

* Auxiliary frame header (ZigBee spec 05-3474 §4.5.1): security control (level bits 0-2,
  key identifier bits 3-4, extended nonce bit 5), 32-bit frame counter, source EUI-64
  when the extended nonce bit is set, key sequence number when the key is a network key.
* CCM* nonce (§4.5.2.2): source EUI-64 (8 octets, little-endian as sent), frame counter
  (4, little-endian), security control with the real security level. ZigBee sends level 0
  in the frame and uses level 5 (ENC-MIC-32), so the level is forced in both the nonce and
  the authenticated header (§4.3.1.1 step 1, §4.4.1.1).
* Levels 5-7 (ENC-MIC-32/64/128) use AES-CCM; MIC-only levels 1-3 authenticate header and
  payload with an empty message; level 4 (ENC without MIC) is AES-CTR from counter block
  A1 (CCM* of ZigBee Annex A, IEEE 802.15.4-2015 Annex B).
* MMO hash and keyed hash (Annex B.6, B.1.4): the key-transport key is HMAC(link key, 0x00),
  the key-load key HMAC(link key, 0x02) (§4.5.3); an install-code link key is the MMO hash
  of the install code with its CRC-16/X-25 (Base Device Behavior 13-0402 §10.1).

Keys are secrets: nothing here logs or prints key material.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from hanlab.zigbee.common import need

_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_NONCE: Final = struct.Struct("<QIB")

#: MIC length in octets by ZigBee security level (§4.5.1.1.1, Table 4.38).
MIC_OCTETS: Final = (0, 4, 8, 16, 0, 4, 8, 16)
#: Whether a security level encrypts the payload.
ENCRYPTS: Final = (False, False, False, False, True, True, True, True)

#: Key identifier values (§4.5.1.1.2, Table 4.39).
KEY_ID_DATA: Final = 0
KEY_ID_NETWORK: Final = 1
KEY_ID_KEY_TRANSPORT: Final = 2
KEY_ID_KEY_LOAD: Final = 3
KEY_ID_NAMES: Final[dict[int, str]] = {0: "data", 1: "network", 2: "key-transport", 3: "key-load"}

#: The security level ZigBee actually applies (ENC-MIC-32) whatever the frame says.
ZIGBEE_SECURITY_LEVEL: Final = 5


class AuxHeader:
    """ZigBee auxiliary security header (§4.5.1), as decoded from a NWK or APS frame.

    Attributes:
        control: security control octet as sent (level usually 0 on the air).
        key_id: key identifier 0-3 (:data:`KEY_ID_NAMES`).
        ext_nonce: whether ``src64`` is present.
        frame_counter: 32-bit frame counter.
        src64: source EUI-64 (int) or ``None``.
        key_seq: network key sequence number when ``key_id`` is 1, else ``None``.
        offset: offset of the header in the buffer it was decoded from.
        length: octets of the header (5, 6, 13 or 14).
    """

    __slots__ = ("control", "ext_nonce", "frame_counter", "key_id", "key_seq", "length",
                 "offset", "src64")

    def __init__(
        self,
        control: int,
        frame_counter: int,
        src64: int | None = None,
        key_seq: int | None = None,
        offset: int = 0,
    ) -> None:
        self.control = control
        self.key_id = (control >> 3) & 3
        self.ext_nonce = bool(control & 0x20)
        self.frame_counter = frame_counter
        self.src64 = src64
        self.key_seq = key_seq
        self.offset = offset
        self.length = 5 + (8 if self.ext_nonce else 0) + (1 if self.key_id == 1 else 0)

    @property
    def key_id_name(self) -> str:
        """``data``, ``network``, ``key-transport`` or ``key-load``."""
        return KEY_ID_NAMES[self.key_id]

    def encode(self) -> bytes:
        """The header octets (§4.5.1).

        Raises:
            ValueError: ``src64`` or ``key_seq`` missing where the control octet needs it.
        """
        out = bytes((self.control,)) + _U32.pack(self.frame_counter)
        if self.ext_nonce:
            if self.src64 is None:
                raise ValueError("extended nonce set but src64 is None")
            out += _U64.pack(self.src64)
        if self.key_id == KEY_ID_NETWORK:
            if self.key_seq is None:
                raise ValueError("network key identifier needs key_seq")
            out += bytes((self.key_seq,))
        return out


def decode_aux(buf: bytes, off: int) -> AuxHeader:
    """Decode the auxiliary security header at ``buf[off:]``.

    Raises:
        LayerError: truncated header, offset of the missing field.
    """
    n = len(buf)
    if off + 5 > n:
        need(buf, off, 5, "security control and frame counter")
    control = buf[off]
    counter = _U32.unpack_from(buf, off + 1)[0]
    pos = off + 5
    src64 = None
    if control & 0x20:
        need(buf, pos, 8, "security source address")
        src64 = _U64.unpack_from(buf, pos)[0]
        pos += 8
    key_seq = None
    if (control >> 3) & 3 == KEY_ID_NETWORK:
        need(buf, pos, 1, "key sequence number")
        key_seq = buf[pos]
    return AuxHeader(control, counter, src64, key_seq, off)


def ccm_nonce(src64: int, frame_counter: int, control: int, level: int = ZIGBEE_SECURITY_LEVEL
              ) -> bytes:
    """The 13-octet CCM* nonce (§4.5.2.2) with the security level forced to ``level``."""
    return _NONCE.pack(src64, frame_counter, (control & 0xF8) | level)


def seal(header: bytes, aux: bytes, src64: int, frame_counter: int, key: CcmKey,
         payload: bytes, level: int = ZIGBEE_SECURITY_LEVEL) -> bytes:
    """``header + aux + CCM*(payload)``: a secured NWK or APS frame (ZigBee §4.3.1.1,
    §4.4.1.1).

    Args:
        header: the layer's header octets before the auxiliary header.
        aux: the encoded auxiliary security header (its level bits as sent, normally 0).
        src64: the sender's EUI-64 for the nonce.
        frame_counter: the aux header's frame counter.
        level: the security level forced into the nonce and the authenticated copy of
            the security control (§4.5.1.1: ZigBee sends 0 and uses 5).
    """
    ctl = (aux[0] & 0xF8) | level
    nonce = _NONCE.pack(src64, frame_counter, ctl)
    aad = header + bytes((ctl,)) + aux[1:]
    return header + aux + key.encrypt(nonce, aad, payload, level)


def unseal(buf: bytes, start: int, aux_offset: int, end: int, src64: int,
           frame_counter: int, secured: bytes, keys: list[tuple[str, CcmKey]],
           level: int = ZIGBEE_SECURITY_LEVEL) -> tuple[bytes, str] | None:
    """Verify and decrypt a secured NWK or APS payload, trying ``keys`` in order
    (ZigBee §4.3.1.2, §4.4.1.2).

    Args:
        buf, start, end: ``buf[start:end]`` is the layer's header including the auxiliary
            header (the CCM* additional data before the level is forced); offsets are
            absolute so the hot path slices ``buf`` only once.
        aux_offset: offset in ``buf`` of the aux header's security control octet.
        src64, frame_counter: nonce inputs from the aux header (or the sender's EUI-64).
        secured: ciphertext followed by the MIC.
        keys: ``(label, key)`` pairs.

    Returns:
        ``(plaintext, label)`` of the first key whose MIC verifies, or ``None``.
    """
    if len(secured) < MIC_OCTETS[level]:
        return None
    ctl = (buf[aux_offset] & 0xF8) | level
    nonce = _NONCE.pack(src64, frame_counter, ctl)
    aad = bytearray(buf[start:end])  # the header with the level forced into its aux header
    aad[aux_offset - start] = ctl
    for label, key in keys:
        plain = key.decrypt(nonce, aad, secured, level)
        if plain is not None:
            return plain, label
    return None


class CcmKey:
    """One AES-128 key with its cipher objects built once (CCM per MIC length, CTR).

    Args:
        key: 16 octets.

    Raises:
        ValueError: ``key`` is not 16 octets.
    """

    __slots__ = ("_ccm", "key", "trials")

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError(f"an AES-128 key is 16 octets, not {len(key)}")
        self.key = bytes(key)
        self._ccm: dict[int, AESCCM] = {}
        #: :meth:`decrypt` calls with this key (each a CCM* trial; diagnostics and tests).
        self.trials = 0

    def __repr__(self) -> str:  # never show key material
        return "CcmKey(<secret>)"

    def _aesccm(self, mic_octets: int) -> AESCCM:
        ccm = self._ccm.get(mic_octets)
        if ccm is None:
            ccm = self._ccm[mic_octets] = AESCCM(self.key, tag_length=mic_octets)
        return ccm

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        # Counter block A_i = flags (L-1 = 1) || nonce || i (2 octets), starting at i = 1.
        counter_block = b"\x01" + nonce + b"\x00\x01"
        enc = Cipher(algorithms.AES(self.key), modes.CTR(counter_block)).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, nonce: bytes, aad: bytes | bytearray, secured: bytes, level: int
                ) -> bytes | None:
        """Verify and decrypt ``secured`` (payload with its MIC) at security ``level``.

        Returns:
            The plaintext payload without MIC, or ``None`` when the MIC does not verify.
        """
        self.trials += 1
        mic = MIC_OCTETS[level]
        if level >= 5:
            try:
                return self._aesccm(mic).decrypt(nonce, secured, aad)
            except InvalidTag:
                return None
        if level == 4:
            return self._ctr(nonce, secured)
        if level == 0:
            return secured
        if len(secured) < mic:
            return None
        payload = secured[:-mic]
        try:
            self._aesccm(mic).decrypt(nonce, secured[-mic:], aad + payload)
        except InvalidTag:
            return None
        return payload

    def encrypt(self, nonce: bytes, aad: bytes, payload: bytes, level: int) -> bytes:
        """Secure ``payload`` at security ``level``: ciphertext (or plaintext) plus MIC."""
        if level >= 5:
            return self._aesccm(MIC_OCTETS[level]).encrypt(nonce, payload, aad)
        if level == 4:
            return self._ctr(nonce, payload)
        if level == 0:
            return payload
        return payload + self._aesccm(MIC_OCTETS[level]).encrypt(nonce, b"", aad + payload)


def _aes_block(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def mmo_hash(data: bytes) -> bytes:
    """Matyas-Meyer-Oseas hash with AES-128 (ZigBee spec Annex B.6), 16 octets.

    Raises:
        ValueError: ``data`` of 2^16 bits or more (not needed by ZigBee here).
    """
    bits = len(data) * 8
    if bits >= 1 << 16:
        raise ValueError("MMO hash input must be shorter than 8192 octets")
    padded = data + b"\x80"
    while len(padded) % 16 != 14:
        padded += b"\x00"
    padded += bits.to_bytes(2, "big")
    digest = bytes(16)
    for i in range(0, len(padded), 16):
        block = padded[i : i + 16]
        out = _aes_block(digest, block)
        digest = bytes(a ^ b for a, b in zip(out, block, strict=True))
    return digest


def hmac_mmo(key: bytes, message: bytes) -> bytes:
    """Keyed hash for message authentication (ZigBee spec Annex B.1.4) over MMO, 16 octets."""
    ipad = bytes(k ^ 0x36 for k in key)
    opad = bytes(k ^ 0x5C for k in key)
    return mmo_hash(opad + mmo_hash(ipad + message))


def key_transport_key(link_key: bytes) -> bytes:
    """Key-transport key of a link key: HMAC(link key, 0x00) (§4.5.3)."""
    return hmac_mmo(link_key, b"\x00")


def key_load_key(link_key: bytes) -> bytes:
    """Key-load key of a link key: HMAC(link key, 0x02) (§4.5.3)."""
    return hmac_mmo(link_key, b"\x02")


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (reflected 0x1021, init and xorout 0xFFFF) of an install code."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


#: Install code lengths in octets without CRC (BDB 13-0402 §10.1).
INSTALL_CODE_OCTETS: Final = (6, 8, 12, 16)


def install_code_link_key(install_code: bytes) -> bytes:
    """Link key derived from an install code with its 2-octet CRC (BDB 13-0402 §10.1).

    Args:
        install_code: 8, 10, 14 or 18 octets: the code then its CRC-16/X-25, little-endian.

    Raises:
        ValueError: wrong length or the CRC does not match.
    """
    if len(install_code) - 2 not in INSTALL_CODE_OCTETS:
        raise ValueError(
            f"install code must be 6, 8, 12 or 16 octets plus a 2-octet CRC, "
            f"not {len(install_code)} octets"
        )
    code, crc = install_code[:-2], int.from_bytes(install_code[-2:], "little")
    if crc16_x25(code) != crc:
        raise ValueError("install code CRC does not match")
    return mmo_hash(install_code)
