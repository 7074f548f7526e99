"""Loading lab and rig files with errors that name file, line and field.

``load_lab(path)`` accepts a lab file (with ``rigs:``) or a single rig file (a lab of one).
Every problem found is reported at once in a :class:`~hanlab.errors.ConfigError` whose
``problems`` are lines ``<file>:<line>: <field>: <message>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from hanlab.config.models import BrokerConfig, Lab, LabConfig, RigConfig
from hanlab.errors import BadInputError, ConfigError, did_you_mean, os_error_text
from hanlab.secrets_file import check_secrets_file
from hanlab.sources import driver_class

M = TypeVar("M", bound=BaseModel)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([os_error_text(path, exc)]) from exc
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}:{line}: invalid YAML: {problem}"]) from exc


def line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node of ``loc`` found in the YAML node tree."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def problem_at(path: Path, node: yaml.Node | None, loc: tuple[int | str, ...],
               message: str) -> str:
    """A problem found after validation as ``file:line: field: message``, the line that
    of ``loc`` (keys and list indexes) in the YAML node tree of
    :func:`load_yaml_model`."""
    field = ".".join(str(p) for p in loc) or "(top)"
    return f"{path}:{line_of(node, loc)}: {field}: {message}"


def _fields_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str]:
    """The field names (and aliases) of the model found at ``loc`` inside ``model``."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue  # an item of a list field: the item's model is already in hand
        info = model.model_fields.get(part)
        if info is None:
            return []
        model = _model_in(info.annotation)
    if model is None:
        return []
    names = list(model.model_fields)
    names += [i.alias for i in model.model_fields.values() if i.alias]
    return names


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``M``, ``M | None``, ``list[M]``…)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _plain(err: Any, model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    """A validation error in plain words (issue 14 item 7): no pydantic jargon, and for
    a misspelt field the closest known one."""
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        return f"unknown field{did_you_mean(name, _fields_at(model, loc[:-1]))}"
    if kind == "missing":
        return "required field missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    if msg.startswith("Input should be "):
        return "must be " + msg[len("Input should be "):]
    return msg


def _problems(path: Path, node: yaml.Node | None, exc: ValidationError,
              prefix: tuple[int | str, ...] = (),
              model: type[BaseModel] | None = None) -> list[str]:
    """``file:line: field: message`` for each error of ``exc`` (``prefix``: where the
    validated mapping sits in the file; ``model``: the model validated, for the names a
    misspelt field is compared with)."""
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = prefix + loc
        field = ".".join(str(p) for p in where) or "(top)"
        out.append(f"{path}:{line_of(node, where)}: {field}: {_plain(err, model, loc)}")
    return out


def load_yaml_model(path: Path, model: type[M], what: str) -> tuple[M, yaml.Node | None]:
    """Read the YAML mapping in ``path`` and validate it as ``model``.

    Args:
        what: how to name the file in the error, e.g. ``"a rig file"``.

    Returns:
        the model, and the YAML node tree (for the line of later problems).

    Raises:
        ConfigError: unreadable or invalid YAML, not a mapping, or invalid fields, each
            problem as ``file:line: field: message``.
    """
    data, node = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: {what} must be a mapping"])
    try:
        return model.model_validate(data), node
    except ValidationError as exc:
        raise ConfigError(_problems(path, node, exc, model=model)) from exc


def _resolve_paths(model: BaseModel, base: Path) -> dict[str, Any]:
    """Field values of ``model`` with relative Path fields made relative to ``base``."""
    updates: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        is_path = info.annotation is Path or Path in get_args(info.annotation)
        if is_path and isinstance(value, Path) and not value.is_absolute():
            updates[name] = base / value
    return updates


def _secrets_path(path: Path, node: yaml.Node | None, named: Path,
                  problems: list[str]) -> Path:
    """``named`` (a ``secrets:`` field of ``path``) resolved, its mode problems added."""
    secrets = named if named.is_absolute() else path.parent / named
    problems.extend(f"{p} (named at {path}:{line_of(node, ('secrets',))})"
                    for p in check_secrets_file(secrets))
    return secrets


def _with_broker_secrets(broker: BrokerConfig, secrets: Path | None,
                         named_at: Path) -> BrokerConfig:
    """``broker`` with the password (and user name) of the ``mqtt`` section of the secrets
    file (issue 14 item 17).

    Raises:
        ConfigError: the secrets file is invalid, or ``broker.username`` is set but the
            secrets file gives no password.
    """
    from hanlab.config.secrets import broker_secrets

    mqtt = broker_secrets(secrets)
    if mqtt is None:
        if broker.username is not None:
            raise ConfigError([f"{named_at}: broker.username is set but no secrets file "
                               "gives mqtt.password"],
                              hint="add mqtt: {password: ...} to the lab's secrets file")
        return broker
    return broker.with_password(mqtt.username, mqtt.password)


def load_rig(path: Path) -> tuple[RigConfig, dict[str, Any]]:
    """Load and validate one rig file.

    Returns:
        the rig, and sniffer id -> validated driver settings model.

    Raises:
        ConfigError: every problem, with file, line and field.
    """
    rig, node = load_yaml_model(path, RigConfig, "a rig file (name, sniffers, …)")
    base = path.parent
    problems: list[str] = []
    settings: dict[str, Any] = {}
    for i, sniffer in enumerate(rig.sniffers):
        loc: tuple[int | str, ...] = ("sniffers", i, "settings")
        try:
            cls = driver_class(sniffer.driver)
        except BadInputError as exc:
            problems.append(problem_at(path, node, ("sniffers", i, "driver"), exc.message))
            continue
        try:
            model = cls.Settings.model_validate(sniffer.settings)
        except ValidationError as exc:
            problems.extend(_problems(path, node, exc, loc, cls.Settings))
            continue
        model = model.model_copy(update=_resolve_paths(model, base))
        for name, file in model.input_files().items():
            if not file.is_file():
                where = (*loc, name)
                problems.append(f"{path}:{line_of(node, where)}: "
                                f"{'.'.join(map(str, where))}: {file}: file not found")
        settings[sniffer.id] = model
    updates: dict[str, Any] = {}
    if "folder" in rig.capture.model_fields_set and not rig.capture.folder.is_absolute():
        updates["capture"] = rig.capture.model_copy(update={"folder": base / rig.capture.folder})
    if rig.secrets is not None:
        updates["secrets"] = _secrets_path(path, node, rig.secrets, problems)
    if problems:
        raise ConfigError(problems)
    return rig.model_copy(update=updates), settings


def load_lab(path: Path) -> Lab:
    """Load a lab file, or a rig file as a lab of one rig.

    Raises:
        ConfigError: every problem of the lab file and of each rig file.
    """
    data, _ = _read_yaml(path)
    if isinstance(data, dict) and "rigs" not in data and "sniffers" in data:
        rig, settings = load_rig(path)
        broker = _with_broker_secrets(rig.broker or BrokerConfig(), rig.secrets, path)
        lab_cfg = LabConfig(name="lab", rigs=[path], broker=broker, secrets=rig.secrets)
        return Lab(config=lab_cfg, rigs=[rig], rig_files=[path],
                   driver_settings={(rig.name, k): v for k, v in settings.items()})
    lab_cfg, node = load_yaml_model(path, LabConfig, "a lab file (name, rigs, …)")
    problems: list[str] = []
    lab_secrets = None
    if lab_cfg.secrets is not None:
        lab_secrets = _secrets_path(path, node, lab_cfg.secrets, problems)
    rigs: list[RigConfig] = []
    files: list[Path] = []
    driver_settings: dict[tuple[str, str], Any] = {}
    for rig_path in lab_cfg.rigs:
        rig_file = rig_path if rig_path.is_absolute() else path.parent / rig_path
        try:
            rig, settings = load_rig(rig_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if rig.name in {r.name for r in rigs}:
            problems.append(f"{rig_file}:1: name: rig name {rig.name!r} is used twice in the lab")
        rigs.append(rig)
        files.append(rig_file)
        driver_settings.update({(rig.name, k): v for k, v in settings.items()})
    if problems:
        raise ConfigError(problems)
    lab_cfg = lab_cfg.model_copy(update={
        "secrets": lab_secrets,
        "broker": _with_broker_secrets(lab_cfg.broker, lab_secrets, path)})
    if lab_cfg.duis is not None:
        lab_cfg = lab_cfg.model_copy(update={"duis": lab_cfg.duis.resolved(path.parent)})
    if lab_cfg.capture_folder is not None and not lab_cfg.capture_folder.is_absolute():
        folder = path.parent / lab_cfg.capture_folder
        lab_cfg = lab_cfg.model_copy(update={"capture_folder": folder})
    return Lab(config=lab_cfg, rigs=rigs, rig_files=files, driver_settings=driver_settings)
