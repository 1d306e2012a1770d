"""Run the real bridge as a process on a loopback port, against the project's fake APIs."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

SHOPIFY_SECRET = "shpss_e2e_secret_0123456789"
OMNEO_SECRET = "omneo-e2e-secret"
WOO_SECRET = "woo e2e secret"
OMNISEND_KEY = "omnisend-e2e-key-5f2b"
OMETRIA_KEY = "ometria-e2e-key-91ac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class BridgeProcess:
    """`bridge serve` in a child process; restartable on the same database."""

    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    ready_timeout: float = 20.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bridge.log"

    @property
    def db_path(self) -> Path:
        return self.workdir / "bridge.db"

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OMNISEND_", "OMETRIA_", "OMNEO_"))}
        env.update(
            PORT=str(self.port),
            HOST="127.0.0.1",
            BRIDGE_DATABASE_URL=f"sqlite:///{self.db_path}",
            BRIDGE_MAPPINGS_DIR=str(ROOT / "mappings"),
            BRIDGE_LOG_FORMAT="json",
        )
        env.update(self.env)
        return env

    def start(self, *args: str) -> BridgeProcess:
        """`bridge serve` with `args` (e.g. `--no-worker`)."""
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "serve", *args], cwd=self.workdir,
                                         env=self.child_env(), stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        wait_until(self._ready, timeout=self.ready_timeout)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"bridge exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def post(self, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/webhooks/{source}", content=body, headers=headers, timeout=10)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return [tuple(r) for r in conn.execute(sql, params)]

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
