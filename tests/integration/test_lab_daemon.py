"""The lab runtime as the lab service (issue 9, done-when), as users meet it: ``hanlab up``
and the CLI as processes, run from a directory outside the checkout.

* ``hanlab scenario run`` finds the running daemon that serves the rig and runs as its
  job; the report it prints equals ``hanlab analyse`` on the daemon's pcapng files and
  the job's DUIS log;
* a daemon killed mid-job leaves the job ``interrupted`` with its steps kept, and the
  next start does not run it again;
* two daemons (distinct ports, one mosquitto) and a third process that lists every rig
  of both from the broker's retained status;
* jobs queue one at a time per rig, cancel, and refusals name their field.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hanlab.correlate.stats import text_table
from hanlab.labdata import bundled_rig
from hanlab.runtime.service import JobRefusedError, RigBusyError
from tests.integration.conftest import Mosquitto, free_port
from tests.integration.dashboard_backends import LabDaemon
from tests.integration.lab_util import DUAL, finished, lab_of, running_lab, stored_jobs, wait_until

RIG = "emulated-dual-band"


def _api(daemon: LabDaemon, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        daemon.url + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {daemon.token()}",
                 "Content-Type": "application/json"},
        method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def test_scenario_run_is_a_job_of_the_running_daemon(tmp_path: Path) -> None:
    with LabDaemon(tmp_path, free_port(), time_scale=20.0) as daemon:
        proc = subprocess.run(
            ["hanlab", "scenario", "run", "meter-reading", "--rig", RIG, "--variant",
             "electricity-instantaneous", "--variant", "gas-instantaneous"],
            capture_output=True, text=True, timeout=180, cwd=tmp_path, env=daemon.env,
            check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        match = re.search(r"job (j-\S+) queued on emulated-dual-band at (\S+)", proc.stdout)
        assert match and match.group(2) == daemon.url, proc.stdout
        job = _api(daemon, f"/api/v1/jobs/{match.group(1)}")
    assert job["state"] == "passed"
    sent = [s for s in job["steps"] if s["request_id"]]
    assert len(sent) == 4 and all(s["match_level"] == "exact" for s in sent)
    # the report printed is the job's, and equals hanlab analyse on the daemon's files
    out = tmp_path / "out"
    keys, report = tmp_path / "keys.yaml", tmp_path / "report"
    rig_file = bundled_rig(RIG)
    assert rig_file is not None
    subprocess.run(["hanlab", "keys", "emulated", str(rig_file), "-o", str(keys)],
                   check=True, cwd=tmp_path, capture_output=True)
    captures = [str(out / name) for band in ("2.4GHz", "subGHz") for name in job["captures"]
                if f"_{band}_" in name]
    subprocess.run(["hanlab", "analyse", *captures, "--duis-log", job["duis_log"],
                    "--keys", str(keys), "--rig", str(rig_file), "--out", str(report)],
                   check=True, cwd=tmp_path, capture_output=True)
    offline = json.loads((report / "timings.json").read_text())
    assert offline["rows"] == job["timings"]["rows"] and offline["rows"]
    assert text_table(offline["rows"]) in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_killed_daemon_leaves_its_job_interrupted(tmp_path: Path) -> None:
    port = free_port()
    with LabDaemon(tmp_path, port, time_scale=1.0) as daemon:
        job = _api(daemon, "/api/v1/jobs", {"rig": RIG, "scenario": "meter-reading",
                                            "repeat": 20})
        wait_until(lambda: len(_api(daemon, f"/api/v1/jobs/{job['id']}")["steps"]) >= 2,
              120, "two steps done")
        daemon.kill()
        (kept,) = [j for j in stored_jobs(tmp_path / "out") if j["id"] == job["id"]]
        assert kept["state"] == "running" and len(kept["steps"]) >= 2
    with LabDaemon(tmp_path, port, time_scale=1.0) as daemon:
        again = _api(daemon, f"/api/v1/jobs/{job['id']}")
        assert again["state"] == "interrupted" and "daemon stopped" in again["detail"]
        assert again["steps"][:len(kept["steps"])] == kept["steps"]
        time.sleep(1.0)
        rig = _api(daemon, f"/api/v1/rigs/{RIG}")
        assert rig["job"] is None and rig["queued"] == 0  # not run again unless asked
        listed = subprocess.run(["hanlab", "jobs", "list", "--json"], capture_output=True,
                                text=True, check=True, env=daemon.env, cwd=tmp_path)
        assert [j["state"] for j in json.loads(listed.stdout)] == ["interrupted"]
        # ... and an operator asks for it again: a new job, the old record unchanged
        proc = subprocess.run(["hanlab", "jobs", "rerun", job["id"]], capture_output=True,
                              text=True, env=daemon.env, cwd=tmp_path, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        match = re.search(r"job (j-\S+) queued on emulated-dual-band \(rerun of (\S+)\)",
                          proc.stdout)
        assert match and match.group(2) == job["id"], proc.stdout
        new = _api(daemon, f"/api/v1/jobs/{match.group(1)}")
        assert new["rerun_of"] == job["id"] and new["repeat"] == 20
        assert new["state"] in ("queued", "running")
        assert _api(daemon, f"/api/v1/jobs/{job['id']}")["state"] == "interrupted"
        missing = subprocess.run(["hanlab", "jobs", "rerun", "j-nope"], capture_output=True,
                                 text=True, env=daemon.env, cwd=tmp_path, check=False)
        assert missing.returncode == 2 and "j-nope" in missing.stderr
        assert "Traceback" not in missing.stderr


@pytest.mark.mosquitto
def test_two_daemons_one_broker_and_every_rig_found_from_it(tmp_path: Path,
                                                            mosquitto: Mosquitto) -> None:
    daemons = []
    for index, rig in enumerate(("emulated-single-band", "emulated-dual-band")):
        folder = tmp_path / f"host{index}"
        folder.mkdir()
        lab_file = folder / "lab.yaml"
        lab_file.write_text(f"name: multi\nrigs: [{bundled_rig(rig)}]\n"
                            f"broker: {{host: 127.0.0.1, port: {mosquitto.port}}}\n")
        daemons.append(LabDaemon(folder, free_port(), lab_file=lab_file, mqtt=True))
    with daemons[0], daemons[1]:
        def listed() -> list[dict[str, Any]] | None:
            proc = subprocess.run(
                ["hanlab", "rigs", "--broker", f"127.0.0.1:{mosquitto.port}", "--json"],
                capture_output=True, text=True, check=True, cwd=tmp_path)
            found: list[dict[str, Any]] = json.loads(proc.stdout)
            online = [r for r in found if r.get("state") == "online"]
            return online if len(online) == 2 else None

        rigs = wait_until(listed, 30, "both rigs on the broker")
    assert {(r["lab"], r["rig"], r["control_url"]) for r in rigs} == {
        ("multi", "emulated-single-band", daemons[0].url),
        ("multi", "emulated-dual-band", daemons[1].url)}


async def test_jobs_queue_cancel_and_refusals(tmp_path: Path) -> None:
    async with running_lab(lab_of(DUAL), tmp_path) as lab:
        long = lab.submit({"rig": RIG, "scenario": "meter-reading", "repeat": 50})
        behind = lab.submit({"rig": RIG, "scenario": "meter-reading",
                             "variants": ["gas-instantaneous"]})
        assert behind["state"] == "queued" and lab.rig(RIG)["queued"] >= 1
        assert lab.cancel(behind["id"])["state"] == "cancelled"
        for _ in range(1200):
            if len(lab.job(long["id"])["steps"]) >= 2:
                break
            await asyncio.sleep(0.05)
        lab.cancel(long["id"])
        ended = await finished(lab, long["id"], 60)
        assert ended["state"] == "cancelled"
        assert 2 <= ended["progress"]["steps_done"] < ended["progress"]["steps_total"]
        assert lab.job(behind["id"])["steps"] == []  # never ran
        with pytest.raises(RigBusyError, match="already ended"):
            lab.cancel(long["id"])
        refusals = {
            "rig": {"rig": "nope", "scenario": "meter-reading"},
            "scenario": {"rig": RIG, "scenario": "nope"},
            "variants": {"rig": RIG, "scenario": "meter-reading", "variants": ["nope"]},
            "devices.GSME": {"rig": RIG, "scenario": "meter-reading",
                             "devices": {"GSME": "00-DB-12-00-00-00-D1-01"}},
            "devices.PPMID": {"rig": RIG, "scenario": "ppmid",  # a spare is not chosen
                              "devices": {"PPMID": "00-DB-12-00-00-00-D4-02"}},
            "repeat": {"rig": RIG, "scenario": "meter-reading", "repeat": 0},
            "colour": {"rig": RIG, "scenario": "meter-reading", "colour": "red"},
        }
        before = len(lab.jobs())
        for field, spec in refusals.items():
            with pytest.raises(JobRefusedError) as refused:
                lab.submit(spec)
            assert refused.value.field == field
        assert len(lab.jobs()) == before  # nothing queued
        rig = lab.runtimes[RIG]
        rig.sniffer_state["emu-subghz"] = "down"
        rig.sniffer_error["emu-subghz"] = "unplugged"
        with pytest.raises(RigBusyError, match="emu-subghz are down: emu-subghz: unplugged"):
            lab.submit({"rig": RIG, "scenario": "meter-reading"})
        waiting = lab.submit({"rig": RIG, "scenario": "meter-reading", "wait": True,
                              "variants": ["electricity-instantaneous"]})
        rig.sniffer_state["emu-subghz"] = "up"
        assert (await finished(lab, waiting["id"], 60))["state"] == "passed"
