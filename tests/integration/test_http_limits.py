"""Time, size and concurrency limits of hanlab's HTTP servers (issue 14 item 16), over real
TCP on 127.0.0.1: slow-loris connections closed within the timeouts, large bodies refused
with 413 without being read whole (RSS growth measured), 503 above the concurrency cap.

The servers are the real ones (DUIS receiver, emulated DCC) with short limits; clients are
raw asyncio streams so a test controls every byte; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hanlab.duis.http import HttpLimits, http_stats
from hanlab.duis.receiver import DuisReceiver
from hanlab.emulator.dcc import SERVICE_PATHS, EmulatedDcc, EmulatedDccSettings
from tests.integration.test_cross_sniffer import until

LIMITS = HttpLimits(max_body_bytes=1024 * 1024, header_timeout_s=1.0, body_timeout_s=1.0,
                    max_concurrent_requests=32, lingering_s=0.5)
SLACK_S = 1.5
"""Scheduling slack on a loaded 2-core machine, on top of each timeout."""
CONNECTIONS = 100


@pytest.fixture
async def receiver() -> AsyncIterator[DuisReceiver]:
    async with DuisReceiver(lambda *_: None, limits=LIMITS) as started:
        yield started


def _port(receiver: DuisReceiver) -> int:
    return int(receiver.url.split(":")[2].split("/")[0])


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def _closed_after_s(reader: asyncio.StreamReader, started: float, cap_s: float) -> float:
    """Seconds from ``started`` until the server closed the connection (EOF, or a reset
    when it closes with our bytes unread)."""
    async with asyncio.timeout(cap_s):
        try:
            while await reader.read(65536):
                pass
        except ConnectionResetError:
            pass
    return time.monotonic() - started


async def _trickle(writer: asyncio.StreamWriter, data: bytes, interval_s: float) -> None:
    """Send ``data`` one byte at a time until done or the server hangs up."""
    try:
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
            await asyncio.sleep(interval_s)
    except (ConnectionError, OSError):
        pass


async def _slow_connection(port: int, head: bytes, body: bytes, cap_s: float) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        if body:
            writer.write(head)
            await writer.drain()
        trickle = asyncio.create_task(_trickle(writer, body or head, 0.05))
        try:
            return await _closed_after_s(reader, started, cap_s)
        finally:
            trickle.cancel()
            await asyncio.gather(trickle, return_exceptions=True)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


def _head(port: int, length: int | None, path: str = "/duis") -> bytes:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/xml\r\n{framing}\r\n\r\n").encode()


async def test_slow_headers_are_closed_within_the_header_timeout(
    receiver: DuisReceiver,
) -> None:
    """100 connections sending their request head byte by byte (20 bytes/s): each closed
    by the server within header_timeout_s (+ slack), not held open."""
    port = _port(receiver)
    cap_s = LIMITS.header_timeout_s + SLACK_S + 5
    times = await asyncio.gather(*(
        _slow_connection(port, _head(port, 100), b"", cap_s) for _ in range(CONNECTIONS)))
    print(f"slow headers: {CONNECTIONS} connections closed after "
          f"{min(times):.2f}-{max(times):.2f} s (header timeout {LIMITS.header_timeout_s} s)")
    assert max(times) < LIMITS.header_timeout_s + SLACK_S


async def test_slow_bodies_are_closed_within_the_body_timeout(receiver: DuisReceiver) -> None:
    """100 connections with a whole head and a body sent byte by byte: 32 are read and
    answered 408 after body_timeout_s, the rest 503 at once (concurrency cap); every one is
    closed within body_timeout_s + lingering_s (+ slack)."""
    port = _port(receiver)
    body = b"<x>" + b" " * 2000 + b"</x>"
    cap_s = LIMITS.body_timeout_s + LIMITS.lingering_s + SLACK_S + 5
    times = await asyncio.gather(*(
        _slow_connection(port, _head(port, len(body)), body, cap_s)
        for _ in range(CONNECTIONS)))
    stats = http_stats(_app(receiver))
    print(f"slow bodies: {CONNECTIONS} connections closed after "
          f"{min(times):.2f}-{max(times):.2f} s; {stats}")
    assert max(times) < LIMITS.body_timeout_s + LIMITS.lingering_s + SLACK_S
    assert stats.body_timeouts + stats.busy == CONNECTIONS
    assert stats.body_timeouts <= LIMITS.max_concurrent_requests
    assert stats.in_progress == 0


def _app(receiver: DuisReceiver):  # type: ignore[no-untyped-def]
    assert receiver._runner is not None
    return receiver._runner.app


async def _large_body(port: int, length: int, declared: bool, path: str) -> int:
    """POST ``length`` octets (declared, or chunked) from one reused 64 KiB buffer; the
    HTTP status the server answered with."""
    chunk = b"x" * 65536
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        writer.write(_head(port, length if declared else None, path))
        try:
            for _ in range(length // len(chunk)):
                writer.write(chunk if declared else b"10000\r\n" + chunk + b"\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(send())
    try:
        async with asyncio.timeout(30):
            status_line = await reader.readline()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    return int(status_line.split()[1])


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_large_bodies_are_refused_without_reading_them(
    receiver: DuisReceiver, declared: bool
) -> None:
    """30 concurrent 15 MB bodies: every one answered 413 (before the fix: read whole, the
    server went from 126 MB to 719 MB). A declared length is refused before any of the
    body is read: memory grows by little; a chunked body is cut off at max_body_bytes, so
    at most 30 x 1 MiB (x 2 for buffer growth) is held at once."""
    port = _port(receiver)
    baseline = _rss_bytes()
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    try:
        statuses = await asyncio.gather(*(
            _large_body(port, 15_000_000, declared, "/duis") for _ in range(30)))
    finally:
        done.set()
        await sampler
    growth_mb = (peak - baseline) / 1e6
    print(f"30 x 15 MB ({'declared' if declared else 'chunked'}): statuses "
          f"{set(statuses)}, RSS {baseline / 1e6:.0f} MB -> peak {peak / 1e6:.0f} MB "
          f"(+{growth_mb:.1f} MB)")
    assert statuses == [413] * 30
    bound_mb = 20 if declared else (30 * 2 * LIMITS.max_body_bytes) / 1e6 + 16
    assert growth_mb < bound_mb
    assert http_stats(_app(receiver)).too_large == 30


async def test_concurrency_cap_answers_503(receiver: DuisReceiver) -> None:
    """With 32 requests holding the server (slow bodies), the 33rd is answered 503 with
    Retry-After at once; once they end the server serves again (400: not DUIS)."""
    port = _port(receiver)
    body = b"<x/>" * 100
    holders = [asyncio.create_task(_slow_connection(port, _head(port, len(body)), body, 10))
               for _ in range(LIMITS.max_concurrent_requests)]
    stats = http_stats(_app(receiver))
    await until(lambda: stats.in_progress >= LIMITS.max_concurrent_requests, 5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(port, 4) + b"<x/>")
    async with asyncio.timeout(2):
        answer = await reader.read(65536)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
    await asyncio.gather(*holders)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(port, 4) + b"<x/>")
    async with asyncio.timeout(2):
        answer = await reader.read(65536)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")


async def test_emulated_dcc_refuses_large_bodies() -> None:
    """The emulated DCC is bounded by the same limits (413 on a 15 MB request)."""
    settings = EmulatedDccSettings(http_limits=LIMITS)
    async with EmulatedDcc(settings, users=[], devices={}) as dcc:
        port = int(dcc.url.rsplit(":", 1)[1])
        assert await _large_body(port, 15_000_000, True, SERVICE_PATHS["S"]) == 413


async def test_client_refuses_an_unbounded_reply(tmp_path: Path) -> None:
    """A "DCC" answering 5 MB (streamed, no length): the DUIS client stops at 1 MiB."""
    from aiohttp import web

    from hanlab.duis.client import DuisClient, DuisClientError
    from hanlab.duis.counters import RequestCounterStore
    from hanlab.duis.http import listen

    async def flood(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse()
        await reply.prepare(request)
        chunk = b"x" * 65536
        for _ in range(80):
            await reply.write(chunk)
        return reply

    app = web.Application()
    app.router.add_post(SERVICE_PATHS["S"], flood)
    runner, port = await listen(app, "127.0.0.1", 0, "flood")
    try:
        async with DuisClient(base_url=f"http://127.0.0.1:{port}", users=[],
                              counters=RequestCounterStore(tmp_path)) as client:
            with pytest.raises(DuisClientError, match="exceeds"):
                await client.post(1, b"<x/>")
    finally:
        await runner.cleanup()
