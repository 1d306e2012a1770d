"""Readiness: database writable, rules loaded, a destination configured."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from bridge.ops.health import readyz, readyz_route

from .support import Outbox


@dataclass
class Dest:
    configured: bool


@dataclass
class Rules:
    current: Any = None
    error: str | None = None
    loaded_at: float | None = None


@dataclass
class FakeBridge:
    store: Any
    rules: Any = field(default_factory=lambda: Rules(current=object()))
    destinations: dict[str, Any] = field(default_factory=lambda: {"omnisend": Dest(True), "ometria": Dest(False)})
    worker: Any = None  # a process without a worker: its map loop is another process's


def test_ready(outbox: Outbox) -> None:
    status, body = asyncio.run(readyz(FakeBridge(outbox.store)))
    assert status == 200 and body["status"] == "ready" and body["problems"] == []
    assert body["checks"]["destinations"]["not_configured"] == ["ometria"]
    assert outbox.rows("SELECT count(*) FROM destination_state") == [(0,)]  # the probe leaves nothing


def test_not_ready_names_each_problem(outbox: Outbox) -> None:
    bridge = FakeBridge(outbox.store, Rules(None, "orders.yaml:3: unknown field"), {"omnisend": Dest(False)})
    outbox.store.close_sync()
    status, body = asyncio.run(readyz(bridge))
    assert status == 503 and body["status"] == "not_ready"
    assert [p.split(":")[0] for p in body["problems"]] == ["database", "rules", "destinations"]
    assert "orders.yaml:3" in body["problems"][1]


def test_route(outbox: Outbox) -> None:
    app = Starlette(routes=[readyz_route()])
    app.state.bridge = FakeBridge(outbox.store)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["status"] == "ready"
    app.state.bridge = FakeBridge(outbox.store, Rules(None))
    with TestClient(app) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["problems"] == ["rules: none loaded"]


def test_the_route_writes_to_the_database_at_most_once_a_second(outbox: Outbox) -> None:
    class CountingStore:
        """The store, counting its probes (each a write)."""

        def __init__(self, store: Any) -> None:
            self.store, self.writes = store, 0

        async def probe(self) -> None:
            self.writes += 1
            await self.store.probe()

    counting = CountingStore(outbox.store)
    app = Starlette(routes=[readyz_route(probe_every=3600)])
    app.state.bridge = FakeBridge(counting)
    with TestClient(app) as client:
        answers = [client.get("/readyz") for _ in range(300)]
    assert all(a.status_code == 200 for a in answers)
    assert counting.writes == 1
    app = Starlette(routes=[readyz_route(probe_every=0)])  # a new probe every time it is asked
    app.state.bridge = FakeBridge(counting)
    with TestClient(app) as client:
        for _ in range(3):
            client.get("/readyz")
    assert counting.writes == 4
