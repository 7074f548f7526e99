"""The emulated HHT as the CH's uplink: responses to its own commands come to it, the rest
goes over the WAN when present and is dropped when absent; alerts are kept while the
Inter-PAN session is open, the latest MAX_KEPT_ALERTS of them."""

from __future__ import annotations

from hanlab.emulator.dcc.commands import build_alert, build_response_to
from hanlab.emulator.dcc.fake_han import FakeHan
from hanlab.emulator.han.hht import MAX_KEPT_ALERTS, EmulatedHht
from hanlab.gbcs import Eui64, GbcsMessage, parse_gbcs_message
from hanlab.gbcs.message import build_gbcs_message

USER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
ESME = Eui64.parse("00-DB-12-34-56-78-90-A0")


class Upstream:
    def __init__(self) -> None:
        self.responses: list[bytes] = []
        self.alerts: list[bytes] = []

    def on_device_response(self, gbcs_response: bytes, *, source_eui64: Eui64,
                           ts_ns: int | None = None) -> None:
        self.responses.append(gbcs_response)

    def on_device_alert(self, gbcs_alert: bytes, *, source_eui64: Eui64,
                        ts_ns: int | None = None) -> None:
        self.alerts.append(gbcs_alert)


def _command(counter: int) -> bytes:
    return build_gbcs_message(cra_flag=1, originator_counter=counter,
                              originator_system_title=USER, recipient_system_title=ESME,
                              message_code=0x0015, content=b"\x01\x02", signature=b"",
                              mac=bytes(12))


async def test_routes_and_keeps() -> None:
    upstream, wan = Upstream(), {"up": True}
    async with FakeHan(upstream, response_delay_s=0.001) as han:
        hht = EmulatedHht(han, upstream=upstream, wan_present=lambda: wan["up"],
                          response_timeout_s=1.0)
        hht.attach()
        assert han.dcc is hht and not hht.connected
        response = await hht.deliver(ESME, _command(7), request_id=f"{USER}:{ESME}:7",
                                     sr_variant="4.1.1", command_variant=2)
        message = parse_gbcs_message(response or b"")
        assert isinstance(message, GbcsMessage) and message.originator_counter == 7
        assert upstream.responses == [] and hht.connected
        assert han.commands[0][2].via == "hht"
        # Not the HHT's: over the WAN when present, dropped when absent.
        other = parse_gbcs_message(_command(8))
        assert isinstance(other, GbcsMessage)
        hht.on_device_response(build_response_to(other, responder=ESME), source_eui64=ESME)
        wan["up"] = False
        hht.on_device_response(build_response_to(other, responder=ESME), source_eui64=ESME)
        assert len(upstream.responses) == 1 and hht.stats.dropped_no_wan == 1
        # Alerts while connected: kept (bounded), forwarded only with the WAN up.
        for counter in range(MAX_KEPT_ALERTS + 5):
            hht.on_device_alert(build_alert(device=ESME, recipient=USER, alert_code=0x8F12,
                                            counter=counter), source_eui64=ESME)
        assert len(hht.alerts) == MAX_KEPT_ALERTS and hht.alerts_kept == MAX_KEPT_ALERTS + 5
        assert await hht.next_alert(0, 0.01) is None  # dropped
        assert await hht.next_alert(MAX_KEPT_ALERTS + 4, 0.01) == hht.alerts[-1]
        assert await hht.next_alert(MAX_KEPT_ALERTS + 5, 0.01) is None  # not yet
        assert upstream.alerts == []
        # Not a GBCS command: refused, nothing delivered.
        assert await hht.deliver(ESME, b"\x00", request_id=f"{USER}:{ESME}:9",
                                 sr_variant="4.1.1", command_variant=2) is None
        assert hht.stats.delivered == 1
