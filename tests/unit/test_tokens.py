"""The control API's bearer tokens file (issue 9, item 3): created mode 600 in a folder
mode 700, refused when others may read it, validated without showing token values."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hanlab.daemon.tokens import TokenStore, default_tokens_path, role_allows
from hanlab.errors import BadInputError, HanlabError


def test_created_with_one_token_per_role_mode_600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "hanlab" / "api-tokens.json"
    store, created = TokenStore.load_or_create(path)
    assert created and store.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert [(t["name"], t["role"]) for t in document["tokens"]] == [
        ("operator", "operator"), ("viewer", "viewer")]
    values = [t["token"] for t in document["tokens"]]
    assert len(set(values)) == 2 and all(len(v) >= 43 for v in values)
    again, created = TokenStore.load_or_create(path)
    assert not created
    assert [t.value for t in again.tokens] == values


def test_roles_and_lookups(tmp_path: Path) -> None:
    store, _ = TokenStore.load_or_create(tmp_path / "t.json")
    operator, viewer = store.token_for("operator"), store.token_for("viewer")
    assert operator != viewer
    assert store.role_of(operator) == "operator"
    assert store.role_of(viewer) == "viewer"
    assert store.role_of(operator + "x") is None
    assert store.role_of("") is None
    assert store.role_of("é" * 43) is None  # non-ASCII: no TypeError from compare_digest
    token = store.identify(viewer)
    assert token is not None and token.name == "viewer"
    assert viewer not in repr(token) and viewer not in repr(store)
    assert role_allows("operator", "viewer") and role_allows("viewer", "viewer")
    assert not role_allows("viewer", "operator")
    assert not role_allows(None, "viewer") and not role_allows("admin", "viewer")


def test_token_for_falls_back_to_a_stronger_role(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"tokens": [{"name": "ci", "role": "operator", "token": "o" * 32}]}, file)
    store = TokenStore.load(path)
    assert store.token_for("viewer") == "o" * 32
    fd = os.open(tmp_path / "v.json", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"tokens": [{"name": "dash", "role": "viewer", "token": "v" * 32}]}, file)
    with pytest.raises(HanlabError, match="no API token with role operator"):
        TokenStore.load(tmp_path / "v.json").token_for("operator")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_file_others_may_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "t.json"
    TokenStore.load_or_create(path)
    path.chmod(mode)
    with pytest.raises(BadInputError) as error:
        TokenStore.load_or_create(path)
    assert str(path) in str(error.value)
    assert error.value.hint == f"chmod 600 {path}"


@pytest.mark.parametrize(("content", "expected"), [
    ('{"tokens": [{"name": "a", "role": "admin", "token": "SECRET-VALUE-123456"}]}',
     "tokens.0.role"),
    ('{"tokens": [{"name": "a", "role": "viewer", "token": "SECRET"}]}', "tokens.0.token"),
    ('{"tokens": [{"name": "a", "role": "viewer"}]}', "tokens.0.token"),
    ('{"tokens": [], "x": "SECRET-VALUE-123456"}', "tokens"),
    ('{"tokens": [{"name": "a", "role": "viewer", "token": "SECRET-VALUE-123456", '
     '"extra": "SECRET-VALUE-123456"}]}', "tokens.0.extra"),
    ("SECRET-VALUE-123456", "not JSON"),
    ('["SECRET-VALUE-123456"]', "(document)"),
])
def test_bad_content_names_the_file_never_the_token(tmp_path: Path, content: str,
                                                    expected: str) -> None:
    path = tmp_path / "t.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(content)
    with pytest.raises(BadInputError) as error:
        TokenStore.load(path)
    text = f"{error.value} {error.value.hint}"
    assert str(path) in text and expected in text
    assert "SECRET" not in text


def test_missing_and_unwritable(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read API tokens file"):
        TokenStore.load(tmp_path / "missing.json")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(BadInputError, match="cannot create API tokens file"):
        TokenStore.load_or_create(blocked / "t.json")


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    TokenStore.load_or_create(target)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(BadInputError, match="cannot read API tokens file"):
        TokenStore.load_or_create(link)


def test_default_path_follows_xdg_state_home(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_tokens_path() == tmp_path / "xdg" / "hanlab" / "api-tokens.json"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_tokens_path() == (tmp_path / "home" / ".local" / "state" / "hanlab"
                                     / "api-tokens.json")
    monkeypatch.delenv("XDG_STATE_HOME")
    store, created = TokenStore.load_or_create()
    assert created and store.path == tmp_path / "home/.local/state/hanlab/api-tokens.json"
