from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from bridge.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "bridge.db") as s:
        yield s
