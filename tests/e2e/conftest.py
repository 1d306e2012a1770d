from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread

from .harness import OMETRIA_KEY, OMNEO_SECRET, OMNISEND_KEY, SHOPIFY_SECRET, WOO_SECRET, BridgeProcess


@dataclass
class Fakes:
    omnisend_app: Starlette
    ometria_app: Starlette
    omnisend_url: str
    ometria_url: str

    @property
    def omnisend(self) -> Any:
        return self.omnisend_app.state.fake

    @property
    def ometria(self) -> Any:
        return self.ometria_app.state.fake


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    omnisend = create_omnisend_app(OMNISEND_KEY, processing_seconds=0.01)
    ometria = create_ometria_app(OMETRIA_KEY)
    with serve_in_thread(omnisend) as omnisend_url, serve_in_thread(ometria) as ometria_url:
        yield Fakes(omnisend, ometria, omnisend_url, ometria_url)


def bridge_env(fakes: Fakes, **extra: str) -> dict[str, str]:
    env = {
        "SHOPIFY_WEBHOOK_SECRET": f"shpss_previous_secret,{SHOPIFY_SECRET}",
        "OMNEO_WEBHOOK_SECRET": OMNEO_SECRET,
        "WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
        "OMNISEND_API_KEY": OMNISEND_KEY,
        "OMNISEND_BASE_URL": fakes.omnisend_url,
        "OMETRIA_API_KEY": OMETRIA_KEY,
        "OMETRIA_BASE_URL": fakes.ometria_url,
        "OMNISEND_BATCH_LINGER_SECONDS": "0.05",
        "OMETRIA_BATCH_LINGER_SECONDS": "0.05",
        "BRIDGE_RETRY_BASE_SECONDS": "0.2",
        "BRIDGE_RETRY_CAP_SECONDS": "1",
        "BRIDGE_LEASE_SECONDS": "3",
        "BRIDGE_BATCH_FOLLOW_UP_SECONDS": "0.3",
        # issue 2: Omneo consent flows to both destinations; the operator allows it explicitly
        "OMNISEND_AREAS": "events,contacts,consent,carts,products",  # v3 orders off, as by default
        "OMETRIA_AREAS": "events,contacts,consent,orders,carts,products",
    }
    env.update(extra)
    return env


@pytest.fixture
def bridge(tmp_path: Path, fakes: Fakes) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path, bridge_env(fakes)).start()
    yield process
    process.stop()


@pytest.fixture
def fresh(tmp_path: Path, fakes: Fakes) -> Iterator[BridgeProcess]:
    """The bridge as a fresh install runs it: no `*_AREAS` set (consent, deletions and Omnisend v3 orders off)."""
    env = bridge_env(fakes)
    del env["OMNISEND_AREAS"], env["OMETRIA_AREAS"]
    process = BridgeProcess(tmp_path, env).start()
    yield process
    process.stop()
