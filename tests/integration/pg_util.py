"""A real PostgreSQL server for a test (Debian's ``postgresql`` package): a cluster in a
temporary folder, started as the ``postgres`` user (the server refuses to run as root)
on a free loopback port with its socket in that folder; stoppable and restartable (the
results store losing its database mid-campaign). Missing PostgreSQL: skip, or fail in
CI (``CI=true``)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.integration.conftest import free_port, wait_port


def _bin_folder() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """One PostgreSQL cluster (see the module docstring); :attr:`url` for the store."""

    def __init__(self, bindir: Path, folder: Path) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/hanlab"

    def _as_postgres(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout,
                                                done.stderr + "\n" + done.stdout)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8")
        self.start()
        self._as_postgres("createdb", "-h", str(self.folder), "-p", str(self.port),
                          "-U", "postgres", "hanlab")

    def start(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-w", "-l",
                          str(self.folder / "server.log"), "-o",
                          f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                          "-c fsync=off", "start")
        wait_port(self.port)

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A running PostgreSQL server with an empty database ``hanlab``."""
    bindir = _bin_folder()
    need(bindir is not None, "PostgreSQL server binaries not found (apt-get install "
         "postgresql)")
    assert bindir is not None
    # pytest's own temporary folders are private to root: the postgres user needs one
    # it can reach
    folder = Path(tempfile.mkdtemp(prefix="hanlab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    server = Postgres(bindir, folder / "cluster")
    try:
        server.init()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()  # unless the test stopped it
        shutil.rmtree(folder, ignore_errors=True)
