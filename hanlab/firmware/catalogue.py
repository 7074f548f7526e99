"""The firmware catalogue: ``firmware_images/index.yaml`` and the OTA files beside it.

Each entry: ``path`` (relative to the catalogue folder), ``device_model`` (the rig file's
device ``model``), ``manufacturer_code``, ``image_type``, ``file_version`` (as in the OTA
header, written as hex strings), ``sha256`` (of the whole file), ``size_octets``,
``cpl_reference`` (the Central Products List entry the version is listed under, seed 000
Install and Commission / firmware: devices and versions on the CPL), ``release_note``,
``signed``. ``hanlab firmware add|list|info|verify`` manage it; the emulated DCC takes the
image of a device's model from it for SR 11.1 (:meth:`Catalogue.latest_for`).

Errors: :class:`~hanlab.errors.BadInputError` naming the index file and the entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from hanlab.errors import BadInputError, FirmwareImageError
from hanlab.firmware.ota_file import (
    OtaImage,
    OtaTarget,
    check_ota_image,
    read_ota_file,
)

INDEX_NAME: Final = "index.yaml"
SCHEMA: Final = 1


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One image of the catalogue (see the module docstring)."""

    path: str
    device_model: str
    manufacturer_code: int
    image_type: int
    file_version: int
    sha256: str
    size_octets: int
    cpl_reference: str = ""
    release_note: str = ""
    signed: bool = True

    def as_yaml(self) -> dict[str, Any]:
        """The entry as written in ``index.yaml`` (codes and versions as hex strings)."""
        out = asdict(self)
        out["manufacturer_code"] = f"0x{self.manufacturer_code:04X}"
        out["image_type"] = f"0x{self.image_type:04X}"
        out["file_version"] = f"0x{self.file_version:08X}"
        return out

    def target(self, current_file_version: int | None = None) -> OtaTarget:
        """The device this image is for, as an :class:`OtaTarget`."""
        return OtaTarget(self.manufacturer_code, self.image_type, current_file_version,
                         requires_signature=self.signed, name=f"model {self.device_model}")


def _int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise BadInputError(f"{where}: {value!r} is not an integer (write e.g. 0x1234)")


class Catalogue:
    """The catalogue in ``folder`` (its ``index.yaml``; an absent index is empty).

    Raises:
        BadInputError: the index is not valid YAML or an entry lacks a field.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.index_path = self.folder / INDEX_NAME
        self.entries: list[CatalogueEntry] = []
        if self.index_path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            doc = yaml.safe_load(self.index_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise BadInputError(f"{self.index_path}: cannot read the catalogue: {error}") \
                from None
        images = doc.get("images", []) if isinstance(doc, dict) else None
        if not isinstance(images, list):
            raise BadInputError(f"{self.index_path}: 'images' must be a list")
        for i, item in enumerate(images):
            where = f"{self.index_path}: images[{i}]"
            if not isinstance(item, dict):
                raise BadInputError(f"{where}: not a mapping")
            try:
                self.entries.append(CatalogueEntry(
                    path=str(item["path"]), device_model=str(item["device_model"]),
                    manufacturer_code=_int(item["manufacturer_code"], where),
                    image_type=_int(item["image_type"], where),
                    file_version=_int(item["file_version"], where),
                    sha256=str(item["sha256"]).lower(),
                    size_octets=_int(item.get("size_octets", 0), where),
                    cpl_reference=str(item.get("cpl_reference", "")),
                    release_note=str(item.get("release_note", "")),
                    signed=bool(item.get("signed", True))))
            except KeyError as missing:
                raise BadInputError(f"{where}: missing field {missing.args[0]}") from None

    def save(self) -> None:
        """Write ``index.yaml`` (entries sorted by model and version)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.entries.sort(key=lambda e: (e.device_model, e.file_version, e.path))
        doc = {"schema": SCHEMA, "images": [e.as_yaml() for e in self.entries]}
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text("# hanlab firmware catalogue (hanlab firmware add|list|info|verify)\n"
                       + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        os.replace(tmp, self.index_path)

    def file_of(self, entry: CatalogueEntry) -> Path:
        """The OTA file of ``entry``."""
        return self.folder / entry.path

    def add(self, file: Path, *, device_model: str, cpl_reference: str = "",
            release_note: str = "", requires_signature: bool = True) -> CatalogueEntry:
        """Check ``file`` and add it (copied into the folder when outside it).

        Raises:
            FirmwareImageError: the file is malformed, too large or unsigned where required.
            BadInputError: the same model and version is already catalogued.
        """
        image = read_ota_file(file)
        problems = check_ota_image(image)
        if requires_signature and not image.signed:
            raise FirmwareImageError(file, len(image.raw), "no ECDSA signature sub-element "
                                     "(add --unsigned for a device that takes unsigned "
                                     "images)")
        if problems:
            raise problems[0].error(image.source)
        h = image.header
        for e in self.entries:
            if e.device_model == device_model and e.file_version == h.file_version:
                raise BadInputError(f"{self.index_path}: {device_model} version "
                                    f"0x{h.file_version:08X} is already catalogued as {e.path}")
        dest = self.folder / Path(file).name
        self.folder.mkdir(parents=True, exist_ok=True)
        if Path(file).resolve() != dest.resolve():
            if dest.exists():
                raise BadInputError(f"{dest} exists already", hint="rename the file")
            shutil.copyfile(file, dest)
        entry = CatalogueEntry(
            path=dest.name, device_model=device_model, manufacturer_code=h.manufacturer_code,
            image_type=h.image_type, file_version=h.file_version, sha256=image.sha256,
            size_octets=len(image.raw), cpl_reference=cpl_reference,
            release_note=release_note, signed=image.signed)
        self.entries.append(entry)
        self.save()
        return entry

    def find(self, ref: str) -> CatalogueEntry:
        """The entry whose path, file name or sha256 (prefix of ≥ 8) is ``ref``.

        Raises:
            BadInputError: none or several match.
        """
        ref_l = ref.lower()
        found = [e for e in self.entries if e.path == ref or Path(e.path).name == ref
                 or (len(ref_l) >= 8 and e.sha256.startswith(ref_l))]
        if len(found) != 1:
            raise BadInputError(f"{self.index_path}: {len(found)} entries match {ref!r}",
                                hint="give a path or a longer sha256 prefix")
        return found[0]

    def latest_for(self, device_model: str) -> CatalogueEntry | None:
        """The newest image (highest file version) for ``device_model``, or ``None``."""
        mine = [e for e in self.entries if e.device_model == device_model]
        return max(mine, key=lambda e: e.file_version) if mine else None

    def load_image(self, entry: CatalogueEntry) -> OtaImage:
        """Read ``entry``'s file and verify it against the entry (:meth:`verify_entry`).

        Raises:
            FirmwareImageError: see :meth:`verify_entry`.
        """
        image = read_ota_file(self.file_of(entry))
        problems = self.verify_entry(entry, image)
        if problems:
            raise FirmwareImageError(self.file_of(entry), problems[0][0], problems[0][1])
        return image

    def verify_entry(self, entry: CatalogueEntry,
                     image: OtaImage | None = None) -> list[tuple[int, str]]:
        """The problems of ``entry``'s file: its checks, then sha256, size and header
        fields against the entry, as ``(byte offset, reason)``.

        Raises:
            FirmwareImageError: the file is missing or structurally malformed.
        """
        image = image or read_ota_file(self.file_of(entry))
        out = [(p.offset, p.reason) for p in check_ota_image(image, entry.target())]
        digest = hashlib.sha256(image.raw).hexdigest()
        if digest != entry.sha256:
            out.append((0, f"sha256 {digest[:16]}… differs from the catalogue's "
                        f"{entry.sha256[:16]}…"))
        if entry.size_octets and len(image.raw) != entry.size_octets:
            out.append((0, f"{len(image.raw)} octets, the catalogue says "
                        f"{entry.size_octets}"))
        if image.header.file_version != entry.file_version:
            out.append((14, f"file version 0x{image.header.file_version:08X}, the "
                        f"catalogue says 0x{entry.file_version:08X}"))
        return out


def default_catalogue_folder() -> Path:
    """``$HANLAB_FIRMWARE_IMAGES``, else ``./firmware_images``."""
    return Path(os.environ.get("HANLAB_FIRMWARE_IMAGES", "firmware_images"))
