"""Campaigns (issue 10, items 2-4): the overnight plan to completion, a CI subset over
both bands on SQLite and PostgreSQL giving the same report data, kill -9 of the
campaign and of the daemon at random points, and a device suspended when it stops
answering (seed 000 "Suspension Criteria")."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hanlab.campaign.links import InProcessLink
from hanlab.campaign.plan import expand, load_plan
from hanlab.campaign.report import campaign_report_data, campaign_summary
from hanlab.campaign.runner import CampaignRunner, create_campaign, resume_device
from hanlab.emulator.han import FaultEvent
from hanlab.scenarios import load_library
from hanlab.store import open_store
from tests.integration.lab_util import DUAL, fast_duis, lab_of, running_lab, wait_until
from tests.integration.pg_util import Postgres

ROOT = Path(__file__).resolve().parents[2]
OVERNIGHT = ROOT / "plans" / "overnight-emulated.yaml"
RIGS = [ROOT / "rigs" / "emulated-single-band.yaml", ROOT / "rigs" / "emulated-dual-band.yaml"]


def _lab_file(folder: Path, store_url: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab.yaml"
    store = f"store: {{url: '{store_url}'}}\n" if store_url else ""
    path.write_text(f"name: test\nrigs: [{', '.join(str(r) for r in RIGS)}]\n{store}"
                    f"api: {{port: 0, tokens_file: {folder / 'tokens.json'}}}\n")
    return path


def _report(out: Path, campaign_id: str, url: str | None = None) -> dict[str, Any]:
    store = open_store(url, out)
    try:
        return campaign_report_data(store, campaign_id)
    finally:
        store.close()


def _campaign_id(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("campaign c-"), stdout
    return first.split()[1].rstrip(":")


def _run(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["hanlab", "campaign", "run", *map(str, args), "--ignore-window"],
                          capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.mark.timeout(1500)  # 336 jobs: ~5-7 minutes on two cores
def test_overnight_plan_runs_to_completion(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _run(OVERNIGHT, "--out", tmp_path, timeout_s=1800)
    took_s = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = _report(tmp_path, _campaign_id(proc.stdout))
    print(f"overnight-emulated: {data['counts']} in {took_s:.0f} s")
    assert data["campaign"]["state"] == "completed"
    assert all(j["state"] == "done" and j["result"] == "passed" for j in data["jobs"])
    library = {(s.name, v.id) for s in load_library().values() for v in s.variants}
    for rig in ("emulated-single-band", "emulated-dual-band"):
        ran = {(j["scenario"], j["variant"]) for j in data["jobs"] if j["rig"] == rig}
        assert ran == library  # every variant of the library on both rigs
    assert {e for j in data["jobs"] for e in j["involved"]} >= {
        "00-DB-12-00-00-00-D2-02", "00-DB-12-00-00-00-D4-01"}  # sub-GHz GSME and PPMID


def test_ci_subset_on_sqlite_and_postgresql_gives_the_same_report(
        tmp_path: Path, postgres: Postgres) -> None:
    summaries = []
    for name, url in (("sqlite", None), ("pg", postgres.url)):
        lab = _lab_file(tmp_path / name, url)
        proc = _run(OVERNIGHT, "--tag", "ci", "--lab", lab, "--out", tmp_path / name,
                    "--time-scale", "20", timeout_s=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        data = _report(tmp_path / name, _campaign_id(proc.stdout), url)
        assert data["counts"]["passed"] == data["counts"]["planned"] == 8
        bands = {(d["role"], d["band"]) for j in data["jobs"] for d in j["device_records"]}
        assert {("GSME", "subGHz"), ("PPMID", "subGHz"), ("GSME", "2.4GHz")} <= bands
        on_air = {s["band"] for j in data["jobs"] for s in j["record"]["steps"]}
        assert {"2.4GHz", "subGHz"} <= on_air
        assert data["lines"][0]["job_ids"] and data["lines"][0]["file_line"] > 1
        summaries.append(campaign_summary(data))
        _check_report(tmp_path / name, lab, _campaign_id(proc.stdout), browser=url is None)
        if url is not None:
            assert not (tmp_path / name / "hanlab.db").exists()
    assert summaries[0] == summaries[1]


def _check_report(out: Path, lab: Path, campaign_id: str, *, browser: bool = False) -> None:
    """``hanlab campaign report`` from the store: HTML with rows of both bands for the
    GSME and the PPMID, the heatmap, the EX.5 (dual band) verdicts; JUnit and Parquet
    written; with ``browser`` the file rendered in headless Chromium."""
    from lxml import html as lxml_html

    report = out / "report.html"
    proc = subprocess.run(["hanlab", "campaign", "report", campaign_id, "-o", str(report),
                           "--lab", str(lab), "--out", str(out), "--junit",
                           str(out / "junit.xml"), "--parquet", str(out / "tables")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = lxml_html.fromstring(report.read_text())
    rows = {(r.get("data-band"), r.get("data-role")) for r in page.xpath(
        "//table[@class='timings']//tr[@data-band]")}
    assert {("subGHz", "GSME"), ("subGHz", "PPMID"), ("2.4GHz", "GSME")} <= rows, rows
    assert page.xpath("//section[@id='heatmap']//table[@class='heatmap']//td[@data-status]")
    criteria = {r.get("data-criterion") for r in page.xpath(
        "//table[@class='verdicts']//tr[@data-criterion]")}
    assert "DIT.EX.5" in criteria  # the CI lines run on the dual-band rig (EX.5)
    assert (out / "junit.xml").stat().st_size > 0 and list((out / "tables").glob("*.parquet"))
    if browser:  # the file hanlab campaign report wrote, as a lab engineer opens it
        from tests.integration.report_browser import report_in_chromium, save_full_page

        with report_in_chromium(report, out / "chromium-profile") as driver:
            save_full_page(driver, "campaign-report-from-store.png", out)


def test_kill_9_of_campaign_and_daemon_at_random_points(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    (tmp_path / "run").mkdir()
    lab = _lab_file(tmp_path / "lab")
    out = tmp_path / "out"
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: kill-test\nlab: {lab}\nlines:\n"
                    "  - scenarios: [meter-reading, prepayment-top-up/via-wan]\n")
    logs = tmp_path / "logs"
    logs.mkdir()

    def daemon() -> subprocess.Popen[bytes]:
        with (logs / f"daemon-{time.monotonic_ns()}.log").open("wb") as handle:
            proc = subprocess.Popen(
                ["hanlab", "up", str(lab), "--no-mqtt", "-q", "--out", str(out),
                 "--time-scale", "20"], env=env, stdout=subprocess.DEVNULL, stderr=handle)
        wait_until(lambda: list((tmp_path / "run").glob("hanlab/daemons/*.json"))
                  and proc.poll() is None, 60, "the daemon's state file")
        return proc

    def campaign(*args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = logs / f"campaign-{time.monotonic_ns()}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(["hanlab", "campaign", *args, "--lab", str(lab),
                                     "--out", str(out)], env=env, stdout=handle,
                                    stderr=subprocess.STDOUT)
        return proc, log

    rng = random.Random(9)
    deadline = time.monotonic() + 400
    the_daemon = daemon()
    the_campaign, log = campaign("run", str(plan), "--ignore-window")
    text = wait_until(lambda: log.read_text() if "campaign c-" in log.read_text() else "",
                     60, "the campaign's id")
    campaign_id = _campaign_id(text)
    kills: list[str] = []
    try:
        for _ in range(5):
            time.sleep(rng.uniform(1.0, 5.0))
            if the_campaign.poll() is not None:
                break
            victim = rng.choice(["campaign", "daemon"])
            kills.append(victim)
            if victim == "daemon":
                the_daemon.send_signal(signal.SIGKILL)
                the_daemon.wait()
                the_daemon = daemon()
            else:
                the_campaign.send_signal(signal.SIGKILL)
                the_campaign.wait()
                the_campaign, log = campaign("resume", campaign_id)
        assert the_campaign.wait(timeout=max(10.0, deadline - time.monotonic())) == 0, \
            log.read_text()[-3000:]
    finally:
        for proc in (the_campaign, the_daemon):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)
    assert len(kills) == 5, f"the campaign ended after {kills}: make it longer"
    data = _report(out, campaign_id)
    assert data["campaign"]["state"] == "completed"
    store = open_store(None, out)
    try:
        labelled = Counter()
        for record, _ in store.jobs():
            if record["label"].startswith(f"campaign:{campaign_id}:"):
                labelled[(record["label"], record["state"])] += 1
    finally:
        store.close()
    for job in data["jobs"]:  # every planned job finished exactly once, nothing lost
        assert job["state"] == "done" and job["result"] == "passed", job
        label = f"campaign:{campaign_id}:{job['seq']}"
        assert labelled[(label, "passed")] == 1
        assert sum(n for (lbl, state), n in labelled.items() if lbl == label) == len(
            job["attempts"])
        assert [a["state"] for a in job["attempts"][:-1]] == ["interrupted"] * (
            len(job["attempts"]) - 1)
        record = job["record"]
        assert record["progress"]["steps_done"] == record["progress"]["steps_total"]
        assert len(record["variant_runs"]) == 1 and record["steps"]
    print(f"kills {kills}; {data['counts']}")
    (tmp_path / "report.json").write_text(json.dumps(data["counts"]))


async def test_a_device_that_stops_answering_is_suspended(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: brick\nlab: {ROOT / 'labs' / 'default.yaml'}\n"
                    "rigs: [emulated-dual-band]\nsuspension: {no_response_srs: 2}\n"
                    "lines:\n  - scenarios: [meter-reading]\n    priority: [Medium]\n"
                    "    devices: {GSME: first}\n")
    lab = lab_of(DUAL, duis=fast_duis(response_timeout_s=3.0, dcc_response_timeout_s=2.0))
    loaded = dataclasses.replace(load_plan(plan), lab=lab)
    jobs = [j for j in expand(loaded) if j.scenario == "meter-reading"
            and j.variant.startswith("electricity")]
    bricked = "00-DB-12-00-00-00-D1-01"
    async with running_lab(lab, tmp_path) as runtime:
        store = runtime.db
        assert store is not None
        campaign_id = create_campaign(store, loaded, jobs, {"mode": "in-process"})
        han = runtime.runtimes["emulated-dual-band"].duis.han

        def on_event(line: str) -> None:
            if line.startswith("[1/"):  # after the first job: the ESME goes silent
                han.inject(FaultEvent(at_s=0, kind="brick", device=bricked))

        runner = CampaignRunner(store, campaign_id,
                                {"emulated-dual-band": InProcessLink(runtime)},
                                on_event=on_event)
        await runner.run()
        data = campaign_report_data(store, campaign_id)
        (device,) = [d for d in data["devices"] if d["eui64"] == bricked]
        assert device["suspended"]
        assert "2 consecutive SRs without a response" in device["suspended_reason"]
        mine = [j for j in data["jobs"] if bricked in j["involved"]]
        others = [j for j in data["jobs"] if bricked not in j["involved"]]
        assert mine[0]["result"] == "passed"
        assert [j["result"] for j in mine[1:3]] == ["failed", "failed"]
        skipped = mine[3:]
        assert skipped and all(j["state"] == "skipped" and j["detail"].startswith(
            f"device {bricked} (ESME) suspended: 2 consecutive SRs") for j in skipped)
        assert others and all(j["result"] == "passed" for j in others)
        assert data["counts"]["suspended_devices"] == 1
        assert resume_device(store, campaign_id, bricked) == [j["seq"] for j in skipped]


def test_database_lost_mid_campaign_nothing_lost(tmp_path: Path, postgres: Postgres) -> None:
    lab = _lab_file(tmp_path / "lab", postgres.url)
    out = tmp_path / "out"
    log = tmp_path / "campaign.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            ["hanlab", "campaign", "run", str(OVERNIGHT), "--tag", "ci", "--lab", str(lab),
             "--out", str(out), "--ignore-window"], stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "[1/8]" in log.read_text(), 120, "the first job")
        postgres.stop()  # the jobs go on; their records wait in the spool
        wait_until(lambda: "[4/8]" in log.read_text(), 120, "jobs while the database is away")
        postgres.start()
        assert proc.wait(timeout=300) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = _report(out, _campaign_id(log.read_text()), postgres.url)
    assert data["counts"]["passed"] == data["counts"]["planned"] == 8
    assert all(j["record"]["steps"] and j["record"]["state"] == "passed"
               for j in data["jobs"])
    assert not list((out / "store-spool").glob("*.jsonl"))
