"""DUIS settings of a lab: the DCC endpoint, Users, keys, XSD, counter state, DUIS log.

In the lab file (``duis:`` section)::

    duis:
      endpoint: emulated               # or the DCC simulator, e.g. http://dccboxed:8079
      xsd: ../shared/corpus/duis/xsd/DUIS Schema V5.4.xsd
      counter_state_folder: state/duis-counters
      log: captures/duis.jsonl
      receiver: {host: 0.0.0.0, port: 8080, path: /duis}
      users:
        - {name: import-supplier, eui64: 90-B3-D5-1F-30-01-00-00, role: IS,
           key_file: keys/xml-sign-90B3D51F30010000-ds.key,
           certificate_file: keys/xml-sign-90B3D51F30010000-ds.pem}
      emulated_dcc: {port: 8079, processing_latency_s: 0.05, wan_latency_s: 0.1}

Relative paths are relative to the lab file (resolve them with :meth:`DuisConfig.resolved`).
Key files are secrets: only their paths are here, their content is never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from hanlab.errors import BadInputError
from hanlab.gbcs.eui64 import Eui64

if TYPE_CHECKING:
    from hanlab.duis.client import DuisUser
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


class DuisUserConfig(_Model):
    """One DCC User the lab sends Service Requests for (DUIS 5.4 section 2: User roles).

    Attributes:
        name: a label, e.g. ``import-supplier``, ``gas-supplier``, ``new-supplier``.
        eui64: the User's EUI-64 (RequestID originator).
        role: ``IS`` import supplier, ``GS`` gas supplier, ``ED`` electricity distributor,
            ``GT`` gas transporter, ``OU`` other User, ...
        key_file, certificate_file: the XML-signing key (DER/PEM PKCS#8, ECDSA P-256) and
            its certificate; needed for Critical SRs.
    """

    name: str = Field(min_length=1, max_length=64)
    eui64: EUI64
    role: Literal["IS", "GS", "ED", "GT", "RSA", "OU", "ACB"] = "IS"
    key_file: Path | None = None
    certificate_file: Path | None = None

    @model_validator(mode="after")
    def _key_pair(self) -> DuisUserConfig:
        if (self.key_file is None) != (self.certificate_file is None):
            raise ValueError(f"user {self.name}: give both key_file and certificate_file")
        return self


class DuisReceiverConfig(_Model):
    """The HTTP endpoint the DCC posts responses and alerts to."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    path: str = Field(default="/duis", pattern=r"^/[A-Za-z0-9/_.-]*$")


class EmulatedDccConfig(_Model):
    """Settings of the emulated DCC (used when ``endpoint: emulated``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    processing_latency_s: float = Field(default=0.05, ge=0)
    wan_latency_s: float = Field(default=0.1, ge=0)
    response_timeout_s: float = Field(default=30.0, gt=0)
    verify_signatures: bool = True
    check_counters: bool = True
    rtds_folder: Path | None = None


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
    users: Annotated[list[DuisUserConfig], Field(min_length=1)]
    receiver: DuisReceiverConfig = DuisReceiverConfig()
    emulated_dcc: EmulatedDccConfig = EmulatedDccConfig()

    @model_validator(mode="after")
    def _unique_users(self) -> DuisConfig:
        seen: set[str] = set()
        for user in self.users:
            if user.eui64 in seen:
                raise ValueError(f"user {user.eui64} is listed twice")
            seen.add(user.eui64)
        return self

    def resolved(self, base: Path) -> DuisConfig:
        """A copy with relative paths made relative to ``base`` (the lab file's folder)."""

        def fix(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else base / path

        users = [
            user.model_copy(update={"key_file": fix(user.key_file) or user.key_file,
                                    "certificate_file": fix(user.certificate_file)
                                    or user.certificate_file})
            for user in self.users
        ]
        dcc = self.emulated_dcc.model_copy(
            update={"rtds_folder": fix(self.emulated_dcc.rtds_folder)
                    or self.emulated_dcc.rtds_folder}
        )
        return self.model_copy(update={
            "xsd": fix(self.xsd) or self.xsd,
            "counter_state_folder": fix(self.counter_state_folder) or self.counter_state_folder,
            "log": fix(self.log) or self.log,
            "users": users, "emulated_dcc": dcc,
        })

    def duis_users(self) -> list[DuisUser]:
        """The Users as :class:`hanlab.duis.client.DuisUser`, keys read from their files.

        Raises:
            BadInputError: a key or certificate file is unreadable.
        """
        from hanlab.duis.client import DuisUser

        return [DuisUser.from_files(u.eui64, u.role, u.key_file, u.certificate_file)
                for u in self.users]

    def emulated_dcc_settings(self) -> EmulatedDccSettings:
        """:class:`hanlab.emulator.dcc.EmulatedDccSettings` from :attr:`emulated_dcc`."""
        from hanlab.emulator.dcc import EmulatedDccSettings

        return EmulatedDccSettings(**self.emulated_dcc.model_dump())
