"""``hanlab decode`` fields and ``hanlab keys export-wireshark``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlab.cli import main
from hanlab.commands.decode import _gbcs_parser, _line, frame_fields
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
        fields = frame_fields(frame, decoder.decode(psdu, i), _gbcs_parser())
    assert fields["aps.reassembled"] is True
    assert fields["zcl.command"] == "TransferData"
    assert fields["gbcs.tunnel_command"] == "PUT"
    assert fields["gbcs.cra_flag"] == 1
    assert fields["gbcs.message_code"] == "0x0027"
    assert "GBCS PUT CRA 1" in _line(fields)


def test_decode_and_export_cli(captures_dir: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("network_keys:\n  - {key: 52f0fe8052ebb35907daa243c95a2ff4, label: zbtk}\n")
    main(["decode", str(captures_dir / "zbtk__examples_trace.pcap"), "--keys", str(keys),
          "--json", "--filter", "nwk.decrypted=true"])
    lines = capsys.readouterr().out.splitlines()
    assert lines and all('"nwk.decrypted": true' in line for line in lines)
    main(["keys", "export-wireshark", str(keys)])
    assert '"52f0fe8052ebb35907daa243c95a2ff4","Normal","zbtk"' in capsys.readouterr().out


def test_bad_filter_exits_2(captures_dir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(captures_dir / "zbtk__examples_trace.pcap"), "--filter", "oops"])
    assert exc.value.code == 2
