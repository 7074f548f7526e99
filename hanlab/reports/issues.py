"""The test issue log and the DIT defect mask (issue 10, item 7; seed 000 §"Defect Mask",
Table 10, and Table 9 DIT.EX.4, EX.6, EX.9).

An :class:`Issue` is raised from a failed step (:meth:`IssueLog.raise_failed`) or by hand
(:meth:`IssueLog.add`): severity 1 (highest) to 5, owner ``DSP``, ``CSP N``, ``CSP C/S`` or
``device manufacturer`` (with the manufacturer's name), status, work-off date and links to
the evidence (job, step key, RequestID, device, triage bundle).

**Defect mask** (Table 10): per service provider (DSP, CSP N, CSP C/S; "these figures are
per Service Provider") at most 0 / 0 / 15 / 30 / 60 outstanding issues of severity
1 / 2 / 3 / 4 / 5, and each outstanding severity 3 / 4 / 5 issue worked off within
20 / 40 / 60 working days of the Quality Gate Meeting (a work-off date on or before that
day). Issues on the selected devices (ESME, GSME, IHD/PPMID) are outside the mask ("Any
outstanding issues on devices will be reported as part of the test completion"): they
are listed, not counted. Working days are Monday to Friday less the holidays given.

Storage (for now): one YAML file per campaign, ``{"schema": 1, "campaign_id": ..,
"issues": [ISSUE, ...]}``; an issue's key is ``(campaign_id, id)`` with ids ``TI-0001``
… in the order raised, so the campaign engineer can move the log into the results
database unchanged. Written whole to a temporary file and renamed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hanlab.errors import BadInputError

__all__ = ["MASK_LIMITS", "OWNERS", "PROVIDERS", "WORK_OFF_DAYS", "Issue", "IssueLog",
           "MaskRow", "add_working_days", "mask_check"]

Owner = Literal["DSP", "CSP N", "CSP C/S", "device manufacturer"]
Status = Literal["open", "in progress", "fixed", "retest", "deferred", "closed", "rejected"]
OWNERS: Final[tuple[str, ...]] = ("DSP", "CSP N", "CSP C/S", "device manufacturer")
#: the DCC service providers the mask applies to (Table 10 note)
PROVIDERS: Final[tuple[str, ...]] = ("DSP", "CSP N", "CSP C/S")
#: Table 10: outstanding issues allowed per provider, by severity 1..5
MASK_LIMITS: Final[dict[int, int]] = {1: 0, 2: 0, 3: 15, 4: 30, 5: 60}
#: Table 10: work-off plan timescales, working days from the Quality Gate Meeting
WORK_OFF_DAYS: Final[dict[int, int | None]] = {1: None, 2: None, 3: 20, 4: 40, 5: 60}
CLOSED: Final = frozenset({"closed", "rejected"})
CSV_FIELDS: Final = ("campaign_id", "id", "title", "severity", "owner", "manufacturer",
                     "status", "raised", "raised_by", "work_off_date", "job_id", "step",
                     "request_id", "device", "evidence", "description")


class Issue(BaseModel):
    """One test issue (see the module docstring).

    Attributes:
        id: ``TI-0001`` …, unique in the campaign's log.
        campaign_id: the campaign.
        title: one line.
        severity: 1 (highest) .. 5.
        owner: ``DSP``, ``CSP N``, ``CSP C/S`` or ``device manufacturer``.
        manufacturer: the device manufacturer (owner ``device manufacturer``).
        status: ``open``, ``in progress``, ``fixed``, ``retest``, ``deferred``, ``closed``,
            ``rejected`` (closed and rejected are not outstanding).
        raised_ns: when raised (ns since the epoch, UTC); raised_by: who.
        work_off_date: the agreed work-off date (ISO date) or ``None``.
        job_id, step, request_id, device, evidence: links (step: ``variant#rep/index``;
            evidence: the triage bundle's path or URL).
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^TI-\d{4,}$")
    campaign_id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=300)
    severity: int = Field(ge=1, le=5)
    owner: Owner
    manufacturer: str = ""
    status: Status = "open"
    raised_ns: int = 0
    raised_by: str = ""
    work_off_date: dt.date | None = None
    job_id: str | None = None
    step: str | None = None
    request_id: str | None = None
    device: str | None = None
    evidence: str | None = None
    description: str = ""

    @property
    def outstanding(self) -> bool:
        """Not closed or rejected."""
        return self.status not in CLOSED

    @property
    def in_mask(self) -> bool:
        """Counted in the DCC defect mask (not a device issue)."""
        return self.owner in PROVIDERS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``work_off_date`` as ISO text)."""
        return self.model_dump(mode="json")


def add_working_days(start: dt.date, days: int,
                     holidays: Iterable[dt.date] = ()) -> dt.date:
    """``start`` plus ``days`` working days (Monday-Friday, not in ``holidays``)."""
    off = set(holidays)
    day = start
    left = days
    while left > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and day not in off:
            left -= 1
    return day


@dataclass
class MaskRow:
    """One service provider and severity against Table 10."""

    provider: str
    severity: int
    outstanding: int
    limit: int
    work_off_days: int | None
    work_off_by: dt.date | None
    late: list[str]  # outstanding issue ids without a work-off date within the timescale

    @property
    def within_count(self) -> bool:
        """Outstanding count within the mask."""
        return self.outstanding <= self.limit

    @property
    def within(self) -> bool:
        """Count within the mask and every issue's work-off planned in time."""
        return self.within_count and not self.late


def mask_check(issues: Iterable[Issue], quality_gate: dt.date,
               holidays: Sequence[dt.date] = ()) -> list[MaskRow]:
    """Table 10 per provider (DSP, CSP N, CSP C/S) and severity 1..5 for the outstanding
    issues, with work-off deadlines counted from ``quality_gate``."""
    issues = [i for i in issues if i.outstanding and i.in_mask]
    rows: list[MaskRow] = []
    for provider in PROVIDERS:
        for severity in range(1, 6):
            mine = [i for i in issues if i.owner == provider and i.severity == severity]
            days = WORK_OFF_DAYS[severity]
            by = None if days is None else add_working_days(quality_gate, days, holidays)
            late = ([i.id for i in mine if i.work_off_date is None or i.work_off_date > by]
                    if by is not None else [])
            rows.append(MaskRow(provider, severity, len(mine), MASK_LIMITS[severity], days,
                                by, late))
    return rows


class IssueLog:
    """The issue log of one campaign, kept in a YAML file (see the module docstring).

    Args:
        path: the log file (created on the first :meth:`save`).
        campaign_id: the campaign; required when the file does not exist yet.

    Raises:
        BadInputError: the file is unreadable or invalid, or its campaign differs.
    """

    def __init__(self, path: Path | str, campaign_id: str | None = None) -> None:
        self.path = Path(path)
        self.issues: list[Issue] = []
        self.campaign_id: str = campaign_id or ""
        if self.path.exists():
            self._load()
            if campaign_id is not None and campaign_id != self.campaign_id:
                raise BadInputError(f"{self.path}: the log of campaign {self.campaign_id!r},"
                                    f" not {campaign_id!r}")
        elif campaign_id is None:
            raise BadInputError(f"{self.path}: no such issue log",
                                hint="give --campaign ID to start one")
        else:
            self.campaign_id = campaign_id

    def _load(self) -> None:
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise BadInputError(f"{self.path}: cannot read the issue log: {error}") from None
        if not isinstance(data, dict) or "campaign_id" not in data:
            raise BadInputError(f"{self.path}: not an issue log (no campaign_id)")
        self.campaign_id = str(data["campaign_id"])
        for index, item in enumerate(data.get("issues") or []):
            try:
                self.issues.append(Issue.model_validate(item))
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise BadInputError(f"{self.path}: issues[{index}].{where}: "
                                    f"{first['msg']}") from None

    def save(self) -> None:
        """Write the log whole (temporary file, rename)."""
        text = yaml.safe_dump({"schema": 1, "campaign_id": self.campaign_id,
                               "issues": [i.to_dict() for i in self.issues]},
                              sort_keys=False, allow_unicode=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".issues-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def next_id(self) -> str:
        """The next free ``TI-nnnn``."""
        numbers = [int(i.id[3:]) for i in self.issues]
        return f"TI-{max(numbers, default=0) + 1:04d}"

    def add(self, **fields: Any) -> Issue:
        """Add one issue (``fields`` of :class:`Issue` but ``id`` and ``campaign_id``).

        Raises:
            BadInputError: a field is missing or bad (named).
        """
        fields.setdefault("raised_ns", time.time_ns())
        try:
            issue = Issue.model_validate({**fields, "id": self.next_id(),
                                          "campaign_id": self.campaign_id})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(issue)"
            raise BadInputError(f"issue {where}: {first['msg']}") from None
        self.issues.append(issue)
        return issue

    def get(self, issue_id: str) -> Issue:
        """One issue. Raises BadInputError if there is none."""
        for issue in self.issues:
            if issue.id == issue_id:
                return issue
        raise BadInputError(f"{self.path}: no issue {issue_id}", hint="hanlab issues list")

    def update(self, issue_id: str, **fields: Any) -> Issue:
        """Change fields of one issue (status, work-off date, owner …).

        Raises:
            BadInputError: no such issue, or a bad value.
        """
        issue = self.get(issue_id)
        try:
            new = Issue.model_validate({**issue.to_dict(), **fields})
        except ValidationError as error:
            first = error.errors()[0]
            raise BadInputError(f"issue {issue_id} {first['loc'][0]}: {first['msg']}") from None
        self.issues[self.issues.index(issue)] = new
        return new

    def raise_failed(self, records: Iterable[dict[str, Any]], *, severity: int, owner: str,
                     manufacturer: str = "", raised_by: str = "",
                     evidence: dict[str, str] | None = None) -> list[Issue]:
        """One issue per failed mandatory step of the job ``records`` that has none yet
        (keyed by job id and step key); the issues added."""
        from hanlab.reports.analysis import step_request_id
        from hanlab.reports.model import step_key

        have = {(i.job_id, i.step) for i in self.issues}
        added: list[Issue] = []
        for record in records:
            for step in record.get("steps") or []:
                if step.get("status") != "failed" or step.get("optional"):
                    continue
                key = step_key(step)
                if (record["id"], key) in have:
                    continue
                what = step.get("sr_variant") or step.get("kind")
                title = (f"{step.get('scenario')}/{step.get('variant')} step "
                         f"{step.get('index')} ({what} to {step.get('target_role') or '—'}): "
                         f"{step.get('outcome')}")
                added.append(self.add(
                    title=title[:300], severity=severity, owner=owner,
                    manufacturer=manufacturer, raised_by=raised_by, job_id=record["id"],
                    step=key, request_id=step_request_id(step),
                    device=step.get("target_eui64"),
                    evidence=(evidence or {}).get(f"{record['id']}/{key}"),
                    description=str(step.get("detail") or "")))
        return added

    def to_csv(self) -> str:
        """The log as CSV (columns :data:`CSV_FIELDS`; ``raised`` as UTC ISO time)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for issue in self.issues:
            row = issue.to_dict()
            raised = dt.datetime.fromtimestamp(issue.raised_ns / 1e9, dt.UTC)
            row["raised"] = raised.isoformat(timespec="seconds").replace("+00:00", "Z")
            writer.writerow({k: ("" if row.get(k) is None else row.get(k))
                             for k in CSV_FIELDS})
        return buffer.getvalue()
