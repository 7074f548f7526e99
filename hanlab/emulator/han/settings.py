"""Settings of an emulated HAN (one per rig), as written in the emulated sniffers' settings.

Every duration is in seconds (``_s``), probabilities are 0..1, duty-cycle thresholds in
percent. Devices come from the rig file (``rig_file``) or from ``devices`` here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hanlab.config.models import EUI64, DeviceRole
from hanlab.emulator.han.ota import OtaSettings
from hanlab.firmware.ch_image import ChImage, SeVersion
from hanlab.frames import Band


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProcessingModel(_Model):
    """Device processing time per GBCS command, drawn per SR (seed requirement DIT.11).

    Attributes:
        distribution: ``fixed`` (``mean_s``), ``uniform`` (``min_s``..``max_s``) or
            ``lognormal`` (mean ``mean_s``, standard deviation ``sd_s``, clipped to
            ``min_s``..``max_s``).
    """

    distribution: Literal["fixed", "uniform", "lognormal"] = "lognormal"
    mean_s: float = Field(default=0.4, ge=0)
    sd_s: float = Field(default=0.15, ge=0)
    min_s: float = Field(default=0.05, ge=0)
    max_s: float = Field(default=5.0, gt=0)


class EmulatedDevice(_Model):
    """One emulated device (the rig file's ``devices:`` entries, plus emulator extras).

    Attributes:
        wake_interval_s: GSME only: seconds between wake-ups.
        poll_interval_s: IHD/PPMID/HCALCS: seconds between their own periodic exchanges.
        fetch_delay_s: mains devices: delay from a message waiting to the device's GET.
        added_latency_s: fault: extra processing time per command.
        bricked: fault: the device never answers (radio silent from the start).
        se_version: the ZigBee Smart Energy version it behaves as, ``1.2a`` or ``1.4``
            (the cited differences: :mod:`hanlab.emulator.han.ch_upgrade`).
        spare: a spare on the bench (rig file ``spare: true``): a CHF / GPF answers over
            the WAN only (its radios off the air); another device stays off the HAN until
            :meth:`EmulatedHan.install` joins it.
    """

    role: DeviceRole
    eui64: EUI64
    band: Band = Band.GHZ_2_4
    name: str | None = None
    model: str = ""
    wake_interval_s: float = Field(default=30.0, gt=0)
    poll_interval_s: float = Field(default=10.0, gt=0)
    fetch_delay_s: float = Field(default=0.05, ge=0)
    added_latency_s: float = Field(default=0.0, ge=0)
    bricked: bool = False
    se_version: SeVersion = "1.2a"
    spare: bool = False


class TrafficSettings(_Model):
    """The built-in traffic generator: SRs queued at the CHF without a DCC.

    Attributes:
        enabled: generate traffic.
        interval_s: one SR per interval for the whole rig (round robin over targets).
        variants: DUIS ServiceReferenceVariants to cycle through (their Message Code per
            device type comes from :mod:`hanlab.duis.catalogue`).
        roles: device roles to target.
        originator_eui64: the User's EUI-64 (business originator of the commands).
        first_counter: first Originator Counter used.
        alert_interval_s: seconds between spontaneous device alerts (``None``: none).
    """

    enabled: bool = False
    interval_s: float = Field(default=1.0, gt=0)
    variants: list[str] = Field(default_factory=lambda: ["4.1.1", "4.16", "4.8.1", "6.2.7"])
    roles: list[DeviceRole] = Field(default_factory=lambda: [DeviceRole.ESME, DeviceRole.GSME])
    originator_eui64: EUI64 = "90-B3-D5-1F-30-01-00-00"
    first_counter: int = Field(default=0x0100_0000_0000_0000, ge=0, lt=1 << 64)
    alert_interval_s: float | None = Field(default=None, gt=0)


class DutyCycleSettings(_Model):
    """GBCS sub-GHz duty-cycle management of the CH (thresholds in % of ``window_s``)."""

    window_s: float = Field(default=3600.0, gt=0)
    limited_pct: float = Field(default=1.3, gt=0)
    critical_pct: float = Field(default=2.2, gt=0)
    regulated_pct: float = Field(default=10.0, gt=0)


class LinkLoss(_Model):
    """Loss probability of the link between two devices (both directions)."""

    a: EUI64
    b: EUI64
    probability: float = Field(ge=0, le=1)


class FaultEvent(_Model):
    """A fault injected ``at_s`` seconds after the HAN starts.

    Kinds: ``brick`` / ``unbrick`` (``device``), ``ch_reboot`` (``duration_s``),
    ``channel_change`` (sub-GHz ``page``/``channel``), ``leave`` (``device``),
    ``loss`` (default loss ``probability`` from then on), ``latency`` (``device``,
    ``duration_s`` added to its processing).
    """

    at_s: float = Field(ge=0)
    kind: Literal["brick", "unbrick", "ch_reboot", "channel_change", "leave", "loss",
                  "latency"]
    device: EUI64 | None = None
    duration_s: float = Field(default=5.0, ge=0)
    page: int | None = None
    channel: int | None = None
    probability: float = Field(default=0.0, ge=0, le=1)


class HanSettings(_Model):
    """One rig's emulated HAN.

    Attributes:
        seed: random seed (backoffs, processing times, loss): runs are reproducible.
        time_scale: emulated seconds per host second (1.0: real time).
        pan_id: PAN ID.
        channel: 2.4 GHz channel (page 0); ``None``: the rig's 2.4 GHz sniffer's.
        subghz_page, subghz_channel: the CH's sub-GHz channel; ``None``: the rig's
            sub-GHz sniffer's, else page 28 channel 12.
        network_key: 32 hex digits; ``None``: derived from the rig name.
        devices: devices, when the rig file's are not used.
        models: processing-time model per device ``model`` name (``default`` for others).
        traffic: the traffic generator.
        loss: default per-link frame loss probability.
        link_loss: per-link loss probabilities.
        duty_cycle: sub-GHz duty-cycle thresholds.
        faults: scheduled faults.
        join_stagger_s: seconds between the devices' joins at start.
        stack_latency_s: seconds from a frame's reception to the node acting on it.
        gbt_threshold_octets: GBCS messages longer than this are GBT-segmented.
        ch_processing: the CHF's and GPF's processing-time model for commands addressed
            to them (CCS/GCS/CS use cases: SR 8.11, 8.12.x, 6.15.2, 6.17, 6.21, 6.23, joins
            to the GPF ...); ``None``: the role defaults of
            :data:`hanlab.emulator.han.han.ROLE_PROCESSING`. Emulated seconds.
        ch_alerts: GBCS Alert Code the CHF or GPF raises after processing a command of a
            GBCS use case, ``"<CHF|GPF>:<use case>" -> "0x8F12"``; ``None``: hanlab's reading
            of GBCS (:data:`hanlab.emulator.han.han.CH_COMMAND_ALERTS`), an empty mapping
            for none. Configurable because it is not established from GBCS itself.
        ch_alerts_wan: raise ``ch_alerts`` for commands delivered over the WAN too (by
            default only for locally delivered ones, CommandVariant 2/3/6/7).
        ota: firmware distribution over the OTA Upgrade cluster
            (:class:`hanlab.emulator.han.ota.OtaSettings`).
        ch_image: the CH firmware image the CH runs at start (``None``: a CHTS v1.0 CH,
            :data:`hanlab.emulator.han.ch_upgrade.DEFAULT_CH_IMAGE`).
    """

    seed: int = 1
    time_scale: float = Field(default=1.0, gt=0)
    pan_id: int = Field(default=0x1A62, ge=0, lt=0xFFFF)
    channel: int | None = Field(default=None, ge=11, le=26)
    subghz_page: int | None = Field(default=None, ge=28, le=31)
    subghz_channel: int | None = Field(default=None, ge=0, le=61)
    network_key: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{32}$")
    devices: list[EmulatedDevice] = Field(default_factory=list)
    models: dict[str, ProcessingModel] = Field(default_factory=dict)
    traffic: TrafficSettings = TrafficSettings()
    loss: float = Field(default=0.0, ge=0, le=1)
    link_loss: list[LinkLoss] = Field(default_factory=list)
    duty_cycle: DutyCycleSettings = DutyCycleSettings()
    faults: list[FaultEvent] = Field(default_factory=list)
    join_stagger_s: float = Field(default=0.2, ge=0)
    stack_latency_s: float = Field(default=0.003, ge=0)
    gbt_threshold_octets: int = Field(default=1200, ge=64)
    ch_processing: ProcessingModel | None = None
    ch_alerts: dict[str, str] | None = None
    ch_alerts_wan: bool = False
    ota: OtaSettings = OtaSettings()
    ch_image: ChImage | None = None
