"""The loyalty loop through the real app and the fake APIs: a shop customer is enrolled in Omneo, Omneo's
`profile.created` comes back signed and reaches Omnisend and Ometria with tier and points, and the echo of
the bridge's own write is recorded as such and not sent on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.fakes import create_omneo_app, serve_in_thread
from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import OMNEO_SECRET, ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import ometria_records

PAYLOADS = ROOT / "tests" / "payloads"
OMNEO_TOKEN = "omneo-e2e-token-7d1"
BATCH = "/api/v3/profiles/batch"
ADMIN_TOKEN = "e2e-admin-token"


@pytest.fixture
def omneo() -> Iterator[tuple[Any, str]]:
    app = create_omneo_app(OMNEO_TOKEN, emit_delay=0.1)
    with serve_in_thread(app) as url:
        yield app.state.fake, url


def start(tmp_path: Path, fakes: Fakes, omneo_url: str) -> BridgeProcess:
    env = bridge_env(fakes, OMNEO_API_TOKEN=OMNEO_TOKEN, OMNEO_BASE_URL=f"{omneo_url}/api",
                     OMNEO_BATCH_LINGER_SECONDS="0.05", OMNEO_REQUESTS_PER_MINUTE="600",
                     OMNEO_AREAS="contacts,consent", BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN)
    return BridgeProcess(tmp_path, env).start()


def customer(n: int | None = None) -> bytes:
    body = json.loads((PAYLOADS / "shopify/customers_create.json").read_bytes())
    if n is not None:
        body.update(id=1000 + n, email=f"member{n}@example.com", phone=None, addresses=[], default_address=None)
    return json.dumps(body).encode()


def test_a_shop_customer_joins_omneo_and_comes_back_with_tier_and_points(tmp_path: Path, fakes: Fakes,
                                                                         omneo: tuple[Any, str]) -> None:
    fake, url = omneo
    bridge = start(tmp_path, fakes, url)
    try:
        fake.emit_to(f"{bridge.url}/webhooks/omneo", OMNEO_SECRET)
        body = customer()
        assert bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "customers/create")).status_code == 200
        email = "jane.citizen@example.com"
        # 1. enrolled: the details, then the consent the customer gave, as two batch items
        wait_until(lambda: len(fake.accepted(BATCH)) == 2)
        sent = [p for r in fake.accepted(BATCH) for p in r.body["profiles"]]
        assert sent[0]["identities"] == [{"handle": "shopify_id", "identifier": "7103958204497261331"}]
        assert sent[0]["mobile_phone"] == "+61412345678" and "phone_exists" not in sent[0]
        assert sent[1]["comms_attributes"] == {"email_promo": True, "email_consent_updated_at": "2025-03-02T09:14:21+11:00"}
        # 2. Omneo's profile.created came back, signed, and reached Omnisend and Ometria with tier and points
        profile_id = fake.by_email(email)["id"]
        wait_until(lambda: fakes.omnisend.contacts.get(email, {}).get("customProperties", {}).get("tier") == "Bronze")
        assert fakes.omnisend.contacts[email]["customProperties"]["pointBalance"] == 100
        [member] = wait_until(lambda: [r for r in ometria_records(fakes, "contact") if r["id"] == f"omneo-{profile_id}"])
        assert member["properties"]["tier"] == "Bronze" and member["properties"]["point_balance"] == 100
        # 3. the profile.updated echoing the consent write is recorded as an echo, and nothing is sent for it
        wait_until(lambda: bridge.query("SELECT count(*) FROM events WHERE source = 'omneo' AND status != 'received'")
                   == [(2,)])
        rows = bridge.query("SELECT e.topic, e.status, count(m.id) FROM events AS e LEFT JOIN messages AS m"
                            " ON m.event_id = e.id WHERE e.source = 'omneo' GROUP BY e.id ORDER BY e.id")
        assert rows[0][:2] == ("profile.created", "mapped") and rows[0][2] > 0
        assert rows[1] == ("profile.updated", "echo", 0)
        assert [event for event, _, status in fake.emitted] == ["profile.created", "profile.updated"]
        # 4. the batch ids are kept and shown
        batches = bridge.query("SELECT batch_ref FROM messages WHERE destination = 'omneo' ORDER BY id")
        assert [b for (b,) in batches] and {b for (b,) in batches} <= set(fake.batches)
        wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state != 'delivered'") == [(0,)])
        [event_id] = bridge.query("SELECT id FROM events WHERE source = 'shopify'")[0]
        detail = httpx.get(f"{bridge.url}/admin/events/{event_id}", timeout=5,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        shown = {m["batch"] for m in detail["messages"] if m["destination"] == "omneo"}
        assert shown and shown <= set(fake.batches)
        printed = subprocess.run([sys.executable, "-m", "bridge", "events", "show", str(event_id)], cwd=bridge.workdir,
                                 env=bridge.child_env(), capture_output=True, text=True, timeout=30, check=True).stdout
        assert all(f"batch {batch}" in printed for batch in shown)
    finally:
        bridge.stop()


def test_a_sigkill_mid_batch_loses_nothing_and_duplicates_only_by_match_key(tmp_path: Path, fakes: Fakes,
                                                                            omneo: tuple[Any, str]) -> None:
    fake, url = omneo
    fake.fail("timeout", delay=30, count=1)  # the first batch hangs: the bridge is killed while it waits
    fake.fail("lost_answer", count=1)  # then one is applied and its answer never arrives
    bridge = start(tmp_path, fakes, url)
    total = 12
    for n in range(total):
        body = customer(n)
        assert bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "customers/create")).status_code == 200
    wait_until(lambda: fake.recorded(path=BATCH))
    bridge.kill()
    bridge.start()
    try:
        wait_until(lambda: len(fake.profiles) == total and bridge.query(
            "SELECT count(*) FROM messages WHERE destination = 'omneo' AND state != 'delivered'") == [(0,)], timeout=30)
        emails = sorted(p["email"] for p in fake.profiles.values())
        assert emails == sorted(f"member{n}@example.com" for n in range(total))  # each member once
        sent = [p["email"] for r in fake.recorded(path=BATCH) for p in r.body["profiles"]]
        assert set(sent) == set(emails) and all(r.body["match_criteria"] == "email" for r in fake.recorded(path=BATCH))
        assert len(sent) > total  # resends repeat profiles under the same match key, never making a new member
    finally:
        bridge.stop()
