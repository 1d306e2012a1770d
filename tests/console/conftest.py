from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from .support import app_client, settings_for


@pytest.fixture(params=["sqlite", "postgres"])
def client(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The real app on each store backend (PostgreSQL: the session's database, emptied; skipped without a server)."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # mappings/ of the repository
    settings = settings_for(tmp_path / "bridge.db")
    if request.param == "postgres":
        settings = replace(settings, database_url=request.getfixturevalue("pg_url"))
    with app_client(settings) as c:
        yield c
