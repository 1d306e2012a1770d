"""A restart with a broken rule file keeps forwarding: the published rules from the store, or with the rules
kept in the folder only, the last good copy (real process, real fakes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import ometria_records, omnisend_events

ORDER = (ROOT / "tests/payloads/shopify/orders_create.json").read_bytes()


def send_order(bridge: BridgeProcess, order_id: int) -> httpx.Response:
    body = json.dumps({**json.loads(ORDER), "id": order_id}).encode()
    return bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "orders/create", event_id=f"evt-{order_id}"))


def test_a_deploy_with_a_broken_file_keeps_the_published_rules_running(tmp_path: Path, fakes: Fakes) -> None:
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    token = "t" * 32
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, BRIDGE_MAPPINGS_DIR=str(folder), BRIDGE_ADMIN_TOKEN=token))
    bridge.start()
    try:
        assert send_order(bridge, 2001).status_code == 200
        wait_until(lambda: len(ometria_records(fakes, "order")) == 1)
        assert bridge.stop() == 0

        original = (folder / "shopify-orders.yaml").read_text()
        broken = original.replace('currency: "{{ currency }}"', 'currency: "{{ currency }}', 1)
        (folder / "shopify-orders.yaml").write_text(broken)
        bridge.start()

        health = httpx.get(bridge.url + "/healthz", headers={"Authorization": f"Bearer {token}"}).json()["rules"]
        assert health["loaded"] is True and health["published"]["version"] == 1
        assert "shopify-orders.yaml:" in health["error"] and "published rules keep running" in health["error"]
        assert health["published"]["folder_error"] is not None
        assert httpx.get(bridge.url + "/readyz").status_code == 200

        assert send_order(bridge, 2002).status_code == 200
        wait_until(lambda: {e["properties"]["orderID"] for e in omnisend_events(fakes)} >= {"2001", "2002"})
        assert "rules.folder_not_imported" in bridge.logs()

        (folder / "shopify-orders.yaml").write_text(original)  # fixed: the files of version 1, nothing to import
        wait_until(lambda: httpx.get(bridge.url + "/healthz").json()["rules"]["error"] is None, timeout=20)
        assert httpx.get(bridge.url + "/healthz").json()["rules"]["published"]["version"] == 1
    finally:
        bridge.stop()


def test_a_restart_with_a_broken_file_runs_the_last_good_rules_until_it_is_fixed(tmp_path: Path, fakes: Fakes) -> None:
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    token = "t" * 32
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, BRIDGE_MAPPINGS_DIR=str(folder), BRIDGE_ADMIN_TOKEN=token,
                                                BRIDGE_RULES_SOURCE="folder"))
    bridge.start()
    try:
        assert send_order(bridge, 1001).status_code == 200
        wait_until(lambda: len(ometria_records(fakes, "order")) == 1)
        assert bridge.stop() == 0

        original = (folder / "shopify-orders.yaml").read_text()
        # A marketer's typo, deployed: the value's quotes are not closed.
        broken = original.replace('currency: "{{ currency }}"', 'currency: "{{ currency }}', 1)
        assert broken != original
        (folder / "shopify-orders.yaml").write_text(broken)
        bridge.start()

        health = httpx.get(bridge.url + "/healthz", headers={"Authorization": f"Bearer {token}"}).json()["rules"]  # paths
        assert health["loaded"] is True
        assert "shopify-orders.yaml:" in health["error"] and "running the last good rules instead" in health["error"]
        copy = health["running_saved_copy"]
        assert copy["copied_from"] == str(folder) and copy["directory"].startswith(str(tmp_path / "bridge.db.last-good-rules"))
        assert httpx.get(bridge.url + "/readyz").status_code == 200  # events are mapped: traffic is welcome

        assert send_order(bridge, 1002).status_code == 200
        wait_until(lambda: {e["properties"]["orderID"] for e in omnisend_events(fakes)} >= {"1001", "1002"})
        wait_until(lambda: len(ometria_records(fakes, "order")) == 2)
        assert "rules.running_saved_copy" in bridge.logs()

        (folder / "shopify-orders.yaml").write_text(original)  # fixed: the watcher loads the folder again
        wait_until(lambda: httpx.get(bridge.url + "/healthz").json()["rules"]["running_saved_copy"] is None, timeout=20)
        assert httpx.get(bridge.url + "/healthz").json()["rules"]["error"] is None
    finally:
        bridge.stop()
