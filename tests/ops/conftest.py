from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.store import SQLiteStore

from .support import Outbox


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:
    path = tmp_path / "bridge.db"
    for name in ("BRIDGE_ENV", "BRIDGE_ADMIN_TOKEN", "BRIDGE_SOURCES_FILE", "BRIDGE_DEDUPE_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{path}")
    with SQLiteStore(path) as store:
        yield Outbox(store, path)
