"""What a running lab offers its clients: the one interface behind the control API, the
dashboard and the in-process CLI (issue 9, items 3-5; DESIGN.md "One lab runtime").

:class:`LabService` is implemented by :class:`hanlab.runtime.lab.LabRuntime`; the control
API (:mod:`hanlab.daemon.api`) only calls these methods and serves their JSON-ready
results as they are. Every result is plain JSON data (dicts, lists, str, int, float,
bool, None). Keys, install codes and signing keys never appear in any of them.

Shapes (``ts_ns``: int, ns since the UNIX epoch, UTC):

``lab()``::

    {"name": "default", "host": "pc-3", "pid": 1234, "control_url": "http://127.0.0.1:8470",
     "started_ns": 0, "rigs": ["emulated-single-band", "emulated-dual-band"]}

``rigs()`` -> list of ``rig(name)``::

    {"name": "emulated-dual-band", "ch_variant": "dual_band", "description": "...",
     "state": "running" | "starting" | "stopped" | "failed",
     "emulated": true, "duis": true,               # has a DUIS side (jobs can run)
     "sniffers": [SNIFFER, ...], "devices": [{"role": "ESME", "eui64": "00-DB-..",
       "band": "2.4GHz", "name": null, "model": "emu-esme-a", "firmware_version": ""}],
     "job": JOB_SUMMARY | null,                     # the running job
     "queued": 2}                                   # jobs waiting on this rig

``SNIFFER`` (``sniffers(rig)``)::

    {"id": "emu-2g4", "driver": "emulated", "band": "2.4GHz", "page": 0, "channel": 11,
     "state": "up" | "down" | "finished", "frames": 123, "frames_per_s": 12.5,
     "bytes": 4567, "fcs_errors": 0, "drops": 0,
     "gaps": [{"gap_start_ns": .., "gap_end_ns": .., "reason": "..."}],
     "last_error": null | "..."}

``events(rig, limit)``: newest last, the rig's source events::

    [{"kind": "started" | "stopped" | "finished" | "failed" | "gap" | "damaged",
      "sniffer_id": "emu-2g4", "ts_ns": .., "detail": {...}}]

``exchanges(rig, limit)``: newest last, :meth:`hanlab.correlate.exchange.Exchange.to_dict`
plus ``"segments_ns": {"end_to_end": .., "downstream": .., "han_command": ..,
"turnaround": .., "han_response": .., "upstream": ..}`` (values int ns or null).

``timings(rig)``: :meth:`hanlab.correlate.stats.TimingStats.summary` of the rig since the
daemon started: ``{"schema": 1, "exchanges": n, "targets": {...}, "rows": [{"band",
"sr_variant", "device_role", "segment", "count", "min_us", "p50_us", "p90_us", "p99_us",
"max_us", "target_s", "within_target", "over_target"}]}``.

``JOB`` (``job(id)``, ``submit``, ``cancel``)::

    {"id": "j-20261201T101500-3f2a", "rig": "emulated-dual-band", "lab": "default",
     "scenario": "meter-reading", "variants": ["..."], "devices": {"GSME": "00-DB-.."},
     "repeat": 1, "include_optional": true, "label": "",
     "state": "queued" | "running" | "passed" | "failed" | "cancelled" | "interrupted"
              | "error",
     "detail": "",                                   # why failed / cancelled / error
     "submitted_ns": .., "started_ns": null | .., "ended_ns": null | ..,
     "progress": {"steps_done": 3, "steps_total": 12, "variant_runs_done": 1,
                  "variant_runs_total": 4, "current": "meter-reading/read-esme #1"},
     "steps": [STEP, ...],                           # StepResult records, in order
     "variant_runs": [{"scenario", "variant", "title", "repetition", "passed",
                       "started_ns", "ended_ns", "duration_s", "srs_sent",
                       "srs_answered", "failed_steps": [int]}],
     "exchanges": [EXCHANGE, ...],                   # the job's SR exchanges
     "timings": TIMINGS,                             # TimingStats.summary() of the job
     "captures": ["emulated-dual-band_2.4GHz_20261201T101455Z.pcapng", ...],
     "duis_log": "jobs/j-.../duis.jsonl"}

``JOB_SUMMARY`` (``jobs(...)``) is ``JOB`` without ``steps``, ``exchanges`` and
``timings``.

``STEP``: :class:`hanlab.scenarios.runner.StepResult` as a dict plus ``scenario``,
``variant``, ``repetition``, ``duration_s`` (see :mod:`hanlab.scenarios.runner`):
``{"index", "kind": "sr"|"wait"|"pause"|"external", "status": "passed"|"failed"|"skipped",
"optional", "sr_variant", "sr_name", "target_role", "target_eui64", "user_role",
"request_id", "command_variant", "ack_code", "response_code", "outcome", "alert_code",
"started_ns", "ended_ns", "detail", "match_level", "band", "segments_ns", ...}``.

``captures(rig)``::

    [{"name": "emulated-dual-band_subGHz_20261201T101455Z.pcapng", "band": "subGHz",
      "size_bytes": 12345, "modified_ns": .., "open": true}]

``scenarios()``::

    [{"name": "meter-reading", "seed": "000", "title": "...",
      "variants": [{"id": "read-esme", "title": "..."}]}]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from hanlab.errors import BadInputError, HanlabError

__all__ = ["JobRefusedError", "LabService", "NotFoundError", "RigBusyError"]

Json = dict[str, Any]


class NotFoundError(HanlabError):
    """No such rig, job or capture file (API: 404)."""

    exit_status = 2


class JobRefusedError(BadInputError):
    """A job that cannot be accepted as given (API: 422; CLI: one line, exit 2).

    Args:
        field: the job field at fault (``rig``, ``scenario``, ``variants``, ``devices``,
            ``repeat`` …).
        message: why, naming the value.
    """

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class RigBusyError(HanlabError):
    """The rig cannot take the job now: stopped, or its sniffers are down and the job
    did not ask to wait (API: 409; CLI: exit 1)."""


class LabService(Protocol):
    """The running lab as its clients see it (shapes in the module docstring)."""

    def lab(self) -> Json:
        """The lab: name, host, control URL, rig names."""
        ...

    def rigs(self) -> list[Json]:
        """Every rig with its status."""
        ...

    def rig(self, name: str) -> Json:
        """One rig. Raises NotFoundError."""
        ...

    def sniffers(self, rig: str) -> list[Json]:
        """The rig's sniffers with counters and gaps. Raises NotFoundError."""
        ...

    def events(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest source events. Raises NotFoundError."""
        ...

    def exchanges(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest exchanges. Raises NotFoundError."""
        ...

    def timings(self, rig: str) -> Json:
        """The rig's timing summary since start. Raises NotFoundError."""
        ...

    def ota(self, rig: str) -> list[Json]:
        """The rig's OTA transfers seen on air since start, as the payloads of their
        latest ``ota`` events (:mod:`hanlab.firmware.live`). Raises NotFoundError."""
        ...

    def dutycycle(self, rig: str) -> Json:
        """The rig's DIT.8 duty-cycle and frequency-agility state and history
        (:meth:`hanlab.correlate.dit8.Dit8Monitor.snapshot`). Raises NotFoundError."""
        ...

    def submit(self, spec: Json) -> Json:
        """Queue a job (``spec``: ``{"rig", "scenario", "variants"?, "devices"?,
        "repeat"?, "include_optional"?, "label"?, "wait"?}``); the new JOB.

        Raises:
            JobRefusedError: unknown rig, scenario, variant or device; bad field.
            RigBusyError: the rig is stopped, or its sniffers are down (without wait).
        """
        ...

    def jobs(self, rig: str | None = None, state: str | None = None,
             limit: int = 100) -> list[Json]:
        """Job summaries, newest first."""
        ...

    def job(self, job_id: str) -> Json:
        """One job in full. Raises NotFoundError."""
        ...

    def cancel(self, job_id: str) -> Json:
        """Cancel a queued or running job (the running step finishes or times out);
        the JOB. Raises NotFoundError; RigBusyError if it already ended."""
        ...

    def rerun(self, job_id: str) -> Json:
        """Queue a new job with the spec of ``job_id`` (an interrupted, failed or cancelled
        one); the new JOB, whose ``rerun_of`` is ``job_id``. The old record is never changed
        (issue 9: an interrupted job is kept, never rerun by itself). Raises NotFoundError;
        RigBusyError as :meth:`submit`."""
        ...

    def captures(self, rig: str) -> list[Json]:
        """The rig's capture files. Raises NotFoundError."""
        ...

    def capture_path(self, rig: str, name: str) -> Path:
        """The path of one capture file of the rig (``name`` as listed by
        :meth:`captures`; anything else, ``..`` included, is NotFoundError)."""
        ...

    def scenarios(self) -> list[Json]:
        """The scenario library."""
        ...
