"""``hanlab up`` (run a lab) and ``hanlab capture`` (one source through the pipeline)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hanlab.config import BrokerConfig, Lab, LabConfig, RigConfig, SnifferConfig, load_lab
from hanlab.daemon.supervisor import LabSupervisor
from hanlab.errors import BadInputError, ConfigError
from hanlab.sources import driver_class

DEFAULT_LAB = Path("labs/default.yaml")

console = Console(stderr=True, highlight=False, soft_wrap=True)


def _stats_table(sup: LabSupervisor, started: float) -> Table:
    table = Table(title=f"hanlab — lab {sup.lab.config.name} — "
                  f"{time.monotonic() - started:,.0f} s", expand=False)
    for col in ("rig", "sniffer", "band/page/ch", "frames", "frames/s", "FCS errors",
                "drops", "MQTT"):
        table.add_column(col, justify="right" if col in {"frames", "frames/s", "FCS errors",
                                                          "drops"} else "left")
    for runner in sup.runners:
        drops = runner.bus.dropped_frames()
        mqtt = ("—" if runner.mqtt is None else
                f"{'up' if runner.mqtt.connected else 'down'} {runner.mqtt.published}")
        for s in runner.rig.sniffers:
            c = runner.stats.counts[s.id]
            elapsed = max(time.monotonic() - started, 1e-9)
            table.add_row(runner.rig.name, s.id, f"{s.band.value}/{s.page}/{s.channel}",
                          f"{c.frames:,}", f"{c.frames / elapsed:,.0f}", f"{c.fcs_errors:,}",
                          f"{drops.get(s.id, 0):,}", mqtt)
    return table


async def _run_with_display(sup: LabSupervisor, quiet: bool) -> None:
    started = time.monotonic()
    if quiet or not console.is_terminal:
        await sup.run()
        return
    with Live(_stats_table(sup, started), console=console, refresh_per_second=2) as live:
        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.5)
                live.update(_stats_table(sup, started))

        task = asyncio.create_task(refresh())
        try:
            await sup.run()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            live.update(_stats_table(sup, started))


def _summary(sup: LabSupervisor) -> list[str]:
    lines = []
    for runner in sup.runners:
        for s in runner.rig.sniffers:
            c = runner.stats.counts[s.id]
            extra = runner.source_counters.get(s.id, {})
            lines.append(f"{runner.rig.name}/{s.id}: {c.frames:,} frames, "
                         f"{c.fcs_errors:,} FCS errors, "
                         f"{extra.get('out_of_order', 0):,} out of order")
        lines.extend(f"  wrote {p}" for p in runner.capture.files)
    return lines


def up(
    lab_file: Annotated[Path | None, typer.Argument(
        help="Lab file (rigs: [...]) or a single rig file. Default: labs/default.yaml.")] = None,
    no_mqtt: Annotated[bool, typer.Option("--no-mqtt", help="Do not publish on MQTT.")] = False,
    exit_when_done: Annotated[bool, typer.Option(
        "--exit-when-done", help="Stop when every source is exhausted (replay labs).")] = False,
    duration_s: Annotated[float | None, typer.Option(
        "--duration", help="Stop after this many seconds.", min=0.1)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Capture folder for every rig (overrides the rig files).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table.")] = False,
) -> None:
    """Run every rig of a lab: sources, per-band pcapng, live stats and MQTT events.

    With no broker in the lab file an embedded MQTT broker listens on 127.0.0.1:1883;
    watch it with `mosquitto_sub -t 'hanlab/#' -v`. Stop with Ctrl-C (files are closed
    and each rig's retained status becomes offline).

    Examples:

      hanlab up                              # the default lab, labs/default.yaml

      hanlab up rigs/replay-sinope.yaml --exit-when-done --out /tmp/caps
    """
    path = lab_file or DEFAULT_LAB
    if lab_file is None and not path.exists():
        raise BadInputError(f"no lab file given and {DEFAULT_LAB} not found",
                            hint="run from the hanlab checkout or name a lab file")
    lab = load_lab(path)
    sup = LabSupervisor(lab, mqtt=not no_mqtt, capture_folder=out,
                        exit_when_done=exit_when_done, duration_s=duration_s)
    asyncio.run(_run_with_display(sup, quiet))
    for line in _summary(sup):
        console.print(line, markup=False)


def _parse_source(source: str) -> tuple[str, str]:
    driver, sep, argument = source.partition(":")
    if not sep or not argument:
        raise BadInputError(f"--source {source!r}: expected DRIVER:ARGUMENT, e.g. pcap:file.pcapng")
    return driver, argument


def capture(
    source: Annotated[str, typer.Option(
        "--source", "-s", help="DRIVER:ARGUMENT, e.g. pcap:capture.pcapng.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("captures"),
    pace: Annotated[str, typer.Option(
        "--pace", help="recorded (keep the recorded spacing) or fast.")] = "fast",
    scale: Annotated[float, typer.Option(
        "--scale", help="Speed factor at recorded pace (2 = twice as fast).", min=0.001)] = 1.0,
    rig: Annotated[str, typer.Option("--rig", help="Rig name used in file names.")] = "capture",
    page: Annotated[int, typer.Option(help="Channel page where the source has none.")] = 0,
    channel: Annotated[int, typer.Option(help="Channel where the source has none.")] = 11,
    broker: Annotated[str | None, typer.Option(
        "--broker", help="HOST:PORT of an MQTT broker to publish events to.")] = None,
) -> None:
    """Run one source through the capture pipeline into per-band TAP pcapng files.

    The files (`<rig>_<band>_<UTC start>.pcapng`, DLT 283, ns timestamps) open in
    Wireshark with channel, page, RSSI and LQI per frame.

    Examples:

      hanlab capture --source pcap:old.pcap --out captures/

      hanlab capture -s pcap:night.pcapng --pace recorded --scale 10
    """
    driver, argument = _parse_source(source)
    if pace not in ("recorded", "fast"):
        raise BadInputError(f"--pace {pace!r}: use recorded or fast")
    cls = driver_class(driver)
    field = getattr(cls, "argument_field", "path")
    raw_settings: dict[str, object] = {field: argument}
    if driver == "pcap":
        raw_settings.update(pace=pace, scale=scale)
        if not Path(argument).is_file():
            raise BadInputError(f"{argument}: file not found")
    try:
        sniffer = SnifferConfig(id=driver, driver=driver, page=page, channel=channel,
                                settings=raw_settings)
        rig_cfg = RigConfig(name=rig, sniffers=[sniffer])
        settings = cls.Settings.model_validate(raw_settings)
    except ValueError as exc:
        raise ConfigError([f"--source/--page/--channel: {exc}"]) from exc
    broker_cfg = None
    if broker:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise BadInputError(f"--broker {broker!r}: expected HOST:PORT")
        broker_cfg = BrokerConfig(host=host, port=int(port))
    lab = Lab(config=LabConfig(name="capture", rigs=[Path(".")],
                               broker=broker_cfg or BrokerConfig()),
              rigs=[rig_cfg], rig_files=[], driver_settings={(rig, driver): settings})
    sup = LabSupervisor(lab, mqtt=broker_cfg is not None, capture_folder=out,
                        exit_when_done=True)
    asyncio.run(_run_with_display(sup, quiet=False))
    for line in _summary(sup):
        console.print(line, markup=False)
    damaged = sup.runners[0].damaged
    if damaged:
        raise BadInputError(str(damaged[0].detail.get("reason")),
                            hint="frames before the damage were written")


def register(app: typer.Typer) -> None:
    """Add ``up`` and ``capture`` to the CLI."""
    logging.basicConfig(level=logging.WARNING, format="hanlab: %(levelname)s: %(message)s")
    app.command()(up)
    app.command()(capture)
