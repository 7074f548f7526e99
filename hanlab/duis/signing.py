"""XML-DSig signing and verification of DUIS documents with ECDSA P-256 (DUIS 5.4 3.4.2).

The form DUIS and the DCC's own tools use (SmartDCCInnovation/dccboxed-signing-tool,
``Sign.java``): an enveloped ``ds:Signature`` as the last child of the root, one
``ds:Reference URI=""`` with the enveloped-signature transform and a SHA-256 digest of the
document (inclusive C14N 1.0 of the document without the signature, the XML-DSig default
after a node-set transform), ``ds:SignedInfo`` canonicalised with exclusive C14N, signed
with ECDSA-SHA256; the value is ``r || s`` (32 octets each, XML-DSig 1.1 section 6.4.3);
``ds:KeyInfo`` names the certificate by issuer and serial number.

Keys: the ZAZ1 test keys are DER (PKCS#8) ``.key`` files, certificates PEM; PEM keys work
too. Keys are secrets: never logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from base64 import b64decode, b64encode
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from lxml import etree

from hanlab.duis.xml import DS_NS, parse_xml
from hanlab.errors import BadInputError

C14N_EXCLUSIVE: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ECDSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
_COORDINATE_OCTETS: Final = 32


class SignatureError(BadInputError):
    """A DUIS document's signature is missing, malformed or does not verify."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="sign with the User's XML-signing key (DUIS 5.4 3.4.2)")


def _ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


def load_signing_key(path: Path | str) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 private key from a DER (PKCS#8) or PEM file.

    Raises:
        BadInputError: unreadable, not a key, or not on P-256.
    """
    try:
        data = Path(path).read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_private_key(data, password=None)
        )
    except (OSError, ValueError, TypeError) as error:
        raise BadInputError(f"cannot read the signing key {path}: {type(error).__name__}",
                            hint="give a DER or PEM PKCS#8 ECDSA P-256 key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise BadInputError(f"{path} is not an ECDSA P-256 key")
    return key


def load_certificate(path: Path | str) -> x509.Certificate:
    """An X.509 certificate from a PEM or DER file.

    Raises:
        BadInputError: unreadable or not a certificate.
    """
    try:
        data = Path(path).read_bytes()
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot read the certificate {path}: {error}") from error


def ephemeral_identity(
    common_name: str, *, lifetime_s: float = 86_400.0
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh ECDSA P-256 key and a self-signed certificate for it (a test PKI of one run,
    never written to disk), valid from 5 minutes ago for ``lifetime_s`` seconds.

    Used by the emulated DCC when no DSP key is configured (issue 14 item 14).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(seconds=lifetime_s))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _digest(root: etree._Element) -> bytes:
    """SHA-256 of the inclusive C14N of ``root``'s document without its ds:Signature."""
    copy = etree.fromstring(etree.tostring(root))
    for node in copy.findall(_ds("Signature")):
        copy.remove(node)
    canonical = etree.tostring(copy, method="c14n", exclusive=False, with_comments=False)
    return hashlib.sha256(canonical).digest()


def _canonical(signed_info: etree._Element) -> bytes:
    return bytes(etree.tostring(signed_info, method="c14n", exclusive=True,
                                with_comments=False))


def sign_document(
    document: bytes, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
) -> bytes:
    """Return ``document`` (a DUIS Request or Response) with an enveloped XML signature.

    An existing ``ds:Signature`` of the root is replaced. The result validates against the
    DUIS XSD whenever the input does (the signature is the root's last child).

    Raises:
        DuisXmlError: ``document`` is not safe, well-formed XML.
    """
    root = parse_xml(document)
    for node in root.findall(_ds("Signature")):
        root.remove(node)
    digest = _digest(root)
    signature = etree.SubElement(root, _ds("Signature"), nsmap={"ds": DS_NS})
    signed_info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=C14N_EXCLUSIVE)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=ECDSA_SHA256)
    reference = etree.SubElement(signed_info, _ds("Reference"), URI="")
    transforms = etree.SubElement(reference, _ds("Transforms"))
    etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED)
    etree.SubElement(reference, _ds("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(reference, _ds("DigestValue")).text = b64encode(digest).decode()
    der = key.sign(_canonical(signed_info), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(_COORDINATE_OCTETS, "big") + s.to_bytes(_COORDINATE_OCTETS, "big")
    etree.SubElement(signature, _ds("SignatureValue")).text = b64encode(raw).decode()
    issuer_serial = etree.SubElement(
        etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data")),
        _ds("X509IssuerSerial"),
    )
    etree.SubElement(issuer_serial, _ds("X509IssuerName")).text = (
        certificate.issuer.rfc4514_string()
    )
    etree.SubElement(issuer_serial, _ds("X509SerialNumber")).text = str(
        certificate.serial_number
    )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _required(parent: etree._Element, path: str) -> etree._Element:
    node = parent.find(path, {"ds": DS_NS})
    if node is None:
        raise SignatureError(f"signature lacks {path}")
    return node


def signature_serial(document: bytes) -> int | None:
    """The X509SerialNumber a signed document names, or ``None`` (unsigned or absent)."""
    root = parse_xml(document)
    node = root.find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/"
                     "ds:X509SerialNumber", {"ds": DS_NS})
    if node is None or not (node.text or "").strip().isdigit():
        return None
    return int(str(node.text).strip())


def verify_document(document: bytes, certificate: x509.Certificate) -> None:
    """Check the enveloped XML signature of ``document`` with ``certificate``'s key.

    Raises:
        SignatureError: no signature, unsupported algorithms, digest mismatch, or an
            ECDSA signature that does not verify.
        DuisXmlError: ``document`` is not safe, well-formed XML.
    """
    root = parse_xml(document)
    signature = root.find(_ds("Signature"))
    if signature is None:
        raise SignatureError("document is not signed")
    signed_info = _required(signature, "ds:SignedInfo")
    algorithms = {
        "ds:CanonicalizationMethod": C14N_EXCLUSIVE,
        "ds:SignatureMethod": ECDSA_SHA256,
        "ds:Reference/ds:DigestMethod": SHA256,
    }
    for path, expected in algorithms.items():
        if _required(signed_info, path).get("Algorithm") != expected:
            raise SignatureError(f"{path} is not {expected}")
    reference = _required(signed_info, "ds:Reference")
    if reference.get("URI") != "":
        raise SignatureError('the Reference must be URI="" (the whole document)')
    transforms = [t.get("Algorithm") for t in reference.iterfind("ds:Transforms/ds:Transform",
                                                                  {"ds": DS_NS})]
    if transforms != [ENVELOPED]:
        raise SignatureError(f"unsupported transforms {transforms}")
    try:
        expected_digest = b64decode(_required(reference, "ds:DigestValue").text or "")
        raw = b64decode(_required(signature, "ds:SignatureValue").text or "")
    except ValueError as error:
        raise SignatureError(f"malformed base64 in the signature: {error}") from error
    if _digest(root) != expected_digest:
        raise SignatureError("digest mismatch: the document was changed after signing")
    if len(raw) != 2 * _COORDINATE_OCTETS:
        raise SignatureError(f"SignatureValue of {len(raw)} octets, expected 64 (r || s)")
    der = encode_dss_signature(
        int.from_bytes(raw[:_COORDINATE_OCTETS], "big"),
        int.from_bytes(raw[_COORDINATE_OCTETS:], "big"),
    )
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SignatureError("the certificate's key is not ECDSA")
    try:
        public_key.verify(der, _canonical(signed_info), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("ECDSA signature does not verify") from None
