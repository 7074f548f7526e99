"""SIP#7 Firmware Distribution Tracking (seed 003): statuses from the DUIS
acknowledgement, device alerts and DCC alerts; search, CSV, reset, retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hanlab.errors import BadInputError
from hanlab.firmware.tracking import (
    CSV_COLUMNS,
    TrackingStore,
    rows_csv,
    update_from_duis_log,
)

USER = "90-B3-D5-1F-30-01-00-00"
DCC = "90-B3-D5-1F-30-00-00-02"
ESME = "00-DB-12-00-00-00-C1-01"
GSME = "00-DB-12-00-00-00-C2-01"
CHF = "00-DB-12-00-00-00-C0-01"
T0 = 1_750_000_000 * 10**9


def _ack(counter: int, ts_s: float, code: str = "I0", sr: str = "11.1",
         target: str = DCC) -> list[dict[str, Any]]:
    rid = f"{USER}:{target}:{counter}"
    base = {"user": USER, "request_id_text": rid, "sr_variant": sr}
    return [{**base, "ts_ns": T0 + int(ts_s * 1e9) - 1, "kind": "request", "xml": None},
            {**base, "ts_ns": T0 + int(ts_s * 1e9), "kind": "ack", "response_code": code}]


def _alert(device: str, code: str, ts_s: float) -> dict[str, Any]:
    return {"ts_ns": T0 + int(ts_s * 1e9), "kind": "alert", "alert_code": code,
            "response_id": f"{device}:{USER}:{int(ts_s)}", "sr_variant": None}


def test_statuses_search_csv_reset_and_retention(tmp_path: Path) -> None:
    log = [*_ack(1, 1), _alert(ESME, "8F72", 5), _alert(CHF, "8F72", 5.5),
           *_ack(2, 6, sr="11.3", target=ESME),
           {"ts_ns": T0 + 7 * 10**9, "kind": "response", "sr_variant": "11.3",
            "request_id_text": f"{USER}:{ESME}:2", "response_code": "I0"},
           _alert(ESME, "8F66", 8),
           *_ack(3, 10), _alert(GSME, "8F1C", 20), *_ack(4, 30, code="E12")]
    store = TrackingStore(tmp_path / "t.json")
    update_from_duis_log(store, log, device_types={ESME: "ESME", GSME: "GSME", CHF: "CHF"})
    esme = store.search(device_id=ESME)
    assert len(esme) == 1 and esme[0].completion_status == "Complete"
    assert [c.status for c in esme[0].history] == [
        "Accepted by DSP", "Successful HAN Transfer", "Firmware Activated"]
    assert esme[0].history[1].source == "device alert"  # 0x8F72 drives it
    assert store.search(device_id=CHF) == []           # Comms Hubs are never tracked
    gsme = store.search(sr_id=f"{USER}:{DCC}:3")
    assert gsme[0].current.status == "Not Delivered at HAN"
    assert gsme[0].completion_status == "Failed" and "0x8F1C" in gsme[0].current.reason
    with pytest.raises(BadInputError):
        store.search()
    text = rows_csv(store.search(device_id=ESME))
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert "Firmware Activated" in text.splitlines()[1]
    store.reset(f"{USER}:{DCC}:3", GSME, T0 + 40 * 10**9, "User disagreed")
    assert store.search(device_id=GSME)[0].completion_status == "In Progress"
    store.save()
    again = TrackingStore(tmp_path / "t.json")
    assert again.search(device_id=GSME)[0].current.status == "Reset by DCC"
    assert again.purge(T0 + 29 * 86_400 * 10**9) == 0
    assert again.purge(T0 + 31 * 86_400 * 10**9) == 2 and again.records == {}


def test_dcc_alert_and_rejection(tmp_path: Path) -> None:
    log = [*_ack(1, 1), _alert(ESME, "8F72", 2), *_ack(5, 3),
           {"ts_ns": T0 + 4 * 10**9, "kind": "alert", "dcc_alert_code": "N19",
            "xml": f"<x>{USER}:{DCC}:5 {GSME}</x>"}]
    store = TrackingStore(tmp_path / "t.json")
    # the second request names the GSME in its XML
    log[3]["xml"] = f"<DeviceIDList>{GSME}</DeviceIDList>"
    update_from_duis_log(store, log)
    rec = store.search(device_id=GSME)[0]
    assert rec.current.status == "Failed CH Transfer" and rec.current.source == "DCC alert"
