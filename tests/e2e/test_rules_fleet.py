"""Rules published through the admin API of one instance run on a second instance of the same PostgreSQL
database, within its poll; a rollback there too. Real `bridge serve` processes, the fake APIs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx

from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

TOKEN = "fleet-rules-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Bridge-Actor": "maria"}
ORDERS = "shopify-orders.yaml"


def rules_state(instance: BridgeProcess) -> dict[str, Any]:
    answer = httpx.get(instance.url + "/healthz", headers=AUTH, timeout=5).json()["rules"]
    return {"version": answer["published"]["version"], "hash": answer["hash"]}


def order(n: int) -> tuple[bytes, dict[str, str]]:
    payload = json.loads((ROOT / "tests/payloads/shopify/orders_create.json").read_bytes())
    payload["id"] = 7700000000 + n
    body = json.dumps(payload).encode()
    return body, shopify_headers(body, SHOPIFY_SECRET, "orders/create", event_id=f"rules-fleet-{n}")


def currency_sent(instance: BridgeProcess, n: int) -> str | None:
    """The currency of the Omnisend "placed order" event the instance mapped for order n, once mapped."""
    events = httpx.get(instance.url + "/admin/events", headers=AUTH, params={"limit": 50}, timeout=5).json()["events"]
    for event in events:
        if event["status"] != "mapped":
            continue
        detail = httpx.get(f"{instance.url}/admin/events/{event['id']}", headers=AUTH,
                           params={"reveal": "true"}, timeout=5).json()
        if detail["payload"].get("id") != 7700000000 + n:
            continue
        for message in detail["messages"]:
            if message["destination"] == "omnisend" and message["kind"] == "event":
                return str(message["record"]["properties"]["currency"])
    return None


def test_a_publish_on_one_instance_runs_on_the_other_and_rolls_back(tmp_path: Path, fakes: Fakes, pg_url: str) -> None:
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    env = bridge_env(fakes, BRIDGE_DATABASE_URL=pg_url, BRIDGE_ADMIN_TOKEN=TOKEN, BRIDGE_MAPPINGS_DIR=str(folder),
                     BRIDGE_RULES_POLL_SECONDS="0.5", BRIDGE_MAPPING="thread", BRIDGE_PG_POOL_SIZE="3")
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir()
    two_dir.mkdir()
    one = BridgeProcess(one_dir, env).start()
    two = BridgeProcess(two_dir, env).start()
    try:
        wait_until(lambda: rules_state(one)["version"] == 1 and rules_state(two)["version"] == 1, timeout=30)
        original = rules_state(two)["hash"]

        draft = httpx.post(one.url + "/admin/rules/drafts", headers=AUTH, json={}, timeout=10).json()
        text = draft["files"][ORDERS].replace('currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"', 1)
        saved = httpx.put(f"{one.url}/admin/rules/drafts/{draft['id']}/files/{ORDERS}", headers=AUTH,
                          json={"text": text}, timeout=10)
        assert saved.status_code == 200, saved.text
        published = httpx.post(f"{one.url}/admin/rules/drafts/{draft['id']}/publish", headers=AUTH,
                               json={"message": "currency in lower case"}, timeout=30)
        assert published.status_code == 201, published.text
        assert published.json()["version"] == 2

        wait_until(lambda: rules_state(two)["version"] == 2, timeout=30)
        assert rules_state(two)["hash"] == rules_state(one)["hash"] != original
        body, headers = order(1)
        assert two.post("shopify", body, headers).status_code == 200
        assert wait_until(lambda: currency_sent(two, 1), timeout=30) == "aud"

        rolled = httpx.post(one.url + "/admin/rules/rollback", headers=AUTH, json={"version": 1}, timeout=30)
        assert rolled.status_code == 200 and rolled.json()["version"] == 3
        wait_until(lambda: rules_state(two)["version"] == 3, timeout=30)
        assert rules_state(two)["hash"] == original
        body, headers = order(2)
        assert two.post("shopify", body, headers).status_code == 200
        assert wait_until(lambda: currency_sent(two, 2), timeout=30) == "AUD"

        history = httpx.get(two.url + "/admin/rules/versions", headers=AUTH, timeout=10).json()
        assert [(v["version"], v["origin"], v["author"]) for v in history["versions"]] == [
            (3, "rollback", "admin (maria)"), (2, "publish", "admin (maria)"), (1, "folder", "folder")]
    finally:
        one.stop()
        two.stop()
