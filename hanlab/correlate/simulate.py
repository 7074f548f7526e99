"""An emulated lab run with its ground truth, for measuring the correlator's error.

Runs an :class:`~hanlab.emulator.han.EmulatedHan` in virtual time with its traffic
generator, hears every transmission on both bands through the emulator's taps (each
timestamp jittered like a real sniffer's), and writes the DUIS log a User would have
written for each SR the traffic generator queued: request, acknowledgement ``I99`` and the
DUIS response, with DCC delays drawn around the emulator's true times (no DCC is in the
loop, so the DUIS side is synthesised from the ground truth's ``command_queued`` and
``response_received`` events). The truth of each SR's HAN segments comes from the
transmissions themselves: those whose tunnel data carries the SR's GBCS command or
response (their Originator Counter), collided ones excluded (a sniffer hears them with a
bad FCS).

Source: issue 5 done-when (accuracy against the emulator's ground truth).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hanlab.correlate.events import DuisEvent
from hanlab.emulator.han import EmulatedDevice, EmulatedHan, HanSettings, MemoryTruth
from hanlab.emulator.han.medium import Transmission
from hanlab.emulator.han.nodes import AppMessage
from hanlab.emulator.han.settings import TrafficSettings
from hanlab.frames import Band, Frame, TsSource, band_of
from hanlab.gbcs.message import GbcsMessage, GbtBlock
from hanlab.gbcs.tunnel import TunnelCommand, parse_tunnel_payload
from hanlab.zigbee.keyring import Keyring

__all__ = ["SimulatedRun", "TrueSr", "default_devices", "simulate"]

START_NS = 1_750_000_000 * 10**9
USER = "90-B3-D5-1F-30-01-00-00"


@dataclass(slots=True)
class TrueSr:
    """The true HAN segments of one SR (ns since the epoch; ``None`` if none went)."""

    request_id: str
    target: str
    band: str | None = None
    command_first_ts_ns: int | None = None
    command_last_ts_ns: int | None = None
    command_end_ts_ns: int | None = None
    response_first_ts_ns: int | None = None
    response_last_ts_ns: int | None = None
    response_end_ts_ns: int | None = None
    frames: int = 0

    def add(self, tx: Transmission, band: Band, command: bool) -> None:
        """Count one transmission of the SR's command (``command``) or response."""
        self.frames += 1
        if command:
            if self.command_first_ts_ns is None:
                self.command_first_ts_ns = tx.start_ns
                self.band = band.value
            self.command_last_ts_ns = tx.start_ns
            self.command_end_ts_ns = max(self.command_end_ts_ns or 0, tx.end_ns)
        else:
            if self.response_first_ts_ns is None:
                self.response_first_ts_ns = tx.start_ns
                self.band = self.band or band.value
            self.response_last_ts_ns = tx.start_ns
            self.response_end_ts_ns = max(self.response_end_ts_ns or 0, tx.end_ns)


@dataclass
class SimulatedRun:
    """What :func:`simulate` produced.

    Attributes:
        frames: every frame heard on both bands, jittered, in time order.
        duis: the DUIS log events, in time order.
        duis_lines: the same as DUIS log lines (dicts as :class:`hanlab.duis.log.DuisLog`
            writes them).
        truth: request_id -> true segments.
        keyring: all the rig's keys; ``network_keyring``: the network key only.
        device_roles: EUI-64 -> role (what the rig file says).
        roles_by_request: request_id -> role of its target.
    """

    frames: list[Frame]
    duis: list[DuisEvent]
    duis_lines: list[dict[str, object]]
    truth: dict[str, TrueSr]
    keyring: Keyring
    network_keyring: Keyring
    device_roles: dict[str, str]
    han: EmulatedHan
    roles_by_request: dict[str, str] = field(default_factory=dict)


def default_devices(per_band: int = 1, *, wake_interval_s: float = 5.0) -> list[EmulatedDevice]:
    """``per_band`` ESMEs and GSMEs on each band (GSMEs waking every ``wake_interval_s``)."""
    devices: list[EmulatedDevice] = []
    for index in range(per_band):
        for band_index, band in enumerate(Band):
            devices.append(EmulatedDevice(
                role="ESME", eui64=f"00-DB-12-00-00-{band_index:02X}-01-{index:02X}",
                band=band))
            devices.append(EmulatedDevice(
                role="GSME", eui64=f"00-DB-12-00-00-{band_index:02X}-02-{index:02X}",
                band=band, wake_interval_s=wake_interval_s))
    return devices


def simulate(duration_s: float, *, interval_s: float = 0.5, jitter_ns: int = 20_000,
             seed: int = 1, devices: list[EmulatedDevice] | None = None,
             alert_interval_s: float | None = 20.0, loss: float = 0.0) -> SimulatedRun:
    """Run the emulated HAN for ``duration_s`` virtual seconds and return frames, DUIS log
    and truth (see the module docstring). Deterministic for given arguments.

    Args:
        interval_s: one SR per ``interval_s`` (traffic generator, round robin).
        jitter_ns: sniffer timestamps are true start + uniform(-jitter_ns, +jitter_ns).
        alert_interval_s: spontaneous device alerts (``None``: none).
        loss: per-link frame loss probability (MAC retries, APS retries).
    """
    rng = random.Random(seed)
    devs = devices if devices is not None else default_devices()
    memory = MemoryTruth()
    han = EmulatedHan("corr", HanSettings(
        seed=seed, loss=loss,
        traffic=TrafficSettings(enabled=True, interval_s=interval_s,
                                alert_interval_s=alert_interval_s, originator_eui64=USER)),
        devs, dual_band=True, truth=memory, start_ns=START_NS)
    heard: list[tuple[Transmission, int, int]] = []

    def tap(tx: Transmission, page: int, channel: int) -> None:
        heard.append((tx, page, channel))

    han.add_tap(Band.GHZ_2_4, tap)
    han.add_tap(Band.SUB_GHZ, tap)
    han.run_for(duration_s)

    truth: dict[str, TrueSr] = {}
    by_counter: dict[int, TrueSr] = {}
    lines: list[dict[str, object]] = []
    roles = {d.eui64: d.role.value for d in devs}
    roles_by_request: dict[str, str] = {}
    responded = {(str(e["eui64"]), int(str(e["originator_counter"]))): int(str(e["ts_ns"]))
                 for e in memory.events if e["event"] == "response_received"}
    for event in memory.events:
        if event["event"] != "command_queued" or event["source"] != "traffic":
            continue
        counter = int(str(event["originator_counter"]))
        target = str(event["target"])
        queued_ns = int(str(event["ts_ns"]))
        rid = f"{USER}:{target}:{counter}"
        truth[rid] = by_counter[counter] = TrueSr(rid, target)
        roles_by_request[rid] = roles.get(target, "unknown")
        request_ns = queued_ns - rng.randrange(80_000_000, 250_000_000)
        rid_fields = {"originator": USER, "target": target, "counter": counter}
        base = {"user": USER, "request_id": rid_fields, "request_id_text": rid,
                "response_id": None, "sr_variant": event["variant"], "command_variant": 1,
                "gbcs_originator_counter": None, "dcc_alert_code": None, "alert_code": None}
        lines.append({"ts_ns": request_ns, "direction": "out", "kind": "request", **base,
                      "response_code": None})
        lines.append({"ts_ns": request_ns + rng.randrange(20_000_000, 70_000_000),
                      "direction": "in", "kind": "ack", **base, "response_code": "I99"})
        got = responded.get((target, counter))
        if got is not None:
            lines.append({"ts_ns": got + rng.randrange(100_000_000, 400_000_000),
                          "direction": "in", "kind": "response", **base,
                          "response_code": "I0"})

    frames: list[Frame] = []
    for tx, page, channel in heard:
        band = band_of(page, channel)
        frames.append(Frame(tx.start_ns + rng.randint(-jitter_ns, jitter_ns),
                            f"emu-{band.value}", band, page, channel, tx.psdu,
                            not tx.collided, None, None, TsSource.EMULATED, tx.start_ns))
        msg = tx.payload
        if tx.collided or not isinstance(msg, AppMessage) or msg.kind != "tunnel":
            continue
        tunnel = parse_tunnel_payload(msg.data)
        if tunnel.command not in (TunnelCommand.GET_RESPONSE, TunnelCommand.PUT):
            continue
        message = tunnel.message
        if not isinstance(message, GbcsMessage | GbtBlock) or message.cra_flag not in (1, 2):
            continue
        sr = by_counter.get(message.originator_counter)
        if sr is not None:
            sr.add(tx, band, message.cra_flag == 1)
    frames.sort(key=lambda f: f.ts_ns)
    lines.sort(key=lambda line: int(str(line["ts_ns"])))
    ring = han.keyring()
    network = Keyring()
    network.add_network_key(han.network_key, seq=0, label="nwk")
    return SimulatedRun(frames=frames, duis=[DuisEvent.from_log_line(x) for x in lines],
                        duis_lines=lines, truth=truth, keyring=ring, network_keyring=network,
                        device_roles=roles, han=han, roles_by_request=roles_by_request)
