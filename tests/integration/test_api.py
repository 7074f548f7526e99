"""The control API over loopback (issue 9, item 3): every endpoint, every refusal, the
OpenAPI document checked as OpenAPI and against the running server, TLS, the client, and
the daemon state files (item 4, discovery).

The lab behind the API is :class:`FakeLab`, a small in-test :class:`LabService` with data
in the shapes of :mod:`hanlab.runtime.service`.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from yarl import URL

from hanlab.config.models import ApiConfig
from hanlab.daemon.api import MAX_BODY_BYTES, ApiServer, create_app
from hanlab.daemon.client import ApiClient
from hanlab.daemon.openapi import openapi_document
from hanlab.daemon.statefile import (
    daemon_for_rig,
    find_daemons,
    remove_state,
    write_state,
)
from hanlab.daemon.tokens import TokenStore
from hanlab.errors import BadInputError, HanlabError
from hanlab.runtime.service import JobRefusedError, LabService, NotFoundError, RigBusyError

Json = dict[str, Any]

T0 = 1_796_120_100_000_000_000  # 2026-12-01T10:15:00Z in ns
ESME = "00-DB-12-34-56-78-90-A0"
GSME = "00-DB-12-34-56-78-90-A1"
PCAPNG_SHB = bytes.fromhex(
    "0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")


# --- the fake lab ---------------------------------------------------------------------


def _sniffer(sniffer_id: str, band: str, channel: int | None, page: int = 0) -> Json:
    return {"id": sniffer_id, "driver": "emulated", "band": band, "page": page,
            "channel": channel, "state": "up", "frames": 1234, "frames_per_s": 12.5,
            "bytes": 45678, "fcs_errors": 1, "drops": 0,
            "gaps": [{"gap_start_ns": T0 + 1_000, "gap_end_ns": T0 + 2_000_000,
                      "reason": "sniffer restarted"}],
            "last_error": None}


def _segments(base: int) -> Json:
    return {"end_to_end": base * 10, "downstream": base * 2, "han_command": base,
            "turnaround": base * 4, "han_response": base, "upstream": base * 2}


def _exchange(request_id: str, target: str, role: str) -> Json:
    submitted = T0 + 5_000_000_000
    return {
        "kind": "sr", "request_id": request_id, "sr_variant": "4.1.1", "command_variant": 1,
        "target": target, "device_role": role, "outcome": "responded",
        "match_level": "exact", "command_level": "exact", "response_level": "exact",
        "submitted_ts_ns": submitted, "ack_ts_ns": submitted + 50_000_000, "ack_code": "I99",
        "response_ts_ns": submitted + 900_000_000, "response_code": "I0",
        "command_first_ts_ns": submitted + 100_000_000,
        "command_last_ts_ns": submitted + 120_000_000,
        "command_end_ts_ns": submitted + 121_000_000,
        "response_first_ts_ns": submitted + 400_000_000,
        "response_last_ts_ns": submitted + 420_000_000,
        "response_end_ts_ns": submitted + 421_000_000,
        "band": "2.4GHz", "page": 0, "channel": 11, "frames": 6, "retries": 0, "octets": 420,
        "gbcs_originator_counter": 0x1000000000000001, "message_code": "0x0019",
        "alert_code": None, "segments_ns": _segments(90_000_000),
    }


def _dutycycle() -> Json:
    """A DIT.8 view with one CH state change and one channel move (the monitor's shapes)."""
    from hanlab.correlate.dit8 import Dit8Monitor
    from hanlab.correlate.dutycycle import DutyCycleThresholds
    from hanlab.frames import Band, Frame

    monitor = Dit8Monitor(DutyCycleThresholds(1.0, 1.0, 2.0, 50.0))
    data_from_ch = bytes.fromhex("4188") + b"\x01" + bytes.fromhex("621affff0000") + b"\0" * 90
    for n in range(6):
        page, channel = (28, 12) if n < 4 else (28, 20)
        monitor.feed(Frame(T0 + n * 100_000_000, "sub", Band.SUB_GHZ, page, channel,
                           data_from_ch[:3] + bytes([n]) + data_from_ch[4:], True))
    return monitor.snapshot(samples=10)


def _timings(count: int) -> Json:
    rows = [{"band": "2.4GHz", "sr_variant": "4.1.1", "device_role": "ESME",
             "segment": segment, "count": count, "min_us": 1000.5, "p50_us": 2000.0,
             "p90_us": 3000.0, "p99_us": 3900.25, "max_us": 4000.0,
             "target_s": 30.0 if segment == "end_to_end" else None,
             "within_target": count if segment == "end_to_end" else None,
             "over_target": 0 if segment == "end_to_end" else None}
            for segment in ("end_to_end", "downstream", "turnaround")]
    return {"schema": 1, "exchanges": count, "targets": {"4.1.1": 30.0}, "rows": rows}


def _step(index: int, request_id: str) -> Json:
    started = T0 + index * 1_000_000_000
    return {"index": index, "kind": "sr", "status": "passed", "optional": False,
            "comment": "", "sr_variant": "4.1.1", "sr_name": "Read Instantaneous Import "
            "Registers", "target_role": "ESME", "target_eui64": ESME,
            "user_role": "IS", "request_id": request_id, "command_variant": 1,
            "ack_code": "I99", "response_code": "I0", "outcome": "I0", "alert_code": None,
            "alert_source": None, "stimulus": None, "started_ns": started,
            "ended_ns": started + 900_000_000, "detail": "", "match_level": "exact",
            "command_level": "exact", "response_level": "exact", "band": "2.4GHz",
            "segments_ns": _segments(90_000_000), "scenario": "meter-reading",
            "variant": "read-esme", "repetition": 1, "duration_s": 0.9}


class FakeLab:
    """A :class:`LabService` over fixed data: three rigs (one stopped), two scenarios,
    jobs kept in memory, capture files in ``folder``."""

    RIGS = ("emulated-single-band", "emulated-dual-band", "bench-stopped")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs_by_id: dict[str, Json] = {}
        self.capture_files: dict[str, list[Path]] = {rig: [] for rig in self.RIGS}
        self.fail_with: BaseException | None = None
        for rig in ("emulated-single-band", "emulated-dual-band"):
            for band, suffix in (("2.4GHz", "pcapng"), ("subGHz", "pcap")):
                path = folder / f"{rig}_{band}_20261201T101455Z.{suffix}"
                path.write_bytes(PCAPNG_SHB + os.urandom(3000))
                self.capture_files[rig].append(path)
        (folder / "secret.txt").write_text("not a capture\n")
        self.submit(
            {"rig": "emulated-dual-band", "scenario": "meter-reading", "label": "seed"})
        self.jobs_by_id[next(iter(self.jobs_by_id))].update(
            state="passed", started_ns=T0 + 1, ended_ns=T0 + 60_000_000_000)

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _need_rig(self, name: str) -> None:
        self._check()
        if name not in self.RIGS:
            raise NotFoundError(f"no rig {name!r} in lab default")

    def lab(self) -> Json:
        self._check()
        return {"name": "default", "host": "pc-3", "pid": os.getpid(),
                "control_url": "http://127.0.0.1:8470", "started_ns": T0,
                "rigs": list(self.RIGS)}

    def rigs(self) -> list[Json]:
        return [self.rig(name) for name in self.RIGS]

    def rig(self, name: str) -> Json:
        self._need_rig(name)
        running = [j for j in self.jobs_by_id.values()
                   if j["rig"] == name and j["state"] == "running"]
        queued = sum(1 for j in self.jobs_by_id.values()
                     if j["rig"] == name and j["state"] == "queued")
        return {
            "name": name, "ch_variant": "dual_band" if "dual" in name else "single_band",
            "description": f"the {name} rig", "emulated": "emulated" in name,
            "state": "stopped" if name == "bench-stopped" else "running", "duis": True,
            "sniffers": self.sniffers(name),
            "devices": [{"role": "ESME", "eui64": ESME, "band": "2.4GHz", "name": None,
                         "model": "emu-esme-a", "firmware_version": ""},
                        {"role": "GSME", "eui64": GSME, "band": "2.4GHz", "name": "gas",
                         "model": "emu-gsme-a", "firmware_version": "1.2.3"}],
            "job": _summary(running[0]) if running else None, "queued": queued,
        }

    def sniffers(self, rig: str) -> list[Json]:
        self._need_rig(rig)
        found = [_sniffer("emu-2g4", "2.4GHz", 11)]
        if "dual" in rig:
            found.append(_sniffer("emu-subghz", "subGHz", None, page=28))
        return found

    def events(self, rig: str, limit: int = 100) -> list[Json]:
        self._need_rig(rig)
        events = [{"kind": "started", "sniffer_id": "emu-2g4", "ts_ns": T0 + i,
                   "detail": {"attempt": i}} for i in range(5)]
        events.append({"kind": "gap", "sniffer_id": "emu-2g4", "ts_ns": T0 + 9,
                       "detail": {"reason": "sniffer restarted"}})
        return events[-limit:]

    def exchanges(self, rig: str, limit: int = 100) -> list[Json]:
        self._need_rig(rig)
        return [_exchange(f"90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:{1000 + i}",
                          ESME, "ESME") for i in range(3)][-limit:]

    def timings(self, rig: str) -> Json:
        self._need_rig(rig)
        return _timings(3)

    def ota(self, rig: str) -> list[Json]:
        self._need_rig(rig)
        return [{"event": "ended", "device_short": "0x1a2b", "device_eui64": ESME,
                 "band": "2.4GHz", "manufacturer_code": "0x1234", "image_type": "0x0001",
                 "file_version": "0x00000002", "image_size_octets": 4096,
                 "offset_octets": 4096, "progress": 1.0, "blocks": 64, "retries": 0,
                 "waits": 0, "upgrade_end_status": 0, "start_ns": T0, "ts_ns": T0 + 10**9,
                 "duration_s": 1.0}]

    def dutycycle(self, rig: str) -> Json:
        self._need_rig(rig)
        return _dutycycle()

    def submit(self, spec: Json) -> Json:
        self._check()
        rig = spec["rig"]
        if rig not in self.RIGS:
            raise JobRefusedError("rig", f"no rig {rig!r} in lab default")
        if rig == "bench-stopped":
            raise RigBusyError(f"rig {rig} is stopped", hint="start it with hanlab up")
        scenarios = {s["name"]: s for s in self.scenarios()}
        if spec["scenario"] not in scenarios:
            raise JobRefusedError("scenario", f"no scenario {spec['scenario']!r}")
        known = [v["id"] for v in scenarios[spec["scenario"]]["variants"]]
        variants = spec.get("variants") or known
        for variant in variants:
            if variant not in known:
                raise JobRefusedError("variants", f"no variant {variant!r}")
        number = len(self.jobs_by_id) + 1
        job_id = f"j-20261201T1015{number:02d}-{number:04x}"
        request_id = f"90-B3-D5-1F-30-01-00-00:{ESME}:{1000 + number}"
        job = {
            "id": job_id, "rig": rig, "lab": "default", "scenario": spec["scenario"],
            "variants": variants, "devices": spec.get("devices", {"ESME": ESME}),
            "repeat": spec.get("repeat", 1),
            "include_optional": spec.get("include_optional", True),
            "label": spec.get("label", ""), "state": "queued", "detail": "",
            "submitted_ns": T0 + number, "started_ns": None, "ended_ns": None,
            "progress": {"steps_done": 1, "steps_total": 4, "variant_runs_done": 0,
                         "variant_runs_total": 1, "current": "meter-reading/read-esme #1"},
            "steps": [_step(1, request_id)],
            "variant_runs": [{"scenario": spec["scenario"], "variant": variants[0],
                              "title": "Read the ESME", "repetition": 1, "passed": None,
                              "started_ns": T0, "ended_ns": None, "duration_s": None,
                              "srs_sent": 1, "srs_answered": 1, "failed_steps": []}],
            "exchanges": [_exchange(request_id, ESME, "ESME")], "timings": _timings(1),
            "captures": [p.name for p in self.capture_files[rig]],
            "duis_log": f"jobs/{job_id}/duis.jsonl",
        }
        self.jobs_by_id[job_id] = job
        return copy.deepcopy(job)

    def jobs(self, rig: str | None = None, state: str | None = None,
             limit: int = 100) -> list[Json]:
        self._check()
        found = [_summary(j) for j in reversed(self.jobs_by_id.values())
                 if (rig is None or j["rig"] == rig) and (state is None or j["state"] == state)]
        return found[:limit]

    def job(self, job_id: str) -> Json:
        self._check()
        if job_id not in self.jobs_by_id:
            raise NotFoundError(f"no job {job_id!r}")
        return copy.deepcopy(self.jobs_by_id[job_id])

    def cancel(self, job_id: str) -> Json:
        job = self.job(job_id)
        if job["state"] not in ("queued", "running"):
            raise RigBusyError(f"job {job_id} already ended ({job['state']})")
        self.jobs_by_id[job_id].update(state="cancelled", detail="cancelled by operator",
                                       ended_ns=time.time_ns())
        return self.job(job_id)

    def rerun(self, job_id: str) -> Json:
        old = self.job(job_id)
        new = self.submit({k: old[k] for k in ("rig", "scenario", "variants", "repeat")})
        self.jobs_by_id[new["id"]]["rerun_of"] = job_id
        return self.job(new["id"])

    def captures(self, rig: str) -> list[Json]:
        self._need_rig(rig)
        return [{"name": p.name, "band": p.name.split("_")[1], "size_bytes": p.stat().st_size,
                 "modified_ns": p.stat().st_mtime_ns, "open": False}
                for p in self.capture_files[rig]]

    def capture_path(self, rig: str, name: str) -> Path:
        self._need_rig(rig)
        for path in self.capture_files[rig]:
            if path.name == name:
                return path
        raise NotFoundError(f"no capture file {name!r} of rig {rig}")

    def scenarios(self) -> list[Json]:
        self._check()
        return [{"name": "meter-reading", "seed": "000", "title": "Read the meters",
                 "variants": [{"id": "read-esme", "title": "Read the ESME"},
                              {"id": "read-gsme", "title": "Read the GSME"}]},
                {"name": "prepayment", "seed": "004", "title": "Top up",
                 "variants": [{"id": "top-up", "title": "Add credit"}]}]


def _summary(job: Json) -> Json:
    return {k: copy.deepcopy(v) for k, v in job.items()
            if k not in ("steps", "exchanges", "timings")}


def test_fake_lab_is_a_lab_service(tmp_path: Path) -> None:
    lab: LabService = FakeLab(tmp_path)  # mypy checks the protocol here
    assert lab.lab()["rigs"]


# --- fixtures and helpers -------------------------------------------------------------


class Api:
    """A running API server with its fake lab, tokens and an HTTP session."""

    def __init__(self, server: ApiServer, lab: FakeLab, tokens: TokenStore,
                 session: aiohttp.ClientSession) -> None:
        self.server = server
        self.lab = lab
        self.tokens = tokens
        self.session = session
        self.url = server.url
        self.operator = tokens.token_for("operator")
        self.viewer = next(t.value for t in tokens.tokens if t.role == "viewer")

    def auth(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, token: str | None = "viewer", *,
                   body: Any = None, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        """``(status, JSON body or raw bytes, headers)``; ``token`` ``"viewer"`` and
        ``"operator"`` mean those tokens, anything else is sent as it is."""
        value = {"viewer": self.viewer, "operator": self.operator}.get(token or "", token)
        all_headers = {**self.auth(value), **(headers or {})}
        async with self.session.request(method, self.url + path, json=body, data=data,
                                        headers=all_headers) as response:
            raw = await response.read()
            payload: Any = raw
            if response.content_type == "application/json":
                payload = json.loads(raw)
            return response.status, payload, response.headers


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    store, created = TokenStore.load_or_create(tmp_path / "state" / "api-tokens.json")
    assert created
    return store


@pytest.fixture
async def api(tmp_path: Path, tokens: TokenStore) -> AsyncIterator[Api]:
    folder = tmp_path / "captures"
    folder.mkdir()
    lab = FakeLab(folder)
    config = ApiConfig(host="127.0.0.1", port=0)
    async with ApiServer(lab, config, tokens) as server, aiohttp.ClientSession() as session:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        yield Api(server, lab, tokens, session)


def _registry(document: Json) -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(
        "urn:hanlab-api", Resource.from_contents(document, default_specification=DRAFT202012))
    return registry


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class Contract:
    """Checks answers against the OpenAPI document."""

    def __init__(self, document: Json) -> None:
        self.document = document
        self.registry = _registry(document)

    def response(self, path: str, method: str, status: int) -> tuple[Json, str]:
        """The documented response object and its JSON pointer."""
        responses = self.document["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path}: {status} undocumented"
        pointer = _pointer("", "paths", path, method, "responses", str(status))
        response = responses[str(status)]
        if "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
            name = pointer.rsplit("/", 1)[-1]
            response = self.document["components"]["responses"][name]
        return response, pointer

    def check(self, path: str, method: str, status: int, content_type: str,
              payload: Any) -> None:
        response, pointer = self.response(path, method, status)
        content = response["content"]
        assert content_type in content, f"{method.upper()} {path} {status}: {content_type}"
        if content_type == "application/json":
            ref = "urn:hanlab-api#" + pointer + "/" + _pointer("content", content_type,
                                                                "schema")
            validator = jsonschema.Draft202012Validator({"$ref": ref},
                                                        registry=self.registry)
            errors = sorted(validator.iter_errors(payload), key=str)
            assert not errors, f"{method.upper()} {path} {status}: {errors[0]}"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(openapi_document())


ROUTE_PARAMETERS = {"rig": "emulated-dual-band",
                    "name": "emulated-dual-band_2.4GHz_20261201T101455Z.pcapng"}


# --- the document -------------------------------------------------------------------


def test_openapi_document_is_valid_openapi() -> None:
    document = openapi_document()
    validate_openapi(document)
    assert document["openapi"].startswith("3.1")
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_route_is_documented_and_every_document_path_routed(tokens: TokenStore,
                                                                   tmp_path: Path) -> None:
    app = create_app(FakeLab(tmp_path), tokens)
    routed = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api")}
    documented = {(method, path) for path, item in openapi_document()["paths"].items()
                  for method in item}
    assert routed == documented


async def test_openapi_and_health_need_no_token(api: Api) -> None:
    status, document, headers = await api.call("GET", "/api/openapi.json", None)
    assert status == 200 and document == openapi_document()
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, health, _ = await api.call("GET", "/api/v1/health", None)
    assert (status, health) == (200, {"ok": True})


async def test_every_documented_path_answers_as_documented(api: Api,
                                                           contract: Contract) -> None:
    """Every path and method of the document, called with valid parameters, answers
    a documented status with a body valid against its schema."""
    job_id = next(iter(api.lab.jobs_by_id))
    queued = api.lab.submit({"rig": "emulated-single-band", "scenario": "meter-reading"})
    values = {**ROUTE_PARAMETERS, "id": job_id}
    seen = 0
    for path, item in contract.document["paths"].items():
        for method in item:
            url = path.format(**values)
            body = None
            if (method, path) == ("post", "/api/v1/jobs"):
                body = {"rig": "emulated-dual-band", "scenario": "meter-reading",
                        "variants": ["read-gsme"], "devices": {"GSME": GSME}, "repeat": 2,
                        "include_optional": False, "label": "nightly", "wait": True}
            if (method, path) == ("post", "/api/v1/jobs/{id}/cancel"):
                url = path.format(id=queued["id"])
            status, payload, headers = await api.call(method.upper(), url, "operator",
                                                      body=body)
            assert status in (200, 201), (method, url, status, payload)
            contract.check(path, method, status, headers["Content-Type"].split(";")[0],
                           payload)
            seen += 1
    assert seen == 22


async def test_rig_and_job_answers_are_the_service_results(api: Api) -> None:
    lab = api.lab
    rig = "emulated-dual-band"
    job_id = next(iter(lab.jobs_by_id))
    for path, expected in [
        ("/api/v1/lab", lab.lab()), ("/api/v1/rigs", lab.rigs()),
        (f"/api/v1/rigs/{rig}", lab.rig(rig)),
        (f"/api/v1/rigs/{rig}/sniffers", lab.sniffers(rig)),
        (f"/api/v1/rigs/{rig}/events?limit=2", lab.events(rig, 2)),
        (f"/api/v1/rigs/{rig}/exchanges?limit=1", lab.exchanges(rig, 1)),
        (f"/api/v1/rigs/{rig}/timings", lab.timings(rig)),
        (f"/api/v1/rigs/{rig}/dutycycle", lab.dutycycle(rig)),
        (f"/api/v1/rigs/{rig}/captures", lab.captures(rig)),
        (f"/api/v1/jobs?rig={rig}&state=passed&limit=5", lab.jobs(rig, "passed", 5)),
        ("/api/v1/jobs?state=running", []),
        (f"/api/v1/jobs/{job_id}", lab.job(job_id)),
        (f"/api/v1/jobs/{job_id}/steps", lab.job(job_id)["steps"]),
        (f"/api/v1/jobs/{job_id}/exchanges", lab.job(job_id)["exchanges"]),
        (f"/api/v1/jobs/{job_id}/timings", lab.job(job_id)["timings"]),
        ("/api/v1/scenarios", lab.scenarios()),
    ]:
        status, payload, _ = await api.call("GET", path)
        assert (status, payload) == (200, expected), path
    assert len((await api.call("GET", f"/api/v1/rigs/{rig}/events?limit=1000"))[1]) == 6


async def test_capture_download_streams_the_file(api: Api) -> None:
    rig = "emulated-dual-band"
    for path in api.lab.capture_files[rig]:
        status, payload, headers = await api.call("GET",
                                                  f"/api/v1/rigs/{rig}/captures/{path.name}")
        assert status == 200
        assert payload == path.read_bytes()
        expected = ("application/x-pcapng" if path.suffix == ".pcapng"
                    else "application/vnd.tcpdump.pcap")
        assert headers["Content-Type"] == expected
        assert headers["Content-Disposition"] == f'attachment; filename="{path.name}"'


async def test_dashboard_is_served_beside_the_api(api: Api) -> None:
    """The dashboard's static files (hanlab.daemon.dashboard) need no token; its
    unknown files are answered like every unknown path."""
    pytest.importorskip("hanlab.daemon.dashboard")
    async with api.session.get(api.url + "/", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/dashboard/"
    async with api.session.get(api.url + "/dashboard/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    status, payload, _ = await api.call("GET", "/dashboard/no-such-file.js", None)
    assert status == 404 and payload["error"]["status"] == 404


# --- refusals -------------------------------------------------------------------------


def _protected(document: Json) -> list[tuple[str, str]]:
    job = "j-20261201T101501-0001"
    values = {**ROUTE_PARAMETERS, "id": job}
    return [(method.upper(), path.format(**values))
            for path, item in document["paths"].items() for method, op in item.items()
            if op.get("security") != []]


async def test_no_token_is_401_everywhere(api: Api, contract: Contract) -> None:
    protected = _protected(contract.document)
    assert len(protected) == 20
    for method, path in protected:
        status, payload, headers = await api.call(method, path, None, body={})
        assert status == 401, (method, path)
        assert headers["WWW-Authenticate"] == 'Bearer realm="hanlab"'
        assert payload["error"]["status"] == 401 and payload["error"]["field"] is None
        assert "Bearer" in payload["error"]["message"]


async def test_bad_token_is_401(api: Api) -> None:
    for header in ("Bearer not-a-token", "Bearer " + api.operator[:-1],
                   "Basic " + api.operator, "Bearer", "bearer  ", "Bearer é-token"):
        status, payload, headers = await api.call(
            "GET", "/api/v1/lab", None, headers={"Authorization": header})
        assert status == 401, header
        assert headers["WWW-Authenticate"].startswith('Bearer realm="hanlab"')
        assert set(payload) == {"error"}
    # the scheme is case-insensitive
    status, _, _ = await api.call("GET", "/api/v1/lab", None,
                                  headers={"Authorization": "bEaReR " + api.viewer})
    assert status == 200


async def test_viewer_may_not_submit_or_cancel(api: Api) -> None:
    job_id = next(iter(api.lab.jobs_by_id))
    before = len(api.lab.jobs_by_id)
    for method, path, body in [
        ("POST", "/api/v1/jobs", {"rig": "emulated-dual-band", "scenario": "meter-reading"}),
        ("POST", f"/api/v1/jobs/{job_id}/cancel", None),
    ]:
        status, payload, _ = await api.call(method, path, "viewer", body=body)
        assert status == 403
        assert "role operator" in payload["error"]["message"]
        assert api.viewer not in json.dumps(payload)
    assert len(api.lab.jobs_by_id) == before


async def test_unknown_rig_job_capture_and_path_are_404(api: Api) -> None:
    rig = "emulated-dual-band"
    for path in [
        "/api/v1/rigs/no-such-rig", "/api/v1/rigs/no-such-rig/sniffers",
        "/api/v1/rigs/no-such-rig/events", "/api/v1/rigs/no-such-rig/exchanges",
        "/api/v1/rigs/no-such-rig/timings", "/api/v1/rigs/no-such-rig/captures",
        "/api/v1/rigs/no-such-rig/dutycycle",
        "/api/v1/rigs/-bad/captures", "/api/v1/rigs/" + "r" * 64,
        f"/api/v1/rigs/{rig}/captures/no-such.pcapng",
        f"/api/v1/rigs/{rig}/captures/secret.txt",
        f"/api/v1/rigs/{rig}/captures/..%2Fsecret.txt",
        f"/api/v1/rigs/{rig}/captures/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/api/v1/rigs/{rig}/captures/%2e%2e",
        f"/api/v1/rigs/{rig}/captures/a..b",
        f"/api/v1/rigs/{rig}/captures/..",
        "/api/v1/rigs/no-such-rig/captures/x.pcapng",
        "/api/v1/jobs/j-nope", "/api/v1/jobs/j-nope/steps", "/api/v1/jobs/j-nope/exchanges",
        "/api/v1/jobs/j-nope/timings", "/api/v1/jobs/..", "/api/v1/jobs/%00",
        "/api/v1/nothing", "/api/v2/lab", "/nothing",
    ]:
        status, payload, headers = await api.call("GET", path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("application/json"), path
        assert payload["error"]["status"] == 404
        assert "not a capture" not in json.dumps(payload)
    status, payload, _ = await api.call("POST", "/api/v1/jobs/j-nope/cancel", "operator")
    assert status == 404


async def test_traversal_with_raw_dots_is_404(api: Api) -> None:
    """A client that does not normalise ``..`` (raw request line) gets 404 as well."""
    rig = "emulated-dual-band"
    for raw in (f"/api/v1/rigs/{rig}/captures/../captures/secret.txt",
                f"/api/v1/rigs/{rig}/captures/../../../../etc/passwd"):
        # aiohttp's client would normalise the path; yarl keeps it with encoded=True
        async with api.session.get(URL(api.url + raw, encoded=True),
                                   headers=api.auth(api.viewer)) as response:
            body = await response.read()
            assert response.status == 404, raw
            assert b"not a capture" not in body and b"root:" not in body


async def test_wrong_method_is_405_json(api: Api) -> None:
    status, payload, headers = await api.call("DELETE", "/api/v1/lab")
    assert status == 405 and payload["error"]["status"] == 405
    assert "GET" in headers["Allow"]
    status, payload, _ = await api.call("PUT", "/api/v1/jobs", "operator", body={})
    assert status == 405


async def test_busy_rig_and_ended_job_are_409(api: Api) -> None:
    status, payload, _ = await api.call(
        "POST", "/api/v1/jobs", "operator",
        body={"rig": "bench-stopped", "scenario": "meter-reading"})
    assert status == 409 and "stopped" in payload["error"]["message"]
    ended = next(iter(api.lab.jobs_by_id))
    status, payload, _ = await api.call("POST", f"/api/v1/jobs/{ended}/cancel", "operator")
    assert status == 409 and "already ended" in payload["error"]["message"]


async def test_submit_and_cancel(api: Api, contract: Contract) -> None:
    status, job, _ = await api.call(
        "POST", "/api/v1/jobs", "operator",
        body={"rig": "emulated-single-band", "scenario": "meter-reading",
              "variants": ["read-esme"], "repeat": 3, "label": "x"})
    assert status == 201 and job["state"] == "queued"
    assert (job["repeat"], job["label"], job["variants"]) == (3, "x", ["read-esme"])
    contract.check("/api/v1/jobs", "post", 201, "application/json", job)
    status, cancelled, _ = await api.call("POST", f"/api/v1/jobs/{job['id']}/cancel",
                                          "operator")
    assert status == 200 and cancelled["state"] == "cancelled"
    status, _, _ = await api.call("POST", f"/api/v1/jobs/{job['id']}/cancel", "operator")
    assert status == 409


@pytest.mark.parametrize(("body", "field"), [
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "colour": "red"}, "colour"),
    ({"rig": "emulated-dual-band", "scenario": "no-such"}, "scenario"),
    ({"rig": "no-such-rig", "scenario": "meter-reading"}, "rig"),
    ({"rig": "../etc", "scenario": "meter-reading"}, "rig"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "variants": ["x"]},
     "variants"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading",
      "variants": ["read-esme"] * 101}, "variants"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "repeat": 0}, "repeat"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "repeat": 1001}, "repeat"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "repeat": "2"}, "repeat"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "repeat": True}, "repeat"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "wait": "yes"}, "wait"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "label": "l" * 201},
     "label"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading",
      "devices": {f"R{i}": ESME for i in range(51)}}, "devices"),
    ({"rig": "emulated-dual-band", "scenario": "meter-reading", "devices": {"ESME": 5}},
     "devices"),
    ({"scenario": "meter-reading"}, "rig"),
    ({"rig": 7, "scenario": "meter-reading"}, "rig"),
    ([1, 2], None), ("text", None), (None, None),
])
async def test_refused_job_fields_are_422_naming_the_field(api: Api, body: Any,
                                                           field: str | None) -> None:
    status, payload, _ = await api.call("POST", "/api/v1/jobs", "operator",
                                        data=json.dumps(body).encode(),
                                        headers={"Content-Type": "application/json"})
    assert status == 422, payload
    assert payload["error"]["field"] == field
    if field is not None:
        assert payload["error"]["message"].startswith(field)


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[" * 30000 + b"]" * 30000,
                                  b'{"rig": 1' + b"1" * 5000 + b"}", b"NaN"],
                         ids=["empty", "truncated", "not-utf8", "deep", "huge-int", "nan"])
async def test_unreadable_bodies_are_422(api: Api, data: bytes) -> None:
    status, payload, _ = await api.call("POST", "/api/v1/jobs", "operator", data=data)
    assert status == 422 and payload["error"]["status"] == 422


async def test_oversized_bodies_are_413(api: Api) -> None:
    big = json.dumps({"rig": "emulated-dual-band", "scenario": "meter-reading",
                      "label": "x" * MAX_BODY_BYTES}).encode()
    status, payload, _ = await api.call("POST", "/api/v1/jobs", "operator", data=big)
    assert status == 413 and payload["error"]["status"] == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(20):
            yield b" " * 8192

    async with api.session.post(api.url + "/api/v1/jobs", data=chunks(),
                                headers=api.auth(api.operator)) as response:
        assert response.status == 413
        assert (await response.json())["error"]["status"] == 413
    assert len(api.lab.jobs_by_id) == 1


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"),
    ("limit=-1", "limit"), ("limit=1e3", "limit"), ("limit=" + "9" * 500, "limit"),
    ("limit=1&limit=2", "limit"), ("state=bogus", "state"), ("rig=../x", "rig"),
    ("rig=a&rig=b", "rig"),
])
async def test_bad_query_fields_are_422(api: Api, query: str, field: str) -> None:
    status, payload, _ = await api.call("GET", f"/api/v1/jobs?{query}")
    assert status == 422
    assert payload["error"]["field"] == field
    if field == "limit":
        status, payload, _ = await api.call(
            "GET", f"/api/v1/rigs/emulated-dual-band/events?{query}")
        assert (status, payload["error"]["field"]) == (422, "limit")


async def test_unexpected_errors_are_500_without_details(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    api.lab.fail_with = RuntimeError("database on fire /secret/path")
    with caplog.at_level(logging.ERROR, logger="hanlab.daemon.api"):
        status, payload, _ = await api.call("GET", "/api/v1/lab")
    assert status == 500
    assert "secret" not in json.dumps(payload)
    assert any("internal error" in r.getMessage() and r.exc_info for r in caplog.records)
    api.lab.fail_with = HanlabError("results store unavailable")
    status, payload, _ = await api.call("GET", "/api/v1/rigs")
    assert status == 503 and "results store" in payload["error"]["message"]
    api.lab.fail_with = None
    assert (await api.call("GET", "/api/v1/lab"))[0] == 200  # still serving


async def test_tokens_are_never_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        await api.call("GET", "/api/v1/lab", "wrong-" + api.operator)
        await api.call("POST", "/api/v1/jobs", "viewer", body={"rig": "x"})
        _, job, _ = await api.call(
            "POST", "/api/v1/jobs", "operator",
            body={"rig": "emulated-dual-band", "scenario": "meter-reading"})
        await api.call("POST", f"/api/v1/jobs/{job['id']}/cancel", "operator")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "queued" in text and "by token operator" in text
    for token in (t.value for t in api.tokens.tokens):
        assert token not in text
    assert repr(api.tokens).count(api.operator) == 0


# --- the client -------------------------------------------------------------------------


async def test_client_mirrors_the_service(api: Api, tmp_path: Path) -> None:
    lab = api.lab
    rig = "emulated-dual-band"
    async with ApiClient(api.url, api.operator) as client:
        assert await client.health() == {"ok": True}
        assert (await client.openapi())["openapi"].startswith("3.1")
        assert await client.lab() == lab.lab()
        assert await client.rigs() == lab.rigs()
        assert await client.rig(rig) == lab.rig(rig)
        assert await client.sniffers(rig) == lab.sniffers(rig)
        assert await client.events(rig, limit=3) == lab.events(rig, 3)
        assert await client.exchanges(rig, limit=2) == lab.exchanges(rig, 2)
        assert await client.timings(rig) == lab.timings(rig)
        assert await client.dutycycle(rig) == lab.dutycycle(rig)
        assert await client.captures(rig) == lab.captures(rig)
        assert await client.scenarios() == lab.scenarios()
        job = await client.submit({"rig": rig, "scenario": "meter-reading", "repeat": 2})
        assert await client.job(job["id"]) == lab.job(job["id"])
        assert await client.job_steps(job["id"]) == lab.job(job["id"])["steps"]
        assert await client.job_exchanges(job["id"]) == lab.job(job["id"])["exchanges"]
        assert await client.job_timings(job["id"]) == lab.job(job["id"])["timings"]
        assert [j["id"] for j in await client.jobs(rig=rig, state="queued")] == [job["id"]]
        assert (await client.cancel(job["id"]))["state"] == "cancelled"
        name = lab.capture_files[rig][0].name
        written = await client.download_capture(rig, name, tmp_path)
        assert written == tmp_path / name
        assert written.read_bytes() == lab.capture_files[rig][0].read_bytes()
        other = await client.download_capture(rig, name, tmp_path / "copy.pcapng")
        assert other.read_bytes() == written.read_bytes()


async def test_client_raises_the_service_errors(api: Api, tmp_path: Path) -> None:
    async with ApiClient(api.url, api.operator) as client:
        with pytest.raises(NotFoundError, match="no rig"):
            await client.rig("no-such-rig")
        with pytest.raises(NotFoundError):
            await client.job("j-nope")
        with pytest.raises(NotFoundError):
            await client.download_capture("emulated-dual-band", "nope.pcapng", tmp_path)
        assert not (tmp_path / "nope.pcapng.part").exists()
        with pytest.raises(NotFoundError):
            await client.download_capture("emulated-dual-band", "../x", tmp_path)
        with pytest.raises(RigBusyError, match="stopped"):
            await client.submit({"rig": "bench-stopped", "scenario": "meter-reading"})
        with pytest.raises(JobRefusedError) as refused:
            await client.submit({"rig": "emulated-dual-band", "scenario": "nope"})
        assert refused.value.field == "scenario"
        assert str(refused.value) == "scenario: no scenario 'nope'"
        with pytest.raises(JobRefusedError) as refused:
            await client.submit({"rig": "emulated-dual-band", "scenario": "x", "extra": 1})
        assert refused.value.field == "extra"
        with pytest.raises(JobRefusedError) as refused:
            await client.jobs(limit=5000)
        assert refused.value.field == "limit"
    async with ApiClient(api.url, api.viewer) as client:
        with pytest.raises(HanlabError, match="role operator") as denied:
            await client.submit({"rig": "emulated-dual-band", "scenario": "meter-reading"})
        assert denied.value.hint and "operator token" in denied.value.hint
    async with ApiClient(api.url, "wrong") as client:
        with pytest.raises(HanlabError, match="refused the token"):
            await client.lab()
    async with ApiClient(api.url, None) as client:
        assert await client.health() == {"ok": True}
        with pytest.raises(HanlabError, match="refused the token"):
            await client.lab()


async def test_client_without_a_daemon(tmp_path: Path) -> None:
    from tests.integration.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    async with ApiClient(url, "x", timeout_s=2.0) as client:
        with pytest.raises(HanlabError, match="no hanlab daemon answers at") as error:
            await client.lab()
        assert error.value.hint and "hanlab up" in error.value.hint


async def test_client_times_out(tmp_path: Path) -> None:
    """A server that accepts but never answers: the client gives up after timeout_s."""
    import asyncio

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(65536)
            await asyncio.sleep(10)
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ApiClient(f"http://127.0.0.1:{port}", "x", timeout_s=0.3) as client:
            started = time.monotonic()
            with pytest.raises(HanlabError, match=r"did not answer within 0\.3 s"):
                await client.lab()
            assert time.monotonic() - started < 3
    finally:
        server.close()
        await server.wait_closed()


# --- TLS --------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hanlab test daemon")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "api.crt", folder / "api.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


async def test_tls_with_a_self_signed_certificate(tmp_path: Path, tokens: TokenStore) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    config = ApiConfig(host="127.0.0.1", port=0, tls_certificate_file=cert_file,
                       tls_key_file=key_file)
    (tmp_path / "captures").mkdir()
    lab = FakeLab(tmp_path / "captures")
    async with ApiServer(lab, config, tokens) as server:
        assert server.url.startswith("https://127.0.0.1:") and server.tls
        async with ApiClient(server.url, tokens.token_for("viewer"),
                             ca_file=cert_file) as client:
            assert await client.lab() == lab.lab()
        async with ApiClient(server.url, tokens.token_for("viewer")) as client:
            with pytest.raises(HanlabError, match="cannot be verified") as error:
                await client.lab()  # not in the system store
            assert error.value.hint and "ca_file" in error.value.hint
        plain = server.url.replace("https:", "http:")
        async with ApiClient(plain, tokens.token_for("viewer"), timeout_s=3) as client:
            with pytest.raises(HanlabError):
                await client.lab()  # plain HTTP to a TLS port is refused, never served


async def test_tls_files_that_do_not_match_are_refused(tmp_path: Path,
                                                       tokens: TokenStore) -> None:
    cert_file, _ = _self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = _self_signed(other)
    config = ApiConfig(host="127.0.0.1", port=0, tls_certificate_file=cert_file,
                       tls_key_file=other_key)
    server = ApiServer(FakeLab(other), config, tokens)
    with pytest.raises(BadInputError, match="TLS certificate"):
        await server.start()
    await server.stop()


async def test_port_in_use_is_a_hanlab_error(api: Api, tokens: TokenStore) -> None:
    config = ApiConfig(host="127.0.0.1", port=api.server.port)
    with pytest.raises(HanlabError, match="control API cannot listen"):
        async with ApiServer(api.lab, config, tokens):
            pass


# --- daemon state files -------------------------------------------------------------


def test_state_file_is_written_found_and_removed(tmp_path: Path, tokens: TokenStore) -> None:
    folder = tmp_path / "daemons"
    path = write_state("default", "http://127.0.0.1:8470", ["emulated-dual-band", "r2"],
                       tokens.path, started_ns=T0, folder=folder)
    assert path == folder / f"default-{os.getpid()}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["pid"] == os.getpid() and document["lab"] == "default"
    assert set(document) >= {"lab", "pid", "host", "url", "rigs", "tokens_file",
                             "started_ns"}
    [daemon] = find_daemons(folder)
    assert (daemon.url, daemon.rigs, daemon.tokens_file) == (
        "http://127.0.0.1:8470", ("emulated-dual-band", "r2"), tokens.path)
    assert daemon_for_rig("r2", folder) == daemon
    assert daemon_for_rig("nope", folder) is None
    client = ApiClient.for_daemon(daemon, "operator")
    assert client.url == daemon.url
    remove_state(path)
    remove_state(path)
    assert find_daemons(folder) == []


def test_state_files_of_dead_daemons_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "daemons"
    folder.mkdir(mode=0o700)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = folder / f"default-{child.pid}.json"
    dead.write_text(json.dumps({"lab": "default", "pid": child.pid, "host": "h",
                                "url": "http://127.0.0.1:1", "rigs": ["r"],
                                "tokens_file": None, "started_ns": T0}))
    (folder / "broken-1.json").write_text("{not json")
    live = write_state("other", "http://127.0.0.1:2", ["r"], None, folder=folder)
    found = find_daemons(folder)
    assert [d.path for d in found] == [live]
    assert not dead.exists()
    assert (folder / "broken-1.json").exists()  # unreadable: skipped, left alone
    assert daemon_for_rig("r", folder) == found[0]


def test_state_folder_follows_xdg_runtime_dir(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hanlab.daemon.statefile import state_folder

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert state_folder() == tmp_path / "hanlab" / "daemons"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_folder() == tmp_path / "home" / ".local" / "state" / "hanlab" / "daemons"


# --- the real lab runtime -----------------------------------------------------------


async def _contract_check(client_session: aiohttp.ClientSession, base: str, token: str,
                          contract: Contract, path: str, template: str) -> Any:
    async with client_session.get(base + path,
                                  headers={"Authorization": f"Bearer {token}"}) as response:
        raw = await response.read()
        assert response.status == 200, (path, response.status, raw[:300])
        media = response.content_type
        payload = json.loads(raw) if media == "application/json" else raw
        contract.check(template, "get", 200, media, payload)
        return payload


async def test_api_on_a_real_lab_runtime(tmp_path: Path, contract: Contract,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``labs/default.yaml`` run by :class:`LabRuntime` with its API: the state file
    leads the client to it, every answer keeps the document, a job runs to its end."""
    import asyncio

    from hanlab.config.loader import load_lab
    from tests.integration.lab_util import ROOT, fast_duis, running_lab

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    lab = load_lab(ROOT / "labs" / "default.yaml")
    lab = lab.model_copy(update={"config": lab.config.model_copy(
        update={"duis": fast_duis()})})
    async with running_lab(lab, tmp_path / "out", api=True, api_port=0) as runtime:
        [daemon] = find_daemons()
        assert daemon.url == runtime.api_server.url and daemon.pid == os.getpid()
        assert set(daemon.rigs) == {"emulated-single-band", "emulated-dual-band"}
        assert daemon_for_rig("emulated-dual-band") == daemon
        tokens_file = tmp_path / "state" / "hanlab" / "api-tokens.json"
        assert daemon.tokens_file == tokens_file
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
        operator = TokenStore.load(tokens_file).token_for("operator")
        rig = "emulated-dual-band"
        async with ApiClient.for_daemon(daemon, "operator") as client, \
                aiohttp.ClientSession() as session:
            assert (await client.lab())["control_url"] == daemon.url
            job = await client.submit({"rig": rig, "scenario": "meter-reading",
                                       "label": "api"})
            contract.check("/api/v1/jobs", "post", 201, "application/json", job)
            deadline = time.monotonic() + 120
            while (job := await client.job(job["id"]))["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, job["progress"]
                await asyncio.sleep(0.2)
            assert job["state"] == "passed", job["detail"]
            values = {"rig": rig, "id": job["id"]}
            for template in contract.document["paths"]:
                if "{name}" in template or template == "/api/v1/health":
                    continue
                if "get" not in contract.document["paths"][template]:
                    continue
                await _contract_check(session, daemon.url, operator, contract,
                                      template.format(**values), template)
            assert job["steps"] and job["exchanges"]
            captures = await client.captures(rig)
            assert captures
            # the live DIT.8 monitor on the rig bus: the CH's sub-GHz frames counted
            duty = await client.dutycycle(rig)
            assert duty["transmitters"]["CH"]["frames"] > 0, duty["counts"]
            assert duty["channel"] is not None
            assert (await client.dutycycle("emulated-single-band"))["transmitters"] == {}
            name = captures[0]["name"]
            await _contract_check(session, daemon.url, operator, contract,
                                  f"/api/v1/rigs/{rig}/captures/{name}",
                                  "/api/v1/rigs/{rig}/captures/{name}")
            written = await client.download_capture(rig, name, tmp_path)
            assert written.stat().st_size > 0
            with pytest.raises(RigBusyError, match="already ended"):
                await client.cancel(job["id"])
            with pytest.raises(JobRefusedError) as refused:
                await client.submit({"rig": rig, "scenario": "no-such-scenario"})
            assert refused.value.field == "scenario"
    assert find_daemons() == []  # the state file went with the daemon
