"""SIP#7 Firmware Distribution Tracking (seed 003): per Update Firmware request (SR 11.1)
and target device, the Processing Status history and the Completion Status.

Processing Status values (seed 003, §2.2) and what drives each here:

=========================== ==============================================================
status                      driven by
=========================== ==============================================================
Rejected by DSP             the DUIS acknowledgement of SR 11.1 is an error (not ``I0``)
Accepted by DSP             the DUIS acknowledgement of SR 11.1 is ``I0``
Not Accepted by CSP         DCC Alert FirmwareDistributionFailure (default N18)
Approved for Distribution   the CH offers the image on the HAN (capture: Image Notify /
                            Query Next Image Response): the DCC passed it on
Failed CH Transfer          DCC Alert FirmwareDistributionFailure (default N19)
Successful CH Transfer      the CH holds and serves the image (capture, as above)
Not Delivered at HAN        DCC Alert N20-N23; device alert 0x8F1C Firmware Verification
                            Failed; a capture whose transfer ended INVALID_IMAGE
Successful HAN Transfer     device alert 0x8F72 Firmware Verification Successful; a
                            capture whose Upgrade End Request says SUCCESS
Activation Failed           device alert 0x8F67 after SR 11.3
Firmware Activated          device alert 0x8F66 after SR 11.3, else the 11.3's DUIS
                            Response ``I0``
Reset by DCC                manual (:meth:`TrackingStore.reset`, the SSMI action)
=========================== ==============================================================

Completion Status: ``Complete`` after Firmware Activated; ``Failed`` after Rejected by DSP,
Not Accepted by CSP, Failed CH Transfer, Not Delivered at HAN or Activation Failed;
otherwise ``In Progress`` (Reset by DCC too: the request may be sent again). Only ESME,
GSME, PPMID and HCALCS are tracked (never a Comms Hub). Records older than the retention
window (30 days) are purged. Which of N18-N23 means what is hanlab's reading
(:data:`DCC_ALERT_STATUS`, configurable); it is not established from DUIS's own text.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hanlab.errors import BadInputError

if TYPE_CHECKING:
    from hanlab.store.db import ResultsStore

PROCESSING_STATUSES: Final = (
    "Rejected by DSP", "Accepted by DSP", "Not Accepted by CSP", "Approved for Distribution",
    "Failed CH Transfer", "Successful CH Transfer", "Not Delivered at HAN",
    "Successful HAN Transfer", "Activation Failed", "Firmware Activated", "Reset by DCC")
FAILED: Final = frozenset({"Rejected by DSP", "Not Accepted by CSP", "Failed CH Transfer",
                           "Not Delivered at HAN", "Activation Failed"})
TRACKED_DEVICE_TYPES: Final = frozenset({"ESME", "GSME", "PPMID", "HCALCS"})
RETENTION_DAYS: Final = 30
#: DCCAlertCode -> Processing Status (hanlab's reading, see the module docstring).
DCC_ALERT_STATUS: Final[Mapping[str, str]] = {
    "N18": "Not Accepted by CSP", "N19": "Failed CH Transfer", "N20": "Not Delivered at HAN",
    "N21": "Not Delivered at HAN", "N22": "Not Delivered at HAN", "N23": "Not Delivered at HAN",
}
CSV_COLUMNS: Final = ("Service Request ID", "Firmware Version", "Device ID", "Current Status",
                      "Current Status Reason", "Current Status Update Time and Date",
                      "Completion Status")
_DAY_NS: Final = 86_400 * 10**9


def completion_of(status: str) -> str:
    """The Completion Status after Processing Status ``status``."""
    if status == "Firmware Activated":
        return "Complete"
    return "Failed" if status in FAILED else "In Progress"


@dataclass
class StatusChange:
    """One Processing Status set at ``ts_ns`` with its ``reason`` and ``source``."""

    status: str
    ts_ns: int
    reason: str = ""
    source: str = ""


@dataclass
class TrackingRecord:
    """One Update Firmware request for one target device."""

    request_id: str
    device_id: str
    device_type: str | None = None
    firmware_version: str | None = None
    history: list[StatusChange] = field(default_factory=list)

    @property
    def current(self) -> StatusChange:
        """The latest status."""
        return self.history[-1]

    @property
    def completion_status(self) -> str:
        """``In Progress``, ``Failed`` or ``Complete``."""
        return completion_of(self.current.status)

    def set(self, status: str, ts_ns: int, reason: str = "", source: str = "") -> None:
        """Record ``status`` (kept in time order; a repeat of the same status is ignored)."""
        if status not in PROCESSING_STATUSES:
            raise BadInputError(f"unknown Processing Status {status!r}")
        if any(c.status == status and (c.ts_ns == ts_ns or c is self.history[-1])
               for c in self.history):
            return
        self.history.append(StatusChange(status, ts_ns, reason, source))
        self.history.sort(key=lambda c: c.ts_ns)

    def row(self) -> dict[str, str]:
        """The seed's CSV columns."""
        import datetime as dt

        when = dt.datetime.fromtimestamp(self.current.ts_ns / 1e9, dt.UTC)
        return dict(zip(CSV_COLUMNS, (
            self.request_id, self.firmware_version or "", self.device_id, self.current.status,
            self.current.reason, when.strftime("%Y-%m-%d %H:%M:%S UTC"),
            self.completion_status), strict=True))


def _record_of(item: Mapping[str, Any]) -> TrackingRecord:
    return TrackingRecord(item["request_id"], item["device_id"], item.get("device_type"),
                          item.get("firmware_version"),
                          [StatusChange(**c) for c in item["history"]])


class TrackingStore:
    """Tracking records in a JSON file (``state/firmware-tracking.json``) or in the
    results store's ``firmware_tracking`` table (:mod:`hanlab.store`).

    Args:
        where: a JSON file, or a results-store database URL (``sqlite:///…/hanlab.db``,
            ``postgresql+psycopg://…``: what the lab file's ``store: url`` names).
        spool_folder: for a database, where writes wait while it is away (default
            ``store-spool`` beside the JSON path's folder, ``state/``).

    Raises:
        BadInputError: the file is not a tracking store, or the database cannot be
            reached (one line naming it, password hidden).
    """

    def __init__(self, where: Path | str, *, spool_folder: Path | None = None) -> None:
        self.records: dict[tuple[str, str], TrackingRecord] = {}
        self._purged: list[tuple[str, str]] = []
        self.db: ResultsStore | None = None
        self.path = Path(where)
        if "://" in str(where):
            from hanlab.store.db import ResultsStore
            from hanlab.store.schema import firmware_tracking

            self.db = ResultsStore(str(where), spool_folder or Path("state/store-spool"))
            self.path = Path(self.db.url)
            for row in self.db.rows(firmware_tracking):
                rec = _record_of(row)
                self.records[(rec.request_id, rec.device_id)] = rec
        elif self.path.is_file():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                for item in doc["records"]:
                    rec = _record_of(item)
                    self.records[(rec.request_id, rec.device_id)] = rec
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise BadInputError(f"{self.path}: not a firmware tracking store: {error}") \
                    from None

    def close(self) -> None:
        """Close the database (writes spooled while it was away are written first)."""
        if self.db is not None:
            self.db.close()

    def save(self) -> None:
        """Write the store: the JSON file atomically, or every record's row (and the
        deletion of those purged) to the database."""
        if self.db is not None:
            if self._purged:
                self.db.delete_tracking(self._purged)
                self._purged = []
            self.db.put_tracking([{
                "request_id": r.request_id, "device_id": r.device_id,
                "device_type": r.device_type, "firmware_version": r.firmware_version,
                "current_status": r.current.status, "completion_status": r.completion_status,
                "updated_ns": r.current.ts_ns, "history": [asdict(c) for c in r.history]}
                for r in self.records.values() if r.history])
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"schema": 1, "records": [
            asdict(r) for r in self.records.values()]}, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def record(self, request_id: str, device_id: str) -> TrackingRecord:
        """The record of (``request_id``, ``device_id``), created when new."""
        key = (request_id, device_id)
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = TrackingRecord(request_id, device_id)
        return rec

    def search(self, *, sr_id: str | None = None,
               device_id: str | None = None) -> list[TrackingRecord]:
        """Records of one SR ID or one Device ID (seed 003: one search term, exactly one
        criterion).

        Raises:
            BadInputError: neither or both criteria given.
        """
        if (sr_id is None) == (device_id is None):
            raise BadInputError("search by exactly one of Service Request ID or Device ID")
        out = [r for r in self.records.values()
               if (sr_id is not None and r.request_id == sr_id)
               or (device_id is not None and r.device_id.upper() == device_id.upper())]
        return sorted(out, key=lambda r: r.current.ts_ns)

    def reset(self, sr_id: str, device_id: str, ts_ns: int, reason: str) -> TrackingRecord:
        """The DCC Service Centre's "Reset by DCC" (seed 003).

        Raises:
            BadInputError: no such record.
        """
        rec = self.records.get((sr_id, device_id.upper()))
        if rec is None:
            raise BadInputError(f"no tracking record for SR {sr_id} and device {device_id}")
        rec.set("Reset by DCC", ts_ns, reason or "reset by the DCC Service Centre", "SSMI")
        return rec

    def purge(self, now_ns: int, retention_days: int = RETENTION_DAYS) -> int:
        """Drop records whose last update is older than the retention window; how many."""
        cutoff = now_ns - retention_days * _DAY_NS
        old = [k for k, r in self.records.items() if r.current.ts_ns < cutoff]
        for key in old:
            del self.records[key]
        self._purged.extend(old)
        return len(old)


def rows_csv(records: Iterable[TrackingRecord]) -> str:
    """The records as CSV with the seed's columns."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow(rec.row())
    return buf.getvalue()


def _device_of(response_id: Any) -> str | None:
    text = str(response_id or "")
    return text.split(":")[0].upper() if text.count(":") == 2 else None


def update_from_duis_log(store: TrackingStore, entries: list[dict[str, Any]], *,
                         device_types: Mapping[str, str] | None = None,
                         transfers: Iterable[Any] = (),
                         alert_status: Mapping[str, str] = DCC_ALERT_STATUS) -> None:
    """Derive statuses from a DUIS log (and the transfers seen in captures).

    The SR 11.1's target devices: its ``DeviceIDList`` when the log kept the XML, else the
    devices whose OTA transfer or verification alert followed it for the same User.
    ``device_types`` (EUI-64 -> ESME/GSME/…): only ESME, GSME, PPMID and HCALCS are kept.
    """
    import re

    entries = sorted(entries, key=lambda e: int(e["ts_ns"]))
    types = {k.upper(): v.upper() for k, v in (device_types or {}).items()}
    transfers = list(transfers)
    acks = [e for e in entries if e.get("sr_variant") == "11.1" and e.get("kind") == "ack"]
    requests = {e["request_id_text"]: e for e in entries
                if e.get("sr_variant") == "11.1" and e.get("kind") == "request"}

    def user_of(rid: str) -> str:
        return rid.split(":")[0].upper()

    targets: dict[str, set[str]] = {}
    rid: str | None
    for ack in acks:
        rid = str(ack["request_id_text"])
        xml = str(requests.get(rid, {}).get("xml") or "")
        listed = set(re.findall(r"(?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}",
                                xml.split("DeviceIDList")[1] if "DeviceIDList" in xml else ""))
        targets[rid] = {d.upper() for d in listed}

    def request_for(device: str, ts_ns: int, user: str | None) -> str | None:
        best = None
        for ack in acks:
            rid = str(ack["request_id_text"])
            if int(ack["ts_ns"]) > ts_ns or (user is not None and user_of(rid) != user):
                continue
            if targets.get(rid) and device not in targets[rid]:
                continue
            best = rid
        return best

    def tracked(device: str) -> bool:
        kind = types.get(device)
        return kind is None or kind in TRACKED_DEVICE_TYPES

    def put(rid: str, device: str, status: str, ts_ns: int, reason: str, source: str) -> None:
        if not tracked(device):
            return
        rec = store.record(rid, device)
        rec.device_type = rec.device_type or types.get(device)
        rec.set(status, ts_ns, reason, source)

    for t in transfers:  # capture evidence ties devices to requests too
        device = (t.device_eui64 or "").upper()
        if device and t.request_id:
            targets.setdefault(t.request_id, set()).add(device)
    for e in entries:
        if e.get("kind") == "alert" and e.get("alert_code") in ("8F72", "8F1C"):
            device = _device_of(e.get("response_id"))
            user = str(e.get("response_id")).split(":")[1].upper()
            rid = request_for(device or "", int(e["ts_ns"]), user) if device else None
            if rid is not None and device is not None and not targets.get(rid):
                targets.setdefault(rid, set()).add(device)
    for ack in acks:
        rid = str(ack["request_id_text"])
        code = ack.get("response_code")
        for device in sorted(targets.get(rid, set())):
            if code == "I0":
                put(rid, device, "Accepted by DSP", int(ack["ts_ns"]), "I0", "DUIS acknowledgement")
            else:
                put(rid, device, "Rejected by DSP", int(ack["ts_ns"]), str(code),
                    "DUIS acknowledgement")
    for t in transfers:
        device = (t.device_eui64 or "").upper()
        rid = t.request_id or (request_for(device, t.start_ns, None) if device else None)
        if not device or rid is None:
            continue
        version = f"0x{t.file_version:08X}"
        store.record(rid, device).firmware_version = version
        put(rid, device, "Approved for Distribution", t.start_ns,
            "the CH offers the image on the HAN", "capture")
        put(rid, device, "Successful CH Transfer", t.start_ns,
            f"the CH serves image {version}", "capture")
        if t.upgrade_end_status == 0:
            put(rid, device, "Successful HAN Transfer", t.end_ns,
                f"{len(t.blocks)} blocks, Upgrade End SUCCESS", "capture")
        elif t.upgrade_end_status is not None:
            put(rid, device, "Not Delivered at HAN", t.end_ns,
                f"Upgrade End status 0x{t.upgrade_end_status:02X}", "capture")
    for e in entries:
        kind, ts_ns = e.get("kind"), int(e["ts_ns"])
        if kind == "alert" and e.get("alert_code"):
            device = _device_of(e.get("response_id"))
            code = str(e["alert_code"]).upper()
            if device is None:
                continue
            user = str(e.get("response_id")).split(":")[1].upper()
            rid = request_for(device, ts_ns, user)
            if rid is None:
                continue
            status = {"8F72": ("Successful HAN Transfer", "Firmware Verification Successful"),
                      "8F1C": ("Not Delivered at HAN", "Firmware Verification Failed"),
                      "8F66": ("Firmware Activated", "Future Dated Command Outcome Success"),
                      "8F67": ("Activation Failed", "Future Dated Command Outcome Failure")
                      }.get(code)
            if status is not None and (code in ("8F72", "8F1C")
                                       or (rid, device) in store.records):
                put(rid, device, status[0], ts_ns, f"0x{code} {status[1]}", "device alert")
        elif kind == "alert" and e.get("dcc_alert_code") in alert_status:
            code = str(e["dcc_alert_code"])
            xml = str(e.get("xml") or "")
            for rid, devices in targets.items():
                if rid in xml or not xml:
                    for device in devices:
                        if rid in xml or request_for(device, ts_ns, None) == rid:
                            put(rid, device, alert_status[code], ts_ns,
                                f"{code} FirmwareDistributionFailure", "DCC alert")
        elif e.get("sr_variant") == "11.3" and kind == "response":
            device = str(e["request_id_text"]).split(":")[1].upper()
            rid = request_for(device, ts_ns, None)
            if rid is not None and (rid, device) in store.records and \
                    e.get("response_code") == "I0":
                put(rid, device, "Firmware Activated", ts_ns, "SR 11.3 response I0",
                    "DUIS response")
