"""The results database's tables (SQLAlchemy 2 Core; issue 10, item 4).

One schema for SQLite and PostgreSQL; every change is a versioned migration in
:mod:`hanlab.store.migrations` (alembic), never a dialect switch in the code. Times are
``*_ns`` (BIGINT, ns since the UNIX epoch, UTC); durations ``*_s``; ``*_us`` µs.

Jobs (the one record of a job, :class:`hanlab.runtime.jobs.JobRecord`):

* ``jobs``: one row per job (spec, state, progress, DUIS log, timing header);
* ``job_variant_runs``, ``job_steps``, ``job_exchanges``, ``job_timings``,
  ``job_captures``: the record's lists, one row per item in order (``seq``), with the
  fields reports query as columns (band, match level, every timing segment) and the
  item itself in ``data`` (JSON), from which the record is rebuilt exactly.

Campaigns (:mod:`hanlab.campaign`):

* ``campaigns``: one row per campaign (plan, options, state, owner);
* ``campaign_lines``: the plan's lines (traceability, DIT.EX.10);
* ``campaign_jobs``: the planned jobs, their state and the ids of their attempts;
* ``campaign_devices``: each device record of the campaign's rigs with its suspension
  state (seed 000 "Suspension Criteria").

Firmware (:mod:`hanlab.firmware.tracking`, migration 0002):

* ``firmware_tracking``: SIP#7 Firmware Distribution Tracking, one row per SR 11.1
  request and target device (seed 003), its current Processing and Completion Status as
  columns and every status change in ``history`` (JSON).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["metadata"]

metadata = MetaData()


def _job_fk() -> Column[str]:
    return Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"),
                  primary_key=True)


jobs = Table(
    "jobs", metadata,
    Column("id", String(64), primary_key=True),
    Column("rig", String(64), nullable=False, index=True),
    Column("lab", String(64), nullable=False),
    Column("scenario", String(64), nullable=False),
    Column("variants", JSON, nullable=False),
    Column("devices", JSON, nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("include_optional", Boolean, nullable=False),
    Column("label", String(200), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("detail", Text, nullable=False),
    Column("submitted_ns", BigInteger, nullable=False),
    Column("started_ns", BigInteger),
    Column("ended_ns", BigInteger),
    Column("progress", JSON, nullable=False),
    Column("duis_log", Text, nullable=False),
    Column("rerun_of", String(64)),
    Column("timings_header", JSON, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)

job_variant_runs = Table(
    "job_variant_runs", metadata, _job_fk(),
    Column("seq", Integer, primary_key=True),
    Column("scenario", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("repetition", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("duration_s", Float),
    Column("data", JSON, nullable=False),
)

job_steps = Table(
    "job_steps", metadata, _job_fk(),
    Column("seq", Integer, primary_key=True),
    Column("variant", String(64), nullable=False),
    Column("repetition", Integer, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("sr_variant", String(16)),
    Column("target_role", String(16)),
    Column("target_eui64", String(32)),
    Column("request_id", String(100)),
    Column("outcome", String(32)),
    Column("band", String(16)),
    Column("match_level", String(16)),
    Column("started_ns", BigInteger),
    Column("ended_ns", BigInteger),
    Column("data", JSON, nullable=False),
)

job_exchanges = Table(
    "job_exchanges", metadata, _job_fk(),
    Column("seq", Integer, primary_key=True),
    Column("request_id", String(100)),
    Column("sr_variant", String(16)),
    Column("device_role", String(16)),
    Column("band", String(16)),
    Column("outcome", String(32)),
    Column("match_level", String(16)),
    Column("command_level", String(16)),
    Column("response_level", String(16)),
    Column("end_to_end_ns", BigInteger),
    Column("downstream_ns", BigInteger),
    Column("han_command_ns", BigInteger),
    Column("turnaround_ns", BigInteger),
    Column("han_response_ns", BigInteger),
    Column("upstream_ns", BigInteger),
    Column("data", JSON, nullable=False),
)

job_timings = Table(
    "job_timings", metadata, _job_fk(),
    Column("seq", Integer, primary_key=True),
    Column("band", String(16), nullable=False),
    Column("sr_variant", String(16), nullable=False),
    Column("device_role", String(16), nullable=False),
    Column("segment", String(16), nullable=False),
    Column("count", Integer, nullable=False),
    Column("min_us", Float, nullable=False),
    Column("p50_us", Float, nullable=False),
    Column("p90_us", Float, nullable=False),
    Column("p99_us", Float, nullable=False),
    Column("max_us", Float, nullable=False),
    Column("target_s", Float),
    Column("within_target", Integer),
    Column("over_target", Integer),
)

job_captures = Table(
    "job_captures", metadata, _job_fk(),
    Column("seq", Integer, primary_key=True),
    Column("name", Text, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("plan_file", Text, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("lab", String(64), nullable=False),
    Column("options", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("started_ns", BigInteger),
    Column("ended_ns", BigInteger),
    Column("owner", String(300), nullable=False),
    Column("heartbeat_ns", BigInteger),
)

campaign_lines = Table(
    "campaign_lines", metadata,
    Column("campaign_id", String(64), ForeignKey("campaigns.id", ondelete="CASCADE"),
           primary_key=True),
    Column("line_index", Integer, primary_key=True),
    Column("file_line", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("line", JSON, nullable=False),
)

campaign_jobs = Table(
    "campaign_jobs", metadata,
    Column("campaign_id", String(64), ForeignKey("campaigns.id", ondelete="CASCADE"),
           primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("line_index", Integer, nullable=False),
    Column("rig", String(64), nullable=False),
    Column("scenario", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("devices", JSON, nullable=False),
    Column("involved", JSON, nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("estimate_s", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("result", String(16)),
    Column("job_id", String(64)),
    Column("attempts", JSON, nullable=False),
    Column("detail", Text, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)

campaign_devices = Table(
    "campaign_devices", metadata,
    Column("campaign_id", String(64), ForeignKey("campaigns.id", ondelete="CASCADE"),
           primary_key=True),
    Column("rig", String(64), primary_key=True),
    Column("eui64", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("band", String(16), nullable=False),
    Column("ch_variant", String(16), nullable=False),
    Column("record", JSON, nullable=False),
    Column("suspended", Boolean, nullable=False),
    Column("suspended_reason", Text, nullable=False),
    Column("suspended_ns", BigInteger),
    Column("no_response_streak", Integer, nullable=False),
)

Index("ix_campaign_jobs_state", campaign_jobs.c.campaign_id, campaign_jobs.c.state)

firmware_tracking = Table(
    "firmware_tracking", metadata,
    Column("request_id", String(100), primary_key=True),
    Column("device_id", String(32), primary_key=True),
    Column("device_type", String(16)),
    Column("firmware_version", String(64)),
    Column("current_status", String(64), nullable=False),
    Column("completion_status", String(16), nullable=False, index=True),
    Column("updated_ns", BigInteger, nullable=False, index=True),
    Column("history", JSON, nullable=False),
)
Index("ix_firmware_tracking_device_id", firmware_tracking.c.device_id)
