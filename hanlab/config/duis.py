"""DUIS settings of a lab: the DCC endpoint, Users, keys, XSD, counter state, DUIS log.

In the lab file (``duis:`` section)::

    duis:
      endpoint: emulated               # or the DCC simulator, e.g. http://dccboxed:8079
      xsd: ../shared/corpus/duis/xsd/DUIS Schema V5.4.xsd
      counter_state_folder: state/duis-counters
      log: captures/duis.jsonl
      dcc_certificate_file: keys/dsp-xml-sign-90B3D51F30000002-ds.pem   # a real DCC's
      receiver: {host: 0.0.0.0, port: 8080, path: /duis,
                 tls_certificate_file: keys/receiver.pem, tls_key_file: keys/receiver.key}
      users:
        - {name: import-supplier, eui64: 90-B3-D5-1F-30-01-00-00, role: IS, supplier: old,
           key_file: keys/xml-sign-90B3D51F30010000-ds.key,
           certificate_file: keys/xml-sign-90B3D51F30010000-ds.pem}
        - {name: new-import-supplier, eui64: 90-B3-D5-1F-30-02-00-00, role: IS,
           supplier: new, key_file: keys/xml-sign-90B3D51F30020000-ds.key,
           certificate_file: keys/xml-sign-90B3D51F30020000-ds.pem}
      emulated_dcc: {port: 8079, processing_latency_s: 0.05, wan_latency_s: 0.1,
                     signing_key_file: keys/dsp-xml-sign-90B3D51F30000002-ds.key,
                     certificate_file: keys/dsp-xml-sign-90B3D51F30000002-ds.pem}

Relative paths are relative to the lab file (resolve them with :meth:`DuisConfig.resolved`).
Key files are secrets: only their paths are here, their content is never logged.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

if TYPE_CHECKING:
    from cryptography import x509

    from hanlab.duis.client import DuisUser
    from hanlab.duis.http import HttpLimits
    from hanlab.emulator.dcc import EmulatedDccSettings


def _duis_eui64(value: str) -> str:
    try:
        return Eui64.parse(value).duis
    except BadInputError as error:
        raise ValueError(error.message) from error


EUI64 = Annotated[str, AfterValidator(_duis_eui64)]
"""An EUI-64 in DUIS form (own copy: ``models.py`` imports this module, not the reverse)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=_Model)


def both_or_neither(model: object, *pairs: tuple[str, str], who: str = "") -> None:
    """Raise ValueError unless each pair of optional fields of ``model`` is both set or
    both unset (a key with its certificate, a TLS certificate with its key)."""
    for first, second in pairs:
        if (getattr(model, first) is None) != (getattr(model, second) is None):
            raise ValueError(f"{who}give both {first} and {second}, or neither")


class DuisUserConfig(_Model):
    """One DCC User the lab sends Service Requests for (DUIS 5.4 section 2: User roles).

    Attributes:
        name: a label, e.g. ``import-supplier``, ``gas-supplier``, ``new-supplier``.
        eui64: the User's EUI-64 (RequestID originator).
        role: ``IS`` import supplier, ``GS`` gas supplier, ``ED`` electricity distributor,
            ``GT`` gas transporter, ``OU`` other User, ...
        key_file, certificate_file: the XML-signing key (DER/PEM PKCS#8, ECDSA P-256) and
            its certificate; needed for Critical SRs.
        supplier: ``old`` or ``new``: the User's side of a Change of Supplier (seed 001:
            the new supplier issues SR 6.23, the old one receives N27 / N17); scenario
            steps choose it with ``supplier:``. ``None``: not labelled.
    """

    name: str = Field(min_length=1, max_length=64)
    eui64: EUI64
    role: Literal["IS", "GS", "ED", "GT", "RSA", "OU", "ACB"] = "IS"
    supplier: Literal["old", "new"] | None = None
    key_file: Path | None = None
    certificate_file: Path | None = None

    @model_validator(mode="after")
    def _key_pair(self) -> DuisUserConfig:
        both_or_neither(self, ("key_file", "certificate_file"), who=f"user {self.name}: ")
        return self


class HttpLimitsConfig(_Model):
    """Time, size and concurrency limits of an HTTP server
    (:class:`hanlab.duis.http.HttpLimits`; issue 14 item 16)."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    max_concurrent_requests: int = Field(default=32, ge=1)
    lingering_s: float = Field(default=1.0, ge=0)

    def limits(self) -> HttpLimits:
        """As :class:`hanlab.duis.http.HttpLimits`."""
        from hanlab.duis.http import HttpLimits

        return HttpLimits(**self.model_dump())


class _TlsServer(_Model):
    """A server's optional TLS: with both files, HTTPS."""

    tls_certificate_file: Path | None = None
    tls_key_file: Path | None = None
    limits: HttpLimitsConfig = HttpLimitsConfig()

    @model_validator(mode="after")
    def _tls_pair(self) -> _TlsServer:
        both_or_neither(self, ("tls_certificate_file", "tls_key_file"))
        return self


class DuisReceiverConfig(_TlsServer):
    """The HTTP endpoint the DCC posts responses and alerts to.

    Attributes:
        tls_certificate_file, tls_key_file: serve HTTPS with them (PEM).
        limits: time, size and concurrency limits.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    path: str = Field(default="/duis", pattern=r"^/[A-Za-z0-9/_.-]*$")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS server context, or ``None`` (HTTP).

        Raises:
            BadInputError: a TLS file is unreadable or the key does not fit.
        """
        if self.tls_certificate_file is None or self.tls_key_file is None:
            return None
        from hanlab.duis.http import server_ssl_context

        return server_ssl_context(self.tls_certificate_file, self.tls_key_file)


class EmulatedDccConfig(_TlsServer):
    """Settings of the emulated DCC (used when ``endpoint: emulated``).

    Attributes:
        signing_key_file, certificate_file: the DSP's XML-signing key and certificate
            (default: an ephemeral key and self-signed certificate per run).
        tls_certificate_file, tls_key_file: serve HTTPS with them (PEM).
        tls_ca_file: certificates to trust when posting to an HTTPS receiver.
        limits: time, size and concurrency limits.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    processing_latency_s: float = Field(default=0.05, ge=0)
    wan_latency_s: float = Field(default=0.1, ge=0)
    response_timeout_s: float = Field(default=30.0, gt=0)
    verify_signatures: bool = True
    check_counters: bool = True
    rtds_folder: Path | None = None
    signing_key_file: Path | None = None
    certificate_file: Path | None = None
    tls_ca_file: Path | None = None

    @model_validator(mode="after")
    def _key_pair(self) -> EmulatedDccConfig:
        both_or_neither(self, ("signing_key_file", "certificate_file"))
        return self


class DuisConfig(_Model):
    """The ``duis:`` section of a lab file.

    Attributes:
        endpoint: ``emulated`` (start the emulated DCC) or a DCC simulator's base URL; the
            client posts to ``<endpoint>/api/v1/serviceS|T|D``.
        xsd: path of ``DUIS Schema V5.4.xsd`` (not shipped: GPL-3.0); ``None`` skips XSD
            validation.
        counter_state_folder: RequestID counter state (one small JSON file per User).
        log: the DUIS log (JSON Lines) the correlator reads; ``None``: none.
        keep_xml: write each document's XML into the DUIS log too.
        response_timeout_s: default wait for a DUIS response.
        dcc_certificate_file: the DCC's (DSP's) XML-signing certificate: every response
            and alert must verify with it. For ``endpoint: emulated`` leave it out: the
            emulated DCC's own certificate is used.
        dcc_ca_file: certificates to trust for an ``https`` endpoint (e.g. self-signed).
        users: the Users (two or more for Change of Supplier: old and new supplier).
        receiver: the response / alert receiver.
        emulated_dcc: settings of the emulated DCC.
    """

    endpoint: Literal["emulated"] | AnyHttpUrl = "emulated"
    xsd: Path | None = None
    counter_state_folder: Path = Path("state/duis-counters")
    log: Path | None = None
    keep_xml: bool = False
    response_timeout_s: float = Field(default=60.0, gt=0)
    dcc_certificate_file: Path | None = None
    dcc_ca_file: Path | None = None
    users: Annotated[list[DuisUserConfig], Field(min_length=1)]
    receiver: DuisReceiverConfig = DuisReceiverConfig()
    emulated_dcc: EmulatedDccConfig = EmulatedDccConfig()

    @model_validator(mode="after")
    def _unique_users(self) -> DuisConfig:
        seen: set[str] = set()
        labels: set[tuple[str, str]] = set()
        for user in self.users:
            if user.eui64 in seen:
                raise ValueError(f"user {user.eui64} is listed twice")
            seen.add(user.eui64)
            if user.supplier is not None:
                if (user.role, user.supplier) in labels:
                    raise ValueError(f"user {user.name}: a second {user.supplier} supplier "
                                     f"with role {user.role}")
                labels.add((user.role, user.supplier))
        return self

    def resolved(self, base: Path) -> DuisConfig:
        """A copy with relative paths made relative to ``base`` (the lab file's folder)."""

        def fixed(model: _M, *names: str) -> _M:
            update = {}
            for name in names:
                path = getattr(model, name)
                if path is not None and not path.is_absolute():
                    update[name] = base / path
            return model.model_copy(update=update)

        tls = ("tls_certificate_file", "tls_key_file")
        users = [fixed(user, "key_file", "certificate_file") for user in self.users]
        dcc = fixed(self.emulated_dcc, "rtds_folder", "signing_key_file", "certificate_file",
                    "tls_ca_file", *tls)
        done = fixed(self, "xsd", "counter_state_folder", "log", "dcc_certificate_file",
                     "dcc_ca_file")
        return done.model_copy(update={"users": users, "emulated_dcc": dcc,
                                       "receiver": fixed(self.receiver, *tls)})

    def dcc_certificate(self) -> x509.Certificate | None:
        """The DCC's XML-signing certificate from :attr:`dcc_certificate_file`, or ``None``.

        Raises:
            BadInputError: the file is unreadable or not a certificate.
        """
        if self.dcc_certificate_file is None:
            return None
        from hanlab.duis.signing import load_certificate

        return load_certificate(self.dcc_certificate_file)

    def dcc_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS client context trusting :attr:`dcc_ca_file`, or ``None`` (defaults).

        Raises:
            BadInputError: the file is unreadable.
        """
        from hanlab.duis.http import client_ssl_context

        return client_ssl_context(self.dcc_ca_file)

    def duis_users(self) -> list[DuisUser]:
        """The Users as :class:`hanlab.duis.client.DuisUser`, keys read from their files.

        Raises:
            BadInputError: a key or certificate file is unreadable.
        """
        from hanlab.duis.client import DuisUser

        return [DuisUser.from_files(u.eui64, u.role, u.key_file, u.certificate_file,
                                    supplier=u.supplier)
                for u in self.users]

    def emulated_dcc_settings(self) -> EmulatedDccSettings:
        """:class:`hanlab.emulator.dcc.EmulatedDccSettings` from :attr:`emulated_dcc`."""
        from hanlab.emulator.dcc import EmulatedDccSettings

        dcc = self.emulated_dcc
        return EmulatedDccSettings(**dcc.model_dump(exclude={"limits"}),
                                   http_limits=dcc.limits.limits())
