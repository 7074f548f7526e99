"""The campaign report, JUnit, CSV/Parquet and triage bundles from a real multi-job run
(issue 10, items 5-7, done-when; seed 000 Table 9 DIT.EX.3 / EX.5 / EX.8-10, Table 10).

One small campaign runs once for the module on the lab runtime, both bundled emulated rigs
at once (a single-band CH: GSME and PPMID on 2.4 GHz; a dual-band CH: the GSME
``00-DB-12-00-00-00-D2-02`` and the PPMID on sub-GHz, the other GSME on 2.4 GHz), in
CI-sized time. One ESME of the single-band rig has a latency fault so its meter read times
out: the failed steps of that job get triage bundles, read back with tshark. The report
data is assembled here from the real job records as ``campaign_report_data`` will give it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from hanlab.cli import main
from tests.integration.lab_util import ROOT, fast_duis, lab_of, run_job, running_lab

DUAL, SINGLE = "emulated-dual-band", "emulated-single-band"
SLOW_ESME = "00-DB-12-00-00-00-C1-02"
SUBGHZ_GSME = "00-DB-12-00-00-00-D2-02"
PLAN: list[dict[str, Any]] = [
    {"id": "L1", "title": "gas reads, sub-GHz GSME", "rig": DUAL, "scenario": "meter-reading",
     "variants": ["gas-instantaneous"], "devices": {"GSME": SUBGHZ_GSME}, "repeat": 3},
    {"id": "L2", "title": "gas reads, 2.4 GHz GSME", "rig": DUAL, "scenario": "meter-reading",
     "variants": ["gas-instantaneous"], "devices": {"GSME": "00-DB-12-00-00-00-D2-01"},
     "repeat": 3},
    {"id": "L3", "title": "PPMID re-join", "rig": DUAL, "scenario": "ppmid",
     "variants": ["ppmid-rejoin-after-rekey"], "repeat": 3},
    {"id": "L4", "title": "PPMID re-join", "rig": SINGLE, "scenario": "ppmid",
     "variants": ["ppmid-rejoin-after-rekey"], "repeat": 3},
    {"id": "L5", "title": "gas reads", "rig": SINGLE, "scenario": "meter-reading",
     "variants": ["gas-instantaneous"], "devices": {"GSME": "00-DB-12-00-00-00-C2-01"},
     "repeat": 3},
    {"id": "L6", "title": "electricity read, slow ESME", "rig": SINGLE,
     "scenario": "meter-reading", "variants": ["electricity-instantaneous"],
     "devices": {"ESME": SLOW_ESME}},
]
MANUFACTURERS = {"ESME": "Elmeter Ltd", "GSME": "Gasco plc", "PPMID": "Paypoint Devices",
                 "IHD": "Glow Displays", "HCALCS": "Hcal", "CHF": "CSP-N Hubs",
                 "GPF": "CSP-N Hubs"}


def _rig_files(folder: Path) -> Path:
    """The bundled rigs without background traffic, the slow ESME's latency fault; a lab."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (SINGLE, DUAL):
        rig = yaml.safe_load((ROOT / "rigs" / f"{name}.yaml").read_text())
        for sniffer in rig["sniffers"]:
            han = sniffer["settings"]["han"]
            han["traffic"]["enabled"] = False
            if name == SINGLE:  # 200 emulated s = 10 host s of added processing
                han["faults"] = [{"at_s": 0, "kind": "latency", "device": SLOW_ESME,
                                  "duration_s": 200}]
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    lab = folder / "lab.yaml"
    lab.write_text(yaml.safe_dump({"name": "report-test", "rigs": [f"{SINGLE}.yaml",
                                                                   f"{DUAL}.yaml"]}))
    return lab


async def _run(out: Path, lab_file: Path) -> list[dict[str, Any]]:
    lab = lab_of(lab_file, duis=fast_duis(keep_xml=True, response_timeout_s=4.0))
    async with running_lab(lab, out) as runtime:
        async def rig_jobs(rig: str) -> list[dict[str, Any]]:
            records = []
            for line in PLAN:
                if line["rig"] == rig:
                    spec = {k: line[k] for k in ("rig", "scenario", "variants", "repeat")
                            if k in line}
                    records.append(await run_job(runtime, devices=line.get("devices", {}),
                                                 label=line["id"], **spec))
            return records

        per_rig = await asyncio.gather(rig_jobs(DUAL), rig_jobs(SINGLE))
    return [record for records in per_rig for record in records]


def report_data(out: Path, rigs: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The report data of the run, as ``campaign_report_data`` gives it."""
    from hanlab.reports.assemble import rig_record

    rig_list = []
    for name, provider in ((SINGLE, "CSP N"), (DUAL, "CSP C/S")):
        rig = dict(rig_record(rigs / f"{name}.yaml"))
        rig["service_provider"] = provider
        rig["ch_label"] = f"{provider} {'dual' if name == DUAL else 'single'} band CH"
        rig["devices"] = [{**d, "manufacturer": MANUFACTURERS[d["role"]],
                           "firmware_version": "1.4.2", "smets_chts_version": "SMETS2 v3.0",
                           "gbcs_version": "v4.0", "zigbee_stack": "ZigBee Pro 2017",
                           "silicon_vendor": "SiLabs", "cpl_reference": f"CPL-{d['model']}"}
                          for d in rig["devices"]]
        rig_list.append(rig)
    by_line = {line["id"]: [r["id"] for r in records if r["label"] == line["id"]]
               for line in PLAN}
    jobs = []
    for record in records:
        device = next(iter(record["devices"].values()), None)
        band = next((d.get("band") for r in rig_list for d in r["devices"]
                     if d["eui64"] == device), None)
        jobs.append({"record": record, "device": device, "band": band,
                     "plan_line": record["label"], "captures_dir": str(out), "evidence": {}})
    started = min(r["started_ns"] for r in records)
    return {
        "schema": 1,
        "campaign": {"id": "c-test-night-1", "name": "DIT regression, emulated sets",
                     "plan_name": "DIT core (test)", "plan_path": "plans/dit-core.yaml",
                     "operator": "A. Tester", "created_ns": started - 10**9,
                     "started_ns": started, "ended_ns": max(r["ended_ns"] for r in records),
                     "lab": "report-test", "quality_gate_date": "2026-12-14"},
        "rigs": rig_list, "plan": [{**line, "job_ids": by_line[line["id"]]} for line in PLAN],
        "jobs": jobs, "targets": {"4.1": 2.0}, "issues": []}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run (once per module): ``{"out", "rigs", "records", "data"}``."""
    base = tmp_path_factory.mktemp("campaign")
    lab_file = _rig_files(base / "rigs")
    out = base / "lab"
    records = asyncio.run(_run(out, lab_file))
    for record in records:  # exported as `hanlab jobs show ID --json > job.json` does
        (out / "jobs" / record["id"]).mkdir(parents=True, exist_ok=True)
        (out / "jobs" / record["id"] / "job.json").write_text(json.dumps(record))
    return {"out": out, "rigs": base / "rigs", "records": records,
            "data": report_data(out, base / "rigs", records)}


def _failed_job(campaign: dict[str, Any]) -> dict[str, Any]:
    (job,) = [r for r in campaign["records"] if r["label"] == "L6"]
    return job


def test_the_run_is_as_planned(campaign: dict[str, Any]) -> None:
    states = {r["label"]: r["state"] for r in campaign["records"]}
    assert states == {"L1": "passed", "L2": "passed", "L3": "passed", "L4": "passed",
                      "L5": "passed", "L6": "failed"}
    failed = _failed_job(campaign)
    assert [s["outcome"] for s in failed["steps"]] == ["timeout", "timeout"]
    assert all(s["request_id"] for s in failed["steps"])  # kept on a timeout


def test_report_shows_both_bands_heatmap_and_verdicts(campaign: dict[str, Any],
                                                      tmp_path: Path) -> None:
    from lxml import html as lxml_html

    from hanlab.reports.html import render_campaign_report

    text = render_campaign_report(campaign["data"])
    (tmp_path / "report.html").write_text(text)
    for fetch in ("<script", "<link", " src=", "@import", "url(http"):
        assert fetch not in text  # opens offline: nothing fetched
    page = lxml_html.fromstring(text)
    rows = {(r.get("data-band"), r.get("data-role")) for r in page.xpath(
        "//table[@class='timings']//tr[@data-band]")}
    for band in ("2.4GHz", "subGHz"):
        for role in ("GSME", "PPMID"):
            assert (band, role) in rows, (band, role, rows)
    assert {f.get("data-band") for f in page.xpath("//figure[@class='timing-plot']")} == {
        "2.4GHz", "subGHz"}
    assert page.xpath("//figure[@class='timing-plot']/*[local-name()='svg']")

    heatmaps = {t.get("data-ch-variant"): t for t in page.xpath(
        "//section[@id='heatmap']//table[@class='heatmap']")}
    assert set(heatmaps) == {"CSP N single band CH", "CSP C/S dual band CH"}
    single = heatmaps["CSP N single band CH"]
    statuses = {c.get("data-device"): c.get("data-status")
                for c in single.xpath(".//td[@data-status]")}
    assert statuses[SLOW_ESME] == "failed"
    assert statuses["00-DB-12-00-00-00-C1-01"] == "not run"
    dual_cells = heatmaps["CSP C/S dual band CH"].xpath(".//td[@data-status]")
    assert {c.get("data-device") for c in dual_cells if c.get("data-status") == "passed"} >= {
        SUBGHZ_GSME, "00-DB-12-00-00-00-D2-01", "00-DB-12-00-00-00-D4-01"}

    verdicts = {(r.get("data-criterion"), r.get("data-band")): r.get("data-met")
                for r in page.xpath(
                    "//table[@class='verdicts']//tr[@data-criterion]")}
    # dual band: sub-GHz tests (GSME, PPMID re-join: business critical) all executed and
    # passed; on 2.4 GHz the ESMEs were never planned, the 2.4 GHz GSME passed
    assert verdicts[("DIT.EX.5", "subGHz")] == "true"
    assert verdicts[("DIT.EX.5", "2.4GHz")] == "true"
    assert verdicts[("DIT.EX.5", "all")] == "true"
    # single band: the slow ESME failed (no device issue logged), the other never ran
    assert verdicts[("DIT.EX.3", "2.4GHz")] == "false"
    assert "ppmid-rejoin-after-rekey" in page.get_element_by_id("verdicts").text_content()
    # failed steps link their evidence (none built here: the command to build it is shown)
    failed = page.xpath("//section[@id='failed']//tr[@data-job]")
    assert {r.get("data-job") for r in failed} == {_failed_job(campaign)["id"]}
    # traceability: each plan line with its jobs
    lines = {r.get("data-plan-line") for r in page.xpath(
        "//section[@id='traceability']//tr[@data-job]")}
    assert lines == {line["id"] for line in PLAN}
    assert "Gasco plc" in text and "CPL-emu-gsme-b" in text


def test_junit_validates_one_case_per_variant_and_device(campaign: dict[str, Any],
                                                         tmp_path: Path) -> None:
    import xmlschema
    from lxml import etree

    from hanlab.reports.analysis import analyse_campaign
    from hanlab.reports.junit import render_junit
    from hanlab.reports.model import check_report_data

    path = tmp_path / "junit.xml"
    path.write_bytes(render_junit(campaign["data"]))
    xmlschema.XMLSchema(ROOT / "tests" / "data" / "junit-10.xsd").validate(str(path))
    root = etree.parse(str(path)).getroot()
    cases = root.findall(".//testcase")
    cells = [c for c in analyse_campaign(check_report_data(campaign["data"])).cells
             if c.planned or c.executed]
    assert len(cases) == len(cells)
    names = [c.get("name") for c in cases]
    assert len(set(names)) == len(names)
    assert int(root.get("failures")) == 1
    failure = [c for c in cases if c.find("failure") is not None]
    assert SLOW_ESME in failure[0].get("name")
    assert any(c.find("skipped") is not None for c in cases)  # planned, never run


def test_csv_and_parquet_read_back_with_documented_columns(campaign: dict[str, Any],
                                                           tmp_path: Path) -> None:
    import csv

    import pyarrow.parquet as pq

    from hanlab.reports.tables import EXCHANGE_COLUMNS, TIMING_COLUMNS, write_csv, write_parquet

    write_parquet(campaign["data"], tmp_path / "pq")
    write_csv(campaign["data"], tmp_path / "csv")
    exchanges = pq.read_table(tmp_path / "pq" / "exchanges.parquet")
    timings = pq.read_table(tmp_path / "pq" / "timings.parquet")
    assert exchanges.schema.names == [c for c, _ in EXCHANGE_COLUMNS]
    assert timings.schema.names == [c for c, _ in TIMING_COLUMNS]
    total = sum(len(r["exchanges"]) for r in campaign["records"])
    assert exchanges.num_rows == total > 0
    rows = exchanges.to_pylist()
    assert {r["band"] for r in rows} == {"2.4GHz", "subGHz"}
    for row in rows:
        if row["outcome"] == "responded":
            parts = sum(row[f"{k}_ns"] for k in ("downstream", "han_command", "turnaround",
                                                "han_response", "upstream"))
            assert parts == row["end_to_end_ns"]
            if row["sr_variant"].startswith("4.1."):  # targets: {"4.1": 2.0}
                assert row["target_s"] == 2.0
                assert row["over_target"] is (row["end_to_end_ns"] > 2e9)
            else:
                assert row["target_s"] is None and row["over_target"] is None
    with (tmp_path / "csv" / "exchanges.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [c for c, _ in EXCHANGE_COLUMNS]
        assert len(list(reader)) == total
    assert {r["band"] for r in timings.to_pylist()} == {"2.4GHz", "subGHz"}


def _tshark(tshark: str, path: Path, profile: Path, display: str,
            *fields: str) -> list[list[str]]:
    cmd = [tshark, "-n", "-r", str(path), "-Y", display, "-T", "fields",
           "-E", "separator=|", "-E", "occurrence=f"]
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "WIRESHARK_CONFIG_DIR": str(profile)}).stdout
    return [line.split("|") for line in out.splitlines()]


def test_triage_bundle_of_a_failed_step_opens_in_tshark(campaign: dict[str, Any],
                                                        tshark: str, tmp_path: Path) -> None:
    job = _failed_job(campaign)
    record = campaign["out"] / "jobs" / job["id"] / "job.json"
    bundle = tmp_path / "bundle.zip"
    main(["evidence", str(record), "1", "--rig", str(campaign["rigs"] / f"{SINGLE}.yaml"),
          "-o", str(bundle)])
    assert bundle.stat().st_mode & 0o777 == 0o600  # holds the keys
    folder = tmp_path / "bundle"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(folder)
        names = set(archive.namelist())
    assert {"frames.pcapng", "wireshark/zigbee_pc_keys", "duis/01-request.xml",
            "duis/02-ack.xml", "duis/log.json", "timeline.txt", "timeline.html",
            "bundle.json", "README.txt"} <= names
    manifest = json.loads((folder / "bundle.json").read_text())
    request_id = job["steps"][0]["request_id"]
    assert manifest["request_id"] == request_id
    assert manifest["exchange"]["match_level"] == "exact"
    # the step timed out; the late response (the rig's DUIS log) is in the bundle if it came
    assert manifest["exchange"]["outcome"] in ("no_response", "responded")
    exchange_frames = manifest["exchange"]["frames"]
    assert exchange_frames == manifest["frames_of_exchange"] >= 1

    frames = folder / "frames.pcapng"
    profile = folder / "wireshark"
    tagged = _tshark(tshark, frames, profile, f'frame.comment contains "{request_id}"',
                     "frame.number", "frame.comment",
                     "gbcs_message.grouping_header.cra_flag",
                     "gbcs_message.grouping_header.originator_counter")
    assert len(tagged) == exchange_frames
    assert all("SR=4.1.1" in row[1] for row in tagged)
    command = [row for row in tagged if "segment=han_command" in row[1]]
    assert command and len(command) == len(tagged) - len(
        [row for row in tagged if "segment=han_response" in row[1]])
    counter = int(request_id.rsplit(":", 1)[1])
    # the command's GBCS Originator Counter is the RequestID counter (CRA flag 1)
    assert {(row[2], int(row[3])) for row in command if row[3]} == {("0x01", counter)}
    # a response (CRA flag 2) carries the command's Originator Counter
    assert {int(row[3]) for row in tagged if row[3]} == {counter}
    # the other frames of the window are there too, uncommented
    assert len(_tshark(tshark, frames, profile, "frame", "frame.number")) > exchange_frames
    assert "ack in I99" in (folder / "timeline.txt").read_text()


def test_annotate_marks_every_frame_of_every_exchange(campaign: dict[str, Any], tshark: str,
                                                      tmp_path: Path) -> None:
    (job,) = [r for r in campaign["records"] if r["label"] == "L1"]
    captures = [campaign["out"] / name for band in ("2.4GHz", "subGHz")
                for name in job["captures"] if f"_{band}_" in name]
    main(["annotate", *map(str, captures), "--duis-log", job["duis_log"],
          "--rig", str(campaign["rigs"] / f"{DUAL}.yaml"), "-o", str(tmp_path / "ann")])
    annotated = [tmp_path / "ann" / p.name for p in captures]
    profile = tmp_path / "profile"
    profile.mkdir()
    from hanlab.commands.decode import emulated_keyring

    (profile / "zigbee_pc_keys").write_text("\n".join(
        emulated_keyring(campaign["rigs"] / f"{DUAL}.yaml").wireshark_uat_lines()) + "\n")
    for exchange in job["exchanges"]:
        found = sum(len(_tshark(tshark, path, profile,
                                f'frame.comment contains "{exchange["request_id"]}"',
                                "frame.number"))
                    for path in annotated)
        assert found == exchange["frames"], exchange["request_id"]
    # whole captures: as many frames as before
    for before, after in zip(captures, annotated, strict=True):
        assert len(_tshark(tshark, before, profile, "frame", "frame.number")) == len(
            _tshark(tshark, after, profile, "frame", "frame.number"))


def test_report_jobs_command_links_bundles(campaign: dict[str, Any], tmp_path: Path) -> None:
    records = [campaign["out"] / "jobs" / r["id"] / "job.json" for r in campaign["records"]]
    rigs = [campaign["rigs"] / f"{name}.yaml" for name in (SINGLE, DUAL)]
    out = tmp_path / "site" / "report.html"
    main(["report", "jobs", *map(str, records), *[a for r in rigs for a in ("--rig", str(r))],
          "-o", str(out), "--evidence", str(tmp_path / "site" / "evidence"),
          "--junit", str(tmp_path / "site" / "junit.xml")])
    text = out.read_text()
    bundles = sorted((tmp_path / "site" / "evidence").glob("*.zip"))
    assert len(bundles) == 2
    for bundle in bundles:
        assert f'href="evidence/{bundle.name}"' in text
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(campaign["data"]))
    main(["report", "render", str(data_file), "-o", str(tmp_path / "r2.html"),
          "--parquet", str(tmp_path / "pq")])
    assert (tmp_path / "pq" / "timings.parquet").is_file()
    assert "c-test-night-1" in (tmp_path / "r2.html").read_text()


def test_report_in_headless_chromium(campaign: dict[str, Any], tmp_path: Path) -> None:
    """The report file opened in a real headless Chromium (no server: file://): the heatmap
    of both CH variants and a timing plot are rendered, failed cells coloured; a full-page
    screenshot is saved as a test artifact."""
    from selenium.webdriver.common.by import By

    from hanlab.reports.html import render_campaign_report
    from tests.integration.report_browser import report_in_chromium, save_full_page

    report = tmp_path / "report.html"
    report.write_text(render_campaign_report(campaign["data"]), encoding="utf-8")
    with report_in_chromium(report, tmp_path / "chromium-profile") as driver:
        assert len(driver.find_elements(By.CSS_SELECTOR, "#heatmap table.heatmap")) == 2
        cells = driver.find_elements(By.CSS_SELECTOR, "table.heatmap td.cell.failed")
        assert cells and "246, 201, 197" in cells[0].value_of_css_property(
            "background-color")
        save_full_page(driver, "campaign-report.png", tmp_path)


def test_report_has_the_dit8_section_from_the_sub_ghz_captures(
        campaign: dict[str, Any]) -> None:
    """DIT.8 (issue 13 item 4): the dual-band rig's sub-GHz captures of its jobs give each
    transmitter's duty cycle plot and table; the single-band rig has none."""
    from lxml import html as lxml_html

    from hanlab.reports.html import render_campaign_report

    page = lxml_html.fromstring(render_campaign_report(campaign["data"]))
    (section,) = page.xpath("//section[@id='dit8']")
    rigs = [h.get("id") for h in section.xpath(".//h3")]
    dual = [r["name"] for r in campaign["data"]["rigs"] if r["ch_variant"] == "dual_band"]
    assert rigs == [f"dit8-{name}" for name in dual]
    assert section.xpath(".//figure[@class='plot']/*[local-name()='svg']")
    rows = {r.xpath("./td")[0].text_content(): r for r in section.xpath(".//table[1]//tr[td]")}
    assert int(rows["CH"].xpath("./td")[4].text_content()) > 0
