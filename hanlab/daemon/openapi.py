"""The OpenAPI 3.1 document of the control API (issue 9, item 3), served at
``GET /api/openapi.json``.

The schemas are the shapes of :mod:`hanlab.runtime.service` (its module docstring): every
documented key is required, extra keys are allowed (a newer daemon may add some), and
``null`` is allowed where the service says so. The document is built once per process
(:func:`openapi_document`); the tests check that every path answers as it says.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Final

__all__ = ["API_VERSION", "CAPTURE_PATTERN", "JOB_ID_PATTERN", "JOB_STATES", "RIG_PATTERN",
           "openapi_document"]

API_VERSION: Final = "1.0.0"

#: Rig names (the config's slug), job ids and capture file names accepted in a path;
#: anything else is answered 404 before any lookup.
RIG_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
JOB_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
CAPTURE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$"

JOB_STATES: Final = ("queued", "running", "passed", "failed", "cancelled", "interrupted",
                     "error")
MAX_LIMIT: Final = 1000

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str | Schema) -> Schema:
    if isinstance(kind, str):
        return {"type": [kind, "null"]}
    return {"anyOf": [kind, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, optional: tuple[str, ...] = (),
            description: str | None = None) -> Schema:
    schema: Schema = {"type": "object",
                      "required": [k for k in properties if k not in optional],
                      "properties": properties}
    if description:
        schema["description"] = description
    return schema


_INT: Final[Schema] = {"type": "integer"}
_COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
_NUM: Final[Schema] = {"type": "number"}
_STR: Final[Schema] = {"type": "string"}
_BOOL: Final[Schema] = {"type": "boolean"}
_TS: Final[Schema] = {"type": "integer", "description": "ns since the UNIX epoch, UTC"}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


_DEVICE_RECORD: Final = ("manufacturer", "smets_version", "chts_version", "gbcs_version",
                         "zigbee_stack", "silicon_vendor", "cpl_reference", "release_note")
_SEGMENTS: Final = ("end_to_end", "downstream", "han_command", "turnaround", "han_response",
                    "upstream")


def _schemas() -> dict[str, Schema]:
    segments = _object({name: _nullable("integer") for name in _SEGMENTS},
                       description="timing segments of an exchange, ns (null: an end unknown)")
    job_summary_properties: dict[str, Schema] = {
        "id": _STR, "rig": _STR, "lab": _STR, "scenario": _STR,
        "variants": _array(_STR),
        "devices": {"type": "object", "additionalProperties": _STR,
                    "description": "device role -> EUI-64"},
        "repeat": {"type": "integer", "minimum": 1}, "include_optional": _BOOL,
        "label": _STR, "state": {"type": "string", "enum": list(JOB_STATES)},
        "detail": _STR, "submitted_ns": _TS,
        "started_ns": _nullable("integer"), "ended_ns": _nullable("integer"),
        "progress": _ref("Progress"), "variant_runs": _array(_ref("VariantRun")),
        "captures": _array(_STR), "duis_log": _nullable("string"),
        "rerun_of": {**_nullable("string"),
                     "description": "the job this one reruns (POST /api/v1/jobs/{id}/rerun)"},
    }
    return {
        "Error": _object({"error": _object({
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "message": _STR, "field": _nullable("string")})},
            description="every refusal: HTTP status, one-line cause, the field at fault"),
        "Health": _object({"ok": {"const": True}}),
        "Lab": _object({"name": _STR, "host": _STR, "pid": _INT,
                        "control_url": _nullable("string"), "started_ns": _TS,
                        "rigs": _array(_STR), "store": _nullable("string")},
                       optional=("store",)),
        "Gap": _object({"gap_start_ns": _nullable("integer"),
                        "gap_end_ns": _nullable("integer"), "reason": _STR}),
        "Sniffer": _object({
            "id": _STR, "driver": _STR, "band": _STR, "page": _nullable("integer"),
            "channel": _nullable("integer"),
            "state": {"type": "string", "enum": ["up", "down", "finished"]},
            "frames": _COUNT, "frames_per_s": _NUM, "bytes": _COUNT, "fcs_errors": _COUNT,
            "drops": _COUNT, "gaps": _array(_ref("Gap")),
            "last_error": _nullable("string")}),
        "Device": _object({"role": _STR, "eui64": _STR, "band": _nullable("string"),
                           "name": _nullable("string"), "model": _nullable("string"),
                           "firmware_version": _nullable("string"),
                           **{k: _STR for k in _DEVICE_RECORD}, "emulated": _BOOL,
                           "spare": _BOOL},
                          optional=(*_DEVICE_RECORD, "emulated", "spare"),
                          description="a device and its record (seed 000 Data "
                                      "requirements; DIT.6); spare: on the bench, for "
                                      "the variants that consume one"),
        "Rig": _object({
            "name": _STR, "ch_variant": _nullable("string"), "description": _STR,
            "state": {"type": "string", "enum": ["running", "starting", "stopped", "failed"]},
            "emulated": _BOOL, "duis": _BOOL, "sniffers": _array(_ref("Sniffer")),
            "devices": _array(_ref("Device")), "job": _nullable(_ref("JobSummary")),
            "queued": _COUNT}),
        "Event": _object({
            "kind": {"type": "string",
                     "enum": ["started", "stopped", "finished", "failed", "gap", "damaged"]},
            "sniffer_id": _nullable("string"), "ts_ns": _TS,
            "detail": {"type": "object"}}),
        "Segments": segments,
        "Exchange": _object({
            "kind": _STR, "request_id": _nullable("string"),
            "sr_variant": _nullable("string"), "command_variant": _nullable("integer"),
            "target": _nullable("string"), "device_role": _STR, "outcome": _STR,
            "match_level": _STR, "command_level": _STR, "response_level": _STR,
            "submitted_ts_ns": _nullable("integer"), "ack_ts_ns": _nullable("integer"),
            "ack_code": _nullable("string"), "response_ts_ns": _nullable("integer"),
            "response_code": _nullable("string"),
            "command_first_ts_ns": _nullable("integer"),
            "command_last_ts_ns": _nullable("integer"),
            "command_end_ts_ns": _nullable("integer"),
            "response_first_ts_ns": _nullable("integer"),
            "response_last_ts_ns": _nullable("integer"),
            "response_end_ts_ns": _nullable("integer"),
            "band": _nullable("string"), "page": _nullable("integer"),
            "channel": _nullable("integer"), "frames": _COUNT, "retries": _COUNT,
            "octets": _COUNT, "gbcs_originator_counter": _nullable("integer"),
            "message_code": _nullable("string"), "alert_code": _nullable("string"),
            "segments_ns": _ref("Segments")},
            description="hanlab.correlate.exchange.Exchange.to_dict() plus segments_ns"),
        "TimingRow": _object({
            "band": _STR, "sr_variant": _STR, "device_role": _STR, "segment": _STR,
            "count": _COUNT, "min_us": _NUM, "p50_us": _NUM, "p90_us": _NUM, "p99_us": _NUM,
            "max_us": _NUM, "target_s": _nullable("number"),
            "within_target": _nullable("integer"), "over_target": _nullable("integer")}),
        "Timings": _object({
            "schema": _INT, "exchanges": _COUNT,
            "targets": {"type": "object", "additionalProperties": _NUM,
                        "description": "SR variant, Service Reference or * -> seconds"},
            "rows": _array(_ref("TimingRow"))},
            description="hanlab.correlate.stats.TimingStats.summary(); times in µs"),
        **_dutycycle_schemas(),
        "Progress": _object({"steps_done": _COUNT, "steps_total": _COUNT,
                             "variant_runs_done": _COUNT, "variant_runs_total": _COUNT,
                             "current": _nullable("string")}),
        "VariantRun": _object({
            "scenario": _STR, "variant": _STR, "title": _STR, "repetition": _INT,
            "passed": _nullable("boolean"), "started_ns": _nullable("integer"),
            "ended_ns": _nullable("integer"), "duration_s": _nullable("number"),
            "srs_sent": _COUNT, "srs_answered": _COUNT, "failed_steps": _array(_INT)}),
        "Step": _object({
            "index": _INT, "kind": {"type": "string",
                                    "enum": ["sr", "wait", "pause", "external",
                                             "ch_firmware"]},
            "status": {"type": "string", "enum": ["passed", "failed", "skipped"]},
            "optional": _BOOL, "sr_variant": _nullable("string"),
            "sr_name": _nullable("string"), "target_role": _nullable("string"),
            "target_eui64": _nullable("string"), "user_role": _nullable("string"),
            "user_eui64": _nullable("string"), "local_delivery": _nullable("string"),
            "request_id": _nullable("string"), "command_variant": _nullable("integer"),
            "ack_code": _nullable("string"), "response_code": _nullable("string"),
            "outcome": _nullable("string"), "alert_code": _nullable("string"),
            "started_ns": _INT, "ended_ns": _INT, "detail": _STR,
            "match_level": _nullable("string"), "band": _nullable("string"),
            "segments_ns": _nullable(_ref("Segments")),
            "scenario": _STR, "variant": _STR, "repetition": _INT, "duration_s": _NUM,
            "ch_upgrade": _nullable("object")},
            optional=("ch_upgrade", "user_eui64", "local_delivery"),  # not in every record
            description="hanlab.scenarios.runner.StepResult as a dict, plus scenario, "
                        "variant, repetition, duration_s"),
        "JobSummary": _object(job_summary_properties, optional=("rerun_of",),
                              description="a job without steps, exchanges and timings"),
        "Job": {"allOf": [_ref("JobSummary"), _object({
            "steps": _array(_ref("Step")), "exchanges": _array(_ref("Exchange")),
            "timings": _ref("Timings")})]},
        "OtaTransfer": _object({
            "event": {"type": "string", "enum": ["started", "progress", "ended"]},
            "device_short": _STR, "device_eui64": _nullable("string"), "band": _STR,
            "manufacturer_code": _STR, "image_type": _STR, "file_version": _STR,
            "image_size_octets": _nullable("integer"), "offset_octets": _COUNT,
            "progress": _nullable("number"), "blocks": _COUNT, "retries": _COUNT,
            "waits": _COUNT, "upgrade_end_status": _nullable("integer"), "start_ns": _INT,
            "ts_ns": _INT, "duration_s": _NUM},
            description="hanlab.firmware.live: one device's transfer of one image"),
        "Capture": _object({"name": _STR, "band": _nullable("string"),
                            "size_bytes": _COUNT, "modified_ns": _TS, "open": _BOOL}),
        "Scenario": _object({
            "name": _STR, "seed": _STR, "title": _STR,
            "variants": _array(_object({"id": _STR, "title": _STR}))}),
        "JobSpec": {
            "type": "object", "additionalProperties": False,
            "required": ["rig", "scenario"],
            "description": "a job to queue; omitted fields take the lab's defaults",
            "properties": {
                "rig": {"type": "string", "pattern": RIG_PATTERN},
                "scenario": {"type": "string", "minLength": 1, "maxLength": 200},
                "variants": {"type": "array", "maxItems": 100,
                             "items": {"type": "string", "minLength": 1, "maxLength": 200}},
                "devices": {"type": "object", "maxProperties": 50,
                            "additionalProperties": {"type": "string", "maxLength": 200},
                            "description": "device role -> EUI-64 or device name"},
                "repeat": {"type": "integer", "minimum": 1, "maximum": 1000},
                "include_optional": _BOOL,
                "label": {"type": "string", "maxLength": 200},
                "wait": {"type": "boolean",
                         "description": "queue even while the rig's sniffers are down"},
            },
        },
    }


def _dutycycle_schemas() -> dict[str, Schema]:
    """Schemas of ``GET /api/v1/rigs/{rig}/dutycycle`` (hanlab.correlate.dit8)."""
    state = {"type": "string", "enum": ["Normal", "Limited", "Critical", "Regulated"]}
    alert = {"type": "string", "pattern": "^0x[0-9A-F]{4}$"}
    pair = {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2}
    return {
        "DutyCycleChange": _object({"ts_ns": _TS, "old": state, "new": state,
                                    "duty_cycle_pct": _NUM, "alert_code": alert}),
        "DutyCycleTransmitter": _object({
            "state": state, "duty_cycle_pct": _NUM, "peak_pct": _NUM, "frames": _COUNT,
            "airtime_s": _NUM, "window_airtime_s": _NUM, "first_ts_ns": _nullable("integer"),
            "last_ts_ns": _INT, "changes": _array(_ref("DutyCycleChange")),
            "eui64": _nullable("string"),
            "samples": _array({"type": "array", "items": _NUM, "minItems": 2,
                               "maxItems": 2})},
            description="one sub-GHz transmitter; duty cycle in % of the window"),
        "AgilityEvent": _object({
            "old": pair, "new": pair, "request_ts_ns": _nullable("integer"),
            "requested": {"anyOf": [pair, {"type": "null"}]},
            "last_old_ts_ns": _TS, "first_new_ts_ns": _TS, "time_to_move_s": _NUM,
            "frames_lost": _COUNT, "frames_during_move": _COUNT,
            "alerts": _array(_object({"ts_ns": _TS, "alert_code": alert}))},
            description="a move of the CH's sub-GHz HAN; pairs are [page, channel]"),
        "DutyCycle": _object({
            "thresholds": _object({"window_s": _NUM, "normal_limited_pct": _NUM,
                                   "limited_critical_pct": _NUM,
                                   "critical_regulated_pct": _NUM}),
            "transmitters": {"type": "object",
                             "additionalProperties": _ref("DutyCycleTransmitter"),
                             "description": "CH, short address 0x1a2b or EUI-64 -> state"},
            "channel": {"anyOf": [pair, {"type": "null"}]},
            "agility": _array(_ref("AgilityEvent")),
            "counts": {"type": "object", "additionalProperties": _COUNT},
            "warnings": _array(_STR)},
            description="hanlab.correlate.dit8.Dit8Monitor.snapshot(); a rig without a "
                        "sub-GHz sniffer has no transmitters"),
    }


def _error(description: str) -> Schema:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_RESPONSES: Final[dict[str, Schema]] = {
    "Unauthorized": _error("no bearer token, or not a token of this daemon"),
    "Forbidden": _error("the token's role may not do this (operator needed)"),
    "NotFound": _error("no such rig, job or capture file (or a malformed name)"),
    "Busy": _error("the rig cannot take it now (stopped, sniffers down), or the job ended"),
    "TooLarge": _error("request body over 64 KiB"),
    "Unprocessable": _error("a refused body field or query parameter, or an unknown one "
                            "(its name in error.field)"),
}


def _response_ref(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _parameter(name: str, where: str, schema: Schema, description: str,
               required: bool = False) -> Schema:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


_RIG = _parameter("rig", "path", {"type": "string", "pattern": RIG_PATTERN}, "rig name")
_JOB = _parameter("id", "path", {"type": "string", "pattern": JOB_ID_PATTERN}, "job id")
_CAPTURE = _parameter("name", "path", {"type": "string", "pattern": CAPTURE_PATTERN},
                      "capture file name as listed by .../captures")
_LIMIT = _parameter("limit", "query",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                    "at most this many, the newest")


def _get(summary: str, ok: Schema, *, parameters: tuple[Schema, ...] = (),
         not_found: bool = True, limit: bool = False, operation_id: str) -> Schema:
    responses: dict[str, Schema] = {"200": ok, "401": _response_ref("Unauthorized")}
    if not_found:
        responses["404"] = _response_ref("NotFound")
    responses["422"] = _response_ref("Unprocessable")  # a bad or unknown query parameter
    operation: Schema = {"summary": summary, "operationId": operation_id,
                         "responses": responses}
    params = list(parameters) + ([_LIMIT] if limit else [])
    if params:
        operation["parameters"] = params
    return {"get": operation}


def _paths() -> dict[str, Schema]:
    job_list_params = (
        _parameter("rig", "query", {"type": "string", "pattern": RIG_PATTERN},
                   "only this rig's jobs"),
        _parameter("state", "query", {"type": "string", "enum": list(JOB_STATES)},
                   "only jobs in this state"),
    )
    return {
        "/api/v1/health": {"get": {
            "summary": "Whether the daemon answers (no token needed)",
            "operationId": "health", "security": [],
            "responses": {"200": _ok(_ref("Health"))}}},
        "/api/v1/lab": _get("The lab: name, host, control URL, rig names", _ok(_ref("Lab")),
                            not_found=False, operation_id="lab"),
        "/api/v1/rigs": _get("Every rig with its status", _ok(_array(_ref("Rig"))),
                             not_found=False, operation_id="rigs"),
        "/api/v1/rigs/{rig}": _get("One rig", _ok(_ref("Rig")), parameters=(_RIG,),
                                   operation_id="rig"),
        "/api/v1/rigs/{rig}/sniffers": _get(
            "The rig's sniffers with counters and gaps", _ok(_array(_ref("Sniffer"))),
            parameters=(_RIG,), operation_id="sniffers"),
        "/api/v1/rigs/{rig}/events": _get(
            "The rig's latest source events, newest last", _ok(_array(_ref("Event"))),
            parameters=(_RIG,), limit=True, operation_id="events"),
        "/api/v1/rigs/{rig}/exchanges": _get(
            "The rig's latest exchanges, newest last", _ok(_array(_ref("Exchange"))),
            parameters=(_RIG,), limit=True, operation_id="rig_exchanges"),
        "/api/v1/rigs/{rig}/timings": _get(
            "The rig's timing summary since the daemon started", _ok(_ref("Timings")),
            parameters=(_RIG,), operation_id="rig_timings"),
        "/api/v1/rigs/{rig}/ota": _get(
            "The rig's OTA Upgrade transfers seen on air since the daemon started (payloads "
            "of their latest MQTT ota events)", _ok(_array(_ref("OtaTransfer"))),
            parameters=(_RIG,), operation_id="rig_ota"),
        "/api/v1/rigs/{rig}/dutycycle": _get(
            "The rig's sub-GHz duty cycle per transmitter and frequency agility (DIT.8)",
            _ok(_ref("DutyCycle")), parameters=(_RIG,), operation_id="rig_dutycycle"),
        "/api/v1/rigs/{rig}/captures": _get(
            "The rig's capture files", _ok(_array(_ref("Capture"))), parameters=(_RIG,),
            operation_id="captures"),
        "/api/v1/rigs/{rig}/captures/{name}": _get(
            "Download one capture file (pcapng or pcap)",
            {"description": "the file", "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/x-pcapng", "application/vnd.tcpdump.pcap",
                              "application/octet-stream")}},
            parameters=(_RIG, _CAPTURE), operation_id="download_capture"),
        "/api/v1/jobs": {
            **_get("Job summaries, newest first", _ok(_array(_ref("JobSummary"))),
                   parameters=job_list_params, not_found=False, limit=True,
                   operation_id="jobs"),
            "post": {
                "summary": "Queue a job (operator)", "operationId": "submit",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("JobSpec")}}},
                "responses": {
                    "201": _ok(_ref("Job"), "queued"),
                    "401": _response_ref("Unauthorized"), "403": _response_ref("Forbidden"),
                    "409": _response_ref("Busy"), "413": _response_ref("TooLarge"),
                    "422": _response_ref("Unprocessable")}},
        },
        "/api/v1/jobs/{id}": _get("One job in full", _ok(_ref("Job")), parameters=(_JOB,),
                                  operation_id="job"),
        "/api/v1/jobs/{id}/steps": _get("The job's steps, in order",
                                        _ok(_array(_ref("Step"))), parameters=(_JOB,),
                                        operation_id="job_steps"),
        "/api/v1/jobs/{id}/exchanges": _get("The job's SR exchanges",
                                            _ok(_array(_ref("Exchange"))),
                                            parameters=(_JOB,), operation_id="job_exchanges"),
        "/api/v1/jobs/{id}/timings": _get("The job's timing summary", _ok(_ref("Timings")),
                                          parameters=(_JOB,), operation_id="job_timings"),
        "/api/v1/jobs/{id}/cancel": {"post": {
            "summary": "Cancel a queued or running job (operator)", "operationId": "cancel",
            "parameters": [_JOB],
            "responses": {"200": _ok(_ref("Job")), "401": _response_ref("Unauthorized"),
                          "403": _response_ref("Forbidden"),
                          "404": _response_ref("NotFound"), "409": _response_ref("Busy"),
                          "422": _response_ref("Unprocessable")}}},
        "/api/v1/jobs/{id}/rerun": {"post": {
            "summary": "Queue a new job with this job's spec, e.g. after it was interrupted "
                       "(operator); the new job's rerun_of names this one",
            "operationId": "rerun",
            "parameters": [_JOB],
            "responses": {"201": _ok(_ref("Job")), "401": _response_ref("Unauthorized"),
                          "403": _response_ref("Forbidden"),
                          "404": _response_ref("NotFound"), "409": _response_ref("Busy"),
                          "422": _response_ref("Unprocessable")}}},
        "/api/v1/scenarios": _get("The scenario library", _ok(_array(_ref("Scenario"))),
                                  not_found=False, operation_id="scenarios"),
        "/api/openapi.json": {"get": {
            "summary": "This document (no token needed)", "operationId": "openapi",
            "security": [],
            "responses": {"200": _ok({"type": "object"})}}},
    }


@functools.cache
def _document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hanlab control API", "version": API_VERSION,
            "description": (
                "The running lab of one hanlab daemon: rigs, sniffers, exchanges, timings, "
                "captures and jobs (issue 9, item 3). Every call but /api/v1/health and this "
                "document needs `Authorization: Bearer <token>` from the daemon's tokens "
                "file; role viewer reads, role operator also submits and cancels jobs. "
                "Times are ns since the UNIX epoch (`*_ns`) unless the name says otherwise."),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token of the tokens file"}},
            "schemas": _schemas(),
            "responses": _RESPONSES,
        },
    }


def openapi_document() -> Schema:
    """The OpenAPI 3.1 document of the control API (a fresh copy: a dict of JSON data)."""
    return copy.deepcopy(_document())
