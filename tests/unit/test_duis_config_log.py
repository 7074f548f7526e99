"""DUIS lab settings, the JSON Lines writer, the ground-truth log, plan_command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hanlab.config.duis import DuisConfig
from hanlab.duis.jsonl import JsonLinesWriter, read_json_lines
from hanlab.emulator.dcc import CommandMappingError, plan_command
from hanlab.emulator.truth import GroundTruthLog, read_ground_truth
from hanlab.errors import BadInputError
from hanlab.gbcs import Eui64


def test_duis_config_defaults_and_paths(tmp_path: Path) -> None:
    config = DuisConfig.model_validate({
        "users": [
            {"name": "old-supplier", "eui64": "90b3d51f30010000", "role": "IS",
             "key_file": "keys/a.key", "certificate_file": "keys/a.pem"},
            {"name": "new-supplier", "eui64": "90-B3-D5-1F-30-02-00-00", "role": "IS"},
        ],
        "xsd": "xsd/DUIS Schema V5.4.xsd",
        "emulated_dcc": {"wan_latency_s": 0.2},
    }).resolved(tmp_path)
    assert config.endpoint == "emulated"
    assert config.users[0].eui64 == "90-B3-D5-1F-30-01-00-00"
    assert config.users[0].key_file == tmp_path / "keys/a.key"
    assert config.xsd == tmp_path / "xsd/DUIS Schema V5.4.xsd"
    assert config.counter_state_folder == tmp_path / "state/duis-counters"
    assert config.emulated_dcc_settings().wan_latency_s == 0.2


def test_duis_config_security_settings(tmp_path: Path) -> None:
    """Issue 14: the DCC certificate, the DSP key of the emulated DCC, TLS and HTTP limits,
    with relative paths resolved against the lab file's folder."""
    config = DuisConfig.model_validate({
        "users": [{"name": "s", "eui64": "90b3d51f30010000"}],
        "dcc_certificate_file": "keys/dsp.pem",
        "receiver": {"tls_certificate_file": "tls/r.pem", "tls_key_file": "tls/r.key",
                     "limits": {"max_body_bytes": 65536}},
        "emulated_dcc": {"port": 8079, "signing_key_file": "keys/dsp.key",
                         "certificate_file": "keys/dsp.pem",
                         "limits": {"max_concurrent_requests": 4}},
    }).resolved(tmp_path)
    assert config.dcc_certificate_file == tmp_path / "keys/dsp.pem"
    assert config.receiver.tls_key_file == tmp_path / "tls/r.key"
    assert config.receiver.limits.limits().max_body_bytes == 65536
    settings = config.emulated_dcc_settings()
    assert settings.port == 8079 and settings.verify_signatures
    assert settings.signing_key_file == tmp_path / "keys/dsp.key"
    assert settings.http_limits.max_concurrent_requests == 4
    with pytest.raises(ValidationError):
        DuisConfig.model_validate({"users": [{"name": "s", "eui64": "90b3d51f30010000"}],
                                   "emulated_dcc": {"signing_key_file": "k"}})
    with pytest.raises(ValidationError):
        DuisConfig.model_validate({"users": [{"name": "s", "eui64": "90b3d51f30010000"}],
                                   "receiver": {"tls_key_file": "k"}})


@pytest.mark.parametrize("users", [
    [],
    [{"name": "a", "eui64": "90-B3-D5-1F-30-01-00-00", "key_file": "k"}],
    [{"name": "a", "eui64": "90-B3-D5-1F-30-01-00-00"},
     {"name": "b", "eui64": "90B3D51F30010000"}],
    [{"name": "a", "eui64": "not-an-eui"}],
])
def test_duis_config_refuses(users: list[dict[str, str]]) -> None:
    with pytest.raises(ValidationError):
        DuisConfig.model_validate({"users": users})


def test_jsonl_batches_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "x" / "log.jsonl"
    with JsonLinesWriter(path, flush_every=3) as writer:
        writer.write({"a": 1})
        writer.write({"b": Eui64(5)})
        assert path.read_text() == ""  # batched
        writer.write({"c": 3})
        assert len(path.read_text().splitlines()) == 3
        writer.write({"d": 4})
    assert writer.closed
    with path.open("a") as handle:
        handle.write('{"torn": ')
    assert read_json_lines(path) == [{"a": 1}, {"b": "00-00-00-00-00-00-00-05"}, {"c": 3},
                                     {"d": 4}]
    with pytest.raises(BadInputError):
        writer.write({"e": 5})
    with pytest.raises(BadInputError):
        JsonLinesWriter(path, flush_every=0)


async def test_ground_truth_log(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    async with GroundTruthLog(path) as truth:
        truth.record("frame_on_air", 1_700_000_000_000_000_001, band="2.4GHz", psdu_octets=42)
        truth.record("command_queued_chf", 1_700_000_000_000_000_002, target=Eui64(1))
        assert len(path.read_text().splitlines()) == 2  # flushed per line
    truth.record("after_close", 3)  # ignored
    events = read_ground_truth(path)
    assert events[0] == {"event": "frame_on_air", "ts_ns": 1_700_000_000_000_000_001,
                         "band": "2.4GHz", "psdu_octets": 42}
    assert [e["event"] for e in events] == ["frame_on_air", "command_queued_chf"]
    assert json.loads(path.read_text().splitlines()[1])["target"] == "00-00-00-00-00-00-00-01"


def test_plan_command() -> None:
    plan = plan_command("4.1.1", "ESME")
    assert (plan.message_code, plan.use_case, plan.dcc_originated, plan.ambiguous) == (
        0x0027, "ECS17b", False, False)
    assert plan_command("8.11", "CHF").dcc_originated  # CCS01 / CCS02: the ACB originates
    assert plan_command("8.11", "CHF").ambiguous
    assert plan_command("4.1.1", "GPF").use_case == "GCS13a"  # the GPF answers for the GSME
    with pytest.raises(CommandMappingError):
        plan_command("8.2", "ESME")  # non-device: no GBCS at all


def test_jsonl_streams_and_names_a_bad_line_that_is_not_the_last(tmp_path: Path) -> None:
    from hanlab.duis.jsonl import iter_json_lines

    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": NaN}\n{"c": 2\n{"d": 4}\n')
    records = iter_json_lines(path)
    assert next(records) == {"a": 1}
    nan = next(records)["b"]  # read by json where orjson refuses NaN
    assert nan != nan
    with pytest.raises(BadInputError, match=r"log\.jsonl:4: not JSON"):
        next(records)
    path.write_bytes(b'{"a": 1}\n\xff\xfe\n{"b": 2}\n')
    with pytest.raises(BadInputError, match=r"log\.jsonl:2: not JSON"):
        list(iter_json_lines(path))
    path.write_bytes(b'{"a": 1}\n{"torn": ')
    assert list(iter_json_lines(path)) == [{"a": 1}]
    with pytest.raises(BadInputError, match="missing"):
        list(iter_json_lines(tmp_path / "missing.jsonl"))
