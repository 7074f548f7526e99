"""``hanlab analyse`` on pcapng files and a DUIS log gives the exchanges the in-process
correlator gave on the same frames and DUIS events (issue 5 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanlab.capture.pcapng import PcapngWriter
from hanlab.cli import main
from hanlab.correlate import Correlator, exchange_json, time_ordered
from hanlab.correlate.simulate import simulate
from hanlab.correlate.stats import text_table
from hanlab.frames import Band
from tests.integration.test_cli_errors import run_hanlab


def test_analyse_reproduces_in_process_exchanges(tmp_path: Path) -> None:
    run = simulate(90.0, seed=3)
    by_band = {band: [f for f in run.frames if f.band is band] for band in Band}
    paths = []
    for band, frames in by_band.items():
        writer = PcapngWriter(tmp_path / f"{band.value}.pcapng")
        iface = writer.interface(f"emu-{band.value}", band.value)
        for frame in frames:
            writer.write(iface, frame)
        writer.close()
        paths.append(writer.path)
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in run.duis_lines))
    keys = tmp_path / "keys.yaml"
    keys.write_text(run.keyring.dump_yaml())

    correlator = Correlator(run.keyring)
    correlator.feed_all(time_ordered(list(by_band.values()), run.duis))
    live = [exchange_json(e) for e in correlator.close()]
    assert sum(1 for e in live if '"match_level":"exact"' in e) > 100

    out = tmp_path / "report"
    main(["analyse", *map(str, paths), "--duis-log", str(log), "--keys", str(keys),
          "--out", str(out)])
    assert (out / "exchanges.jsonl").read_text().splitlines() == live
    timings = json.loads((out / "timings.json").read_text())
    assert {row["band"] for row in timings["rows"]} == {"2.4GHz", "subGHz"}
    assert (out / "timings.csv").read_text().startswith("band,sr_variant,device_role,")
    # twice: byte for byte the same
    again = tmp_path / "again"
    main(["analyse", *map(str, paths), "--duis-log", str(log), "--keys", str(keys),
          "--out", str(again)])
    for name in ("exchanges.jsonl", "timings.json", "timings.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    # through a pipe, as a user saves a report: the whole table, no cell cut to fit
    proc = run_hanlab("analyse", *map(str, paths), "--duis-log", str(log), "--keys", str(keys))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(text_table(timings["rows"]) + "\n"), proc.stdout
    assert "…" not in proc.stdout
    assert max(map(len, proc.stdout.splitlines()[:-1])) <= 80


def test_truncated_capture_uses_every_good_frame_and_warns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14 item 6: the result is printed, the damage named (file, byte offset) on
    stderr, exit status 1."""
    run = simulate(30.0, seed=5)
    whole = tmp_path / "whole.pcapng"
    writer = PcapngWriter(whole)
    iface = writer.interface("emu", "both bands")
    for frame in run.frames:
        writer.write(iface, frame)
    writer.close()
    data = whole.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) * 2 // 3 + 5])  # ends inside a block
    log = tmp_path / "run.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in run.duis_lines))
    keys = tmp_path / "keys.yaml"
    keys.write_text(run.keyring.dump_yaml())
    with pytest.raises(SystemExit) as exit_info:
        main(["analyse", str(cut), "--duis-log", str(log), "--keys", str(keys),
              "--out", str(tmp_path / "report")])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert "SR exchanges" in out and "frames:" in out
    (warning,) = err.strip().splitlines()
    assert warning.startswith(f"hanlab: warning: {cut}: at byte ")
    assert "truncated" in warning and "frames before it were used" in warning
    used = int(warning.split("; the ")[1].split()[0])
    assert 0 < used < len(run.frames)
    exchanges = (tmp_path / "report" / "exchanges.jsonl").read_text().splitlines()
    assert sum('"match_level":"exact"' in e for e in exchanges) > 10


def test_a_file_that_is_no_capture_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcapng"
    junk.write_bytes(b"not a capture at all")
    log = tmp_path / "run.jsonl"
    log.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["analyse", str(junk), "--duis-log", str(log)])
    assert exit_info.value.code == 2
