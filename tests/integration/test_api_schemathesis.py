"""Property-based test of the control API driven by its own OpenAPI document (issue 9,
item 3): schemathesis generates valid and invalid requests for every operation and sends
them, with the operator token, to the API running on loopback over :class:`FakeLab`.
No answer may be a 5xx, an undocumented status or content type, or a body that breaks
its schema, and invalid input must be refused (4xx).

Budget: at most 30 examples per operation and generation mode, no example database,
derandomised, so the run is repeatable and takes some seconds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hanlab.config.models import ApiConfig
from hanlab.daemon.api import ApiServer
from hanlab.daemon.openapi import openapi_document
from hanlab.daemon.tokens import TokenStore
from tests.integration.test_api import FakeLab

MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, negative_data_rejection]


@dataclass
class LiveApi:
    url: str
    tokens: TokenStore
    lab: FakeLab


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveApi]:
    """The API over a FakeLab, served by an event loop in its own thread (schemathesis
    calls synchronously), stopped and joined at the end of the test (with the loop's
    executor threads, which serve file downloads)."""
    folder = tmp_path
    tokens, _ = TokenStore.load_or_create(folder / "tokens.json")
    (folder / "captures").mkdir()
    lab = FakeLab(folder / "captures")
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        try:
            async with ApiServer(lab, ApiConfig(host="127.0.0.1", port=0), tokens) as server:
                box["url"] = server.url
                ready.set()
                await stop.wait()
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="api-under-test")
    thread.start()
    try:
        assert ready.wait(30) and "url" in box, "the API did not start"
        yield LiveApi(box["url"], tokens, lab)
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        assert not thread.is_alive()


def _aim_at_real_things(case: schemathesis.Case[Any], lab: FakeLab) -> None:
    """Point a valid case at a rig, job and capture file that exist (random names are
    almost always 404), keeping the rest of what was generated."""
    rig = "emulated-dual-band"
    parameters = case.path_parameters or {}
    if "rig" in parameters:
        parameters["rig"] = rig
    if "id" in parameters:
        parameters["id"] = list(lab.jobs_by_id)[-1]
    if "name" in parameters:
        parameters["name"] = lab.capture_files[rig][0].name
    if isinstance(case.body, dict) and "rig" in case.body:
        case.body.update(rig=rig, scenario="meter-reading")
        case.body.pop("variants", None)


def _operations() -> list[str]:
    return [f"{method.upper()} {path}" for path, item in openapi_document()["paths"].items()
            for method in item]


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE,
                                  schemathesis.GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_api_keeps_its_document(live_api: LiveApi, mode: schemathesis.GenerationMode) -> None:
    document = openapi_document()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(
        headers={"Authorization": f"Bearer {live_api.tokens.token_for('operator')}"})
    statuses: dict[str, set[int]] = {}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an Err (bad document) fails
            definition = document["paths"][operation.path][operation.method.lower()]
            if (mode is schemathesis.GenerationMode.NEGATIVE
                    and not definition.get("parameters") and "requestBody" not in definition):
                continue  # nothing to make invalid
            statuses[operation.label] = _exercise(operation, mode, live_api, session)
    assert not any(401 in seen for seen in statuses.values()), statuses  # token sent
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert sorted(statuses) == sorted(_operations())
        assert all(seen & {200, 201} for seen in statuses.values()), statuses
    else:
        assert len(statuses) == 17  # every operation with parameters or a body


def _exercise(operation: schemathesis.APIOperation[Any, Any, Any, Any],
              mode: schemathesis.GenerationMode, live_api: LiveApi,
              session: requests.Session) -> set[int]:
    """Run the cases of one operation; the statuses answered."""
    seen: set[int] = set()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[hypothesis.Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    def run(case: schemathesis.Case[Any], real: bool) -> None:
        if real and mode is schemathesis.GenerationMode.POSITIVE:
            _aim_at_real_things(case, live_api.lab)
        response = case.call_and_validate(base_url=live_api.url, session=session,
                                          checks=CHECKS, timeout=10)
        seen.add(response.status_code)

    run()
    return seen
