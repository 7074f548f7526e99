"""The lab's secrets file: ZigBee keys and the MQTT broker credentials (issue 14 item 17).

One YAML file, ``chmod 600``, named by ``secrets:`` in a lab or rig file (relative to it)::

    mqtt:                              # the broker's user (embedded broker: the one user)
      username: hanlab                 # optional: else broker.username of the lab file
      password: "s3cret"
    network_keys:                      # the keyring sections (hanlab.zigbee.keyring)
      - {key: 60ccee07009651c60e1f8c1b05562f2c, seq: 0, label: sinope}
    link_keys: [...]
    install_codes: [...]
    well_known_tc_link_key: true

The same file is a keys file for ``hanlab decode --keys`` (the keyring ignores ``mqtt``).
Values are secrets: errors name the field, never its value; the password is a
:class:`pydantic.SecretStr` (``repr`` and dumps show ``**********``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hanlab.config.loader import load_yaml_model


class MqttSecrets(BaseModel):
    """The ``mqtt`` section: the broker user hanlab connects as (and the embedded broker
    accepts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = Field(default=None, min_length=1, max_length=256)
    password: SecretStr


class Secrets(BaseModel):
    """A whole secrets file: ``mqtt`` plus the keyring sections (their entries are checked
    by :meth:`hanlab.zigbee.keyring.Keyring.from_dict` where keys are read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt: MqttSecrets | None = None
    network_keys: list[object] = Field(default_factory=list)
    link_keys: list[object] = Field(default_factory=list)
    install_codes: list[object] = Field(default_factory=list)
    well_known_tc_link_key: bool = True


def load_secrets(path: Path) -> Secrets:
    """Read and validate a secrets file (format in the module docstring).

    The file's mode is not checked here (see
    :func:`hanlab.secrets_file.check_secrets_file`).

    Raises:
        ConfigError: unreadable, not YAML, or an invalid field, as ``file:line: field:
            message`` (never the value).
    """
    secrets, _ = load_yaml_model(path, Secrets, "a secrets file (mqtt, network_keys, …)")
    return secrets


def broker_secrets(path: Path | None) -> MqttSecrets | None:
    """The ``mqtt`` section of the secrets file at ``path`` (``None``: no file or section).

    Raises:
        ConfigError: the file is invalid.
    """
    if path is None:
        return None
    return load_secrets(path).mqtt


__all__ = ["MqttSecrets", "Secrets", "broker_secrets", "load_secrets"]
