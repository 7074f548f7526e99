"""Firmware distribution on the emulated HAN, in virtual time: every block in the ground
truth, GSME wake windows, resume from the last offset, corrupt image and unreachable
device, the sub-GHz duty-cycle budget, activation (CS06) and the version read (SR 11.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hanlab.emulator.han.content import command_message
from hanlab.emulator.han.ota import OtaSettings
from hanlab.firmware.emulated import emulated_image
from hanlab.gbcs.eui64 import Eui64
from tests.integration.ota_util import ESME, GSME, USER, run_ota_capture


def _events(truth: Any, name: str, **match: object) -> list[dict[str, Any]]:
    return [e for e in truth.events if e["event"] == name
            and all(e.get(k) == v for k, v in match.items())]


def _covered(blocks: list[dict[str, Any]]) -> int:
    covered = 0
    for b in sorted(blocks, key=lambda e: int(e["file_offset"])):
        assert int(b["file_offset"]) <= covered
        covered = max(covered, int(b["file_offset"]) + int(b["octets"]))
    return covered


def test_both_bands_verify_and_every_block_is_in_the_truth(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path)
    truth = run.truth
    for name, band in (("ESME-01-01", "2.4GHz"), ("GSME-02-02", "subGHz")):
        blocks = _events(truth, "ota_block", target=name)
        assert blocks and {b["band"] for b in blocks} == {band}
        assert _covered(blocks) == int(blocks[0]["image_octets"])
        done = _events(truth, "ota_complete", device=name)
        assert len(done) == 1 and done[0]["verified"] is True
        assert [e["alert_code"] for e in _events(truth, "alert_sent", device=name)][-1] \
            == "0x8F72"
        assert _events(truth, "ota_upgrade_end", target=name)[0]["status"] == "SUCCESS"
    assert {code for _, code, _ in run.han.alerts} >= {0x8F72}


def test_gsme_pulls_only_while_awake_and_resumes_at_the_next_wake(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path, images={GSME: None},
                          ota=OtaSettings(gsme_window_s=0.5, min_block_period_ms=100))
    truth = run.truth
    awake: list[tuple[int, int]] = []
    start = None
    for e in truth.events:
        if e.get("device") != "GSME-02-02":
            continue
        if e["event"] == "wake" and start is None:
            start = int(e["ts_ns"])
        elif e["event"] == "sleep" and start is not None:
            awake.append((start, int(e["ts_ns"])))
            start = None
    blocks = _events(truth, "ota_block", target="GSME-02-02")
    assert len(_events(truth, "ota_resume", device="GSME-02-02")) >= 3
    for b in blocks:  # every block served inside a wake window of the GSME
        assert any(a <= int(b["ts_ns"]) <= z for a, z in awake) or (
            start is not None and int(b["ts_ns"]) >= start)
    assert _covered(blocks) == int(blocks[0]["image_octets"])
    assert _events(truth, "ota_complete", device="GSME-02-02")[0]["verified"] is True


def test_an_interruption_resumes_from_the_last_offset(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path, images={ESME: None}, ota=OtaSettings(
        resume_after_s=3.0, block_timeout_s=0.5), faults=[
        {"at_s": 11.0, "kind": "brick", "device": ESME},
        {"at_s": 14.0, "kind": "unbrick", "device": ESME}])
    truth = run.truth
    paused = _events(truth, "ota_paused", device="ESME-01-01")
    resumed = _events(truth, "ota_resume", device="ESME-01-01")
    assert paused and resumed and int(resumed[0]["file_offset"]) > 0
    offsets = [int(b["file_offset"]) for b in _events(truth, "ota_block", target="ESME-01-01")]
    assert offsets == sorted(offsets)  # never restarted from 0
    assert _events(truth, "ota_complete", device="ESME-01-01")[0]["verified"] is True


def test_corrupt_image_fails_verification_with_0x8f1c(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path, images={ESME: None},
                          ota=OtaSettings(corrupt_devices=[ESME]))
    done = _events(run.truth, "ota_complete", device="ESME-01-01")[0]
    assert done["verified"] is False and "signature does not verify" in str(done["reason"])
    assert _events(run.truth, "alert_sent", device="ESME-01-01")[-1]["alert_code"] == "0x8F1C"
    assert _events(run.truth, "ota_upgrade_end")[0]["status"] == "INVALID_IMAGE"


def test_unreachable_device_is_reported(tmp_path: Path) -> None:
    heard: list[tuple[str, str]] = []

    class Listener:
        def firmware_event(self, device: Eui64, event: str, *, request_id: str | None,
                           ts_ns: int, reason: str = "") -> None:
            heard.append((device.duis, event))

    run = run_ota_capture(tmp_path, images={}, duration_s=1, faults=[
        {"at_s": 9.0, "kind": "brick", "device": ESME}])
    assert run.han.ota.distribute(Eui64.parse(ESME), None, requester=USER,
                                  listener=Listener())
    run.han.run_for(60)
    assert heard == [(ESME, "ch_received"), (ESME, "not_delivered")]
    assert _events(run.truth, "ota_failed")[0]["reason"] == "device unreachable"


def test_duty_cycle_budget_makes_the_ch_wait(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path, images={GSME: emulated_image("emu-gsme-a",
                                                                 size_octets=6000)},
                          ota=OtaSettings(duty_cycle_budget_pct=1.0, wait_s=5,
                                          gsme_window_s=5), duration_s=300,
                          han_settings={"duty_cycle": {"window_s": 60.0}})
    waits = _events(run.truth, "ota_wait", target="GSME-02-02")
    assert waits and _events(run.truth, "ota_paused", device="GSME-02-02")
    assert _events(run.truth, "ota_complete", device="GSME-02-02")[0]["verified"] is True
    assert max(float(w["duty_cycle_pct"]) for w in waits) < 1.3  # never Limited


def test_activation_and_version_read(tmp_path: Path) -> None:
    run = run_ota_capture(tmp_path, images={ESME: None})
    han = run.han
    esme = Eui64.parse(ESME)
    for counter, code in ((5001, 0x0012), (5002, 0x0059)):  # CS06 then ECS52 (SR 11.2)
        han.queue_command(esme, command_message(originator=USER, counter=counter, target=esme,
                                                message_code=code, critical=code == 0x0012,
                                                rng=han.rng), source="test")
        han.run_for(5)
    assert _events(run.truth, "ota_activated")[0]["file_version"] == "0x01010000"
    assert _events(run.truth, "alert_sent", device="ESME-01-01")[-1]["alert_code"] == "0x8F66"
    read = [e for e in _events(run.truth, "response_sent", device="ESME-01-01")
            if e["message_code"] == 0x0059]
    assert read[0]["firmware_version"] == "0x01010000"
    # Activating again with nothing verified: 0x8F67.
    han.queue_command(esme, command_message(originator=USER, counter=5003, target=esme,
                                            message_code=0x0012, critical=True, rng=han.rng),
                      source="test")
    han.run_for(5)
    assert _events(run.truth, "alert_sent", device="ESME-01-01")[-1]["alert_code"] == "0x8F67"
