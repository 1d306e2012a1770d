"""Fixtures for the reliability suite: the fake APIs with room for bursts, and a bridge process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.conftest import Fakes

from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread

from .process import OMETRIA_KEY, OMNISEND_KEY

# The fakes enforce the real budgets by default (400/min, 8/s). These tests are about losing
# nothing, not about pacing, so both sides get a budget a burst of thousands fits in.
FAST_OMNISEND_PER_MINUTE = 100_000
FAST_OMETRIA_PER_SECOND = 200


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    omnisend = create_omnisend_app(OMNISEND_KEY, processing_seconds=0.01, requests_per_minute=FAST_OMNISEND_PER_MINUTE)
    ometria = create_ometria_app(OMETRIA_KEY, requests_per_second=FAST_OMETRIA_PER_SECOND)
    with serve_in_thread(omnisend) as omnisend_url, serve_in_thread(ometria) as ometria_url:
        yield Fakes(omnisend, ometria, omnisend_url, ometria_url)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
