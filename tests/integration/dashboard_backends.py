"""Backends for the dashboard's browser test: the real lab daemon (:class:`LabDaemon`,
``hanlab up`` in a subprocess) and a stand-in lab (:class:`FakeLab`, a fake
:class:`LabService` with realistic, time-evolving data, failures and gaps included, and
a minimal control API serving it in a thread).

:class:`FakeLab` follows the shapes of :mod:`hanlab.runtime.service` (its exchanges and
timings are made with the real :class:`~hanlab.correlate.exchange.Exchange` and
:class:`~hanlab.correlate.stats.TimingStats`). :func:`fake_api_app` maps the
``/api/v1`` routes onto it the way :mod:`hanlab.daemon.api` does (bearer tokens, 401, 404,
422), plus the dashboard's own routes. :class:`ServerThread` runs any aiohttp application
on a free loopback port in a background thread, for synchronous (selenium) tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from hanlab.correlate.exchange import Exchange
from hanlab.correlate.stats import TimingStats
from hanlab.daemon.dashboard import add_routes
from hanlab.runtime.service import JobRefusedError, NotFoundError, RigBusyError
from hanlab.scenarios.loader import load_library

Json = dict[str, Any]

RIGS: dict[str, Json] = {
    "emulated-single-band": {
        "ch_variant": "single_band",
        "description": "Emulated single-band CH with ESME, GSME, IHD, PPMID",
        "sniffers": [("emu-2g4", "2.4GHz", 0, 11)],
        "devices": [("CHF", "00-DB-12-00-00-00-C0-01", "2.4GHz", "emu-ch-sb"),
                    ("ESME", "00-DB-12-00-00-00-C1-01", "2.4GHz", "emu-esme-a"),
                    ("GSME", "00-DB-12-00-00-00-C2-01", "2.4GHz", "emu-gsme-a"),
                    ("IHD", "00-DB-12-00-00-00-C3-01", "2.4GHz", "emu-ihd")],
    },
    "emulated-dual-band": {
        "ch_variant": "dual_band",
        "description": "Emulated dual-band CH with 2 ESME, 2 GSME, IHD, PPMID, HCALCS",
        "sniffers": [("emu-2g4", "2.4GHz", 0, 11), ("emu-subghz", "subGHz", 28, 12)],
        "devices": [("CHF", "00-DB-12-00-00-00-D0-01", "2.4GHz", "emu-ch-db"),
                    ("ESME", "00-DB-12-00-00-00-D1-01", "2.4GHz", "emu-esme-a"),
                    ("ESME", "00-DB-12-00-00-00-D1-02", "2.4GHz", "emu-esme-b"),
                    ("GSME", "00-DB-12-00-00-00-D2-01", "2.4GHz", "emu-gsme-a"),
                    ("GSME", "00-DB-12-00-00-00-D2-02", "subGHz", "emu-gsme-b"),
                    ("PPMID", "00-DB-12-00-00-00-D4-01", "subGHz", "emu-ppmid")],
    },
}

_SR_VARIANTS = ("4.1.1", "4.16", "4.8.1", "6.2.7")
_USER = "90-B3-D5-1F-30-01-00-00"
_MS = 1_000_000


class FakeLab:
    """A lab of two emulated rigs whose traffic, exchanges and jobs advance with time.

    Args:
        exchange_interval_s: one background SR exchange per rig this often.
        step_s: how long each job step takes.
    """

    def __init__(self, *, exchange_interval_s: float = 0.5, step_s: float = 0.35) -> None:
        self._lock = threading.Lock()
        self._rand = random.Random(9)
        self._started_ns = time.time_ns()
        self._interval_ns = int(exchange_interval_s * 1e9)
        self._step_ns = int(step_s * 1e9)
        self._counter = itertools.count(1000)
        self._exchanges: dict[str, list[Exchange]] = {name: [] for name in RIGS}
        self._next_ns: dict[str, int] = {}
        self._jobs: dict[str, Json] = {}
        self._library = load_library()
        for name in RIGS:
            # history: 40 exchanges over the last 20 s, so the page has data at once
            start = self._started_ns - 40 * self._interval_ns
            for k in range(40):
                self._exchanges[name].append(self._make_exchange(name, start + k *
                                                                 self._interval_ns))
            self._next_ns[name] = self._started_ns

    # ------------------------------------------------------------------ simulation

    def _make_exchange(self, rig: str, submitted_ns: int, *, role: str | None = None,
                       sr_variant: str | None = None) -> Exchange:
        rand = self._rand
        devices = [d for d in RIGS[rig]["devices"] if d[0] in ("ESME", "GSME")]
        if role is not None:
            devices = [d for d in devices if d[0] == role] or devices
        device = rand.choice(devices)
        band = device[2]
        slow = 2.6 if band == "subGHz" else 1.0
        downstream = int(rand.lognormvariate(4.6, 0.25) * _MS)           # ~100 ms
        han_command = int(rand.uniform(6, 14) * slow * _MS)
        turnaround = int(rand.lognormvariate(5.5, 0.35) * _MS * (2.0 if device[0] == "GSME"
                                                                else 1.0))
        han_response = int(rand.uniform(8, 30) * slow * _MS)
        upstream = int(rand.lognormvariate(4.4, 0.3) * _MS)
        no_response = rand.random() < 0.03
        cmd_first = submitted_ns + downstream
        cmd_end = cmd_first + han_command
        resp_first = cmd_end + turnaround
        resp_end = resp_first + han_response
        response_ns = resp_end + upstream
        counter = next(self._counter)
        return Exchange(
            kind="sr", request_id=f"{_USER}:{device[1]}:{counter}",
            sr_variant=sr_variant or rand.choice(_SR_VARIANTS), command_variant=1,
            target=device[1], device_role=device[0],
            outcome="no_response" if no_response else "responded",
            match_level="exact" if not no_response else "none",
            command_level="exact", response_level="exact" if not no_response else "none",
            submitted_ts_ns=submitted_ns, ack_ts_ns=submitted_ns + 40 * _MS, ack_code="I99",
            response_ts_ns=None if no_response else response_ns,
            response_code=None if no_response else "I0",
            command_first_ts_ns=cmd_first, command_last_ts_ns=cmd_end - 4 * _MS,
            command_end_ts_ns=cmd_end,
            response_first_ts_ns=None if no_response else resp_first,
            response_last_ts_ns=None if no_response else resp_end - 4 * _MS,
            response_end_ts_ns=None if no_response else resp_end,
            band=band, page=0 if band == "2.4GHz" else 28, channel=11 if band == "2.4GHz"
            else 12, frames=6, retries=0, octets=412, gbcs_originator_counter=counter,
            message_code="0x0027", alert_code=None)

    def _advance(self) -> None:
        now = time.time_ns()
        for rig in RIGS:
            while self._next_ns[rig] <= now:
                self._exchanges[rig].append(self._make_exchange(rig, self._next_ns[rig]))
                self._next_ns[rig] += self._interval_ns
            del self._exchanges[rig][:-2000]
        for job in self._jobs.values():
            self._advance_job(job, now)

    def _advance_job(self, job: Json, now: int) -> None:
        if job["state"] not in ("queued", "running"):
            return
        if job["state"] == "queued":
            job.update(state="running", started_ns=job["submitted_ns"] + 200 * _MS)
        plan: list[tuple[str, int, str]] = job["_plan"]
        done = min(len(plan), max(0, (now - job["started_ns"]) // self._step_ns))
        while len(job["steps"]) < done:
            index = len(job["steps"])
            variant, repetition, sr = plan[index]
            started = job["started_ns"] + index * self._step_ns
            role = "GSME" if "gas" in variant else "ESME"
            exchange = self._make_exchange(job["rig"], started, role=role, sr_variant=sr)
            failed = index == 2  # one failing step, so the page shows a failure
            position = sum(1 for p in plan[:index] if p[:2] == (variant, repetition)) + 1
            job["steps"].append({
                "index": position, "kind": "sr", "status": "failed" if failed else "passed",
                "optional": False, "sr_variant": sr, "sr_name": "Read Instantaneous "
                "Import Registers", "target_role": role, "target_eui64": exchange.target,
                "user_role": "IS", "request_id": exchange.request_id, "command_variant": 1,
                "ack_code": "I99", "response_code": "E53" if failed else "I0",
                "outcome": "E53" if failed else "I0", "alert_code": None,
                "started_ns": started, "ended_ns": started + self._step_ns - 10 * _MS,
                "detail": "expected I0, got E53" if failed else "",
                "match_level": "exact", "band": exchange.band,
                "segments_ns": exchange.segments_ns(), "scenario": job["scenario"],
                "variant": variant, "repetition": repetition,
                "duration_s": self._step_ns / 1e9})
            job["exchanges"].append({**exchange.to_dict(), "segments_ns":
                                     exchange.segments_ns()})
            self._exchanges[job["rig"]].append(exchange)
        runs_done = sum(1 for k in range(len(job["steps"]))
                        if k + 1 == len(plan) or plan[k + 1][:2] != plan[k][:2])
        job["progress"] = {"steps_done": len(job["steps"]), "steps_total": len(plan),
                           "variant_runs_done": runs_done,
                           "variant_runs_total": len({p[:2] for p in plan}),
                           "current": "" if done == len(plan) else
                           f"{job['scenario']}/{plan[done][0]} #{plan[done][1]}"}
        job["variant_runs"] = self._variant_runs(job)
        if done == len(plan):
            failed = any(s["status"] == "failed" for s in job["steps"])
            job.update(state="failed" if failed else "passed", ended_ns=now,
                       detail="1 step failed" if failed else "")

    def _variant_runs(self, job: Json) -> list[Json]:
        runs: dict[tuple[str, int], list[Json]] = {}
        for step in job["steps"]:
            runs.setdefault((step["variant"], step["repetition"]), []).append(step)
        return [{"scenario": job["scenario"], "variant": v, "title": v, "repetition": r,
                 "passed": all(s["status"] != "failed" for s in steps),
                 "started_ns": steps[0]["started_ns"], "ended_ns": steps[-1]["ended_ns"],
                 "duration_s": (steps[-1]["ended_ns"] - steps[0]["started_ns"]) / 1e9,
                 "srs_sent": len(steps), "srs_answered": len(steps),
                 "failed_steps": [s["index"] for s in steps if s["status"] == "failed"]}
                for (v, r), steps in runs.items()]

    # ------------------------------------------------------------------ LabService

    def lab(self) -> Json:
        """The lab."""
        return {"name": "default", "host": "lab-pc-3", "pid": 4242,
                "control_url": "http://127.0.0.1:8470", "started_ns": self._started_ns,
                "rigs": list(RIGS)}

    def rigs(self) -> list[Json]:
        """Every rig."""
        return [self.rig(name) for name in RIGS]

    def rig(self, name: str) -> Json:
        """One rig."""
        spec = self._spec(name)
        with self._lock:
            self._advance()
            running = [j for j in self._jobs.values()
                       if j["rig"] == name and j["state"] == "running"]
            queued = sum(1 for j in self._jobs.values()
                         if j["rig"] == name and j["state"] == "queued")
            job = self._summary(running[0]) if running else None
        return {"name": name, "ch_variant": spec["ch_variant"],
                "description": spec["description"], "state": "running", "emulated": True,
                "duis": True, "sniffers": self.sniffers(name),
                "devices": [{"role": r, "eui64": e, "band": b, "name": None, "model": m,
                             "firmware_version": ""} for r, e, b, m in spec["devices"]],
                "job": job, "queued": queued}

    def sniffers(self, rig: str) -> list[Json]:
        """The rig's sniffers."""
        elapsed_s = (time.time_ns() - self._started_ns) / 1e9
        result = []
        for k, (sid, band, page, channel) in enumerate(self._spec(rig)["sniffers"]):
            rate = (14.0 if band == "2.4GHz" else 6.0) + 3 * ((int(elapsed_s) + k) % 4)
            gaps = [] if band == "2.4GHz" else [
                {"gap_start_ns": self._started_ns - 12_000 * _MS,
                 "gap_end_ns": self._started_ns - 11_250 * _MS,
                 "reason": "sniffer stopped answering (USB reset)"}]
            result.append({"id": sid, "driver": "emulated", "band": band, "page": page,
                           "channel": channel, "state": "up",
                           "frames": int(900 + rate * elapsed_s), "frames_per_s": rate,
                           "bytes": int(38_000 + 42 * rate * elapsed_s),
                           "fcs_errors": 0 if band == "2.4GHz" else 3, "drops": 0,
                           "gaps": gaps, "last_error": None})
        return result

    def events(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's source events."""
        events: list[Json] = []
        for sid, band, _page, _channel in self._spec(rig)["sniffers"]:
            events.append({"kind": "started", "sniffer_id": sid,
                           "ts_ns": self._started_ns - 30_000 * _MS, "detail": {}})
            if band == "subGHz":
                events += [
                    {"kind": "gap", "sniffer_id": sid, "ts_ns": self._started_ns - 11_250
                     * _MS, "detail": {"gap_ms": 750, "reason": "USB reset"}},
                    {"kind": "damaged", "sniffer_id": sid, "ts_ns": self._started_ns
                     - 5_000 * _MS, "detail": {"fcs_errors": 3}}]
        events.sort(key=lambda e: int(e["ts_ns"]))
        return events[-limit:]

    def exchanges(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest exchanges."""
        self._spec(rig)
        with self._lock:
            self._advance()
            latest = self._exchanges[rig][-limit:]
        return [{**x.to_dict(), "segments_ns": x.segments_ns()} for x in latest]

    def timings(self, rig: str) -> Json:
        """The rig's timing summary."""
        self._spec(rig)
        stats = TimingStats({"4.1": 3.0, "*": 30.0})
        with self._lock:
            self._advance()
            stats.add_all(self._exchanges[rig])
        return stats.summary()

    def submit(self, spec: Json) -> Json:
        """Queue a job."""
        rig = spec.get("rig")
        if rig not in RIGS:
            raise JobRefusedError("rig", f"no rig {rig!r} in this lab")
        scenario = self._library.get(str(spec.get("scenario")))
        if scenario is None:
            raise JobRefusedError("scenario", f"no scenario {spec.get('scenario')!r}")
        variants = list(spec.get("variants") or [v.id for v in scenario.variants][:3])
        known = {v.id for v in scenario.variants}
        for variant in variants:
            if variant not in known:
                raise JobRefusedError("variants", f"{scenario.name} has no {variant!r}")
        repeat = int(spec.get("repeat", 1))
        if not 1 <= repeat <= 100:
            raise JobRefusedError("repeat", f"must be 1..100, not {repeat}")
        now = time.time_ns()
        job_id = f"j-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{len(self._jobs):04x}"
        plan = [(v, r, sr) for r in range(1, repeat + 1) for v in variants
                for sr in ("4.1.1", "4.8.1")]
        job: Json = {"id": job_id, "rig": rig, "lab": "default", "scenario": scenario.name,
                     "variants": variants, "devices": {}, "repeat": repeat,
                     "include_optional": True, "label": str(spec.get("label", "")),
                     "state": "queued", "detail": "", "submitted_ns": now,
                     "started_ns": None, "ended_ns": None,
                     "progress": {"steps_done": 0, "steps_total": len(plan),
                                  "variant_runs_done": 0,
                                  "variant_runs_total": len(variants) * repeat,
                                  "current": ""},
                     "steps": [], "variant_runs": [], "exchanges": [],
                     "captures": [f"{rig}_2.4GHz_20261201T101455Z.pcapng"],
                     "duis_log": f"jobs/{job_id}/duis.jsonl", "_plan": plan}
        with self._lock:
            self._jobs[job_id] = job
            return self._full(job)

    def jobs(self, rig: str | None = None, state: str | None = None,
             limit: int = 100) -> list[Json]:
        """Job summaries, newest first."""
        with self._lock:
            self._advance()
            found = [self._summary(j) for j in reversed(self._jobs.values())
                     if rig in (None, j["rig"]) and state in (None, j["state"])]
        return found[:limit]

    def job(self, job_id: str) -> Json:
        """One job."""
        with self._lock:
            self._advance()
            if job_id not in self._jobs:
                raise NotFoundError(f"no job {job_id}")
            return self._full(self._jobs[job_id])

    def cancel(self, job_id: str) -> Json:
        """Cancel a job."""
        with self._lock:
            self._advance()
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            if job["state"] not in ("queued", "running"):
                raise RigBusyError(f"job {job_id} already {job['state']}")
            job.update(state="cancelled", ended_ns=time.time_ns(), detail="cancelled")
            return self._full(job)

    def captures(self, rig: str) -> list[Json]:
        """The rig's capture files."""
        return [{"name": f"{rig}_{band}_20261201T101455Z.pcapng", "band": band,
                 "size_bytes": 182_345 + 1000 * k, "modified_ns": time.time_ns(),
                 "open": True}
                for k, (_sid, band, _p, _c) in enumerate(self._spec(rig)["sniffers"])]

    def ota(self, rig: str) -> list[Json]:
        """The rig's OTA transfers (:mod:`hanlab.firmware.live` payloads): on the
        dual-band rig a sub-GHz GSME image in flight (1 % a second, WAIT_FOR_DATA answers
        from the duty-cycle budget) and an ESME image refused INVALID_IMAGE."""
        self._spec(rig)
        if rig != "emulated-dual-band":
            return []
        now = time.time_ns()
        size = 98_304
        offset = min(size, int(size * (0.4 + (now - self._started_ns) / 100e9)))
        start = self._started_ns - 160_000 * _MS

        def transfer(device: tuple[str, str, str, str], short: str, **fields: Any) -> Json:
            return {"device_short": short, "device_eui64": device[1], "band": device[2],
                    "manufacturer_code": "0x1DB1", "image_type": "0x0101",
                    "file_version": "0x01020000", "start_ns": start, **fields}

        esme, gsme = RIGS[rig]["devices"][1], RIGS[rig]["devices"][4]
        return [
            transfer(gsme, "0x6b21", event="ended" if offset == size else "progress",
                     image_size_octets=size, offset_octets=offset,
                     progress=round(offset / size, 4), blocks=offset // 48, retries=2,
                     waits=offset // 4096, upgrade_end_status=None, ts_ns=now,
                     duration_s=(now - start) / 1e9),
            transfer(esme, "0x259d", event="ended", image_size_octets=3072,
                     offset_octets=3072, progress=1.0, blocks=48, retries=0, waits=0,
                     upgrade_end_status=0x96, ts_ns=start + 9_000 * _MS, duration_s=9.0),
        ]

    def scenarios(self) -> list[Json]:
        """The scenario library."""
        return [{"name": s.name, "seed": s.seed, "title": s.title,
                 "variants": [{"id": v.id, "title": v.title} for v in s.variants]}
                for s in self._library.values()]

    # ------------------------------------------------------------------ helpers

    def _spec(self, rig: str) -> Json:
        if rig not in RIGS:
            raise NotFoundError(f"no rig {rig}")
        return RIGS[rig]

    @staticmethod
    def _full(job: Json) -> Json:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    @staticmethod
    def _summary(job: Json) -> Json:
        return {k: v for k, v in job.items()
                if not k.startswith("_") and k not in ("steps", "exchanges", "timings")}


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    """A refusal as :mod:`hanlab.daemon.api` answers it."""
    return web.json_response({"error": {"status": status, "message": message,
                                        "field": field}}, status=status)


def fake_api_app(lab: FakeLab, tokens: set[str]) -> web.Application:
    """The control API's routes over ``lab`` (bearer tokens), plus the dashboard."""

    @web.middleware
    async def auth(request: web.Request,
                   handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in tokens:
                return _error(401, "missing or bad bearer token")
            try:
                response: web.StreamResponse = await handler(request)
            except NotFoundError as error:
                return _error(404, str(error))
            except JobRefusedError as error:
                return _error(422, str(error), error.field)
            except RigBusyError as error:
                return _error(409, str(error))
            return response
        result: web.StreamResponse = await handler(request)
        return result

    def limit(request: web.Request) -> int:
        return max(1, min(1000, int(request.query.get("limit", "100"))))

    def get(path: str, fn: Callable[[web.Request], Any]) -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(fn(request))
        app.router.add_get(path, handler)

    app = web.Application(middlewares=[auth])
    get("/api/v1/lab", lambda r: lab.lab())
    get("/api/v1/rigs", lambda r: lab.rigs())
    get("/api/v1/rigs/{rig}", lambda r: lab.rig(r.match_info["rig"]))
    get("/api/v1/rigs/{rig}/sniffers", lambda r: lab.sniffers(r.match_info["rig"]))
    get("/api/v1/rigs/{rig}/events", lambda r: lab.events(r.match_info["rig"], limit(r)))
    get("/api/v1/rigs/{rig}/exchanges",
        lambda r: lab.exchanges(r.match_info["rig"], limit(r)))
    get("/api/v1/rigs/{rig}/timings", lambda r: lab.timings(r.match_info["rig"]))
    get("/api/v1/rigs/{rig}/captures", lambda r: lab.captures(r.match_info["rig"]))
    get("/api/v1/rigs/{rig}/ota", lambda r: lab.ota(r.match_info["rig"]))
    get("/api/v1/jobs", lambda r: lab.jobs(r.query.get("rig"), r.query.get("state"),
                                           limit(r)))
    get("/api/v1/jobs/{id}", lambda r: lab.job(r.match_info["id"]))
    get("/api/v1/scenarios", lambda r: lab.scenarios())

    async def submit(request: web.Request) -> web.Response:
        return web.json_response(lab.submit(await request.json()), status=201)

    async def cancel(request: web.Request) -> web.Response:
        return web.json_response(lab.cancel(request.match_info["id"]))

    app.router.add_post("/api/v1/jobs", submit)
    app.router.add_post("/api/v1/jobs/{id}/cancel", cancel)
    add_routes(app)
    return app


class ServerThread:
    """Serve an aiohttp application on ``127.0.0.1:port`` from a background thread.

    Args:
        make_app: builds the application (called inside the thread's event loop).
        port: the port to listen on.
    """

    def __init__(self, make_app: Callable[[], web.Application], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._make_app = make_app
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-server",
                                        daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"test server did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._make_app())
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


class LabDaemon:
    """``hanlab up`` (the bundled emulated lab) as a subprocess with its control API on
    a free port, no MQTT, and its tokens, state file and output under ``folder``.

    Args:
        folder: a fresh folder (``out/``, ``state/``, ``run/`` are made in it).
        port: the API's port.
        time_scale: emulated seconds per host second (sleepy GSMEs wake sooner).
    """

    def __init__(self, folder: Path, port: int, *, time_scale: float = 1.0,
                 lab_file: Path | None = None, mqtt: bool = False,
                 out: Path | None = None) -> None:
        self.folder = folder
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.time_scale = time_scale
        self.lab_file = lab_file
        self.mqtt = mqtt
        self.out = out or folder / "out"
        self.log_path = folder / "hanlab-up.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LabDaemon:
        run = self.folder / "run"
        run.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["hanlab", "up", *([] if self.lab_file is None else [str(self.lab_file)]),
                 *([] if self.mqtt else ["--no-mqtt"]), "--quiet",
                 "--out", str(self.out), "--api-port", str(self.port),
                 "--time-scale", str(self.time_scale)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder)
        try:
            self._wait_healthy(30.0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"hanlab up exited {self.proc.returncode}:\n"
                                     f"{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2) as r:
                    if r.status == 200 and self.tokens_file.exists():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"hanlab up did not serve {self.url} in {timeout_s} s:\n"
                             f"{self.log()}")

    @property
    def env(self) -> dict[str, str]:
        """The environment of the daemon and of its CLI clients (state under folder)."""
        return {**os.environ, "XDG_STATE_HOME": str(self.folder / "state"),
                "XDG_RUNTIME_DIR": str(self.folder / "run")}

    def kill(self) -> None:
        """SIGKILL the daemon (no clean stop) and reap it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    @property
    def tokens_file(self) -> Path:
        """The daemon's API tokens file (created on its first start)."""
        return self.folder / "state" / "hanlab" / "api-tokens.json"

    def token(self, role: str = "operator") -> str:
        """The daemon's token of ``role``."""
        tokens = json.loads(self.tokens_file.read_text())["tokens"]
        return str(next(t["token"] for t in tokens if t["role"] == role))

    def log(self) -> str:
        """The daemon's output so far."""
        return self.log_path.read_text(errors="replace")[-4000:]
