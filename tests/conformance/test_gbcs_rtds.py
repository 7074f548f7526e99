"""Every GBCS message of the DCC's RTDS 4.5.0 parses, and tshark reads what we build.

Checks per ``…_GBCS.HEX`` file in ``corpus/gbcs-rtds/<SR variant>_<use case>/``: CRA flag
against the file name (COMMAND / PRECOMMAND -> 1, RESPONSE -> 2, ALERT -> 3), Message
Code against the folder's use case, system titles present, Alert Code against the
``_<code>_`` in an alert's file name, and a PUT tunnel round trip.
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

from hanlab.fcs import fcs16_bytes
from hanlab.gbcs import (
    GbcsMessage,
    TunnelCommand,
    build_tunnel_payload,
    message_codes_for_use_case,
    parse_gbcs_message,
    parse_tunnel_payload,
)
from hanlab.gbcs.codes import use_case_in_name

CRA_BY_KIND = {"COMMAND": 1, "PRECOMMAND": 1, "RESPONSE": 2, "ALERT": 3}

# RTDS 4.5.0 data that differ from the folder's use case on purpose (error cases).
RTDS_MESSAGE_CODE_QUIRKS = {
    "CS04B_8.8.2_ERROR_COMMAND_GBCS.HEX": 0x000F,  # CS04B error case sent as CS04AC
    "CS04B_8.8.2_ERROR_RESPONSE_GBCS.HEX": 0x000F,
}


def rtds_files(corpus_dir: Path) -> list[Path]:
    files = sorted((corpus_dir / "gbcs-rtds").glob("*/*_GBCS.HEX"))
    assert files, "no RTDS messages found"
    return files


def folder_use_case(folder: str) -> str:
    """``4.1.1_ECS17b`` -> ``ECS17b``; ``6.15.1_CS02bNOByNO`` -> ``CS02b`` (longest known id)."""
    name = folder.split("_", 1)[1]
    use_case = use_case_in_name(name)
    assert use_case, f"folder {folder}: no known use case id is a prefix of {name}"
    return use_case


def file_kind(name: str) -> str:
    match = re.search(r"_(PRECOMMAND|COMMAND|RESPONSE)_GBCS\.HEX$", name)
    if match:
        return match.group(1)
    assert "_ALERT" in name, name
    return "ALERT"


def read_hex(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


def test_every_rtds_message_parses(corpus_dir: Path) -> None:
    problems: list[str] = []
    files = rtds_files(corpus_dir)
    for path in files:
        data = read_hex(path)
        message = parse_gbcs_message(data)
        if not isinstance(message, GbcsMessage):
            problems.append(f"{path.name}: {message}")
            continue
        kind = file_kind(path.name)
        if message.cra_flag != CRA_BY_KIND[kind]:
            problems.append(f"{path.name}: CRA flag {message.cra_flag} for {kind}")
        if message.use_case == "unknown":
            problems.append(f"{path.name}: unknown Message Code 0x{message.message_code:04X}")
        if kind != "ALERT":
            expected = RTDS_MESSAGE_CODE_QUIRKS.get(path.name)
            codes = (
                (expected,) if expected else message_codes_for_use_case(
                    folder_use_case(path.parent.name)
                )
            )
            if message.message_code not in codes:
                problems.append(
                    f"{path.name}: Message Code 0x{message.message_code:04X} not in "
                    f"{[hex(c) for c in codes]}"
                )
            if (message.signature is None) != (kind == "PRECOMMAND"):
                problems.append(f"{path.name}: signature {message.signature!r} for {kind}")
        else:
            named = re.search(r"_([0-9A-F]{4})_", path.name)
            if named and message.alert_code != int(named.group(1), 16):
                problems.append(f"{path.name}: Alert Code {message.alert_code}")
            if message.alert_code_name in (None, "unknown"):
                problems.append(f"{path.name}: no known Alert Code ({message.alert_code})")
        if message.originator_system_title == message.recipient_system_title:
            problems.append(f"{path.name}: originator and recipient system titles equal")
    assert not problems, f"{len(problems)} of {len(files)} failed:\n" + "\n".join(problems)
    assert len(files) >= 939


def test_folder_ecs17b_is_message_code_0x0027(corpus_dir: Path) -> None:
    data = read_hex(
        corpus_dir / "gbcs-rtds/4.1.1_ECS17b/ECS17b_4.1.1_SINGLE_SUCCESS_COMMAND_GBCS.HEX"
    )
    message = parse_gbcs_message(data)
    assert isinstance(message, GbcsMessage)
    assert message.message_code == 0x0027
    assert message.cra_flag_name == "command"
    assert message.originator_counter == 1000
    assert message.originator_system_title.duis == "90-B3-D5-1F-30-01-00-00"
    assert message.recipient_system_title.duis == "00-DB-12-34-56-78-90-A0"
    assert message.mac_header is not None and message.mac is not None


def test_every_rtds_message_round_trips_through_a_put(corpus_dir: Path) -> None:
    for path in rtds_files(corpus_dir):
        data = read_hex(path)
        tunnel = parse_tunnel_payload(build_tunnel_payload(TunnelCommand.PUT, data))
        assert tunnel.error is None
        assert tunnel.message == parse_gbcs_message(data), path.name


def _zcl_transfer_data_psdu(tunnel_data: bytes) -> bytes:
    """Unsecured 802.15.4 data / ZigBee NWK / APS / ZCL Tunneling TransferData, with FCS."""
    mac = bytes([0x41, 0x88, 0x17]) + struct.pack("<HHH", 0x1A2B, 0x0000, 0x3C4D)
    nwk = struct.pack("<HHHBB", 0x0008, 0x0000, 0x3C4D, 30, 0x42)
    aps = bytes([0x00, 0x01]) + struct.pack("<HH", 0x0704, 0x0109) + bytes([0x01, 0x07])
    zcl = bytes([0x01, 0x55, 0x02]) + struct.pack("<H", 0x0001) + tunnel_data
    frame = mac + nwk + aps + zcl
    return frame + fcs16_bytes(frame)


def _pcap_dlt195(psdus: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 195)
    for index, psdu in enumerate(psdus):
        out += struct.pack("<IIII", 1_700_000_000 + index, 0, len(psdu), len(psdu)) + psdu
    return out


def test_tshark_reads_a_put_built_around_an_rtds_command(
    corpus_dir: Path, tshark: str, tmp_path: Path
) -> None:
    data = read_hex(corpus_dir / "gbcs-rtds/11.2_GCS38/GCS38_11.2_SUCCESS_COMMAND_GBCS.HEX")
    message = parse_gbcs_message(data)
    assert isinstance(message, GbcsMessage)
    psdu = _zcl_transfer_data_psdu(build_tunnel_payload(TunnelCommand.PUT, data))
    assert len(psdu) <= 127, "the check frame must fit one PSDU"
    capture = tmp_path / "put.pcap"
    capture.write_bytes(_pcap_dlt195([psdu]))
    fields = (
        "gbcs_tunnel.command",
        "gbcs_message.mac_header.general_ciphering",
        "gbcs_message.grouping_header.cra_flag",
        "gbcs_message.grouping_header.originator_counter",
        "gbcs_message.grouping_header.message_code",
    )
    command = [tshark, "-r", str(capture), "-T", "fields", "-E", "separator=|"]
    for name in fields:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    tunnel_command, ciphering, cra, counter, code = result.stdout.strip().split("|")
    assert int(tunnel_command, 0) == TunnelCommand.PUT
    assert int(ciphering, 0) == 0xDD
    assert int(cra, 0) == message.cra_flag == 1
    assert int(counter, 0) == message.originator_counter
    assert int(code, 0) == message.message_code == 0x0084
