from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from .support import app_client, settings_for


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # mappings/ of the repository
    with app_client(settings_for(tmp_path / "bridge.db")) as c:
        yield c
