"""The ops routes on the real app, mounted the way bridge/app.py is asked to mount them."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from bridge.app import create_app
from bridge.mapping.reload import FixedRules
from bridge.metrics import Metrics, metrics_route
from bridge.ops.admin import admin_routes
from bridge.ops.health import readyz_route
from bridge.settings import Secret, Settings, destinations_from_env

from .support import Outbox


class NoRules(FixedRules):
    """No rules loaded."""


def test_mounted_on_the_real_app(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(database_path=outbox.path, admin_token=Secret("t"), destinations=destinations_from_env({}))
    app = create_app(settings, run_worker=False, rules=NoRules())
    bridge = app.state.bridge  # type: ignore[attr-defined]
    metrics = Metrics()
    metrics.watch_store(bridge.store, bridge.destinations)
    app.router.routes.extend([*admin_routes(bridge), metrics_route(metrics), readyz_route()])
    with TestClient(app) as client:
        assert client.get("/admin/outbox/stats", headers={"Authorization": "Bearer t"}).json()["destinations"].keys() \
            == {"omnisend", "ometria", "omneo"}
        assert 'bridge_outbox_depth{destination="omnisend"} 0.0' in client.get("/metrics").text
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["problems"][0] == "rules: none loaded"
        assert client.get("/healthz").status_code == 200
