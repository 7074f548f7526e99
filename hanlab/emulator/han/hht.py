"""An emulated Hand Held Terminal (HHT): Local Command Delivery over the HAN.

Seed 000, 'no WAN' installation using Local Command Delivery: the DCC returns a command for
local delivery (DUIS CommandVariants 2, 3, 6, 7) to the User, whose HHT delivers it to the
device, and the User returns the device's response (and alerts) to the DCC with SR 8.13.
GBCS v5.x 10.5.3 (communication with an HHT over Inter-PAN; seed 000 quotes 10.5.3.3: "Any
Device which provided its Entity Identifier and Install Code in a CCS01 Command to the
Communications Hub via Inter-PAN shall be treated by the CHF as being of type HHT") and
10.5.2.1 (the HHT in the CHF Device Log, SR 8.11). hanlab's reading of how the command
reaches the device: the HHT hands it to the CHF over Inter-PAN and the CH delivers it over
the HAN as it does a command from the WAN (held for a sleepy GSME at its GPF); the device's
response comes back to the CHF, which passes it to the HHT rather than to the WAN.

So the HHT sits between the CH and the DCC (:class:`~hanlab.emulator.dcc_link.DccLink`):
:meth:`EmulatedHht.attach` makes it the HAN's uplink. A response to a command the HHT
delivered goes to the HHT; everything else goes to the DCC over the SM WAN when the WAN is
present, and is dropped (ground truth ``wan_absent_dropped``) when it is not. Alerts the
CH or devices raise while the HHT is connected (the Inter-PAN session, from a delivery for
``session_s``; seed 000: "Inter-pan is available for 60 mins") are kept by the HHT too
(:meth:`EmulatedHht.next_alert`, the latest :data:`MAX_KEPT_ALERTS`), for the User to
return with 8.13 (seed 000: "8.13 Return Local Command Response - Device Alert 0x8F12").

Ground truth: ``hht_command_delivered`` (the command handed to the CH), ``hht_response``
(the device's response at the HHT), ``hht_alert``, ``hht_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from hanlab.duis.xml import RequestId
from hanlab.emulator.dcc_link import CommandDelivery, DccLink, HanLink
from hanlab.emulator.han.medium import NullTruth, TruthSink
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message

__all__ = ["DEFAULT_HHT_EUI64", "EmulatedHht", "HhtStats"]

DEFAULT_HHT_EUI64: Final = Eui64.parse("00-DB-12-34-56-78-90-A0")
"""The HHT's EUI-64 when the rig names no ``HHT`` device."""

MAX_KEPT_ALERTS: Final = 256
"""Alerts the HHT keeps (the oldest are dropped: a long campaign must not grow it)."""


class _Han(HanLink, Protocol):
    """A HAN the HHT can attach to: it delivers commands and has an uplink."""

    dcc: DccLink | None


@dataclass
class HhtStats:
    """Counters of the HHT."""

    delivered: int = 0
    responses: int = 0
    timeouts: int = 0
    alerts: int = 0
    forwarded_wan: int = 0
    dropped_no_wan: int = 0


class EmulatedHht:
    """The HHT of one rig (see the module docstring).

    Args:
        han: the rig's emulated HAN (:class:`~hanlab.emulator.han.han.EmulatedHan`) or a
            :class:`~hanlab.emulator.dcc.fake_han.FakeHan`.
        upstream: the DCC, reached over the SM WAN.
        wan_present: whether the SM WAN is up now (e.g. ``lambda: dcc.wan_present``).
        eui64: the HHT's EUI-64.
        truth: ground-truth sink, or ``None``.
        response_timeout_s: how long :meth:`deliver` waits for the device (host seconds).
        clock_ns: the clock ground truth is stamped with (the HAN's), default host UTC.
        session_s: how long after a delivery the HHT stays connected and keeps alerts
            (host seconds).
    """

    def __init__(
        self, han: _Han, *, upstream: DccLink | None, wan_present: Callable[[], bool],
        eui64: Eui64 = DEFAULT_HHT_EUI64, truth: TruthSink | None = None,
        response_timeout_s: float = 30.0, clock_ns: Callable[[], int] | None = None,
        session_s: float = 3600.0,
    ) -> None:
        self.han = han
        self.upstream = upstream
        self.wan_present = wan_present
        self.eui64 = eui64
        self.truth: TruthSink = truth or NullTruth()
        self.response_timeout_s = response_timeout_s
        self.clock_ns = clock_ns or time.time_ns
        self.stats = HhtStats()
        self.session_s = session_s
        self._connected_until = float("-inf")
        self.alerts: list[bytes] = []
        self.alerts_dropped = 0
        """Alerts no longer kept; :attr:`alerts` ``[i]`` is alert ``alerts_dropped + i``."""
        self._alert_arrived = asyncio.Event()
        self._waiting: dict[tuple[Eui64, int], asyncio.Future[bytes]] = {}

    @property
    def connected(self) -> bool:
        """Whether the Inter-PAN session is open (a delivery within :attr:`session_s`)."""
        return time.monotonic() < self._connected_until

    @property
    def alerts_kept(self) -> int:
        """How many alerts the HHT has kept since it started (the next one's index)."""
        return self.alerts_dropped + len(self.alerts)

    def attach(self, han: _Han | None = None) -> None:
        """Become the uplink of ``han`` (default: :attr:`han`); e.g. after the rig's
        emulated HAN restarted."""
        if han is not None:
            self.han = han
        self.han.dcc = self

    # -- delivering ------------------------------------------------------------------------

    async def deliver(
        self, target: Eui64, gbcs_command: bytes, *, request_id: str, sr_variant: str,
        command_variant: int,
    ) -> bytes | None:
        """Deliver a command returned for local delivery to ``target``; the device's
        GBCS response, or ``None`` if it did not answer within
        :attr:`response_timeout_s` (or the octets are not a GBCS command).

        Args:
            target: the device (the RequestID's target).
            gbcs_command: the ``LocalCommand`` GBCSPayload octets.
            request_id: the SR's RequestID (text), sr_variant: e.g. ``8.11``,
            command_variant: 2, 3, 6 or 7.
        """
        message = parse_gbcs_message(gbcs_command)
        if not isinstance(message, GbcsMessage) or message.cra_flag != 1:
            self.truth.record("hht_refused", self.clock_ns(), request_id=request_id,
                              reason="not a GBCS command")
            return None
        self._connected_until = time.monotonic() + self.session_s
        key = (target, message.originator_counter)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        delivery = CommandDelivery(
            request_id=RequestId.parse(request_id), service_reference_variant=sr_variant,
            command_variant=command_variant, target=target, device_type="",
            message_code=message.message_code, originator_counter=message.originator_counter,
            originator=message.originator_system_title, ts_ns=time.time_ns(), via="hht")
        try:
            await self.han.deliver_command(target, gbcs_command, delivery)
            self.stats.delivered += 1
            self.truth.record("hht_command_delivered", self.clock_ns(), hht=self.eui64.duis,
                              target=target.duis, request_id=request_id,
                              originator_counter=message.originator_counter,
                              message_code=message.message_code)
            try:
                return await asyncio.wait_for(future, self.response_timeout_s)
            except TimeoutError:
                self.stats.timeouts += 1
                self.truth.record("hht_timeout", self.clock_ns(), target=target.duis,
                                  request_id=request_id)
                return None
        finally:
            self._waiting.pop(key, None)

    async def next_alert(self, index: int, timeout_s: float) -> bytes | None:
        """The ``index``-th alert (0-based, see :attr:`alerts_kept`) the HHT has kept,
        waiting up to ``timeout_s`` for it; ``None`` if it did not come or is no longer
        kept."""
        deadline = time.monotonic() + timeout_s
        while index >= self.alerts_kept:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return None
            self._alert_arrived.clear()
            try:
                await asyncio.wait_for(self._alert_arrived.wait(), remaining_s)
            except TimeoutError:
                return None
        at = index - self.alerts_dropped
        return self.alerts[at] if at >= 0 else None

    # -- DccLink: what the CH passes up ----------------------------------------------------

    def on_device_response(
        self, gbcs_response: bytes, *, source_eui64: Eui64, ts_ns: int | None = None
    ) -> None:
        """A device's response at the CH: to the HHT if it answers the HHT's command, else
        over the WAN (when present). Never raises."""
        message = parse_gbcs_message(gbcs_response)
        if isinstance(message, GbcsMessage):
            future = self._waiting.get((source_eui64, message.originator_counter))
            if future is not None and not future.done():
                self.stats.responses += 1
                self.truth.record("hht_response", ts_ns or self.clock_ns(),
                                  source=source_eui64.duis,
                                  originator_counter=message.originator_counter)
                future.set_result(gbcs_response)
                return
        if self._wan("response", source_eui64, ts_ns) and self.upstream is not None:
            self.upstream.on_device_response(gbcs_response, source_eui64=source_eui64,
                                             ts_ns=ts_ns)

    def on_device_alert(
        self, gbcs_alert: bytes, *, source_eui64: Eui64, ts_ns: int | None = None
    ) -> None:
        """A device's or the CH's alert: kept by a connected HHT, and over the WAN when
        present. Never raises."""
        if self.connected:
            self.stats.alerts += 1
            self.alerts.append(gbcs_alert)
            if len(self.alerts) > MAX_KEPT_ALERTS:
                del self.alerts[0]
                self.alerts_dropped += 1
            self._alert_arrived.set()
            message = parse_gbcs_message(gbcs_alert)
            self.truth.record("hht_alert", ts_ns or self.clock_ns(), source=source_eui64.duis,
                              alert_code=(None if not isinstance(message, GbcsMessage)
                                          or message.alert_code is None
                                          else f"0x{message.alert_code:04X}"))
        if self._wan("alert", source_eui64, ts_ns) and self.upstream is not None:
            self.upstream.on_device_alert(gbcs_alert, source_eui64=source_eui64, ts_ns=ts_ns)

    def _wan(self, what: str, source: Eui64, ts_ns: int | None) -> bool:
        if self.wan_present():
            self.stats.forwarded_wan += 1
            return True
        self.stats.dropped_no_wan += 1
        self.truth.record("wan_absent_dropped", ts_ns or self.clock_ns(), kind=what,
                          source=source.duis)
        return False
