"""nRF 802.15.4 sniffer source against the emulated dongle on a pseudo-terminal.

hanlab opens the pty exactly as it opens ``/dev/ttyACM0`` (pyserial, read on the event
loop); the emulator (tests/tools/nrf_dongle.py) speaks the dongle's text protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hanlab.errors import BadInputError
from hanlab.frames import Band
from hanlab.sources import driver_class
from hanlab.sources.base import SourceEvent, SourceSpec
from hanlab.sources.nrf802154 import Nrf802154Settings, Nrf802154Source, parse_line
from tests.tools.nrf_dongle import DongleConfig, EmulatedNrfDongle, build_psdu
from tests.tools.sniffer_kinds import Running, wait_for


def make_source(
    link: Path, events: list[SourceEvent] | None = None, channel: int = 15, **settings: Any
) -> Nrf802154Source:
    spec = SourceSpec(
        sniffer_id="nrf0",
        band=Band.GHZ_2_4,
        page=0,
        channel=channel,
        settings=Nrf802154Settings(port=str(link), **settings),
        rig="rig1",
    )
    return Nrf802154Source(spec, events.append if events is not None else None)


# -- parser ---------------------------------------------------------------------------


def test_parse_line_fields() -> None:
    psdu = build_psdu(7, b"abc")
    line = b"received: %s power: -47 lqi: 212 time: 4294967290" % psdu.hex().encode()
    parsed = parse_line(line)
    assert parsed is not None
    assert (parsed.psdu_fcs, parsed.power_dbm, parsed.lqi, parsed.time_us) == (
        psdu,
        -47,
        212,
        4294967290,
    )
    big = parse_line(b"received: 410203 power: 0 lqi: 0 time: 18446744073709551615")
    assert big is not None and big.time_us == 2**64 - 1


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"uart:~$ ",
        b"received: 41zz power: -40 lqi: 1 time: 5",
        b"received: 4188630 power: -40 lqi: 1 time: 5",
        b"received: 41 power: -40 lqi: 1 time: 5",
        b"received: 418863 power: -40 lqi: 300 time: 5",
        b"received: 418863 power: -40 lqi:",
        b"\xff\xfe received: \x00",
        b"received: " + b"00" * 128 + b" power: -40 lqi: 1 time: 5",
    ],
)
def test_parse_line_rejects(line: bytes) -> None:
    assert parse_line(line) is None


def test_registered_and_settings_forbid_unknown_keys() -> None:
    assert driver_class("nrf802154") is Nrf802154Source
    with pytest.raises(ValueError):
        Nrf802154Settings.model_validate({"port": "/dev/x", "bogus": 1})


async def test_sub_ghz_spec_refused(tmp_path: Path) -> None:
    spec = SourceSpec("n", Band.SUB_GHZ, 28, 5, Nrf802154Settings(port=str(tmp_path / "x")))
    with pytest.raises(BadInputError):
        await Nrf802154Source(spec).start()


# -- protocol end to end over the pty ---------------------------------------------------


@pytest.fixture
async def dongle(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[EmulatedNrfDongle]:
    config = getattr(request, "param", None) or DongleConfig()
    async with EmulatedNrfDongle(tmp_path / "nrf0", config) as d:
        yield d


async def test_commands_and_channel_change(dongle: EmulatedNrfDongle) -> None:
    """Clock, wrap, garbage and hot-plug: tests/unit/test_serial_sniffers.py."""
    async with Running(make_source(dongle.link)) as run:
        await wait_for(lambda: len(run.frames) >= 50)
        assert run.source.channel == 15
        await run.source.set_channel(20)
        await wait_for(lambda: run.frames[-1].channel == 20)
    assert dongle.stats.commands[:4] == ["sleep", "shell echo off", "channel 15", "receive"]
    assert {"sleep", "shell echo off", "channel 15", "receive", "channel 20"} <= set(
        dongle.stats.commands
    )
    assert run.source.counters["bad_lines"] == 0 and run.source.counters["bad_frames"] == 0


@pytest.mark.parametrize("absurd", [str(10**39), str(10**400), "-" + str(10**39)])
async def test_absurd_power_line_is_counted_and_the_rest_of_the_read_kept(
    dongle: EmulatedNrfDongle, absurd: str
) -> None:
    """Issue 14 item 10: one line with an absurd ``power:`` among good ones in one read."""
    async with Running(make_source(dongle.link)) as run:
        await wait_for(lambda: len(run.frames) >= 20)
        dongle.receiving = False
        await wait_for(lambda: len(run.frames) == dongle.stats.frames)
        before = len(run.frames)
        bad_before = run.source.counters["bad_frames"]
        psdus = [build_psdu(10_000 + i, b"payload") for i in range(5)]
        dongle.print_lines([(psdus[0], "-40"), (psdus[1], absurd), (psdus[2], "-41"),
                            (psdus[3], "-300"), (psdus[4], "-42")])
        await wait_for(lambda: len(run.frames) >= before + 4)
        await asyncio.sleep(0.05)
    new = run.frames[before:]
    assert [f.psdu for f in new] == [p[:-2] for p in (psdus[0], psdus[2], psdus[3], psdus[4])]
    assert [f.rssi_dbm for f in new] == [-40.0, -41.0, -128.0, -42.0]  # -300 dBm clamped
    counters = run.source.counters
    assert counters["bad_frames"] == bad_before + 1
    assert counters["out_of_range"] == 1
