"""After a full run (orders, profiles, retries, a dead letter, a forgery) logs and /metrics hold no personal data or keys."""

from __future__ import annotations

import json
from pathlib import Path

from e2e.conftest import Fakes

from bridge.sign import shopify_headers

from .process import OMETRIA_KEY, OMNEO_SECRET, OMNISEND_KEY, SHOPIFY_SECRET, WOO_SECRET, Bridge, reliability_env, wait_until
from .traffic import Sender, order, person, profile


def test_logs_and_metrics_carry_no_personal_data_or_keys(workdir: Path, fakes: Fakes) -> None:
    bridge = Bridge(workdir, reliability_env(fakes, BRIDGE_ADMIN_TOKEN="admin-token-7c1d-reliability")).start()
    try:
        fakes.omnisend.fail("status", status=503, count=3)
        fakes.ometria.fail("status", status=400, count=1)  # one dead letter
        items = [order(n) for n in range(20)] + [order(n, topic="orders/cancelled") for n in range(0, 20, 4)]
        items += [profile(n) for n in range(100, 110)]
        sender = Sender(bridge.url, items, tries=3)
        sender.run()
        forged = order(999).body
        assert bridge.post("shopify", forged, shopify_headers(forged, "not-the-secret", "orders/create")).status_code == 401
        wait_until(bridge.settled, timeout=60, interval=0.2)
        assert bridge.scalar("SELECT count(*) FROM messages WHERE state = 'dead'") >= 1
        assert bridge.scalar("SELECT count(*) FROM attempts WHERE outcome = 'retry'") >= 1
        metrics = bridge.get("/metrics")
        exposed = metrics.text if metrics.status_code == 200 else ""
        health = bridge.get("/healthz").text
    finally:
        bridge.stop()
    logs = bridge.logs()
    assert "webhook.accepted" in logs and "delivery.sent" in logs and "delivery.dead" in logs
    secrets = [OMNISEND_KEY, OMETRIA_KEY, SHOPIFY_SECRET, "shpss_previous_secret", OMNEO_SECRET, WOO_SECRET,
               "admin-token-7c1d-reliability"]
    personal = []
    for n in [*range(20), *range(100, 110)]:
        p = person(n)
        personal += [p["email"], p["first"], p["last"], p["phone"], p["phone"].lstrip("+")]
    for where, text in (("logs", logs), ("/metrics", exposed), ("/healthz", health)):
        leaked = [value for value in secrets + personal if value in text]
        assert leaked == [], f"{where} contain {leaked[:5]}"
    for line in logs.splitlines():
        json.loads(line)  # one JSON object per line, nothing printed raw
    print(f"\nsecrets: {len(logs.splitlines())} log lines, /metrics {'checked' if exposed else 'absent'},"
          f" {len(secrets)} secrets and {len(personal)} personal values absent")
