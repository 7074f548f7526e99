"""Loading lab and rig files with errors that name file, line and field.

``load_lab(path)`` accepts a lab file (with ``rigs:``) or a single rig file (a lab of one).
Every problem found is reported at once in a :class:`~hanlab.errors.ConfigError` whose
``problems`` are lines ``<file>:<line>: <field>: <message>``.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from hanlab.config.models import BrokerConfig, Lab, LabConfig, RigConfig
from hanlab.errors import BadInputError, ConfigError
from hanlab.sources import driver_class

M = TypeVar("M", bound=BaseModel)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: file not found"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
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


def _problems(path: Path, node: yaml.Node | None, exc: ValidationError,
              prefix: tuple[int | str, ...] = ()) -> list[str]:
    return [problem_at(path, node, prefix + tuple(err["loc"]), err["msg"])
            for err in exc.errors()]


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
        raise ConfigError(_problems(path, node, exc)) from exc


def _resolve_paths(model: BaseModel, base: Path) -> dict[str, Any]:
    """Field values of ``model`` with relative Path fields made relative to ``base``."""
    updates: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        is_path = info.annotation is Path or Path in get_args(info.annotation)
        if is_path and isinstance(value, Path) and not value.is_absolute():
            updates[name] = base / value
    return updates


def check_secrets_file(path: Path) -> list[str]:
    """Problems with a secrets file: missing, or readable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return [f"{path}: secrets file cannot be read: {exc.strerror}"]
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"{path}: secrets file is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"]
    return []


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
            problems.extend(_problems(path, node, exc, loc))
            continue
        settings[sniffer.id] = model.model_copy(update=_resolve_paths(model, base))
    updates: dict[str, Any] = {}
    if "folder" in rig.capture.model_fields_set and not rig.capture.folder.is_absolute():
        updates["capture"] = rig.capture.model_copy(update={"folder": base / rig.capture.folder})
    if rig.secrets is not None:
        secrets = rig.secrets if rig.secrets.is_absolute() else base / rig.secrets
        updates["secrets"] = secrets
        problems.extend(f"{p} (named at {path}:{line_of(node, ('secrets',))})"
                        for p in check_secrets_file(secrets))
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
        lab_cfg = LabConfig(name="lab", rigs=[path], broker=rig.broker or BrokerConfig())
        return Lab(config=lab_cfg, rigs=[rig], rig_files=[path],
                   driver_settings={(rig.name, k): v for k, v in settings.items()})
    lab_cfg, _ = load_yaml_model(path, LabConfig, "a lab file (name, rigs, …)")
    problems: list[str] = []
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
    if lab_cfg.duis is not None:
        lab_cfg = lab_cfg.model_copy(update={"duis": lab_cfg.duis.resolved(path.parent)})
    if lab_cfg.capture_folder is not None and not lab_cfg.capture_folder.is_absolute():
        folder = path.parent / lab_cfg.capture_folder
        lab_cfg = lab_cfg.model_copy(update={"capture_folder": folder})
    return Lab(config=lab_cfg, rigs=rigs, rig_files=files, driver_settings=driver_settings)
