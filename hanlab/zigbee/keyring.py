"""The keyring: network keys, link keys, install-code keys and keys learned on the air.

* Network keys (ZigBee spec 05-3474 §4.2.1) with their key sequence numbers.
* Link keys (§4.2.2), optionally tied to a device pair; the well-known trust-centre link
  key ``ZigBeeAlliance09`` (BDB 13-0402 §6.3.2) is included unless disabled.
* Install-code link keys (BDB §10.1): MMO hash of the install code, its CRC checked.
* Keys learned from APS Transport Key commands the decoder could read (§4.4.10.1), each
  with the index of the frame that taught it. Learning is bounded (issue 14 item 11): a
  key learned again is not added twice, and at most :data:`MAX_LEARNED_KEYS` network and
  as many link keys are kept, the most recently learned first (the oldest is forgotten),
  so no traffic can make each undecryptable frame try more keys than the file's plus 16.

Keys file (YAML; a secret, kept outside version control)::

    network_keys:
      - {key: 60ccee07009651c60e1f8c1b05562f2c, seq: 0, label: sinope}
    link_keys:
      - {key: 33333333333333333333333333333333, devices: [00-0D-6F-…, …], label: esme}
    install_codes:
      - {code: 83FED3407A939723A5C639B26916D505C3B5, device: 00-0D-6F-…, label: gsme}
    well_known_tc_link_key: true

The same keys export as Wireshark ``zigbee_pc_keys`` UAT lines
(``"<32 hex>","Normal","<label>"``) so Wireshark decrypts what hanlab decrypts.
Key material is never logged; ``repr`` of a key hides it, and errors name the field,
never its value (issue 14 item 17). A lab's secrets file is a keys file with other
sections too (``mqtt``: :mod:`hanlab.config.secrets`), which the keyring ignores.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import yaml

from hanlab.errors import BadInputError, os_error_text
from hanlab.zigbee.common import eui64_str, parse_eui64
from hanlab.zigbee.security import (
    KEY_ID_KEY_LOAD,
    KEY_ID_KEY_TRANSPORT,
    CcmKey,
    install_code_link_key,
    key_load_key,
    key_transport_key,
)

#: The ZigBee well-known trust-centre link key (BDB 13-0402 §6.3.2).
WELL_KNOWN_TC_LINK_KEY: Final = b"ZigBeeAlliance09"

#: device pairs whose link key trial order is kept (:meth:`Keyring.link_candidates`).
MAX_LINK_ORDERS: Final = 4096
KEYRING_SECTIONS: Final = ("network_keys", "link_keys", "install_codes", "well_known_tc_link_key")
"""The top-level fields of a keys file the keyring reads."""
OTHER_SECRETS_SECTIONS: Final = frozenset({"mqtt"})
"""Top-level fields of a lab's secrets file that are not keys (ignored here)."""
#: most keys learned from Transport Key commands kept per kind (network, link)
MAX_LEARNED_KEYS: Final = 16
ORIGIN_LEARNED: Final = "transport-key"

KIND_NETWORK: Final = "network"
KIND_LINK: Final = "link"


class KeyEntry:
    """One key of the keyring.

    Attributes:
        kind: ``"network"`` or ``"link"``.
        label: a name for reports and Wireshark (never the key itself).
        seq: network key sequence number, or ``None``.
        devices: EUI-64s the link key belongs to (empty: try for any pair).
        learned_from: index of the frame whose Transport Key taught it, else ``None``.
        origin: ``"file"``, ``"install-code"``, ``"well-known"`` or ``"transport-key"``.
        ccm: the key with its cipher objects.
    """

    __slots__ = ("_derived", "ccm", "devices", "kind", "label", "learned_from", "origin", "seq")

    def __init__(
        self,
        kind: str,
        key: bytes,
        label: str,
        *,
        seq: int | None = None,
        devices: tuple[int, ...] = (),
        learned_from: int | None = None,
        origin: str = "file",
    ) -> None:
        self.kind = kind
        self.ccm = CcmKey(key)
        self.label = label
        self.seq = seq
        self.devices = devices
        self.learned_from = learned_from
        self.origin = origin
        self._derived: dict[int, CcmKey] = {}

    def __repr__(self) -> str:
        return f"KeyEntry({self.kind}, label={self.label!r}, origin={self.origin})"

    @property
    def key(self) -> bytes:
        """The 16 key octets (a secret: do not log)."""
        return self.ccm.key

    def for_key_id(self, key_id: int) -> CcmKey:
        """The key to use for an APS frame with key identifier ``key_id`` (§4.5.3)."""
        if key_id not in (KEY_ID_KEY_TRANSPORT, KEY_ID_KEY_LOAD):
            return self.ccm
        derived = self._derived.get(key_id)
        if derived is None:
            raw = (key_transport_key if key_id == KEY_ID_KEY_TRANSPORT else key_load_key)(
                self.ccm.key
            )
            derived = self._derived[key_id] = CcmKey(raw)
        return derived


class Keyring:
    """Network and link keys for decryption and encryption.

    Args:
        well_known_tc_link_key: include ``ZigBeeAlliance09`` as a link key.
    """

    def __init__(self, *, well_known_tc_link_key: bool = True) -> None:
        self.network_keys: list[KeyEntry] = []
        self.link_keys: list[KeyEntry] = []
        self.well_known_tc_link_key = well_known_tc_link_key
        if well_known_tc_link_key:
            self.link_keys.append(
                KeyEntry(KIND_LINK, WELL_KNOWN_TC_LINK_KEY, "ZigBeeAlliance09",
                         origin="well-known")
            )
        self._nwk_order: list[tuple[str, CcmKey]] = []
        #: (key_id, sorted devices) -> link key candidates in trial order (the one that
        #: worked last first); emptied whenever a link key is added or learned again.
        self._link_orders: dict[tuple[int, tuple[int, ...]], list[tuple[str, CcmKey]]] = {}
        #: (key_id, devices as the caller gave them) -> the pair's order (no sort per frame)
        self._link_calls: dict[tuple[int, tuple[int | None, ...]],
                               list[tuple[str, CcmKey]]] = {}

    def _find(self, entries: list[KeyEntry], key: bytes) -> KeyEntry | None:
        for entry in entries:
            if entry.ccm.key == key:
                return entry
        return None

    def add_network_key(
        self, key: bytes, *, seq: int | None = None, label: str | None = None,
        learned_from: int | None = None, origin: str = "file",
    ) -> KeyEntry:
        """Add a network key (or return the entry already holding it).

        Raises:
            ValueError: ``key`` is not 16 octets.
        """
        found = self._find(self.network_keys, key)
        if found is not None:
            if found.origin == ORIGIN_LEARNED and origin == ORIGIN_LEARNED:
                self._relearned(self.network_keys, found)
            return found
        entry = KeyEntry(KIND_NETWORK, key, label or f"nwk{len(self.network_keys)}", seq=seq,
                         learned_from=learned_from, origin=origin)
        if origin == ORIGIN_LEARNED:
            self._learn(self.network_keys, entry)
            self._nwk_order.insert(0, (entry.label, entry.ccm))  # likely the new active key
            kept = {id(e.ccm) for e in self.network_keys}
            self._nwk_order = [c for c in self._nwk_order if id(c[1]) in kept]
        else:
            self.network_keys.append(entry)
            self._nwk_order.append((entry.label, entry.ccm))
        return entry

    @staticmethod
    def _learn(entries: list[KeyEntry], entry: KeyEntry) -> None:
        """Put a learned key first among the learned keys of ``entries``; forget the
        oldest learned ones beyond :data:`MAX_LEARNED_KEYS` (configured keys stay)."""
        first = next((i for i, e in enumerate(entries) if e.origin == ORIGIN_LEARNED),
                     len(entries))
        entries.insert(first, entry)
        learned = [i for i, e in enumerate(entries) if e.origin == ORIGIN_LEARNED]
        for i in reversed(learned[MAX_LEARNED_KEYS:]):
            del entries[i]

    @classmethod
    def _relearned(cls, entries: list[KeyEntry], entry: KeyEntry) -> None:
        """A learned key taught again becomes the most recent one."""
        entries.remove(entry)
        cls._learn(entries, entry)

    @property
    def learned_keys(self) -> int:
        """How many keys learned from Transport Key commands are kept (both kinds)."""
        return sum(e.origin == ORIGIN_LEARNED for e in (*self.network_keys, *self.link_keys))

    def add_link_key(
        self, key: bytes, *, devices: Iterable[int] = (), label: str | None = None,
        learned_from: int | None = None, origin: str = "file",
    ) -> KeyEntry:
        """Add a link key for a device pair (or any pair); returns the entry.

        Raises:
            ValueError: ``key`` is not 16 octets.
        """
        found = self._find(self.link_keys, key)
        if found is not None:
            if found.origin == ORIGIN_LEARNED and origin == ORIGIN_LEARNED:
                self._relearned(self.link_keys, found)
                self._forget_link_orders()
            return found
        self._forget_link_orders()
        entry = KeyEntry(KIND_LINK, key, label or f"link{len(self.link_keys)}",
                         devices=tuple(devices), learned_from=learned_from, origin=origin)
        if origin == ORIGIN_LEARNED:
            self._learn(self.link_keys, entry)
        else:
            self.link_keys.append(entry)
        return entry

    def add_install_code(self, code: bytes, *, device: int | None = None,
                         label: str | None = None) -> KeyEntry:
        """Add the link key derived from an install code with CRC (BDB 13-0402 §10.1).

        Raises:
            ValueError: bad install code length or CRC.
        """
        return self.add_link_key(
            install_code_link_key(code), devices=() if device is None else (device,),
            label=label, origin="install-code",
        )

    def ccm_trials(self) -> int:
        """CCM* decryptions tried so far with every key of the ring, derived keys included
        (one per key per secured frame tried: what the key order of
        :meth:`link_candidates` keeps low)."""
        return sum(e.ccm.trials + sum(d.trials for d in e._derived.values())
                   for e in (*self.network_keys, *self.link_keys))

    def network_candidates(self) -> list[tuple[str, CcmKey]]:
        """``(label, key)`` network keys to try, the last one that worked first."""
        return self._nwk_order

    def network_key_worked(self, index: int) -> None:
        """Move the ``index``-th candidate to the front (it decrypted the last frame)."""
        if index:
            self._nwk_order.insert(0, self._nwk_order.pop(index))

    def link_candidates(self, key_id: int, *devices: int | None) -> list[tuple[str, CcmKey]]:
        """Link keys to try for an APS frame between ``devices`` with ``key_id`` (§4.4.1.2).

        Keys bound to both devices come first (a link key is a pair's, §4.4.1), then keys
        bound to one of them, then unbound keys, then the rest; a
        key that decrypted a frame of this pair (:meth:`link_key_worked`) is tried first
        next time. The list returned is the pair's own (cached until a link key is added).
        """
        call = (key_id, devices)
        order = self._link_calls.get(call)
        if order is not None:
            return order
        wanted = tuple(sorted({d for d in devices if d is not None}))
        order = self._link_orders.get((key_id, wanted))
        if order is None:
            if len(self._link_orders) >= MAX_LINK_ORDERS:  # a capture of random addresses
                self._forget_link_orders()
            pair = set(wanted)
            both = [e for e in self.link_keys if len(pair) == 2 and pair <= set(e.devices)]
            first = {id(e) for e in both}
            bound = [e for e in self.link_keys
                     if pair.intersection(e.devices) and id(e) not in first]
            unbound = [e for e in self.link_keys if not e.devices]
            rest = [e for e in self.link_keys if e.devices and not pair.intersection(e.devices)]
            order = self._link_orders[(key_id, wanted)] = [
                (e.label, e.for_key_id(key_id)) for e in both + bound + unbound + rest]
        if len(self._link_calls) >= 2 * MAX_LINK_ORDERS:
            self._link_calls.clear()
        self._link_calls[call] = order
        return order

    def _forget_link_orders(self) -> None:
        """The link keys changed: every pair's order is built again on its next frame."""
        self._link_orders.clear()
        self._link_calls.clear()

    @staticmethod
    def link_key_worked(candidates: list[tuple[str, CcmKey]], label: str | None) -> None:
        """Move the candidate labelled ``label`` to the front of ``candidates`` (a list from
        :meth:`link_candidates`): the pair's next frame tries it first (issue 15)."""
        if label is None or (candidates and candidates[0][0] == label):
            return
        for index, (name, _) in enumerate(candidates):
            if name == label:
                candidates.insert(0, candidates.pop(index))
                return

    # -- files ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> Keyring:
        """Read a keys file (YAML, format in the module docstring).

        Raises:
            BadInputError: unreadable file or invalid entry (file and field named).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInputError(os_error_text(path, exc)) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise BadInputError(f"{path}: cannot read keys file: {exc.__class__.__name__}",
                                hint="give a readable YAML keys file") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "keys") -> Keyring:
        """Build a keyring from the parsed YAML mapping.

        Raises:
            BadInputError: invalid entry, naming ``source`` and the field.
        """
        if not isinstance(data, dict):
            raise BadInputError(f"{source}: top level must be a mapping")
        unknown = set(data) - set(KEYRING_SECTIONS) - OTHER_SECRETS_SECTIONS
        if unknown:
            shown = sorted(_field_name(name) for name in unknown)
            raise BadInputError(f"{source}: unknown field(s) {shown}",
                                hint=f"a keys file has {', '.join(KEYRING_SECTIONS)}")
        ring = cls(well_known_tc_link_key=bool(data.get("well_known_tc_link_key", True)))
        for i, item in enumerate(_as_list(data, "network_keys", source)):
            where = f"{source}: network_keys[{i}]"
            ring.add_network_key(_key_field(item, "key", where), seq=_opt_int(item, "seq", where),
                                 label=_opt_str(item, "label", where))
        for i, item in enumerate(_as_list(data, "link_keys", source)):
            where = f"{source}: link_keys[{i}]"
            devices = item.get("devices") or []
            if not isinstance(devices, list):
                raise BadInputError(f"{where}.devices: must be a list of EUI-64s")
            ring.add_link_key(_key_field(item, "key", where),
                              devices=[_eui(d, f"{where}.devices") for d in devices],
                              label=_opt_str(item, "label", where))
        for i, item in enumerate(_as_list(data, "install_codes", source)):
            where = f"{source}: install_codes[{i}]"
            code = _hex_field(item, "code", where)
            device = item.get("device")
            try:
                ring.add_install_code(
                    code, device=None if device is None else _eui(device, f"{where}.device"),
                    label=_opt_str(item, "label", where))
            except ValueError as exc:
                raise BadInputError(f"{where}.code: {exc}") from None
        return ring

    def to_dict(self) -> dict[str, Any]:
        """The keys as the YAML mapping :meth:`from_dict` reads (learned keys included)."""
        out: dict[str, Any] = {"well_known_tc_link_key": self.well_known_tc_link_key}
        out["network_keys"] = [
            {"key": e.key.hex(), "label": e.label, **({"seq": e.seq} if e.seq is not None else {})}
            for e in self.network_keys
        ]
        out["link_keys"] = [
            {"key": e.key.hex(), "label": e.label,
             **({"devices": [eui64_str(d) for d in e.devices]} if e.devices else {})}
            for e in self.link_keys if e.origin != "well-known"
        ]
        return out

    def dump_yaml(self) -> str:
        """The keys as a YAML keys file (a secret: write it, never log it)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def wireshark_uat_lines(self) -> list[str]:
        """Wireshark ``zigbee_pc_keys`` UAT lines for every key, network keys first."""
        return [
            f'"{e.key.hex()}","Normal","{e.label}"'
            for e in (*self.network_keys, *self.link_keys)
        ]


def _as_list(data: dict[str, Any], name: str, source: str) -> list[dict[str, Any]]:
    items = data.get(name) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadInputError(f"{source}: {name} must be a list of mappings")
    return items


def _hex_field(item: dict[str, Any], name: str, where: str) -> bytes:
    value = item.get(name)
    if not isinstance(value, str):
        raise BadInputError(f"{where}.{name}: missing or not a hex string")
    try:
        return bytes.fromhex(value.replace(":", "").replace("-", "").replace(" ", ""))
    except ValueError:
        raise BadInputError(f"{where}.{name}: not hex") from None


def _key_field(item: dict[str, Any], name: str, where: str) -> bytes:
    key = _hex_field(item, name, where)
    if len(key) != 16:
        raise BadInputError(f"{where}.{name}: a key is 32 hex digits (16 octets), "
                            f"got {len(key)} octets")
    return key


def _opt_int(item: dict[str, Any], name: str, where: str) -> int | None:
    value = item.get(name)
    if value is not None and (not isinstance(value, int) or not 0 <= value <= 255):
        raise BadInputError(f"{where}.{name}: must be an integer 0-255")
    return value


def _opt_str(item: dict[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str | int):
        raise BadInputError(f"{where}.{name}: must be a string")
    return None if value is None else str(value)


def _field_name(name: object) -> str:
    """A field name fit for an error: a name that could be a key (long hex) is hidden."""
    text = str(name)
    if len(text) >= 16 and all(c in "0123456789abcdefABCDEF:- " for c in text):
        return "<a hex value: hidden>"
    return text[:40]


def _eui(value: Any, where: str) -> int:
    try:
        return parse_eui64(str(value))
    except ValueError:  # its message echoes the value, which may be a misplaced key
        raise BadInputError(f"{where}: not an EUI-64 (16 hex digits, e.g. "
                            "00-0D-6F-00-0A-1B-2C-3D)") from None
