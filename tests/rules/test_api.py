"""The rules' admin API on the real app and a real SQLite store: the folder imported as version 1, a draft
with a mistake (its file, line and fix), publish refused then done, preview against stored webhooks in the
mapping process, rollback, history with diffs, and the audit log."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.app import create_app
from bridge.settings import Secret, Settings, SourceSettings, secrets_from
from bridge.sign import shopify_headers

ROOT = Path(__file__).resolve().parents[2]
SECRET = "shpss_rules_test"
TOKEN = "rules-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Bridge-Actor": "maria"}
ORDERS = "shopify-orders.yaml"


def settings(tmp_path: Path, folder: Path) -> Settings:
    sources = {"shopify": SourceSettings("shopify", "shopify", secrets_from(SECRET))}
    return Settings(database_path=tmp_path / "b.db", sources=sources, mappings_dir=folder,  # type: ignore[arg-type]
                    admin_token=Secret(TOKEN), store_writer="thread", last_good_rules="off", rules_poll_seconds=0.2)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", target)
    return target


@pytest.fixture
def client(tmp_path: Path, folder: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(tmp_path, folder), run_worker=False)) as c:
        yield c


def order(n: int) -> tuple[bytes, dict[str, str]]:
    payload = json.loads((ROOT / "tests/payloads/shopify/orders_create.json").read_bytes())
    payload["id"] = 450789469 + n
    body = json.dumps(payload).encode()
    return body, shopify_headers(body, SECRET, "orders/create", event_id=f"order-{n}")


def health(c: TestClient) -> dict[str, Any]:
    return c.get("/healthz", headers=AUTH).json()["rules"]  # type: ignore[no-any-return]


def test_a_fresh_install_imports_the_folder_as_version_1_and_runs_it(client: TestClient, folder: Path) -> None:
    answer = client.get("/admin/rules", headers=AUTH).json()
    published = answer["published"]
    assert (published["version"], published["origin"], published["author"]) == (1, "folder", "folder")
    assert published["files"][ORDERS] == (folder / ORDERS).read_text()
    assert "README.md" not in published["files"]
    assert answer["instance"]["version"] == 1
    assert health(client)["published"]["version"] == 1 and health(client)["loaded"]


def test_a_draft_with_a_mistake_is_not_published_and_says_where_and_how_to_fix(client: TestClient) -> None:
    draft = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    text = draft["files"][ORDERS].replace("to: omnisend event \"placed order\"", "to: omnisnd event \"placed order\"", 1)
    saved = client.put(f"/admin/rules/drafts/{draft['id']}/files/{ORDERS}", headers=AUTH, json={"text": text})
    assert saved.status_code == 200
    check = client.post(f"/admin/rules/drafts/{draft['id']}/check", headers=AUTH).json()
    assert not check["ok"]
    [problem] = check["problems"]
    assert problem["file"] == ORDERS and problem["line"] == 16
    assert "unknown destination `omnisnd`" in problem["message"] and "omnisend" in problem["fix"]
    refused = client.post(f"/admin/rules/drafts/{draft['id']}/publish", headers=AUTH, json={"message": "typo"})
    assert refused.status_code == 422 and refused.json()["problems"][0]["line"] == 16
    assert client.get("/admin/rules", headers=AUTH).json()["published"]["version"] == 1
    bad_name = client.put(f"/admin/rules/drafts/{draft['id']}/files/..evil.yaml", headers=AUTH, json={"text": "x"})
    assert bad_name.status_code == 400


def test_a_drafts_examples_run_with_the_payload_files_beside_the_rules_folder(client: TestClient, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tests/payloads", tmp_path / "tests/payloads")  # the project beside mappings/
    draft = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    ran = client.post(f"/admin/rules/drafts/{draft['id']}/examples", headers=AUTH, json={"file": ORDERS}).json()
    assert ran["ok"] and ran["examples"] and {e["file"] for e in ran["examples"]} == {ORDERS}
    text = draft["files"][ORDERS].replace('currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"', 1)
    client.put(f"/admin/rules/drafts/{draft['id']}/files/{ORDERS}", headers=AUTH, json={"text": text})
    ran = client.post(f"/admin/rules/drafts/{draft['id']}/examples", headers=AUTH, json={"file": ORDERS}).json()
    failed = [e for e in ran["examples"] if not e["ok"]]
    assert not ran["ok"] and failed and '+        "currency": "aud"' in failed[0]["report"]


def test_publish_runs_the_new_rules_and_rollback_brings_the_old_ones_back(client: TestClient) -> None:
    before = health(client)["hash"]
    draft = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    text = draft["files"][ORDERS].replace('currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"', 1)
    assert text != draft["files"][ORDERS]
    client.put(f"/admin/rules/drafts/{draft['id']}/files/{ORDERS}", headers=AUTH, json={"text": text})
    published = client.post(f"/admin/rules/drafts/{draft['id']}/publish", headers=AUTH, json={"message": "lower case"})
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 2 and published.json()["author"] == "admin (maria)"
    assert health(client)["published"]["version"] == 2 and health(client)["hash"] != before
    shown = client.get("/admin/rules/versions/2", headers=AUTH).json()
    assert f"--- a/{ORDERS}" in shown["diff"] and '+            currency: "{{ currency | lower }}"' in shown["diff"]
    assert client.get(f"/admin/rules/drafts/{draft['id']}", headers=AUTH).status_code == 404  # published drafts go
    rolled = client.post("/admin/rules/rollback", headers=AUTH, json={"version": 1})
    assert rolled.status_code == 200 and rolled.json()["version"] == 3 and rolled.json()["based_on"] == 1
    assert health(client)["hash"] == before
    history = client.get("/admin/rules/versions", headers=AUTH).json()
    assert [(v["version"], v["origin"]) for v in history["versions"]] == [(3, "rollback"), (2, "publish"), (1, "folder")]
    actions = client.get("/admin/rules/actions", headers=AUTH).json()["actions"]
    assert [a["action"] for a in actions] == ["rollback", "publish", "draft.save", "draft.create", "import"]
    assert all(a["actor"] == "admin (maria)" for a in actions[:4])


def test_a_draft_started_before_another_publish_needs_force(client: TestClient) -> None:
    first = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    second = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    files = dict(first["files"], **{ORDERS: first["files"][ORDERS] + "# a note\n"})
    client.put(f"/admin/rules/drafts/{first['id']}", headers=AUTH, json={"files": files})
    assert client.post(f"/admin/rules/drafts/{first['id']}/publish", headers=AUTH, json={}).status_code == 201
    stale = client.post(f"/admin/rules/drafts/{second['id']}/publish", headers=AUTH, json={})
    assert stale.status_code == 409 and "version 2 was published since" in stale.json()["error"]
    forced = client.post(f"/admin/rules/drafts/{second['id']}/publish", headers=AUTH, json={"force": True})
    assert forced.status_code == 201 and forced.json()["version"] == 3


def test_a_preview_shows_what_changes_for_the_stored_events(client: TestClient) -> None:
    for n in range(3):
        body, headers = order(n)
        assert client.post("/webhooks/shopify", content=body, headers=headers).status_code == 200
    draft = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    text = draft["files"][ORDERS].replace('currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"', 1)
    client.put(f"/admin/rules/drafts/{draft['id']}/files/{ORDERS}", headers=AUTH, json={"text": text})
    answer = client.post(f"/admin/rules/drafts/{draft['id']}/preview", headers=AUTH, json={"limit": 2})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["summary"] == {"events": 2, "previewed": 2, "changed": 2, "unchanged": 0, "new_errors": 0,
                                  "not_previewed": 0}
    assert "orders/create" in preview["topics"]["shopify"]
    item = preview["events"][-1]
    assert item["topic"] == "orders/create" and item["changed"] and not item["becomes_error"]
    assert '-          "currency": "AUD"' in item["diff"] and '+          "currency": "aud"' in item["diff"]
    sent = [r for r in item["before"]["requests"] if r.get("path") == "/api/events"]
    assert sent and sent[0]["method"] == "POST" and sent[0]["body"]["contact"]["email"] not in ("jane.citizen@example.com", "Jane.Citizen@Example.com")
    unchanged = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    same = client.post(f"/admin/rules/drafts/{unchanged['id']}/preview", headers=AUTH, json={"limit": 500}).json()
    assert same["summary"]["changed"] == 0 and same["summary"]["unchanged"] == same["summary"]["previewed"] >= 3
    assert client.post(f"/admin/rules/drafts/{draft['id']}/preview", headers=AUTH, json={"limit": 501}).status_code == 400


def test_a_preview_counts_the_events_a_draft_turns_into_errors(client: TestClient) -> None:
    body, headers = order(7)
    assert client.post("/webhooks/shopify", content=body, headers=headers).status_code == 200
    draft = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    text = draft["files"][ORDERS]
    at = text.index("to: ometria order")
    text = text[:at] + text[at:].replace('timestamp: "{{ created_at | rfc3339 }}"', 'timestamp: "{{ closed_at | rfc3339 }}"', 1)
    client.put(f"/admin/rules/drafts/{draft['id']}/files/{ORDERS}", headers=AUTH, json={"text": text})
    preview = client.post(f"/admin/rules/drafts/{draft['id']}/preview", headers=AUTH, json={"limit": 1}).json()
    assert preview["summary"]["new_errors"] == preview["summary"]["changed"] == 1
    [item] = preview["events"]
    assert item["becomes_error"] and item["before"]["errors"] == [] and item["after"]["status"] == "partial"
    [error] = item["after"]["errors"]
    assert error.startswith(f"{ORDERS}:77 rule 'Shopify order placed'") and "timestamp is empty" in error


HEAVY = """\
rules:
  - name: Heavy
    on: shopify orders/create
    send:
      - to: omnisend event "heavy check"
        fields:
          origin: api
          contact:
            email: "{{ email | lower }}"
          properties:
            note: "{% for a in line_items %}{% for b in line_items %}{{ b.sku }}{% endfor %}{% endfor %}"
"""


def test_a_draft_rule_over_the_mapping_budget_costs_its_event_an_error_in_the_preview(client: TestClient) -> None:
    payload = json.loads((ROOT / "tests/payloads/shopify/orders_create.json").read_bytes())
    payload["line_items"] = [{"title": "Tee", "sku": f"S{i}", "price": "1.00", "quantity": 1} for i in range(1000)]
    body = json.dumps(payload).encode()
    headers = shopify_headers(body, SECRET, "orders/create", event_id="heavy-1")
    assert client.post("/webhooks/shopify", content=body, headers=headers).status_code == 200
    draft = client.post("/admin/rules/drafts", headers=AUTH, json={}).json()
    assert client.put(f"/admin/rules/drafts/{draft['id']}/files/heavy.yaml", headers=AUTH,
                      json={"text": HEAVY}).status_code == 200
    preview = client.post(f"/admin/rules/drafts/{draft['id']}/preview", headers=AUTH, json={"limit": 1}).json()
    assert preview["topics"] == {"shopify": ["orders/create"]}  # the topics of the file that changed
    [item] = preview["events"]
    assert item["becomes_error"] and preview["summary"]["new_errors"] == 1
    assert any(e.startswith("heavy.yaml:2 rule 'Heavy': mapping this event stopped: its loops went over")
               for e in item["after"]["errors"]), item["after"]["errors"]


def test_every_rules_route_needs_the_token(client: TestClient) -> None:
    for method, path in (("GET", "/admin/rules"), ("GET", "/admin/rules/versions"), ("POST", "/admin/rules/drafts"),
                         ("POST", "/admin/rules/rollback")):
        assert client.request(method, path).status_code == 401


def test_a_new_version_published_elsewhere_runs_here_within_the_poll(tmp_path: Path, folder: Path) -> None:
    """Two apps on one database: a publish on one is run by the other."""
    with TestClient(create_app(settings(tmp_path, folder), run_worker=False)) as one, \
            TestClient(create_app(settings(tmp_path, folder), run_worker=False)) as two:
        draft = one.post("/admin/rules/drafts", headers=AUTH, json={}).json()
        files = dict(draft["files"], **{ORDERS: draft["files"][ORDERS] + "# a note\n"})
        one.put(f"/admin/rules/drafts/{draft['id']}", headers=AUTH, json={"files": files})
        assert one.post(f"/admin/rules/drafts/{draft['id']}/publish", headers=AUTH, json={}).status_code == 201
        deadline = time.monotonic() + 30
        while health(two)["published"]["version"] != 2:
            assert time.monotonic() < deadline, health(two)
            time.sleep(0.1)
        assert health(two)["hash"] == health(one)["hash"]
