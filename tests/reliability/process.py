"""The bridge as a child process, for tests that kill, stop and restart it.

Builds on tests/e2e/harness.py: a database that may live elsewhere, a longer start-up allowance,
and SIGTERM with a bound.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e.conftest import Fakes, bridge_env
from e2e.harness import OMETRIA_KEY, OMNEO_SECRET, OMNISEND_KEY, SHOPIFY_SECRET, WOO_SECRET, BridgeProcess, wait_until

__all__ = ["OMETRIA_KEY", "OMNEO_SECRET", "OMNISEND_KEY", "SHOPIFY_SECRET", "WOO_SECRET", "Bridge",
           "reliability_env", "wait_until"]


def reliability_env(fakes: Fakes, **extra: str) -> dict[str, str]:
    from .conftest import FAST_OMETRIA_PER_SECOND, FAST_OMNISEND_PER_MINUTE

    env = bridge_env(fakes)
    env.update(
        OMNISEND_REQUESTS_PER_MINUTE=str(FAST_OMNISEND_PER_MINUTE),
        OMETRIA_REQUESTS_PER_SECOND=str(FAST_OMETRIA_PER_SECOND),
        BRIDGE_LEASE_SECONDS="2",
    )
    env.update(extra)
    return env


@dataclass
class Bridge(BridgeProcess):
    database: Path | None = None  # elsewhere than the working directory (the full-disk test)
    ready_timeout: float = 30.0

    @property
    def db_path(self) -> Path:
        return self.database or self.workdir / "bridge.db"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if still running after `timeout`, seconds it took)."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - began

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]

    def open_messages(self) -> int:
        # Any state but the two final ones is still open (pending, inflight, submitted batches, ...).
        return int(self.scalar("SELECT count(*) FROM messages WHERE state NOT IN ('delivered', 'dead')"))

    def unmapped(self) -> int:
        return int(self.scalar("SELECT count(*) FROM events WHERE status = 'received'"))

    def settled(self) -> bool:
        """Every stored event mapped and every message delivered or dead."""
        return self.unmapped() == 0 and self.open_messages() == 0
