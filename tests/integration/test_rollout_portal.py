"""The roll-out portal's M2M API (SECMP0024 section 3.2) over real HTTP, mounted on the
emulated DCC: per-User HMAC authentication, roles, bounded input, rule refusals (409, the
rule and clause named, nothing changed), and a lab rehearsal over two rigs' CHs through
the deployment hook: pilot on one rig, an incident pauses the roll-out, resume, then the
safe launch in batches.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from hanlab.emulator.dcc import EmulatedDcc, EmulatedDccSettings
from hanlab.emulator.dcc.rollout import (
    ChRecord,
    DeployOrder,
    PortalUser,
    RolloutConfig,
    RolloutPortal,
    RolloutService,
    authorization,
)
from hanlab.emulator.dcc.rollout.portal import PREFIX

IMPORT, GAS = "90-B3-D5-1F-30-01-00-00", "90-B3-D5-1F-30-02-00-00"
SECRETS = {IMPORT: b"import-supplier-secret-0001", GAS: b"gas-supplier-secret-00002",
           "dcc": b"dcc-operator-secret-000003"}
RIG_1_CH, RIG_2_CH = "00-DB-12-34-56-78-90-01", "00-DB-12-34-56-78-90-02"
T0 = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)


@dataclass
class Portal:
    url: str
    session: aiohttp.ClientSession
    portal: RolloutPortal
    orders: list[DeployOrder] = field(default_factory=list)
    clock: list[dt.datetime] = field(default_factory=lambda: [T0])

    async def call(self, who: str, method: str, path: str, body: object = None,
                   *, secret: bytes | None = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        header = authorization(who, secret or SECRETS[who], method, PREFIX + path, data)
        async with self.session.request(method, self.url + PREFIX + path, data=data,
                                        headers={"Authorization": header}) as reply:
            return reply.status, await reply.json()


@pytest.fixture
async def portal() -> AsyncIterator[Portal]:
    # two rigs of the lab: rig 1's CH single supply, rig 2's CH split supply
    inventory = [ChRecord(RIG_1_CH, "EMU-CH-DB", "1.0", IMPORT, IMPORT),
                 ChRecord(RIG_2_CH, "EMU-CH-DB", "1.0", IMPORT, GAS)]
    state = Portal("", None, None)  # type: ignore[arg-type]
    service = RolloutService(inventory, RolloutConfig(pilot_max_size=1, batch_min_size=1),
                             clock=lambda: state.clock[0], deploy=state.orders.append)
    users = [PortalUser(IMPORT, "supplier", SECRETS[IMPORT]),
             PortalUser(GAS, "supplier", SECRETS[GAS]),
             PortalUser("dcc", "dcc", SECRETS["dcc"])]
    state.portal = RolloutPortal(service, users)
    async with EmulatedDcc(EmulatedDccSettings(), users=[], devices={},
                           rollout=state.portal) as dcc, aiohttp.ClientSession() as session:
        state.url, state.session = dcc.url, session
        yield state


NOTIFY = {"image_id": "EMU-CH-2.0", "device_model": "EMU-CH-DB", "firmware_version": "2.0",
          "release_note": "RN-EMU-CH-2.0", "severity": "high", "priority": "normal"}


async def test_authentication_per_user(portal: Portal) -> None:
    """Unsigned, wrongly signed, replayed and stale requests get 401 and one message."""
    url = portal.url + PREFIX + "/notifications"
    async with portal.session.get(url) as reply:
        assert reply.status == 401
    status, body = await portal.call(IMPORT, "GET", "/notifications", secret=b"x" * 20)
    assert status == 401 and body == {"error": "unauthenticated"}
    header = authorization(IMPORT, SECRETS[IMPORT], "GET", PREFIX + "/notifications", b"")
    for expected in (200, 401):  # the same nonce twice: a replay
        async with portal.session.get(url, headers={"Authorization": header}) as reply:
            assert reply.status == expected
    stale = authorization(IMPORT, SECRETS[IMPORT], "GET", PREFIX + "/notifications", b"",
                          ts=1_000_000)
    async with portal.session.get(url, headers={"Authorization": stale}) as reply:
        assert reply.status == 401
    # signed for another path: does not verify
    moved = authorization(IMPORT, SECRETS[IMPORT], "GET", PREFIX + "/dashboard", b"")
    async with portal.session.get(url, headers={"Authorization": moved}) as reply:
        assert reply.status == 401
    assert portal.portal.refused_auth == 5
    assert SECRETS[IMPORT].decode() not in repr(portal.portal.auth.users)


async def test_roles_and_bad_input(portal: Portal) -> None:
    status, body = await portal.call(IMPORT, "POST", "/notifications", NOTIFY)
    assert status == 403 and body["rule"] == "dcc-only"
    status, body = await portal.call("dcc", "POST", "/notifications",
                                     {**NOTIFY, "severity": "apocalyptic"})
    assert status == 400 and "severity" in body["message"]
    assert portal.portal.service.notifications() == []
    for raw, expected in ((b"[1, 2]", "JSON object"), (b"{not json", "not JSON")):
        header = authorization("dcc", SECRETS["dcc"], "POST", PREFIX + "/notifications", raw)
        async with portal.session.post(portal.url + PREFIX + "/notifications", data=raw,
                                       headers={"Authorization": header}) as reply:
            assert reply.status == 400 and expected in (await reply.json())["message"]
    await portal.call("dcc", "POST", "/notifications", NOTIFY)
    status, body = await portal.call(IMPORT, "POST", "/notifications/EMU-CH-2.0/pilot",
                                     {"guids": "nope", "activation_at": "2027-02-01T00:00Z"})
    assert status == 400 and "'guids'" in body["message"]
    status, body = await portal.call(IMPORT, "GET", "/status?limit=-1")
    assert status == 400 and "'limit'" in body["message"]
    async with portal.session.post(
            portal.url + PREFIX + "/notifications", data=io.BytesIO(b"x" * (2 << 20)),
            headers={"Content-Length": str(2 << 20)}) as reply:
        assert reply.status == 413  # the DCC's HTTP limits bound the portal too


async def test_refused_instruction_names_rule_and_changes_nothing(portal: Portal) -> None:
    assert (await portal.call("dcc", "POST", "/notifications", NOTIFY))[0] == 200
    before = portal.portal.service.status_report(IMPORT)
    for body, rule in [
        ({"guids": [RIG_1_CH], "activation_at": "2027-08-01T00:00:00Z"},
         "instruction-earlier-than-automatic"),
        ({"guids": ["00-DB-12-00-00-00-00-99"], "activation_at": "2027-02-01T00:00:00Z"},
         "guid-known"),
    ]:
        status, answer = await portal.call(IMPORT, "POST",
                                           "/notifications/EMU-CH-2.0/instructions", body)
        assert status == 409 and answer["rule"] == rule
        assert answer["clause"].startswith("SECMP0024 2.")
    status, answer = await portal.call(IMPORT, "POST", "/notifications/EMU-CH-2.0/pilot",
                                       {"guids": [RIG_1_CH, RIG_2_CH],
                                        "activation_at": "2027-02-01T00:00:00Z"})
    assert status == 409 and answer["rule"] == "pilot-max-size"
    assert portal.portal.service.status_report(IMPORT) == before


async def test_lab_rehearsal_pilot_incident_resume_safe_launch(portal: Portal) -> None:
    """Issue 12 item 5's shape over the two rigs' CHs: pilot on rig 1, an incident
    pauses, the DCC resumes, then the split-supply CH of rig 2 in the safe launch once
    both Suppliers instructed; each CH's outcome comes back from the HAN side."""
    image = "/notifications/EMU-CH-2.0"
    await portal.call("dcc", "POST", "/notifications", NOTIFY)
    _, selected = await portal.call(IMPORT, "POST", image + "/pilot/select",
                                    {"single_supplier_only": True})
    assert selected == {"guids": [RIG_1_CH]}
    status, answer = await portal.call(IMPORT, "POST", image + "/pilot",
                                       {**selected, "activation_at": "2027-01-25T02:00:00Z"})
    assert status == 200 and answer["accepted"]
    _, started = await portal.call("dcc", "POST", image + "/pilot/start")
    assert [o.guid for o in portal.orders] == [RIG_1_CH]  # the hook: deploy X to G at T
    assert started["deployed"][0]["activation_at"] == "2027-01-25T02:00:00Z"
    await portal.call("dcc", "POST", image + "/outcomes", {"guid": RIG_1_CH, "success": True})

    # the Gas Supplier sees a second Supplier, not who
    await portal.call(IMPORT, "POST", image + "/instructions",
                      {"guids": "all", "activation_at": "2027-02-01T02:00:00Z"})
    _, second = await portal.call(GAS, "GET", image + "/second-supplier/" + RIG_2_CH)
    assert second["second_supplier_exists"] and second["second_supplier_instructed"]
    assert IMPORT not in json.dumps(second)

    # an incident with an emergency stop suspends; the DCC pauses, then resumes
    _, incident = await portal.call(IMPORT, "POST", image + "/incidents",
                                    {"description": "IHD drops off", "emergency_stop": True})
    assert incident["priority"] == "high" and incident["state"] == "suspended"
    decision = f"/incidents/{incident['incident_id']}/decision"
    assert (await portal.call("dcc", "POST", decision, {"decision": "pause"}))[1][
        "state"] == "paused"
    status, refused = await portal.call("dcc", "POST", image + "/deploy-due")
    assert status == 409 and refused["rule"] == "rollout-halted"
    assert (await portal.call("dcc", "POST", decision, {"decision": "proceed"}))[1][
        "state"] == "safe_launch"

    # split supply: the Import Supplier alone does not move the date; with both, the later
    portal.clock[0] = dt.datetime(2027, 2, 1, 3, tzinfo=dt.UTC)
    _, due = await portal.call("dcc", "POST", image + "/deploy-due")
    assert due["count"] == 0
    portal.clock[0] = T0 + dt.timedelta(days=10)
    await portal.call(GAS, "POST", image + "/instructions",
                      {"guids": [RIG_2_CH], "activation_at": "2027-02-08T02:00:00Z"})
    portal.clock[0] = dt.datetime(2027, 2, 8, 2, tzinfo=dt.UTC)
    _, due = await portal.call("dcc", "POST", image + "/deploy-due")
    assert due["deployed"] == [{"guid": RIG_2_CH, "activation_at": "2027-02-08T02:00:00Z",
                                "group": "safe_launch"}]
    await portal.call("dcc", "POST", image + "/outcomes",
                      {"guid": RIG_2_CH, "success": False, "reason": "GSME did not rejoin"})

    _, status_report = await portal.call(GAS, "GET", "/status")
    assert status_report["counts"] == {"failed": 1}
    assert status_report["items"][0]["rollouts"]["EMU-CH-2.0"]["reason"] == (
        "GSME did not rejoin")
    _, dash = await portal.call("dcc", "GET", "/dashboard")
    assert dash["rollouts"][0]["state"] == "complete"
    assert any("batch_min_size = 1" in d for d in dash["config_deviations"])
    _, notices = await portal.call(GAS, "GET", "/notices?after=0&limit=100")
    kinds = [n["kind"] for n in notices["notices"]]
    for kind in ("available", "eligible_report", "pilot_started", "pilot_ended",
                 "second_supplier", "decision", "progress"):
        assert kind in kinds, kind
    meaning = [n["meaning"] for n in notices["notices"] if n["kind"] == "decision"]
    assert len(meaning) == 3 and "held" in meaning[1]
