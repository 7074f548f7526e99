"""Every business scenario variant of seed 000 (18 scenarios, 80 variants) and seed 001's
Change of Supplier process runs to a pass on ``rigs/emulated-dual-band.yaml`` as jobs of
the lab runtime (issue 9: the one way a rig runs), through the DUIS client, the emulated
DCC and the emulated HAN, each SR answered (issue 5, item 4, done-when), in CI-sized time
(millisecond DCC latencies, the HAN 20 times faster than real time, GSMEs waking every 2
emulated seconds), each SR correlated live by the rig's correlator from its own
sniffers: every SR sent gets one exchange, exact with all keys wherever its command
crosses the HAN."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hanlab.duis.log import read_duis_log
from hanlab.runtime.lab import LabRuntime
from hanlab.scenarios import SrStep, load_library
from hanlab.scenarios.runner import ScenarioRunner, devices_by_role
from tests.integration.lab_util import (
    DUAL,
    fast_duis,
    finished,
    lab_of,
    run_job,
    running_lab,
    stored_jobs,
)
from tests.unit.test_scenario_library import SEED_000_REQUIREMENT_VARIANTS

HAN_DEVICES = ("ESME", "GSME", "IHD", "PPMID", "HCALCS")


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LabRuntime]:
    async with running_lab(lab_of(DUAL), tmp_path) as runtime:
        yield runtime
        side = runtime.runtimes["emulated-dual-band"].duis
        assert side.dcc.invalid_documents == []
        assert side.client.pending_count == 0


def _failures(jobs: list[dict[str, Any]]) -> list[str]:
    return [f"{s['scenario']}/{s['variant']} step {s['index']} SR {s['sr_variant']}: "
            f"{s['outcome']} {s['detail']}" for job in jobs for s in job["steps"]
            if s["status"] != "passed" and not s["optional"]]


async def test_every_variant_passes(lab: LabRuntime, tmp_path: Path) -> None:
    library = load_library()
    started = time.monotonic()
    queued = [lab.submit({"rig": "emulated-dual-band", "scenario": name})
              for name in library]
    jobs = [await finished(lab, job["id"], timeout_s=120) for job in queued]
    elapsed_s = time.monotonic() - started
    assert not _failures(jobs), "\n".join(_failures(jobs))
    runs = [r for job in jobs for r in job["variant_runs"]]
    seed_000 = [r for r in runs if library[r["scenario"]].seed == "000"
                and r["scenario"] not in SEED_000_REQUIREMENT_VARIANTS]  # DIT.9's own
    assert len(seed_000) == 80 and all(r["passed"] for r in runs)
    assert all(job["state"] == "passed" for job in jobs)
    # Each SR step sent was answered with its expected outcome (no optional step failed).
    sr_steps = [s for job in jobs for s in job["steps"] if s["kind"] == "sr"]
    expected = sum(isinstance(step, SrStep) for s in library.values() for v in s.variants
                   for step in s.steps_of(v))
    assert len(sr_steps) == expected
    unresolved = [s for s in sr_steps if s["status"] == "skipped"]  # no HHT on the rig
    assert len(unresolved) == 8 and all(s["optional"] and "has no HHT" in s["detail"]
                                        for s in unresolved)
    optional_failed = [f"{s['sr_variant']} {s['target_role']}: {s['outcome']} {s['detail']}"
                       for s in sr_steps if s["status"] == "failed"]
    assert not optional_failed, optional_failed
    sent = [s for s in sr_steps if s["request_id"] is not None]
    assert all(s["outcome"] == "I0" for s in sent)
    device_srs = [s for s in sent if s["target_role"] != "DCC"]
    local = [s for s in device_srs if s["local_delivery"] is not None]  # 'no WAN' variants
    assert len(local) == 33 and all(s["local_delivery"] == "delivered" and s["ack_code"]
                                    == "I0" and s["response_code"] is None for s in local)
    assert all(s["response_code"] == "I0" and s["ack_code"] == "I99" for s in device_srs
               if s not in local)
    # Each SR sent was correlated live: one exchange, exact where the command crosses
    # the HAN (all keys known), none where it does not (CHF/GPF's own processing, DCC).
    assert all(s["match_level"] is not None and s["segments_ns"] is not None for s in sent)
    han_srs = [s for s in sent if (s["target_role"] or "").split("#")[0] in HAN_DEVICES]
    not_exact = [f"{s['sr_variant']} -> {s['target_role']} {s['request_id']}: "
                 f"{s['match_level']}" for s in han_srs
                 if not (s["match_level"] == s["command_level"] == s["response_level"]
                         == "exact")]
    assert not not_exact, "\n".join(not_exact)
    assert all(s["match_level"] == "none" for s in sent if s not in han_srs)
    assert {s["band"] for s in han_srs} == {"2.4GHz", "subGHz"}
    rig = lab.runtimes["emulated-dual-band"]
    assert rig.correlator is not None and rig.correlator.late_items == 0
    # One record per job: its exchanges are the SRs it sent, never another job's.
    exchanges = [e for job in jobs for e in job["exchanges"]]
    assert sorted(e["request_id"] for e in exchanges) == sorted(s["request_id"] for s in sent)
    stored_by_id = {r["id"]: r for r in stored_jobs(tmp_path)}
    for job in jobs:
        stored = stored_by_id[job["id"]]
        assert stored == job
        assert stored["state"] == "passed" and len(stored["steps"]) == len(job["steps"])
        assert job["captures"] and all((tmp_path / c).is_file() for c in job["captures"])
        # The job's own DUIS log holds its requests (Critical SRs twice: CV4, CV5).
        log = read_duis_log(job["duis_log"])
        job_sent = {s["request_id"] for s in job["steps"] if s["request_id"]}
        assert job_sent <= {e["request_id_text"] for e in log if e["kind"] == "request"}
    assert rig.duis.dcc.stats.refused == {}
    print(f"\n{len(han_srs)} SRs over the HAN, all exact; "
          f"{len(sent) - len(han_srs)} to the CH or DCC (no HAN command)")
    print(f"\n{len(runs)} variant runs, {len(sent)} SRs answered, "
          f"{len(unresolved)} optional SRs skipped (no HHT on the rig), in {elapsed_s:.1f} s")
    assert elapsed_s < 120


async def test_every_variant_passes_with_the_xsd(tmp_path: Path, corpus_dir: Path) -> None:
    """With the DUIS XSD configured, every request, acknowledgement, response and alert of
    every variant validates (bodies completed from the schema, hanlab.scenarios.xsd_bodies)
    and the emulated DCC refuses none."""
    from hanlab.duis.schema import load_duis_schema

    xsd = corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd"
    load_duis_schema(xsd)
    library = load_library()
    async with running_lab(lab_of(DUAL, duis=fast_duis(xsd=xsd)), tmp_path) as runtime:
        jobs = [await run_job(runtime, 120, rig="emulated-dual-band", scenario=name)
                for name in library]
        assert not _failures(jobs), "\n".join(_failures(jobs))
        side = runtime.runtimes["emulated-dual-band"].duis
        assert side.client.invalid_documents == []
        assert side.dcc.invalid_documents == []
        assert side.dcc.stats.refused == {}
    # 582 of the business scenarios and seed 001's CoS process, 13 of ch-firmware-upgrade
    # (seed 000 DIT.9)
    assert sum(r["srs_answered"] for job in jobs for r in job["variant_runs"]) == 582 + 13


async def test_repeat_and_wait_failure(lab: LabRuntime) -> None:
    """--repeat runs a variant N times; a wait for an alert nobody raises times out and
    fails the variant; an alert in fail_on fails it at once."""
    from hanlab.scenarios.models import Scenario

    job = await run_job(lab, rig="emulated-dual-band", scenario="price-update",
                        variants=["gas"], repeat=2)
    assert job["state"] == "passed"
    assert [r["repetition"] for r in job["variant_runs"]] == [1, 2]
    rig = lab.runtimes["emulated-dual-band"]
    side = rig.duis
    side.pause_traffic(True)  # waits must see only what the SRs cause
    async with ScenarioRunner(side.client, devices_by_role(rig.rig), rig=rig.rig.name,
                              stimulus=side.stimulus) as runner:
        scenario = Scenario.model_validate({
            "name": "waits", "title": "t", "source": "test", "variants": [
                {"id": "silent", "title": "x", "user_role": "IS", "steps": [
                    {"wait_alert": ["0x8F72"], "timeout_s": 0.2, "since": "now"}]},
                {"id": "han-log", "title": "x", "user_role": "IS", "steps": [
                    {"sr": "8.11", "target": "CHF", "params": {"DeviceID": "{IHD}"}},
                    {"wait_alert": ["N25"], "fail_on": ["N24"], "timeout_s": 5}]},
                {"id": "optional", "title": "x", "user_role": "IS", "steps": [
                    {"sr": "4.1.1", "target": "ESME#3", "optional": True},
                    {"sr": "4.1.1", "target": "ESME#2"}]},
            ]})
        silent, han_log, optional = await runner.run(scenario)
    assert not silent.passed and silent.steps[0].outcome == "timeout"
    assert not han_log.passed and han_log.steps[1].outcome == "N24"
    assert optional.passed and optional.steps[0].status == "skipped"
    assert optional.steps[1].status == "passed"


async def test_no_wan_and_change_of_supplier_on_the_emulated_han(lab: LabRuntime) -> None:
    """Issue 13 items 2-3 on the emulated HAN: the 'no WAN' variants pass with the rig's
    WAN marked absent, every device SR delivered by the rig's emulated HHT over the HAN
    (the HAN's ground truth: each command queued from the HHT, none from the DCC); Change
    of Supplier runs with the old and the new supplier as distinct Users and N27 / N17
    reach the old one."""
    rig = lab.runtimes["emulated-dual-band"]
    before = rig.duis.dcc.stats.commands_delivered
    no_wan = await run_job(lab, 120, rig="emulated-dual-band", scenario="no-wan-installation")
    assert not _failures([no_wan]), _failures([no_wan])
    scenario = load_library()["no-wan-installation"]
    steps = [st for v in scenario.variants for st in scenario.steps_of(v)
             if isinstance(st, SrStep)]
    device_srs = [st for st in steps if st.target is not None and "{HHT}" not in str(st.params)]
    local = [s for s in no_wan["steps"] if s["local_delivery"] is not None]
    assert len(local) == len(device_srs) == 33
    # The live correlator ties each local delivery to its HAN frames: exact for the
    # meters, none for the CH's own (nothing crosses the HAN).
    assert {(s["target_role"], s["match_level"], s["command_level"], s["response_level"])
            for s in local} == {("ESME", "exact", "exact", "exact"),
                                ("GSME", "exact", "exact", "exact"),
                                ("CHF", "none", "none", "none"), ("GPF", "none", "none", "none")}
    assert all(s["local_delivery"] == "delivered" and s["ack_code"] == "I0" for s in local)
    assert rig.duis.dcc.stats.commands_delivered == before  # nothing over the SM WAN
    assert rig.duis.hht.stats.delivered == len(local) and rig.duis.dcc.wan_present
    returned = [s for s in no_wan["steps"] if s["sr_variant"] == "8.13"]
    assert len(returned) == sum(st.sr == "8.13" for st in steps) == 16
    assert all(s["status"] == "passed" for s in returned)
    cos = await run_job(lab, 120, rig="emulated-dual-band",
                        scenario="change-of-supplier-process")
    optional_failed = [(s["variant"], s["index"], s["sr_variant"], s["outcome"], s["detail"])
                       for job in (no_wan, cos) for s in job["steps"]
                       if s["status"] == "failed"]
    assert not optional_failed, optional_failed
    users = {u.supplier: u.eui64.duis for u in rig.duis.users if u.role == "IS"}
    waits = [s for s in cos["steps"] if s["kind"] == "wait"]
    assert [s["alert_code"] for s in waits] == ["N27", "N17"] * 2
    assert waits[0]["user_eui64"] == users["old"]
    first_run = cos["steps"][:len(cos["steps"]) // 2]
    senders = [s["user_eui64"] for s in first_run if s["kind"] == "sr"]
    assert senders[:2] == [users["old"]] * 2 and set(senders[2:]) == {users["new"]}
