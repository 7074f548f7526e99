"""Building whole frames: MAC ∘ NWK (secured) ∘ APS (secured, fragmented) ∘ ZCL.

The emulator and tests build real PSDUs with the same codec that decodes them: each layer
object's ``encode`` is the inverse of its decoder, and these helpers nest them.

* :func:`build_psdu`: one PSDU from layer objects, encrypting NWK with the network key
  (ZigBee spec 05-3474 §4.3.1.1) and APS with a link key (§4.4.1.1) when given.
* :func:`fragment_aps`: split an APS payload into fragments with extended headers
  (§2.2.8.4.5): the first fragment's block number is the block count, the others' their
  index.
"""

from __future__ import annotations

import copy

from hanlab.zigbee.aps import FRAGMENT_FIRST, FRAGMENT_NEXT, ApsFrame
from hanlab.zigbee.mac import MacFrame
from hanlab.zigbee.nwk import NwkFrame
from hanlab.zigbee.security import ZIGBEE_SECURITY_LEVEL, CcmKey
from hanlab.zigbee.zcl import ZclFrame


def build_psdu(
    mac: MacFrame,
    nwk: NwkFrame | None = None,
    aps: ApsFrame | None = None,
    zcl: ZclFrame | None = None,
    *,
    nwk_key: bytes | None = None,
    link_key: bytes | None = None,
    aps_src64: int | None = None,
    level: int = ZIGBEE_SECURITY_LEVEL,
) -> bytes:
    """The PSDU (FCS excluded) of ``mac`` carrying ``nwk`` carrying ``aps`` carrying ``zcl``.

    Payloads of inner layers replace the outer layer's ``payload``; the layer objects
    given are not modified.

    Args:
        nwk_key: network key for a NWK frame with ``security`` set (16 octets).
        link_key: key for an APS frame with ``security`` set, already derived for its
            key identifier (16 octets).
        aps_src64: sender EUI-64 for the APS nonce when the aux header has none.
        level: CCM* security level (ZigBee: 5).

    Raises:
        ValueError: missing fields, or a PSDU over 125 octets (127 with FCS, IEEE
            802.15.4-2015 §11.3).
    """
    payload: bytes | None = None
    if zcl is not None:
        payload = zcl.encode()
    if aps is not None:
        aps = copy.copy(aps)
        if payload is not None:
            aps.payload = payload
        payload = aps.encode(CcmKey(link_key) if link_key else None, aps_src64, level)
    if nwk is not None:
        nwk = copy.copy(nwk)
        if payload is not None:
            nwk.payload = payload
        payload = nwk.encode(CcmKey(nwk_key) if nwk_key else None, level)
    mac = copy.copy(mac)
    if payload is not None:
        mac.payload = payload
    psdu = mac.encode()
    if len(psdu) > 125:
        raise ValueError(f"PSDU of {len(psdu)} octets exceeds 125 (127 with FCS): fragment "
                         f"the APS payload")
    return psdu


def fragment_aps(aps: ApsFrame, payload: bytes, block_octets: int) -> list[ApsFrame]:
    """Split ``payload`` into APS fragments of at most ``block_octets`` (§2.2.8.4.5).

    Args:
        aps: the header to copy (counter, endpoints, cluster, profile, security).
        payload: the whole APS payload (ASDU).
        block_octets: payload octets per fragment.

    Raises:
        ValueError: ``block_octets`` < 1 or more than 255 blocks would be needed.
    """
    if block_octets < 1:
        raise ValueError("block_octets must be at least 1")
    blocks = [payload[i : i + block_octets] for i in range(0, len(payload), block_octets)]
    if len(blocks) > 255:
        raise ValueError(f"{len(blocks)} blocks exceed the APS block number range")
    out = []
    for index, block in enumerate(blocks or [b""]):
        frag = copy.copy(aps)
        frag.extended_header = True
        frag.ext_fc = FRAGMENT_FIRST if index == 0 else FRAGMENT_NEXT
        frag.block = len(blocks) if index == 0 else index
        frag.payload = block
        out.append(frag)
    return out
