"""OTA transfers on a rig's live bus: progress as MQTT ``ota`` events and for the API.

The live correlator hands every readable OTA Upgrade cluster frame (ZCL 07-5123 §11.13)
to :class:`LiveTransfers`, which keeps them in the same
:class:`~hanlab.firmware.transfers.TransferTracker` ``hanlab firmware transfers`` uses on
the captures afterwards (so the live view and the offline report agree) and says when an
``ota`` event is due:

* ``started``: the first OTA command of a device and image (Image Notify, Query Next
  Image Response naming the image, or a first Image Block Request);
* ``progress``: each further :data:`PROGRESS_STEP` of the image's octets reached by an
  Image Block Response (the furthest offset + data size; the image size from the Query
  Next Image Response);
* ``ended``: the Upgrade End Request (its status: 0x00 SUCCESS, 0x95 ABORT, 0x96
  INVALID_IMAGE, ZCL 07-5123 §11.13.9).

Payload (``kind`` ``ota``): ``event``, ``device_short`` (``0x1a2b``), ``device_eui64``,
``band``, ``manufacturer_code``, ``image_type``, ``file_version`` (hex text),
``image_size_octets``, ``offset_octets`` (furthest octet reached), ``progress`` (0-1 or
``null`` before the size is known), ``blocks``, ``retries``, ``waits`` (WAIT_FOR_DATA
answers, e.g. the sub-GHz duty-cycle budget), ``upgrade_end_status``, ``start_ns``,
``ts_ns`` (the frame's, lab clock), ``duration_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hanlab.events.bus import BusEvent
from hanlab.firmware.transfers import Transfer, TransferTracker
from hanlab.frames import Frame
from hanlab.zigbee.frame import DecodedFrame
from hanlab.zigbee.ota import IMAGE_BLOCK_RESPONSE, UPGRADE_END_REQUEST

#: fraction of the image between two ``progress`` events
PROGRESS_STEP = 0.05
#: transfers kept live (each holds up to its image's octets, 750 KB at most in GB)
MAX_LIVE_TRANSFERS = 32


@dataclass
class _Progress:
    offset_octets: int = 0
    next_step: float = PROGRESS_STEP
    ended: bool = False


@dataclass
class LiveTransfers:
    """The rig's OTA transfers as they happen (see the module docstring)."""

    tracker: TransferTracker = field(
        default_factory=lambda: TransferTracker(max_transfers=MAX_LIVE_TRANSFERS))
    #: (device short address, image type, file version) -> progress (the tracker's key)
    _progress: dict[tuple[int, int, int], _Progress] = field(default_factory=dict)

    def feed(self, frame: Frame, d: DecodedFrame) -> BusEvent | None:
        """Apply one OTA frame; the ``ota`` event it makes due, or ``None``."""
        applied = self.tracker.feed(frame, d)
        if applied is None:
            return None
        transfer, command_id = applied
        state = self._progress.get(_key(transfer))
        if state is None:
            state = self._progress[_key(transfer)] = _Progress()
            self._forget_gone()
            return self._event("started", transfer, state, frame.ts_ns)
        if command_id == UPGRADE_END_REQUEST and transfer.upgrade_end_status is not None \
                and not state.ended:
            state.ended = True
            return self._event("ended", transfer, state, frame.ts_ns)
        if command_id == IMAGE_BLOCK_RESPONSE:
            if transfer.blocks:  # the block just stored is the newest (dict order)
                offset, data = next(reversed(transfer.blocks.items()))
                state.offset_octets = max(state.offset_octets, offset + len(data))
            size = transfer.image_size_octets
            if size and state.offset_octets / size >= state.next_step:
                while state.next_step <= state.offset_octets / size:
                    state.next_step += PROGRESS_STEP
                return self._event("progress", transfer, state, frame.ts_ns)
        return None

    def summaries(self) -> list[dict[str, Any]]:
        """Every transfer kept, as the payload of its latest event would be (API)."""
        out = []
        for transfer in self.tracker.transfers():
            state = self._progress.get(_key(transfer), _Progress())
            event = "ended" if state.ended else "progress"
            out.append(self._payload(event, transfer, state, transfer.end_ns))
        return out

    def _forget_gone(self) -> None:
        """Drop the progress of transfers the tracker no longer keeps."""
        if len(self._progress) <= 2 * MAX_LIVE_TRANSFERS:
            return
        kept = {_key(t) for t in self.tracker.transfers()}
        for key in [k for k in self._progress if k not in kept]:
            del self._progress[key]

    def _event(self, event: str, transfer: Transfer, state: _Progress,
               ts_ns: int) -> BusEvent:
        return BusEvent("ota", self._payload(event, transfer, state, ts_ns))

    @staticmethod
    def _payload(event: str, t: Transfer, state: _Progress, ts_ns: int) -> dict[str, Any]:
        size = t.image_size_octets
        return {
            "event": event, "device_short": f"0x{t.device_short:04x}",
            "device_eui64": t.device_eui64, "band": t.band,
            "manufacturer_code": f"0x{t.manufacturer_code:04X}",
            "image_type": f"0x{t.image_type:04X}", "file_version": f"0x{t.file_version:08X}",
            "image_size_octets": size, "offset_octets": state.offset_octets,
            "progress": None if not size else round(min(state.offset_octets / size, 1.0), 4),
            "blocks": len(t.blocks), "retries": t.retries, "waits": t.waits,
            "upgrade_end_status": t.upgrade_end_status, "start_ns": t.start_ns,
            "ts_ns": ts_ns, "duration_s": round((ts_ns - t.start_ns) / 1e9, 3),
        }


def _key(t: Transfer) -> tuple[int, int, int]:
    """A transfer's identity: device, image type, file version (as the tracker keys it)."""
    return (t.device_short, t.image_type, t.file_version)


__all__ = ["MAX_LIVE_TRANSFERS", "PROGRESS_STEP", "LiveTransfers"]
