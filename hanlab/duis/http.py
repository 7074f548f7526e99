"""Small HTTP plumbing shared by the DUIS receiver, the DUIS client and the emulated DCC."""

from __future__ import annotations

from aiohttp import web

from hanlab.duis.xml import MAX_DOCUMENT_BYTES
from hanlab.errors import HanlabError
from hanlab.resources import StartStop

__all__ = ["StartStop", "listen", "new_app"]


def new_app() -> web.Application:
    """An aiohttp application refusing bodies above the DUIS document limit (16 MiB)."""
    return web.Application(client_max_size=MAX_DOCUMENT_BYTES)


async def listen(
    app: web.Application, host: str, port: int, what: str
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); the runner and the bound port.

    Raises:
        HanlabError: the address cannot be bound (``what`` names the server).
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise HanlabError(f"{what} cannot listen on {host}:{port}: {error}") from error
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
