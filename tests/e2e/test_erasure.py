"""Erasure through the real app and the fake APIs: Shopify customers/redact and Omneo profile.deleted become
Ometria GDPR anonymisation requests when the operator allows deletions, audited; nothing when not."""

from __future__ import annotations

from pathlib import Path

import httpx

from bridge.sign import omneo_headers, shopify_headers

from .conftest import Fakes, bridge_env
from .harness import OMNEO_SECRET, ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

PAYLOADS = ROOT / "tests" / "payloads"
ALLOWED = "events,contacts,orders,carts,products,deletions"


def redact(bridge: BridgeProcess) -> None:
    body = (PAYLOADS / "shopify/customers_redact.json").read_bytes()
    assert bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "customers/redact")).status_code == 200


def audit(bridge: BridgeProcess) -> list[tuple[str, str, int]]:
    return bridge.query("SELECT m.areas, a.outcome, a.status FROM attempts a JOIN messages m ON m.id = a.message_id "
                        "WHERE m.kind = 'erasure' ORDER BY a.id")


def test_with_deletions_allowed_a_known_and_an_unknown_person_are_erased_and_audited(tmp_path: Path,
                                                                                      fakes: Fakes) -> None:
    fakes.ometria.records[("contact", "shopify-1")] = {"@type": "contact", "id": "shopify-1",
                                                       "email": "jane.citizen@example.com", "firstname": "Jane"}
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, OMETRIA_AREAS=ALLOWED)).start()
    try:
        redact(bridge)
        wait_until(lambda: len(fakes.ometria.erasures) == 1)
        assert fakes.ometria.records[("contact", "shopify-1")] == {"@type": "contact", "id": "shopify-1"}
        # Omneo's deleted profile is unknown to Ometria: done, audited, not retried
        body = (PAYLOADS / "omneo/profile_deleted.json").read_bytes()
        assert bridge.post("omneo", body, omneo_headers(body, OMNEO_SECRET, "profile.deleted")).status_code == 200
        rows = wait_until(lambda: audit(bridge) if len(audit(bridge)) == 2 else None, timeout=30)
        assert rows == [("deletions", "delivered", 201), ("deletions", "delivered", 404)]
        assert bridge.query("SELECT state FROM messages WHERE kind = 'erasure'") == [("delivered",), ("delivered",)]
        assert [r.status for r in fakes.ometria.recorded(path="/v2/data-deletion-requests")] == [201, 404]
        assert fakes.omnisend.recorded() == []  # Omnisend publishes no erasure: nothing is sent there
    finally:
        bridge.stop()


def test_with_deletions_not_allowed_nothing_is_erased_and_healthz_names_the_setting(
        tmp_path: Path, fakes: Fakes) -> None:
    env = bridge_env(fakes)
    del env["OMNISEND_AREAS"], env["OMETRIA_AREAS"]
    bridge = BridgeProcess(tmp_path, env).start()
    try:
        redact(bridge)
        [(status, errors)] = wait_until(lambda: bridge.query("SELECT status, errors FROM events WHERE status != 'received'"))
        assert (status, errors) == ("ignored", None)
        assert bridge.query("SELECT count(*) FROM messages") == [(0,)]
        assert fakes.ometria.recorded(path="/v2/data-deletion-requests") == []
        blocked = httpx.get(bridge.url + "/healthz").json()["rules"]["blocked"]
        assert any("erasure.yaml" in line and "OMETRIA_AREAS=" in line and ",deletions" in line for line in blocked)
    finally:
        bridge.stop()
