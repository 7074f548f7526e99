"""The results store: one SQLAlchemy 2 database of every job and campaign (issue 10,
item 4; DESIGN.md "one record per job").

* **Where**: SQLite in WAL mode by default (``<out>/hanlab.db``), or the lab file's
  ``store: {url: postgresql+psycopg://…}`` so several hosts of one lab write to one
  store. The schema is :mod:`hanlab.store.schema`, brought up to date at open by the
  versioned alembic migrations of :mod:`hanlab.store.migrations` (the same for both).
* **Unreachable at open**: :class:`~hanlab.errors.BadInputError`, one line naming the
  store (password hidden) and the cause: the CLI exits 2 before anything runs.
* **Lost later**: every write is a whole-row upsert; one that fails because the database
  went away is appended to a spool file (``<spool>/<host>-<pid>.jsonl``, fsync'd) and
  every later write goes there too, in order, until :meth:`ResultsStore.flush` (called
  on each write after ``retry_s`` and periodically by the lab and campaign runtimes)
  writes them all and empties it. A process killed while its spool is not empty leaves
  it behind; the next process that opens the store on this host writes it first. Reads
  while the database is away raise :class:`StoreUnavailableError`.

Rows and record dicts: :meth:`ResultsStore.put_job` takes the JSON-ready record of a
job (``JOB`` of :mod:`hanlab.runtime.service`) and :meth:`ResultsStore.get_job` gives
back an equal dict; campaign rows are plain dicts of the columns of their tables.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, Table, create_engine, delete, event, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from hanlab.errors import BadInputError, HanlabError
from hanlab.store import schema as t

log = logging.getLogger(__name__)

__all__ = ["ResultsStore", "StoreUnavailableError", "default_url", "display_url",
           "open_store"]

Row = dict[str, Any]
#: seconds between attempts to write the spool back while the database is away
RETRY_S: Final = 2.0
_LOST = (OperationalError, InterfaceError)
_SEGMENTS: Final = ("end_to_end", "downstream", "han_command", "turnaround",
                    "han_response", "upstream")
_TIMING_FIELDS: Final = ("band", "sr_variant", "device_role", "segment", "count", "min_us",
                         "p50_us", "p90_us", "p99_us", "max_us", "target_s",
                         "within_target", "over_target")
_JOB_SCALARS: Final = ("id", "rig", "lab", "scenario", "variants", "devices", "repeat",
                       "include_optional", "label", "state", "detail", "submitted_ns",
                       "started_ns", "ended_ns", "progress", "duis_log", "rerun_of")


#: write kind -> the table whose rows it writes whole (campaigns, SIP#7 tracking), its key
_ROW_TABLES: Final[dict[str, tuple[Table, tuple[str, ...]]]] = {
    "campaign": (t.campaigns, ("id",)),
    "campaign_lines": (t.campaign_lines, ("campaign_id", "line_index")),
    "campaign_job": (t.campaign_jobs, ("campaign_id", "seq")),
    "campaign_device": (t.campaign_devices, ("campaign_id", "rig", "eui64")),
    "firmware_tracking": (t.firmware_tracking, ("request_id", "device_id")),
}


class StoreUnavailableError(HanlabError):
    """The results database cannot be read now (writes are spooled meanwhile)."""


def default_url(out: Path) -> str:
    """The embedded default: SQLite ``<out>/hanlab.db`` (absolute)."""
    return f"sqlite:///{(Path(out) / 'hanlab.db').absolute()}"


def display_url(url: str) -> str:
    """``url`` with any password hidden (for messages and the API)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(invalid URL)"


def _cause(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _job_rows(record: Row) -> tuple[Row, dict[Table, list[Row]]]:
    """The ``jobs`` row and the child rows of a job record."""
    job_id = record["id"]
    timings = dict(record.get("timings") or {})
    rows = timings.pop("rows", [])
    head = {k: record.get(k) for k in _JOB_SCALARS}
    head["timings_header"] = timings
    head["updated_ns"] = time.time_ns()
    children: dict[Table, list[Row]] = {
        t.job_variant_runs: [
            {"job_id": job_id, "seq": i, "scenario": r["scenario"], "variant": r["variant"],
             "repetition": r["repetition"], "passed": bool(r["passed"]),
             "duration_s": r.get("duration_s"), "data": r}
            for i, r in enumerate(record.get("variant_runs", []))],
        t.job_steps: [
            {"job_id": job_id, "seq": i, "variant": s["variant"],
             "repetition": s["repetition"], "step_index": s["index"], "kind": s["kind"],
             "status": s["status"],
             **{k: s.get(k) for k in ("sr_variant", "target_role", "target_eui64",
                                      "request_id", "outcome", "band", "match_level",
                                      "started_ns", "ended_ns")},
             "data": s}
            for i, s in enumerate(record.get("steps", []))],
        t.job_exchanges: [
            {"job_id": job_id, "seq": i,
             **{k: e.get(k) for k in ("request_id", "sr_variant", "device_role", "band",
                                      "outcome", "match_level", "command_level",
                                      "response_level")},
             **{f"{name}_ns": (e.get("segments_ns") or {}).get(name) for name in _SEGMENTS},
             "data": e}
            for i, e in enumerate(record.get("exchanges", []))],
        t.job_timings: [{"job_id": job_id, "seq": i, **{k: r.get(k) for k in _TIMING_FIELDS}}
                        for i, r in enumerate(rows)],
        t.job_captures: [{"job_id": job_id, "seq": i, "name": name}
                         for i, name in enumerate(record.get("captures", []))],
    }
    return head, children


class ResultsStore:
    """One results database (see the module docstring).

    Args:
        url: an SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``).
        spool_folder: where writes wait while the database is away.
        retry_s: seconds between attempts to write the spool back.

    Raises:
        BadInputError: the URL is invalid, or the database cannot be reached or brought
            up to date (one line: the store, password hidden, and the cause).
    """

    def __init__(self, url: str, spool_folder: Path, *, retry_s: float = RETRY_S) -> None:
        self.url = display_url(url)
        self.retry_s = retry_s
        self.spool_folder = Path(spool_folder)
        self.spool_path = self.spool_folder / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self._spooled = 0
        self._last_try = 0.0
        #: job id -> table -> the JSON of the child rows written (prefix appends)
        self._children: dict[str, dict[str, list[str]]] = {}
        try:
            parsed = make_url(url)
        except ArgumentError as error:
            raise BadInputError(f"results store: {url!r} is not a database URL: "
                                f"{error}") from None
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        backend = parsed.get_backend_name()
        if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            try:
                Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise BadInputError(f"results store {self.url}: cannot create its folder: "
                                    f"{error.strerror}") from None
        if backend == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 3}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ArgumentError, ImportError) as error:
            raise BadInputError(f"results store {self.url}: {error}") from None
        if backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except _LOST as error:
            self.engine.dispose()
            raise BadInputError(f"results store {self.url} is unreachable: {_cause(error)}",
                                hint="start the database or fix store: url in the lab "
                                     "file") from None
        self._replay_leftovers()

    # -- life cycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Write the spool back if possible and close the connections (twice is fine)."""
        with contextlib.suppress(HanlabError):
            self.flush()
        self.engine.dispose()

    @property
    def degraded(self) -> bool:
        """Writes are waiting in the spool (the database was away)."""
        return self._spooled > 0

    # -- writes -------------------------------------------------------------------------

    def put_job(self, record: Row) -> None:
        """Write a job record whole (``JOB``)."""
        self._write("job", record)

    def put_campaign(self, row: Row) -> None:
        """Write a ``campaigns`` row (every column)."""
        self._write("campaign", row)

    def put_campaign_lines(self, rows: Sequence[Row]) -> None:
        """Write ``campaign_lines`` rows (every column)."""
        self._write("campaign_lines", list(rows))

    def put_campaign_job(self, row: Row) -> None:
        """Write a ``campaign_jobs`` row (every column)."""
        self._write("campaign_job", row)

    def put_campaign_device(self, row: Row) -> None:
        """Write a ``campaign_devices`` row (every column)."""
        self._write("campaign_device", row)

    def put_tracking(self, rows: Sequence[Row]) -> None:
        """Write ``firmware_tracking`` rows (every column; SIP#7 tracking records)."""
        self._write("firmware_tracking", list(rows))

    def delete_tracking(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete the ``firmware_tracking`` rows of these (request_id, device_id) keys
        (records purged beyond the retention window)."""
        self._write("firmware_tracking_delete", [list(k) for k in keys])

    def _write(self, kind: str, payload: Any) -> None:
        if self._spooled and not self._try_flush():
            self._spool(kind, payload)
            return
        try:
            with self.engine.begin() as conn:
                written = self._apply(conn, kind, payload)
        except _LOST as error:
            log.warning("results store %s lost (%s): results are kept in %s until it is "
                        "back", self.url, _cause(error), self.spool_path)
            self._children.clear()
            self._last_try = time.monotonic()
            self._spool(kind, payload)
            return
        if kind == "job":
            self._children[payload["id"]] = written

    def _apply(self, conn: Connection, kind: str, payload: Any, *,
               fresh: bool = False) -> Any:
        if kind == "job":
            return self._apply_job(conn, payload, fresh=fresh)
        if kind == "firmware_tracking_delete":
            tracking = t.firmware_tracking
            for request_id, device_id in payload:
                conn.execute(delete(tracking).where(tracking.c.request_id == request_id,
                                                    tracking.c.device_id == device_id))
            return None
        table, keys = _ROW_TABLES[kind]
        for row in payload if isinstance(payload, list) else [payload]:
            _upsert(conn, table, row, keys)
        return None

    def _apply_job(self, conn: Connection, record: Row, *,
                   fresh: bool = False) -> dict[str, list[str]]:
        """Upsert the job row; append the new child rows, or rewrite a list that
        changed (or every list, ``fresh``, when what the database holds is unknown).
        The JSON of the child rows written."""
        head, children = _job_rows(record)
        job_id = head["id"]
        _upsert(conn, t.jobs, head, ("id",))
        known = None if fresh else self._children.get(job_id)
        written: dict[str, list[str]] = {}
        for table, rows in children.items():
            texts = [json.dumps(r, sort_keys=True, default=str) for r in rows]
            old = None if known is None else known.get(table.name)
            if old is not None and texts[:len(old)] == old:
                new_rows = rows[len(old):]
            else:
                conn.execute(delete(table).where(table.c.job_id == job_id))
                new_rows = rows
            if new_rows:
                conn.execute(insert(table), new_rows)
            written[table.name] = texts
        return written

    def _spool(self, kind: str, payload: Any) -> None:
        self.spool_folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"kind": kind, "payload": payload}, default=str) + "\n"
        with self.spool_path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._spooled += 1

    def _try_flush(self) -> bool:
        if time.monotonic() - self._last_try < self.retry_s:
            return False
        try:
            return self.flush()
        except StoreUnavailableError:
            return False

    def flush(self) -> bool:
        """Write the spool to the database and empty it; whether the spool is empty now.

        Raises:
            StoreUnavailableError: the database is still away (the spool is kept).
        """
        if not self._spooled:
            return True
        self._last_try = time.monotonic()
        try:
            self._replay(self.spool_path)
        except _LOST as error:
            raise StoreUnavailableError(f"results store {self.url} is still unreachable: "
                                        f"{_cause(error)}") from None
        log.warning("results store %s is back: %d spooled write(s) written", self.url,
                    self._spooled)
        self._spooled = 0
        return True

    def _replay(self, path: Path) -> None:
        """Apply every write of a spool file in one transaction, then delete the file."""
        if not path.exists():
            return
        self._children.clear()
        ops = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip()]
        with self.engine.begin() as conn:
            for op in ops:
                self._apply(conn, op["kind"], op["payload"], fresh=True)
        path.unlink()

    def _replay_leftovers(self) -> None:
        """Write the spools that killed processes of this host left behind."""
        from hanlab.daemon.statefile import pid_alive

        host = socket.gethostname()
        for path in sorted(self.spool_folder.glob(f"{host}-*.jsonl")):
            try:
                pid = int(path.stem.rsplit("-", 1)[1])
            except (IndexError, ValueError):
                continue
            if pid == os.getpid() or not pid_alive(pid):
                try:
                    self._replay(path)
                    log.warning("results store %s: wrote the writes spooled by pid %d",
                                self.url, pid)
                except _LOST:
                    if pid == os.getpid():
                        self._spooled = 1
                except (OSError, ValueError, KeyError) as error:
                    log.error("%s: unreadable spool kept: %s", path, error)

    # -- reads --------------------------------------------------------------------------

    def _read(self, query: Callable[[Connection], Any]) -> Any:
        try:
            with self.engine.connect() as conn:
                return query(conn)
        except _LOST as error:
            raise StoreUnavailableError(f"results store {self.url} is unreachable: "
                                        f"{_cause(error)}") from None

    def get_job(self, job_id: str) -> Row | None:
        """One job record (``JOB``), or ``None``."""
        found = self.jobs(ids=[job_id])
        return found[0][0] if found else None

    def jobs(self, *, ids: Iterable[str] | None = None, rigs: Iterable[str] | None = None,
             label: str | None = None) -> list[tuple[Row, int]]:
        """Job records with the time each was last written (ns), oldest first."""
        def query(conn: Connection) -> list[tuple[Row, int]]:
            q = select(t.jobs).order_by(t.jobs.c.submitted_ns, t.jobs.c.id)
            if ids is not None:
                q = q.where(t.jobs.c.id.in_(list(ids)))
            if rigs is not None:
                q = q.where(t.jobs.c.rig.in_(list(rigs)))
            if label is not None:
                q = q.where(t.jobs.c.label == label)
            heads = [dict(r._mapping) for r in conn.execute(q)]
            return [(self._assemble(conn, head), int(head["updated_ns"])) for head in heads]
        result: list[tuple[Row, int]] = self._read(query)
        return result

    @staticmethod
    def _assemble(conn: Connection, head: Row) -> Row:
        job_id = head["id"]

        def items(table: Table) -> list[Row]:
            q = select(table).where(table.c.job_id == job_id).order_by(table.c.seq)
            return [dict(r._mapping) for r in conn.execute(q)]

        record = {k: head[k] for k in _JOB_SCALARS}
        record.update(
            progress=head["progress"], steps=[r["data"] for r in items(t.job_steps)],
            variant_runs=[r["data"] for r in items(t.job_variant_runs)],
            exchanges=[r["data"] for r in items(t.job_exchanges)],
            timings={**head["timings_header"],
                     "rows": [{k: r[k] for k in _TIMING_FIELDS}
                              for r in items(t.job_timings)]},
            captures=[r["name"] for r in items(t.job_captures)])
        order = ("id", "rig", "lab", "scenario", "variants", "devices", "repeat",
                 "include_optional", "label", "state", "detail", "submitted_ns",
                 "started_ns", "ended_ns", "progress", "steps", "variant_runs",
                 "exchanges", "timings", "captures", "duis_log", "rerun_of")
        return {k: record[k] for k in order}

    def rows(self, table: Table, **where: Any) -> list[Row]:
        """Rows of a campaign table (``campaigns``, ``campaign_lines``,
        ``campaign_jobs``, ``campaign_devices``) or of ``firmware_tracking`` whose
        columns equal ``where``, in primary-key order."""
        def query(conn: Connection) -> list[Row]:
            q = select(table)
            for name, value in where.items():
                q = q.where(table.c[name] == value)
            q = q.order_by(*table.primary_key.columns)
            return [dict(r._mapping) for r in conn.execute(q)]
        result: list[Row] = self._read(query)
        return result


def _upsert(conn: Connection, table: Table, row: Row, keys: tuple[str, ...]) -> None:
    """Update the row with these key values, or insert it (portable, one writer)."""
    condition = [table.c[k] == row[k] for k in keys]
    values = {k: v for k, v in row.items() if k not in keys}
    done = conn.execute(sql_update(table).where(*condition).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(table).values(**row))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine, *, attempts: int = 5) -> str:
    """Bring the database to the newest schema revision; the revision.

    Two processes opening a new store at once: the loser retries and finds it done.

    Raises:
        OperationalError / InterfaceError: the database cannot be reached.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import DatabaseError

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head() or ""
    for attempt in range(attempts):
        with engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return head
        try:
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            return head
        except _LOST:
            raise
        except DatabaseError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return head


def open_store(url: str | None, out: Path, spool_folder: Path | None = None) -> ResultsStore:
    """The store of a lab: ``url`` (the lab file's ``store: url``) or SQLite
    ``<out>/hanlab.db``; spool in ``spool_folder`` or ``<out>/store-spool``.

    Raises:
        BadInputError: see :class:`ResultsStore`.
    """
    return ResultsStore(url or default_url(out),
                        spool_folder or Path(out).absolute() / "store-spool")
