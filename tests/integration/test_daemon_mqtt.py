"""``hanlab up`` against a real mosquitto: events counted, broker restarts, kill -9 (issue 2)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import Mosquitto
from tests.integration.mqtt_watch import Watcher
from tests.tshark_util import read_with_tshark, tshark_count

SINOPE = "sinope-zha__TH1123ZB-G2-partie_00005.pcapng"


def write_lab(tmp_path: Path, capture: Path, port: int, pace: str, scale: float) -> Path:
    rig = tmp_path / "rig.yaml"
    rig.write_text(
        "name: replay\n"
        "sniffers:\n"
        "  - id: sniff-2g4\n    driver: pcap\n    page: 0\n    channel: 15\n"
        f"    settings: {{file: '{capture}', pace: {pace}, scale: {scale}}}\n"
        f"capture: {{folder: '{tmp_path / 'out'}'}}\n"
    )
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: testlab\nrigs: [rig.yaml]\nbroker: {{host: 127.0.0.1, port: {port}}}\n")
    return lab


def hanlab_up(lab: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hanlab.cli", "up", str(lab), "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def final_frames(watcher: Watcher) -> int:
    stats = [p for p in watcher.of_kind("stats") if p["sniffer"] == "sniff-2g4"]
    return int(stats[-1]["frames"]) if stats else -1


def assert_seq_complete(watcher: Watcher) -> None:
    """Every event 1..max arrived at least once, and first arrivals are in order."""
    seqs = [m.payload["seq"] for m in watcher.messages if "seq" in m.payload
            and m.topic.startswith("hanlab/v1/testlab/replay/")]
    first_seen: list[int] = []
    seen: set[int] = set()
    for s in seqs:
        if s not in seen:
            seen.add(s)
            first_seen.append(s)
    assert seen == set(range(1, max(seen) + 1)), f"missing: {set(range(1, max(seen)+1)) - seen}"
    assert first_seen == sorted(first_seen), "events arrived out of order"


def test_up_publishes_events_whose_counts_match_the_replay(
    mosquitto: Mosquitto, captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    capture = captures_dir / "killerbee__sample_control4-sample.pcap"
    expected = tshark_count(tshark, capture)
    watcher = Watcher(mosquitto.port)
    try:
        proc = hanlab_up(write_lab(tmp_path, capture, mosquitto.port, "fast", 1.0),
                         "--exit-when-done")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        watcher.wait_for(lambda msgs: any(
            m.payload.get("kind") == "status" and m.payload["state"] == "offline"
            for m in msgs))
    finally:
        watcher.close()
    assert final_frames(watcher) == expected == 407
    events = [p["event"] for p in watcher.of_kind("source") if p["sniffer"] == "sniff-2g4"]
    assert events == ["started", "finished"]
    statuses = watcher.of_kind("status")
    assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"
    assert all(p["schema"] == 1 and p["lab"] == "testlab" for p in watcher.of_kind("stats"))
    assert_seq_complete(watcher)
    (out,) = (tmp_path / "out").glob("replay_2.4GHz_*.pcapng")
    assert tshark_count(tshark, out) == expected


def test_broker_restart_loses_no_event_and_keeps_order(
    mosquitto: Mosquitto, captures_dir: Path, tmp_path: Path
) -> None:
    # 59 minutes of capture at 600x: about 6 s of replay, one stats event per second
    lab = write_lab(tmp_path, captures_dir / SINOPE, mosquitto.port, "recorded", 600.0)
    watcher = Watcher(mosquitto.port)
    try:
        proc = hanlab_up(lab, "--exit-when-done")
        watcher.wait_for(lambda msgs: len([m for m in msgs if m.payload["kind"] == "stats"]) >= 2)
        mosquitto.stop()
        time.sleep(2.0)
        mosquitto.start()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        watcher.wait_for(lambda msgs: any(
            m.payload.get("kind") == "status" and m.payload["state"] == "offline"
            and m.payload.get("reason") == "stopped" for m in msgs))
    finally:
        watcher.close()
    assert_seq_complete(watcher)
    assert final_frames(watcher) == 38350
    online = [p for p in watcher.of_kind("status") if p["state"] == "online"]
    assert len(online) >= 2, "the publisher did not reconnect after the broker restart"


def test_kill_9_leaves_readable_files_with_every_frame_older_than_1_s(
    mosquitto: Mosquitto, captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    lab = write_lab(tmp_path, captures_dir / SINOPE, mosquitto.port, "recorded", 120.0)
    watcher = Watcher(mosquitto.port)
    try:
        proc = hanlab_up(lab)
        watcher.wait_for(lambda msgs: len([m for m in msgs if m.payload["kind"] == "stats"
                                           and m.payload["frames"] > 0]) >= 3)
        kill_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        watcher.close()
    older = [m for m in watcher.messages if m.payload["kind"] == "stats"
             and m.at <= kill_at - 1.0]
    assert older, "no stats event older than 1 s before the kill"
    received_before = int(older[-1].payload["frames"])
    assert received_before > 0
    (out,) = (tmp_path / "out").glob("replay_2.4GHz_*.pcapng")
    written = read_with_tshark(tshark, out)  # asserts tshark reads it without error
    assert len(written) >= received_before
    source = read_with_tshark(tshark, captures_dir / SINOPE, "-c", str(len(written)))
    assert [f.wpan for f in written] == [f.wpan for f in source]


def test_sigterm_stops_cleanly_with_retained_offline_status(
    mosquitto: Mosquitto, captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    lab = write_lab(tmp_path, captures_dir / SINOPE, mosquitto.port, "recorded", 120.0)
    watcher = Watcher(mosquitto.port)
    try:
        proc = hanlab_up(lab)
        watcher.wait_for(lambda msgs: any(m.payload["kind"] == "stats"
                                          and m.payload["frames"] > 0 for m in msgs))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        watcher.wait_for(lambda msgs: any(m.payload["kind"] == "status"
                                          and m.payload["state"] == "offline" for m in msgs))
    finally:
        watcher.close()
    final = final_frames(watcher)
    (out,) = (tmp_path / "out").glob("replay_2.4GHz_*.pcapng")
    assert tshark_count(tshark, out) == final > 0
    # a client arriving later sees the retained status
    late = Watcher(mosquitto.port, "hanlab-test-late")
    try:
        late.wait_for(lambda msgs: any(m.retain and m.payload["kind"] == "status"
                                       for m in msgs), timeout_s=10)
        retained = [m.payload for m in late.messages  # (timings is retained too)
                    if m.retain and m.payload["kind"] == "status"]
        assert retained[-1]["state"] == "offline" and retained[-1]["reason"] == "stopped"
    finally:
        late.close()


def test_embedded_broker_serves_any_client(
    captures_dir: Path, tmp_path: Path
) -> None:
    from tests.integration.conftest import free_port, wait_port

    port = free_port()
    lab = write_lab(tmp_path, captures_dir / SINOPE, port, "recorded", 120.0)
    lab.write_text(f"name: testlab\nrigs: [rig.yaml]\nbroker: {{port: {port}}}\n")
    proc = hanlab_up(lab, "--duration", "20")
    try:
        wait_port(port)
        watcher = Watcher(port)
        try:
            watcher.wait_for(lambda msgs: any(m.payload["kind"] == "stats"
                                              and m.payload["frames"] > 0 for m in msgs))
        finally:
            watcher.close()
        # subscribes after the fact: gets the retained status
        late = Watcher(port, "hanlab-test-late")
        try:
            late.wait_for(lambda msgs: any(m.retain and m.payload["kind"] == "status"
                                           for m in msgs), timeout_s=10)
            assert {m.payload["state"] for m in late.messages if m.retain} == {"online"}
        finally:
            late.close()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_kill_9_right_after_rotations_never_leaves_an_empty_file(
    captures_dir: Path, tshark: str, tmp_path: Path
) -> None:
    """Issue 14 item 12: 50 kills, each within a few ms of a rotation (2 KiB files)."""
    from hanlab.capture.reader import read_frames

    capture = captures_dir / "killerbee__sample_control4-sample.pcap"
    rng = random.Random(14)
    kills = 50
    checked_by_tshark = 0
    started = time.monotonic()
    for run in range(kills):
        out = tmp_path / f"out{run}"
        rig = tmp_path / f"rig{run}.yaml"
        rig.write_text(
            "name: replay\n"
            "sniffers:\n"
            "  - id: sniff-2g4\n    driver: pcap\n    page: 0\n    channel: 15\n"
            f"    settings: {{file: '{capture}', pace: recorded, scale: 200, loop: true}}\n"
            f"capture: {{folder: '{out}', rotate_size_mb: 0.002}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "hanlab.cli", "up", str(rig),
                                 "--quiet", "--no-mqtt"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            want = rng.randint(2, 8)  # kill right after the want-th file appears
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if out.is_dir() and sum(1 for _ in out.glob("*.pcapng")) >= want:
                    break
                time.sleep(0.001)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()
        files = sorted(out.glob("*.pcapng"), key=lambda p: p.stat().st_mtime_ns)
        assert len(files) >= 2
        for path in files:
            assert path.stat().st_size > 0, f"kill {run}: {path.name} is empty"
            list(read_frames(path))  # raises CaptureFormatError if unreadable
        if run % 10 == 0:  # tshark too, on the newest file (the one just rotated to)
            read_with_tshark(tshark, files[-1])
            checked_by_tshark += 1
    assert checked_by_tshark == 5
    assert time.monotonic() - started < 280
