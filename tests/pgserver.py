"""A PostgreSQL server for the tests, and databases on it that no other run shares.

Where the server comes from, in order: BRIDGE_TEST_DATABASE_URL (what .ci/run exports), the
server on 127.0.0.1:5432, or a throwaway cluster started from Debian's PostgreSQL binaries
(scale-out.md 3.3). With none of them the PostgreSQL tests skip and say why, except with
CI=true, where they fail: a green CI must not hide a missing server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Server:
    admin_url: str  # a database to run CREATE DATABASE from
    cluster: Path | None = None  # a throwaway cluster this run started

    def database_url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def create_database(self, prefix: str = "bridge_test") -> str:
        import psycopg

        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> None:
        """Start this run's cluster (again)."""
        assert self.cluster is not None
        _pg_ctl(self.cluster, "start", "-w", "-t", "60", "-l", str(self.cluster / "server.log"))

    def halt(self) -> None:
        """Stop this run's cluster, keeping its data (start() brings it back)."""
        assert self.cluster is not None
        _pg_ctl(self.cluster, "stop", "-m", "fast", "-w")

    def stop(self) -> None:
        if self.cluster is not None:
            _pg_ctl(self.cluster, "stop", "-m", "immediate", "-w")
            shutil.rmtree(self.cluster, ignore_errors=True)


def unavailable(reason: str) -> None:
    """Skip, or fail under CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and no PostgreSQL for the tests: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason}")


def answers(url: str) -> str | None:
    """None when the server takes a connection, else why not."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc}); pip install -e '.[dev]'"
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def find_server() -> Server:
    url = os.environ.get("BRIDGE_TEST_DATABASE_URL")
    if url:
        why = answers(url)
        if why is not None:
            unavailable(f"BRIDGE_TEST_DATABASE_URL does not answer: {why}")
        return Server(url)
    why = answers(DEFAULT_URL)
    if why is None:
        return Server(DEFAULT_URL)
    binaries = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        unavailable(f"nothing answers on 127.0.0.1:5432 ({why}), BRIDGE_TEST_DATABASE_URL is not set, and there are "
                    "no PostgreSQL binaries to start one (apt-get install postgresql)")
    return start_cluster(Path(binaries[-1]).parent)


def start_cluster(bindir: Path) -> Server:
    """A throwaway cluster on a free port, owned by the postgres user when running as root."""
    root = Path(tempfile.mkdtemp(prefix="bridge-pg."))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    with (root / "data" / "postgresql.conf").open("a") as conf:  # in the file: a restart keeps them
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n"
                   "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")
    server = Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", cluster=root)
    server.start()
    return server


def _pg_ctl(root: Path, *args: str) -> None:
    bindir = Path(sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]).parent
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), *args], check=False,
                   capture_output=True, timeout=120)
