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
from hanlab.errors import BadInputError, ConfigError, HanlabError
from hanlab.runtime.emulation import EmulationSettings
from hanlab.runtime.lab import LabOptions, LabRuntime
from hanlab.sources import driver_class

console = Console(stderr=True, highlight=False, soft_wrap=True)


def shown(path: Path) -> str:
    """A path as printed: relative to the working directory when under it, else absolute;
    normalised (no ``labs/../rigs/..``)."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def _stats_table(sup: LabRuntime, started: float) -> Table:
    table = Table(title=f"hanlab — lab {sup.name} — "
                  f"{time.monotonic() - started:,.0f} s", expand=False)
    for col in ("rig", "sniffer", "band/page/ch", "frames", "frames/s", "FCS errors",
                "drops", "MQTT", "job"):
        table.add_column(col, justify="right" if col in {"frames", "frames/s", "FCS errors",
                                                          "drops"} else "left")
    for runner in sup.runners:
        drops = runner.bus.dropped_frames()
        mqtt = ("—" if runner.mqtt is None else
                f"{'up' if runner.mqtt.connected else 'down'} {runner.mqtt.published}")
        job = runner.current
        job_text = "" if job is None else (
            f"{job.scenario} {job.progress.get('steps_done', 0)}/"
            f"{job.progress.get('steps_total', 0)}")
        if runner.queue:
            job_text += f" (+{len(runner.queue)} queued)"
        for s in runner.rig.sniffers:
            c = runner.stats.counts[s.id]
            elapsed = max(time.monotonic() - started, 1e-9)
            state = runner.sniffer_state.get(s.id, "")
            table.add_row(runner.rig.name, s.id + ("" if state != "down" else " (down)"),
                          f"{s.band.value}/{s.page}/{s.channel}",
                          f"{c.frames:,}", f"{c.frames / elapsed:,.0f}", f"{c.fcs_errors:,}",
                          f"{drops.get(s.id, 0):,}", mqtt, job_text)
    return table


def _announce(sup: LabRuntime) -> None:
    """Print where the control API, dashboard and tokens are, once they are up."""
    if sup.control_url is not None:
        console.print(f"control API {sup.control_url}/api/v1  dashboard {sup.control_url}/",
                      markup=False)
        if sup.tokens_path is not None:
            what = "created" if sup.tokens_created else "in"
            console.print(f"API tokens {what} {shown(sup.tokens_path)} (mode 600; the "
                          "dashboard asks for the viewer or operator token)", markup=False)


def _on_source_event(runtime: object, event: object) -> None:
    from hanlab.runtime.rig import RigRuntime
    from hanlab.sources import SourceEvent

    if not isinstance(runtime, RigRuntime) or not isinstance(event, SourceEvent):
        return
    if event.kind in ("failed", "damaged"):
        reason = event.detail.get("reason", "")
        retry = event.detail.get("retry_in_s")
        console.print(f"hanlab: rig {runtime.rig.name}: sniffer {event.sniffer_id} "
                      f"{event.kind}: {reason}"
                      + (f" (retrying in {retry:g} s)" if isinstance(retry, float | int)
                         else ""), markup=False)
    elif event.kind == "gap":
        console.print(f"hanlab: rig {runtime.rig.name}: sniffer {event.sniffer_id} back "
                      "after a gap", markup=False)


async def _run_with_display(sup: LabRuntime, quiet: bool) -> None:
    started = time.monotonic()
    for runtime in sup.runners:
        runtime.on_source_event.append(_on_source_event)
    if quiet or not console.is_terminal:
        await sup.run(on_start=_announce)
        return
    with Live(_stats_table(sup, started), console=console, refresh_per_second=2) as live:
        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.5)
                live.update(_stats_table(sup, started))

        task = asyncio.create_task(refresh())
        try:
            await sup.run(on_start=_announce)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            live.update(_stats_table(sup, started))


def _summary(sup: LabRuntime) -> list[str]:
    lines = []
    for runner in sup.runners:
        for s in runner.rig.sniffers:
            c = runner.stats.counts[s.id]
            extra = runner.source_counters.get(s.id, {})
            lines.append(f"{runner.rig.name}/{s.id}: {c.frames:,} frames, "
                         f"{c.fcs_errors:,} FCS errors, "
                         f"{extra.get('out_of_order', 0):,} out of order")
        lines.extend(f"  wrote {shown(p)}" for p in runner.capture.files)
        lines.extend(f"  problem: {p}" for p in runner.problems())
    return lines


def _failed_sources(sup: LabRuntime) -> list[str]:
    return [f"{r.rig.name}/{e.sniffer_id}: {e.detail.get('reason', '')}"
            for r in sup.runners for e in r.failures]


def up(
    lab_file: Annotated[Path | None, typer.Argument(
        help="Lab file (rigs: [...]) or a single rig file. Default: the bundled emulated "
             "lab (two emulated rigs).")] = None,
    no_mqtt: Annotated[bool, typer.Option("--no-mqtt", help="Do not publish on MQTT.")] = False,
    exit_when_done: Annotated[bool, typer.Option(
        "--exit-when-done", help="Stop when every source is exhausted (replay labs).")] = False,
    duration_s: Annotated[float | None, typer.Option(
        "--duration", help="Stop after this many seconds.", min=0.1)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder for every rig's captures and the jobs/ records "
                      "(default: the lab's capture_folder, else ./captures).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table.")] = False,
    time_scale: Annotated[float | None, typer.Option(
        "--time-scale", min=0.01, max=1000,
        help="Emulated rigs: emulated seconds per host second (e.g. 20).")] = None,
    api_port: Annotated[int | None, typer.Option(
        "--api-port", min=0, max=65535,
        help="Control API / dashboard port (0: any free port; default: the lab file's, "
             "8470).")] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="No control API.")] = False,
) -> None:
    """Run every rig of a lab: capture, live correlation, MQTT, and the control API for jobs.

    With no broker in the lab file an embedded MQTT broker listens on 127.0.0.1:1883;
    watch it with `mosquitto_sub -t 'hanlab/#' -v`. The control API and dashboard listen
    on 127.0.0.1:8470 (tokens created on first start, path printed). Submit work from
    another terminal with `hanlab scenario run NAME --rig RIG` (it finds this daemon).
    Stop with Ctrl-C (jobs are recorded interrupted, files are closed and each rig's
    retained status becomes offline).

    Examples:

      hanlab up                              # the bundled emulated lab (two rigs)

      hanlab up rigs/replay-sinope.yaml --exit-when-done --out /tmp/caps

      hanlab up labs/my-lab.yaml --api-port 8471   # a second daemon on this host
    """
    from hanlab.labdata import default_lab

    lab = load_lab(lab_file or default_lab())
    if exit_when_done:
        endless = [f"{rig}/{sniffer}" for (rig, sniffer), settings
                   in lab.driver_settings.items() if settings.never_finishes]
        if endless:
            raise BadInputError(
                f"--exit-when-done: {', '.join(endless)} never finish (live sniffers or a "
                "looped replay), so hanlab up would never exit",
                hint="use --duration S, or replay without loop")
    sup = LabRuntime(lab, LabOptions(
        mqtt=not no_mqtt, out=out, exit_when_done=exit_when_done, duration_s=duration_s,
        emulation=EmulationSettings(time_scale=time_scale), api=not no_api,
        api_port=api_port))
    asyncio.run(_run_with_display(sup, quiet))
    for line in _summary(sup):
        console.print(line, markup=False)
    failed = _failed_sources(sup)
    broken = [f"{r.rig.name}: capture writing failed: {r.capture.error}"
              for r in sup.runners if r.capture.failed]
    if broken:
        raise HanlabError("; ".join(broken), hint="see the lines above")
    if exit_when_done and failed:
        raise BadInputError(f"{len(failed)} source failure(s): " + "; ".join(failed[:3]),
                            hint="see the lines above; hanlab rig validate checks the files")


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
    sup = LabRuntime(lab, LabOptions(mqtt=broker_cfg is not None, out=out,
                                     exit_when_done=True, api=False, jobs=False))
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
