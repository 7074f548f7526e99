"""``hanlab rigs``: every rig of a lab and the daemon that serves it, found from the
lab's MQTT broker alone (issue 9, item 7: "More than one host").

Each daemon publishes a retained ``status`` per rig (``hanlab/v1/<lab>/<rig>/status``)
that carries its control URL, host and pid; a client subscribing to the retained
statuses finds every rig of every host of the lab without knowing the hosts. Without
``--broker`` the daemons of this user on this host are listed from their state files.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hanlab.commands import print_table
from hanlab.errors import BadInputError, BrokerError

console = Console(highlight=False, soft_wrap=True)

#: how long to collect retained statuses after the last one arrived (s)
QUIET_S = 0.5


async def statuses_from_broker(host: str, port: int, *, lab: str | None = None,
                               timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The retained ``status`` payloads of every rig on the broker (``lab``: only that
    lab's), one per rig, collected until the broker has been quiet for ``QUIET_S``.

    Raises:
        BrokerError: the broker cannot be reached.
    """
    import aiomqtt

    topic = f"hanlab/v1/{lab or '+'}/+/status"
    found: dict[str, dict[str, Any]] = {}
    try:
        async with aiomqtt.Client(host, port, timeout=timeout_s) as client:
            await client.subscribe(topic, qos=1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            messages = aiter(client.messages)
            while loop.time() < deadline:
                try:
                    message = await asyncio.wait_for(anext(messages), QUIET_S)
                except TimeoutError:
                    break
                try:
                    payload = json.loads(bytes(message.payload))
                except (ValueError, TypeError):
                    continue
                if isinstance(payload, dict):
                    found[str(message.topic)] = payload
    except aiomqtt.MqttError as error:
        raise BrokerError(f"MQTT broker {host}:{port}: {error}",
                          hint="check --broker HOST:PORT") from None
    return sorted(found.values(), key=lambda p: (str(p.get("lab")), str(p.get("rig"))))


def _local() -> list[dict[str, Any]]:
    from hanlab.daemon.statefile import find_daemons

    return [{"lab": d.lab, "rig": rig, "state": "online", "host": d.host, "pid": d.pid,
             "control_url": d.url} for d in find_daemons() for rig in d.rigs]


def rigs(
    broker: Annotated[str | None, typer.Option(
        "--broker", help="HOST:PORT of the lab's MQTT broker (default: the daemons on "
                         "this host, from their state files).")] = None,
    lab: Annotated[str | None, typer.Option(help="Only this lab's rigs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List every rig of the lab with its daemon's host and control URL.

    Several hosts of one lab each run `hanlab up` for their own rigs and publish to one
    broker; this finds them all from the broker's retained status messages.

    Examples:

      hanlab rigs --broker mqtt.lab:1883

      hanlab rigs --json | jq -r '.[].control_url'
    """
    if broker is None:
        found = [r for r in _local() if lab is None or r["lab"] == lab]
    else:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise BadInputError(f"--broker {broker!r}: expected HOST:PORT")
        found = asyncio.run(statuses_from_broker(host, int(port), lab=lab))
    if as_json:
        typer.echo(json.dumps(found, indent=1))
        return
    table = Table(title="rigs")
    for column in ("lab", "rig", "state", "host", "control URL", "sniffers"):
        table.add_column(column, overflow="fold")
    for status in found:
        sniffers = ", ".join(f"{s.get('id')} ({s.get('band')})"
                             for s in status.get("sniffers", []) if isinstance(s, dict))
        table.add_row(str(status.get("lab", "")), str(status.get("rig", "")),
                      str(status.get("state", "")), str(status.get("host", "")),
                      str(status.get("control_url", "")), sniffers)
    print_table(console, table)
    if not found:
        console.print("no rig found" + ("" if broker else " (no daemon runs here; give "
                                        "--broker to look at the lab's broker)"),
                      markup=False)


def register(app: typer.Typer) -> None:
    """Add ``rigs`` to the CLI."""
    app.command("rigs")(rigs)
