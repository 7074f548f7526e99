"""XML-DSig ECDSA P-256 signing of DUIS documents with the ZAZ1 test keys of the corpus.

The DCC simulator's signed response in the corpus checks our canonicalisation: its digest
(inclusive C14N of the document without the signature) must match ours. Its signature was
made with an earlier DSP certificate than the corpus's (other serial number), so only the
digest can be checked against it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from hanlab.duis import DuisSchema, load_duis_schema, parse_request, parse_xml
from hanlab.duis.client import sign_pre_command
from hanlab.duis.signing import (
    SignatureError,
    load_certificate,
    load_signing_key,
    sign_document,
    signature_serial,
    verify_document,
)
from hanlab.gbcs import Eui64, GbcsMessage, build_gbcs_message, parse_gbcs_message


@pytest.fixture(scope="module")
def keys(corpus_dir: Path) -> Path:
    return corpus_dir / "duis" / "signing-keys"


@pytest.fixture(scope="module")
def schema(corpus_dir: Path) -> DuisSchema:
    return load_duis_schema(corpus_dir / "duis" / "xsd" / "DUIS Schema V5.4.xsd")


@pytest.mark.parametrize("eui", ["90B3D51F30010000", "90B3D51F30020000"])
def test_sign_verify_every_template(corpus_dir: Path, keys: Path, schema: DuisSchema,
                                    eui: str) -> None:
    key = load_signing_key(keys / f"xml-sign-{eui}-ds.key")
    certificate = load_certificate(keys / f"xml-sign-{eui}-ds.pem")
    other = load_certificate(keys / "dsp-xml-sign-90B3D51F30000002-ds.pem")
    templates = sorted((corpus_dir / "duis" / "templates").glob("*.XML"))[::10]
    for path in templates:
        signed = sign_document(path.read_bytes(), key, certificate)
        assert schema.problems(parse_xml(signed)) == [], path.name
        verify_document(signed, certificate)
        assert signature_serial(signed) == certificate.serial_number
        assert parse_request(signed).signed
        with pytest.raises(SignatureError, match="does not verify"):
            verify_document(signed, other)
        tampered = signed.replace(b"<sr:CommandVariant>", b"<sr:CommandVariant> ", 1)
        with pytest.raises(SignatureError, match="digest mismatch"):
            verify_document(tampered, certificate)


def test_digest_agrees_with_the_dcc_simulator(corpus_dir: Path, keys: Path) -> None:
    sample = (corpus_dir / "duis" / "samples" / "readfw-response.xml").read_bytes()
    dsp = load_certificate(keys / "dsp-xml-sign-90B3D51F30000002-ds.pem")
    assert signature_serial(sample) != dsp.serial_number  # signed by an earlier DSP cert
    with pytest.raises(SignatureError, match="does not verify"):  # not "digest mismatch"
        verify_document(sample, dsp)


def test_unsigned_and_placeholder_signatures_are_refused(corpus_dir: Path, keys: Path) -> None:
    certificate = load_certificate(keys / "xml-sign-90B3D51F30010000-ds.pem")
    template = corpus_dir / "duis" / "templates" / "8.2_READ_INVENTORY_REQUEST_DUIS.XML"
    with pytest.raises(SignatureError):
        verify_document(template.read_bytes(), certificate)  # placeholder values
    unsigned = (corpus_dir / "duis" / "samples" / "acknowledgement-error.xml").read_bytes()
    with pytest.raises(SignatureError, match="not signed"):
        verify_document(unsigned, certificate)


def test_signed_pre_command(keys: Path) -> None:
    key = load_signing_key(keys / "xml-sign-90B3D51F30010000-ds.key")
    pre = build_gbcs_message(
        cra_flag=1, originator_counter=1000, originator_system_title=Eui64(0x90B3D51F30010000),
        recipient_system_title=Eui64(0x00DB1234567890A0), message_code=0x0025,
        content=b"\xd9\x01" * 20, signature=None)
    signed = sign_pre_command(pre, key)
    message = parse_gbcs_message(signed)
    assert isinstance(message, GbcsMessage) and message.signature is not None
    assert len(message.signature) == 64 and message.originator_counter == 1000
    r = int.from_bytes(message.signature[:32], "big")
    s = int.from_bytes(message.signature[32:], "big")
    key.public_key().verify(encode_dss_signature(r, s), pre, ec.ECDSA(hashes.SHA256()))


def test_bad_key_files(tmp_path: Path, keys: Path) -> None:
    from hanlab.errors import BadInputError

    (tmp_path / "bad.key").write_bytes(b"not a key")
    with pytest.raises(BadInputError):
        load_signing_key(tmp_path / "bad.key")
    with pytest.raises(BadInputError):
        load_certificate(tmp_path / "bad.key")
    with pytest.raises(BadInputError):
        load_signing_key(tmp_path / "missing.key")
