"""Shared fixtures: the corpus, external programs, and hygiene checks on every test.

Where ``../shared/corpus``, tshark or mosquitto is missing a test skips with the reason,
except in CI (``CI=true``), where the same absence fails the test: CI must run them all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip the calling test unless ``condition``; in CI, fail instead of skipping."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """``../shared/corpus`` beside the repository."""
    need(CORPUS_DIR.is_dir(), f"corpus not found at {CORPUS_DIR}")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def captures_dir(corpus_dir: Path) -> Path:
    """The real captures folder of the corpus."""
    return corpus_dir / "captures"


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of the tshark program."""
    path = shutil.which("tshark")
    need(path is not None, "tshark is not installed (apt-get install tshark)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    """Path of the mosquitto broker program."""
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    need(path is not None, "mosquitto is not installed (apt-get install mosquitto)")
    assert path is not None
    return path


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Fail a test that leaves non-daemon threads running (STYLE.md §10)."""
    before = set(threading.enumerate())
    yield
    leftover = [
        t for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon
    ]
    for t in leftover:
        t.join(timeout=2.0)
    leftover = [t for t in leftover if t.is_alive()]
    assert not leftover, f"threads left running: {leftover}"


def pending_tasks() -> set[asyncio.Task[object]]:
    """Tasks other than the current one still pending on the running loop."""
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}
