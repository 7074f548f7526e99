"""``hanlab decode`` fields and ``hanlab keys export-wireshark``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanlab.cli import main
from hanlab.commands.decode import _gbcs_parser, frame_fields, frame_line
from hanlab.frames import Band, Frame
from hanlab.zigbee.aps import ApsFrame
from hanlab.zigbee.encode import build_psdu, fragment_aps
from hanlab.zigbee.frame import Decoder
from hanlab.zigbee.keyring import Keyring
from hanlab.zigbee.mac import MacFrame
from hanlab.zigbee.nwk import NwkFrame
from hanlab.zigbee.security import AuxHeader
from hanlab.zigbee.zcl import tunnel_transfer_data

RTDS = "gbcs-rtds/4.1.1_ECS17b/ECS17b_4.1.1_SINGLE_SUCCESS_COMMAND_GBCS.HEX"
NWK_KEY = bytes(range(16))
ESME = 0x8899AABBCCDDEEFF


def test_gbcs_fields_of_a_fragmented_tunnel_frame(corpus_dir: Path) -> None:
    """A TransferData carrying an RTDS command over APS fragments shows its GBCS header."""
    message = bytes.fromhex("".join((corpus_dir / RTDS).read_text().split()))
    zcl = tunnel_transfer_data(9, 1, b"\x03" + message)
    head = ApsFrame(0, dst_endpoint=1, cluster=0x0704, profile=0x0109, src_endpoint=1,
                    counter=5)
    mac = MacFrame(1, 1, dst_pan=0x1234, dst_addr=0x1111, dst_mode=2, src_addr=0,
                   src_mode=2, pan_id_compression=True)
    ring = Keyring()
    ring.add_network_key(NWK_KEY)
    decoder = Decoder(ring)
    fields = {}
    for i, frag in enumerate(fragment_aps(head, zcl.encode(), 60)):
        nwk = NwkFrame(0, dst=0x1111, src=0, radius=5, seq=i, security=True, src64=ESME,
                       aux=AuxHeader(0x28, i, ESME, 0))
        psdu = build_psdu(mac, nwk, frag, nwk_key=NWK_KEY)
        frame = Frame(i, "t", Band.GHZ_2_4, 0, 11, psdu, True)
        decoded = decoder.decode(psdu, i)
        fields = frame_fields(frame, decoded, _gbcs_parser())
    assert fields["aps.reassembled"] is True
    assert fields["zcl.command"] == "TransferData"
    assert fields["gbcs.tunnel_command"] == "PUT"
    assert fields["gbcs.cra_flag"] == 1
    assert fields["gbcs.message_code"] == "0x0027"
    assert "GBCS PUT CRA 1" in frame_line(frame, decoded, _gbcs_parser())


def test_decode_and_export_cli(captures_dir: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("network_keys:\n  - {key: 52f0fe8052ebb35907daa243c95a2ff4, label: zbtk}\n")
    main(["decode", str(captures_dir / "zbtk__examples_trace.pcap"), "--keys", str(keys),
          "--json", "--filter", "nwk.decrypted=true"])
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(json.loads(line)["nwk.decrypted"] is True for line in lines)
    main(["keys", "export-wireshark", str(keys)])
    assert '"52f0fe8052ebb35907daa243c95a2ff4","Normal","zbtk"' in capsys.readouterr().out


def test_bad_filter_exits_2(captures_dir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(captures_dir / "zbtk__examples_trace.pcap"), "--filter", "oops"])
    assert exc.value.code == 2


SINOPE = "sinope-zha__TH1123ZB-G2-partie_00005.pcapng"
SINOPE_KEY = "60ccee07009651c60e1f8c1b05562f2c"


def _decode_bytes(path: Path, keys: Path | None, jobs: int, as_json: bool,
                  min_frames_per_job: int = 1) -> bytes:
    from io import BytesIO

    from hanlab.commands.decode import decode_parallel

    out = BytesIO()
    ring = Keyring.load(keys) if keys is not None else Keyring()
    decode_parallel(out, path, ring, keys, jobs, as_json=as_json,
                    min_frames_per_job=min_frames_per_job)
    return out.getvalue()


@pytest.mark.parametrize("as_json", [False, True])
def test_jobs_output_equals_one_process(captures_dir: Path, tmp_path: Path,
                                        as_json: bool) -> None:
    """``--jobs 2`` and ``--jobs 3`` print byte for byte what one process prints."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"network_keys:\n  - {{key: \"{SINOPE_KEY}\", label: sinope}}\n")
    path = captures_dir / SINOPE
    one = _decode_bytes(path, keys, 1, as_json)
    assert one.count(b"\n") == 38_350
    assert _decode_bytes(path, keys, 2, as_json) == one
    assert _decode_bytes(path, None, 3, as_json) == _decode_bytes(path, None, 1, as_json)


def test_jobs_on_emulated_traffic_with_fragments_and_gbcs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """APS link-key security, fragments in flight at the run boundaries and GBCS."""
    import hanlab.commands.decode as command
    from hanlab.capture.pcapng import PcapngWriter
    from hanlab.correlate.simulate import simulate

    joined = []
    joins = command._joins
    monkeypatch.setattr(command, "OVERLAP_FRAMES", 1_200)
    monkeypatch.setattr(command, "_joins", lambda s: joined.append(joins(s)) or joined[-1])
    run = simulate(150.0, seed=3)
    writer = PcapngWriter(tmp_path / "emu.pcapng")
    ifaces = {band: writer.interface(f"emu-{band.value}", band.value) for band in Band}
    for frame in run.frames:
        writer.write(ifaces[frame.band], frame)
    writer.close()
    keys = tmp_path / "keys.yaml"
    keys.write_text(run.keyring.dump_yaml())
    one = _decode_bytes(writer.path, keys, 1, False)
    assert b"+gbcs" in one and b"aps:decrypted" in one
    for jobs in (2, 3):
        assert _decode_bytes(writer.path, keys, jobs, False) == one
    # two runs are joined, not decoded again in one process (with three shorter runs the
    # overlap may hold no common point, and one process decodes the file: same output)
    assert len(joined) == 2 and joined[0]


def test_jobs_cli(captures_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = str(captures_dir / SINOPE)
    main(["decode", path, "--jobs", "2"])
    two = capsysbinary.readouterr().out
    main(["decode", path])
    assert capsysbinary.readouterr().out == two
