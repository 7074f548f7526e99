"""``hanlab analyse`` on pcapng files and a DUIS log gives the exchanges the in-process
correlator gave on the same frames and DUIS events (issue 5 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

from hanlab.capture.pcapng import PcapngWriter
from hanlab.cli import main
from hanlab.correlate import Correlator, exchange_json, time_ordered
from hanlab.correlate.simulate import simulate
from hanlab.frames import Band


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
