"""Configuration models (pydantic v2): lab, rig, device, sniffer, broker, capture.

A lab file lists rig files; each rig file describes one meter set: its Communications Hub
variant, devices, sniffers, broker and capture settings. Keys and install codes live in a
separate secrets file referenced by ``secrets:`` (see :mod:`hanlab.config.loader`).
Relative paths are relative to the file that names them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    computed_field,
    field_validator,
    model_validator,
)

from hanlab.config.duis import DuisConfig
from hanlab.errors import BadInputError
from hanlab.frames import Band, band_of

_SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def normalise_eui64(value: str) -> str:
    """An EUI-64 in DUIS form ``00-DB-12-34-56-78-90-A0`` (upper case, hyphens).

    Accepts hyphens, colons or no separators. Raises ValueError otherwise.
    """
    digits = re.sub(r"[-:\s]", "", str(value))
    if not re.fullmatch(r"[0-9A-Fa-f]{16}", digits):
        raise ValueError(
            f"{value!r} is not an EUI-64 (16 hex digits, e.g. 00-DB-12-34-56-78-90-A0)"
        )
    digits = digits.upper()
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2))


EUI64 = Annotated[str, AfterValidator(normalise_eui64)]
Slug = Annotated[str, Field(pattern=_SLUG)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceRole(StrEnum):
    """GB smart metering HAN device roles (SMETS2 / GBCS device types)."""

    CHF = "CHF"
    GPF = "GPF"
    ESME = "ESME"
    GSME = "GSME"
    IHD = "IHD"
    PPMID = "PPMID"
    HCALCS = "HCALCS"
    HHT = "HHT"


class ChVariant(StrEnum):
    """Communications Hub variant: 2.4 GHz only, or 2.4 GHz plus GB sub-GHz."""

    SINGLE_BAND = "single_band"
    DUAL_BAND = "dual_band"


_CH_ROLES = frozenset({"CHF", "GPF"})
_Text = Annotated[str, Field(max_length=200)]


class DeviceConfig(_Model):
    """One device of a rig, with its device record (seed 000 "Data requirements": the
    data each Device Manufacturer and CSP provides before testing; DIT.6: the ZigBee
    stack and silicon provider of each device; issue 10, item 1).

    Attributes:
        role, eui64, band, name: what the device is on the HAN.
        manufacturer: the Device Manufacturer (or CSP for CHF/GPF).
        model: the manufacturer's model (and, on an emulated rig, the emulator's
            response-time model of that name).
        firmware_version: the firmware version number (seed: "Firmware version number").
        smets_version: the SMETS version a meter, IHD, PPMID or HCALCS is designed to,
            e.g. ``SMETS2 v3.0`` (DIT.1-DIT.5); not for CHF/GPF.
        chts_version: the CHTS version of a Communications Hub (CHF/GPF), e.g.
            ``CHTS v1.2``; only for CHF/GPF.
        gbcs_version: the GBCS version, e.g. ``GBCS v3.2``.
        zigbee_stack: the ZigBee stack and its version (DIT.6), e.g. ``EmberZNet 7.4``.
        silicon_vendor: the ZigBee silicon provider (DIT.6, DIT.EX.7 "SiLabs and NXP").
        cpl_reference: the Certified Products List entry (seed: "CPL documentation").
        release_note: the release note's reference (seed: "Release notes").
        se_version: the ZigBee Smart Energy version the device operates to, ``1.2a`` or
            ``1.4`` (seed 000 DIT.9), ``None`` unknown (an emulated device: 1.2a).
        emulated: the record describes an emulated device (values invented).
        spare: a spare on the rig's bench, not installed: pre-notified to the DCC
            (SMI status ``Pending``) and not on the HAN until a scenario installs it
            (a second CH for Comms Hub Replacement, a new PPMID / IHD for an exchange;
            seed 000: "Two separate business requests: one to remove PPMID (old) and
            other to add PPMID (new)"). Scenario variants declare the spares they
            consume (:class:`hanlab.scenarios.models.Consumed`).

    Secrets (install codes, keys) never go here: they stay in the rig's secrets file.
    """

    role: DeviceRole
    eui64: EUI64
    band: Band = Band.GHZ_2_4
    name: str | None = None
    manufacturer: _Text = ""
    model: _Text = ""
    firmware_version: _Text = ""
    smets_version: _Text = ""
    chts_version: _Text = ""
    gbcs_version: _Text = ""
    zigbee_stack: _Text = ""
    silicon_vendor: _Text = ""
    cpl_reference: _Text = ""
    release_note: _Text = ""
    se_version: Literal["1.2a", "1.4"] | None = None
    emulated: bool = False
    spare: bool = False

    @model_validator(mode="after")
    def _version_fits_role(self) -> DeviceConfig:
        hub = self.role.value in _CH_ROLES
        if hub and self.smets_version:
            raise ValueError(f"a {self.role.value} is part of the Communications Hub: give "
                             "chts_version, not smets_version")
        if not hub and self.chts_version:
            raise ValueError(f"a {self.role.value} is not part of the Communications Hub: "
                             "give smets_version, not chts_version")
        return self

    def record(self) -> dict[str, Any]:
        """The device record as plain JSON data (every field; no secrets exist here)."""
        return self.model_dump(mode="json")


class SnifferConfig(_Model):
    """One sniffer (or radio) of a rig.

    Attributes:
        id: unique within the rig; becomes the pcapng interface name.
        driver: a name from :data:`hanlab.sources.DRIVERS`.
        page, channel: channel page and channel (page 0: 11-26; pages 28-31: GB sub-GHz).
        settings: driver-specific settings, validated against the driver's model.
    """

    id: Slug
    driver: str
    page: int = 0
    channel: int = 11
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _channel_on_page(self) -> SnifferConfig:
        try:
            band_of(self.page, self.channel)
        except BadInputError as exc:
            raise ValueError(exc.message) from exc
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def band(self) -> Band:
        """The band of this sniffer's page and channel."""
        return band_of(self.page, self.channel)

    def description(self) -> str:
        """``<band> page <p> channel <c>`` for the pcapng interface description."""
        return f"{self.band.value} page {self.page} channel {self.channel}"


class BrokerConfig(_Model):
    """MQTT broker. With no ``host``, hanlab starts its embedded broker on 127.0.0.1.

    Attributes:
        host: broker host name; ``None`` for the embedded broker.
        port: TCP port (embedded broker listens here too).
        username: optional user name; the password comes from the secrets file
            (:mod:`hanlab.config.secrets`; the loader attaches it: :attr:`password`).
        keepalive_s: MQTT keep-alive in seconds.
        buffer_events: events kept while the broker is away (oldest dropped, counted).
        reconnect_max_s: longest wait between reconnection attempts.
    """

    host: str | None = None
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    keepalive_s: int = Field(30, ge=5)
    buffer_events: int = Field(100_000, ge=1)
    reconnect_max_s: float = Field(10.0, gt=0)
    _password: SecretStr | None = PrivateAttr(default=None)

    def with_password(self, username: str | None, password: SecretStr) -> BrokerConfig:
        """A copy with the secrets file's credentials (``username`` ``None``: keep
        :attr:`username`). The password is never dumped, served or shown by ``repr``."""
        copy = self.model_copy(update={"username": username or self.username})
        copy._password = password
        return copy

    @property
    def password(self) -> str | None:
        """The broker password from the secrets file, or ``None`` (a secret: never log)."""
        return None if self._password is None else self._password.get_secret_value()

    @property
    def embedded(self) -> bool:
        """Whether hanlab runs its own broker."""
        return self.host is None


class CaptureConfig(_Model):
    """Where and how pcapng files are written.

    Attributes:
        folder: output folder.
        rotate_size_mb: start a new file at this size (MiB); ``None`` never.
        rotate_duration_s: start a new file after this much time; ``None`` never.
        flush_interval_s: longest time frames stay in memory before reaching the file.
        retain_days: after each rotation, delete the rig's files older than this many
            days; ``None`` (default) keeps them (issue 14 item 18).
        retain_total_mb: after each rotation, delete the rig's oldest files while all of
            them (every band) total more than this many MiB; ``None`` (default) keeps them.
            An open file is never deleted.
    """

    folder: Path = Path("captures")
    rotate_size_mb: float | None = Field(100.0, gt=0)
    rotate_duration_s: float | None = Field(3600.0, gt=0)
    flush_interval_s: float = Field(0.25, gt=0, le=1.0)
    retain_days: float | None = Field(None, gt=0)
    retain_total_mb: float | None = Field(None, gt=0)


def _no_repeats(values: list[str], what: str) -> None:
    """Raise ValueError naming the first value that appears twice."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(value)


class RigConfig(_Model):
    """One rig (meter set). Loaded from ``rigs/<name>.yaml``."""

    name: Slug
    ch_variant: ChVariant = ChVariant.SINGLE_BAND
    description: str = ""
    devices: list[DeviceConfig] = Field(default_factory=list)
    sniffers: list[SnifferConfig] = Field(min_length=1)
    broker: BrokerConfig | None = None
    capture: CaptureConfig = CaptureConfig()
    secrets: Path | None = None

    @field_validator("devices")
    @classmethod
    def _unique_devices(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        _no_repeats([d.eui64 for d in devices], "EUI-64")
        return devices

    @field_validator("sniffers")
    @classmethod
    def _unique_sniffers(cls, sniffers: list[SnifferConfig]) -> list[SnifferConfig]:
        _no_repeats([s.id for s in sniffers], "sniffer id")
        return sniffers

    @model_validator(mode="after")
    def _bands_fit_variant(self) -> RigConfig:
        if self.ch_variant is ChVariant.SINGLE_BAND:
            for d in self.devices:
                if d.band is Band.SUB_GHZ:
                    raise ValueError(
                        f"device {d.eui64} is on sub-GHz but the rig's CH is single band"
                    )
        return self


class ApiConfig(_Model):
    """The daemon's control API and dashboard (issue 9, items 3 and 5).

    Attributes:
        enabled: serve the API and dashboard.
        host: where to listen; loopback unless configured otherwise.
        port: TCP port (0: any free port; the state file and the retained MQTT
            ``status`` carry the bound URL).
        tokens_file: the bearer tokens (JSON, mode 600, created on first start);
            default ``$XDG_STATE_HOME/hanlab/api-tokens.json`` (``~/.local/state/…``).
        tls_certificate_file, tls_key_file: serve HTTPS with these (PEM) when both set.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535)
    tokens_file: Path | None = None
    tls_certificate_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_certificate_file is None) != (self.tls_key_file is None):
            raise ValueError("give both tls_certificate_file and tls_key_file, or neither")
        return self


class StoreConfig(_Model):
    """The lab's results database (issue 10, item 4).

    Attributes:
        url: an SQLAlchemy URL: ``postgresql+psycopg://user@host:5432/hanlab`` (several
            hosts of one lab writing to one store) or ``sqlite:////abs/path/hanlab.db``.
            Default (no ``store:``): SQLite ``<out>/hanlab.db``. A password does not go
            in the lab file: give it through ``~/.pgpass`` or ``PGPASSWORD``.
        spool_folder: where results wait while the database is unreachable (default
            ``<out>/store-spool``).
    """

    url: str = Field(min_length=1, max_length=2000)
    spool_folder: Path | None = None

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as error:
            raise ValueError(f"not a database URL: {error}") from None
        if url.password:
            raise ValueError("the URL has a password: keep it out of the lab file "
                             "(use ~/.pgpass or PGPASSWORD)")
        return value


class LabConfig(_Model):
    """A lab: its rigs (rig files), the broker they publish to, its DUIS settings
    (:class:`~hanlab.config.duis.DuisConfig`: DCC endpoint, Users, keys, DUIS log), its
    results store (:class:`StoreConfig`) and its secrets file (the broker's credentials,
    :mod:`hanlab.config.secrets`; ``chmod 600``)."""

    name: Slug = "lab"
    rigs: list[Path] = Field(min_length=1)
    broker: BrokerConfig = BrokerConfig()
    capture_folder: Path | None = None
    duis: DuisConfig | None = None
    api: ApiConfig = ApiConfig()
    secrets: Path | None = None
    store: StoreConfig | None = None


class Lab(BaseModel):
    """A loaded lab: the lab settings, every rig, and the file each rig came from
    (``rig_files``, in the order of ``rigs``; empty for an ad-hoc lab such as the one
    ``hanlab capture`` builds)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: LabConfig
    rigs: list[RigConfig]
    rig_files: list[Path]
    driver_settings: dict[tuple[str, str], Any] = Field(default_factory=dict)
