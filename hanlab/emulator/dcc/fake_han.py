"""A trivial in-memory HAN for testing the DUIS edge without radio emulation.

Each device answers each GBCS command after ``response_delay_s`` with a GBCS response
(CRA flag 2, the command's Originator Counter and Message Code, originator the device,
recipient the command's originator). Devices in :attr:`FakeHan.silent` never answer.
:meth:`FakeHan.raise_alert` makes a device send a GBCS alert. After a locally delivered
command (CommandVariant 2, 3, 6, 7) of a use case in
:data:`hanlab.emulator.han.han.CH_COMMAND_ALERTS` the CH's alert follows the response
(0x8F12 after SR 8.11, as the emulated HAN does). Not the emulated HAN medium
(``hanlab.emulator.han``): no frames, no airtime, no fragmentation.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from hanlab.emulator.dcc.commands import build_alert, build_response_to
from hanlab.emulator.dcc_link import CommandDelivery, DccLink
from hanlab.emulator.truth import GroundTruthLog, now_ns
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import GbcsMessage, parse_gbcs_message
from hanlab.resources import StartStop


class FakeHan(StartStop):
    """In-memory CHF + devices implementing :class:`~hanlab.emulator.dcc_link.HanLink`.

    Args:
        dcc: where responses and alerts go (the emulated DCC).
        response_delay_s: time from the command queued at the CHF to the response there.
        rtds_folder: take response bodies from the RTDS, if given.
        truth: ground-truth log for ``han_command_received`` / ``device_response_sent``.

    Use as ``async with FakeHan(dcc) as han:``; pending answers are cancelled on exit.
    """

    def __init__(
        self, dcc: DccLink, *, response_delay_s: float = 0.05, rtds_folder: Path | None = None,
        truth: GroundTruthLog | None = None,
    ) -> None:
        self.dcc = dcc
        self.response_delay_s = response_delay_s
        self.rtds_folder = rtds_folder
        self.truth = truth
        self.silent: set[Eui64] = set()
        self.commands: list[tuple[Eui64, GbcsMessage, CommandDelivery]] = []
        self._alert_counter = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    async def deliver_command(
        self, target_eui64: Eui64, gbcs_command: bytes, request: CommandDelivery
    ) -> None:
        """Queue a command; the device answers after :attr:`response_delay_s`."""
        message = parse_gbcs_message(gbcs_command)
        if not isinstance(message, GbcsMessage):
            return
        self.commands.append((target_eui64, message, request))
        if self.truth is not None:
            self.truth.record("han_command_received", now_ns(), target=target_eui64.duis,
                              originator_counter=message.originator_counter, via=request.via)
        if target_eui64 in self.silent:
            return
        task = asyncio.create_task(self._answer(target_eui64, message, request),
                                   name=f"fake-han-{target_eui64}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, device: Eui64, command: GbcsMessage, request: CommandDelivery
    ) -> None:
        await asyncio.sleep(self.response_delay_s)
        response = build_response_to(command, responder=device, rtds_folder=self.rtds_folder,
                                      variant=request.service_reference_variant)
        ts_ns = now_ns()
        if self.truth is not None:
            self.truth.record("device_response_sent", ts_ns, source=device.duis,
                              originator_counter=command.originator_counter)
        self.dcc.on_device_response(response, source_eui64=device, ts_ns=ts_ns)
        from hanlab.emulator.han.han import CH_COMMAND_ALERTS, LOCAL_COMMAND_VARIANTS

        if request.command_variant in LOCAL_COMMAND_VARIANTS:
            code = next((c for key, c in CH_COMMAND_ALERTS.items()
                         if key.partition(":")[2] == command.use_case.upper()), None)
            if code is not None:
                user = command.supplementary_remote_party_id or command.originator_system_title
                self.raise_alert(device, user, code)

    def raise_alert(self, device: Eui64, recipient: Eui64, alert_code: int) -> bytes:
        """Make ``device`` send a GBCS alert with ``alert_code`` to ``recipient`` now.

        Returns:
            The GBCS alert octets handed to the DCC.
        """
        alert = build_alert(device=device, recipient=recipient, alert_code=alert_code,
                            counter=next(self._alert_counter))
        self.dcc.on_device_alert(alert, source_eui64=device, ts_ns=now_ns())
        return alert

    async def stop(self) -> None:
        """Cancel and await pending answers; idempotent."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
