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
    # two runs are joined, not decoded again in one process, and the second run, begun
    # without the scan, needs no second pass (with three shorter runs the overlap may hold
    # no common point, and one process decodes the file: same output)
    assert len(joined) == 2 and joined[0] == [command._Join(joined[0][0].frame, False)]


def test_jobs_cli(captures_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = str(captures_dir / SINOPE)
    main(["decode", path, "--jobs", "2"])
    two = capsysbinary.readouterr().out
    main(["decode", path])
    assert capsysbinary.readouterr().out == two


def _summary(joins: dict[int, bytes], misses: dict[int, int] | None = None,
             addresses: frozenset[int] = frozenset()) -> object:
    from hanlab.zigbee.listing import ChunkSummary

    return ChunkSummary(frames=0, learned_keys=0,
                        joins={i: (digest, 10 * i) for i, digest in joins.items()},
                        addresses=addresses, address_misses=misses or {})


def test_a_run_started_without_the_scan_joins_after_its_last_harmful_miss() -> None:
    """Run k begins with an empty address map: it hands over only after the last frame
    where it looked up in vain an address the frames before it taught."""
    from hanlab.commands.decode import _Join, _join

    before = _summary({100: b"a", 104: b"x", 108: b"b", 112: b"b"})
    clean = _summary({100: b"a", 104: b"y", 108: b"b", 112: b"b"})
    assert _join(before, clean, frozenset({0x1234})) == _Join(100, False)
    # a miss of an address nobody knew before the run: one process missed it too
    unknown = _summary({100: b"a", 108: b"b"}, misses={0x9999: 105})
    assert _join(before, unknown, frozenset({0x1234})) == _Join(100, False)
    # a miss of a known address at frame 105: the first common state after it is 108
    late = _summary({100: b"a", 108: b"b", 112: b"b"}, misses={0x1234: 105, 0x9999: 111})
    assert _join(before, late, frozenset({0x1234})) == _Join(108, False)
    # missed to the end of the overlap: decode the run again after the scan
    always = _summary({100: b"a", 108: b"b", 112: b"b"}, misses={0x1234: 90_000})
    assert _join(before, always, frozenset({0x1234})) == _Join(None, True)
    # no common state at all: nothing to rescan, one process decodes the file
    apart = _summary({100: b"z", 108: b"z"})
    assert _join(before, apart, frozenset()) == _Join(None, False)


def test_joins_need_the_address_map_where_the_next_run_starts() -> None:
    from hanlab.commands.decode import _joins

    first = _summary({100: b"a"}, addresses=frozenset({1, 2}))
    second = _summary({100: b"a", 200: b"c"}, misses={3: 150}, addresses=frozenset({3}))
    third = _summary({200: b"c"}, misses={3: 250})
    joins = _joins([first, second, third])  # type: ignore[list-item]
    assert joins is not None and [j.rescan for j in joins] == [False, True]
    unreached = first._replace(addresses=None)  # type: ignore[attr-defined]
    assert _joins([unreached, second]) is None  # type: ignore[list-item]


def test_jobs_decode_a_run_again_when_its_empty_address_map_mattered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the second half no frame from the CH (short address 0x0000) is heard, so only
    the frames before the second run teach its EUI-64, which the APS link-key decryption
    of every frame to it needs: the second run, begun without the scan, misses it to its
    end, is decoded again after the scan, and the output is one process's."""
    import hanlab.commands.decode as command
    from hanlab.capture.pcapng import PcapngWriter
    from hanlab.correlate.simulate import simulate
    from hanlab.zigbee.mac import decode_mac

    found: list[list[bool] | None] = []
    joins = command._joins

    def spy(summaries: list[object]) -> object:
        result = joins(summaries)  # type: ignore[arg-type]
        found.append(None if result is None else [j.rescan for j in result])
        return result

    monkeypatch.setattr(command, "OVERLAP_FRAMES", 1_200)
    monkeypatch.setattr(command, "_joins", spy)
    run = simulate(150.0, seed=3)
    half = len(run.frames) // 2
    kept = [f for i, f in enumerate(run.frames)
            if i < half or decode_mac(f.psdu).src_addr != 0x0000]
    writer = PcapngWriter(tmp_path / "no-ch.pcapng")
    ifaces = {band: writer.interface(f"emu-{band.value}", band.value) for band in Band}
    for frame in kept:
        writer.write(ifaces[frame.band], frame)
    writer.close()
    keys = tmp_path / "keys.yaml"
    keys.write_text(run.keyring.dump_yaml())
    one = _decode_bytes(writer.path, keys, 1, False)
    assert _decode_bytes(writer.path, keys, 2, False) == one
    assert found == [[True], [False]]  # rescanned once, then joined


@pytest.mark.parametrize(("ts_ns", "text"), [
    (0, "0.000000000"), (7, "0.000000007"), (999_999_999, "0.999999999"),
    (1_000_000_000, "1.000000000"), (1_706_748_028_894_546_000, "1706748028.894546000"),
    (4_102_444_800_000_000_001, "4102444800.000000001"),  # 2100: beyond machine words
    ((1 << 63) - 1, "9223372036.854775807"),
])
def test_one_line_time_is_seconds_with_nine_decimals(ts_ns: int, text: str) -> None:
    from hanlab.zigbee.listing import _seconds

    assert _seconds(ts_ns) == text
