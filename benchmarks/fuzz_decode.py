"""Fuzz the ZigBee decoder with atheris (coverage-guided): no exception may escape it.

Seeds: every PSDU of the corpus captures. Each input is decoded to every layer with the
Sinope and zbtk network keys and the well-known TC link key; any exception, and any
decode error produced by the decoder's internal safety net (a bug caught, not bad input),
is a finding. Without atheris (``pip install 'hanlab[bench]'``) a random mutation loop
over the same seeds runs instead.

Run: python benchmarks/fuzz_decode.py [--seconds 180]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import CORPUS
from hanlab.zigbee.frame import Decoder
from hanlab.zigbee.keyring import Keyring

KEYS = ("60ccee07009651c60e1f8c1b05562f2c", "52f0fe8052ebb35907daa243c95a2ff4")


def _decoder() -> Decoder:
    ring = Keyring()
    for key in KEYS:
        ring.add_network_key(bytes.fromhex(key))
    return Decoder(ring)


DECODER = _decoder()


def one_input(data: bytes) -> None:
    """Decode ``data`` as a PSDU to every layer; raise on an internal decoder error."""
    d = DECODER.decode(data).decode_all()
    if d.error is not None and "internal" in d.error.reason:
        raise RuntimeError(f"decoder bug on {data.hex()}: {d.error}")


def seeds(limit: int = 2000) -> list[bytes]:
    """Distinct PSDUs from the corpus captures."""
    from hanlab.capture.reader import read_frames
    from hanlab.errors import CaptureFormatError

    out: dict[bytes, None] = {}
    for path in sorted((CORPUS / "captures").glob("*.pcap*")):
        try:
            for frame in read_frames(path):
                out.setdefault(frame.psdu)
                if len(out) >= limit:
                    return list(out)
        except CaptureFormatError:
            continue
    return list(out)


def random_loop(corpus: list[bytes], seconds: float) -> int:
    """Mutate seeds at random for ``seconds``; returns the number of inputs tried."""
    rng = random.Random(0)
    end = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < end:
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and data:
                del data[rng.randrange(len(data)):]
            else:
                data += rng.randbytes(rng.randint(1, 8))
        one_input(bytes(data))
        runs += 1
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    args, rest = parser.parse_known_args()
    corpus = seeds()
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        runs = random_loop(corpus, args.seconds)
        print(f"atheris not installed: random mutation, {runs:,} inputs, no finding")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for i, psdu in enumerate(corpus):
            (Path(tmp) / f"seed{i}").write_bytes(psdu)
        atheris.instrument_all()
        atheris.Setup([sys.argv[0], *rest, f"-max_total_time={int(args.seconds)}",
                       "-max_len=127", tmp], one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
