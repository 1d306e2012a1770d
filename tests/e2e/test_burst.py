"""A Black Friday burst against fakes whose rate limits are lowered so the test is quick (issue 4's proof)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread
from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import OMETRIA_KEY, OMNISEND_KEY, ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import omnisend_events

ORDERS = 120
CANCELLED = range(0, ORDERS, 10)  # every tenth order is cancelled right after it was placed


@pytest.fixture
def slow_fakes() -> Iterator[Fakes]:
    omnisend = create_omnisend_app(OMNISEND_KEY, requests_per_minute=30, processing_seconds=0.01)
    ometria = create_ometria_app(OMETRIA_KEY, requests_per_second=4)
    with serve_in_thread(omnisend) as omnisend_url, serve_in_thread(ometria) as ometria_url:
        yield Fakes(omnisend, ometria, omnisend_url, ometria_url)


def test_burst_is_delivered_once_in_order_within_limits(tmp_path: Path, slow_fakes: Fakes) -> None:
    fakes = slow_fakes
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, OMNISEND_REQUESTS_PER_MINUTE="30",
                                                OMETRIA_REQUESTS_PER_SECOND="4")).start()
    try:
        order = json.loads((ROOT / "tests/payloads/shopify/orders_create.json").read_bytes())
        cancel = json.loads((ROOT / "tests/payloads/shopify/orders_cancelled.json").read_bytes())
        for n in range(ORDERS):
            order["id"] = 8100000000000 + n
            body = json.dumps(order).encode()
            headers = shopify_headers(body, SHOPIFY_SECRET, "orders/create", event_id=f"create-{n}")
            assert bridge.post("shopify", body, headers).status_code == 200
            if n in CANCELLED:
                cancel["id"] = order["id"]
                body = json.dumps(cancel).encode()
                headers = shopify_headers(body, SHOPIFY_SECRET, "orders/cancelled", event_id=f"cancel-{n}")
                assert bridge.post("shopify", body, headers).status_code == 200
        total = ORDERS + len(CANCELLED)
        wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(2 * total,)],
                   timeout=60)

        pushes = fakes.ometria.accepted("/v2/push")
        records = [r for p in pushes for r in p.body]
        assert all(len(p.body) <= 100 and len({r["@type"] for r in p.body}) == 1 for p in pushes)
        # every message once: a placed order and, for the cancelled ones, its cancellation
        assert Counter((r["id"], r.get("status") == "cancelled") for r in records) == Counter(
            [(str(8100000000000 + n), False) for n in range(ORDERS)]
            + [(str(8100000000000 + n), True) for n in CANCELLED])
        # per-key order: a cancellation never reaches Ometria before its order
        position = {(r["id"], r.get("status") == "cancelled"): i for i, r in enumerate(records)}
        for n in CANCELLED:
            oid = str(8100000000000 + n)
            assert position[(oid, False)] < position[(oid, True)]

        events = omnisend_events(fakes)
        assert Counter(e["eventName"] for e in events) == {"placed order": ORDERS, "order canceled": len(CANCELLED)}
        assert all(len(b.body["items"]) <= 100 for b in fakes.omnisend.accepted("/api/batches"))
        # the limiter keeps to the budget: no 429 storm (at most the odd one at a window edge)
        too_many = [r for f in (fakes.omnisend, fakes.ometria) for r in f.recorded() if r.status == 429]
        assert len(too_many) <= 1
    finally:
        bridge.stop()
