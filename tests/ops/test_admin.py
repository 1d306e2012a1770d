"""The admin API: token required, off without one, the CLI's operations, answers as documented."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from bridge.ops.admin import admin_routes
from bridge.rules.service import RulesService
from bridge.settings import Secret, Settings, destinations_from_env
from bridge.store.sqlite.writer import execute

from .schema_check import check_response
from .support import DAY, NOW, FixedRules, Outbox, idem

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class FakeBridge:
    """What the admin routes use of bridge.app.Bridge."""

    settings: Settings
    store: Any
    rules: Any
    destinations: dict[str, Any] = field(default_factory=dict)
    worker: Any = None

    def rules_service(self) -> RulesService:
        return RulesService(self.store, None)  # no RulesSync: publishing is refused, as with BRIDGE_RULES_SOURCE=folder


class Rules:
    def __init__(self, current: Any) -> None:
        self.current = current


def make_client(outbox: Outbox, token: str | None = TOKEN, rules: Any = None) -> TestClient:
    settings = Settings(database_path=outbox.path, admin_token=Secret(token) if token else None,
                        destinations=destinations_from_env({}))
    bridge = FakeBridge(settings, outbox.store, Rules(rules), dict.fromkeys(settings.destinations))
    app = Starlette(routes=[Route("/healthz", lambda r: None), *admin_routes(bridge)])
    return TestClient(app, raise_server_exceptions=True)


@pytest.fixture
def filled(outbox: Outbox) -> Outbox:
    a = outbox.ingest("a", at=NOW - DAY)
    outbox.map(a, [("omnisend", idem("a"))], at=NOW - DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - DAY)
    b = outbox.ingest("b", at=NOW - DAY, body={"email": "bob@example.com"})
    outbox.map(b, [("ometria", idem("b"))], at=NOW - DAY)
    outbox.deliver("ometria", "dead", 400, at=NOW - DAY, detail="invalid email bob@example.com")
    return outbox


@pytest.fixture
def client(filled: Outbox) -> Iterator[TestClient]:
    rules = FixedRules({"orders/create": [("omnisend", "orders")]})
    with make_client(filled, rules=rules) as c:
        yield c


ROUTES = [
    ("get", "/admin/events"), ("get", "/admin/events/1"), ("get", "/admin/dead"), ("post", "/admin/dead/retry"),
    ("post", "/admin/replay"), ("post", "/admin/destinations/omnisend/pause"),
    ("post", "/admin/destinations/omnisend/resume"), ("get", "/admin/outbox/stats"), ("get", "/admin/openapi.json"),
    ("get", "/admin/rules"), ("get", "/admin/rules/versions"), ("get", "/admin/rules/versions/1"),
    ("post", "/admin/rules/rollback"), ("get", "/admin/rules/actions"), ("post", "/admin/rules/check"),
    ("get", "/admin/rules/drafts"), ("post", "/admin/rules/drafts"), ("get", "/admin/rules/drafts/1"),
    ("put", "/admin/rules/drafts/1"), ("delete", "/admin/rules/drafts/1"), ("put", "/admin/rules/drafts/1/files/a.yaml"),
    ("delete", "/admin/rules/drafts/1/files/a.yaml"), ("post", "/admin/rules/drafts/1/check"),
    ("post", "/admin/rules/drafts/1/examples"), ("post", "/admin/rules/drafts/1/preview"),
    ("post", "/admin/rules/drafts/1/publish"),
    ("get", "/admin/actions"),
]


def template(path: str) -> str:
    """A route's path as the OpenAPI document writes it."""
    if path.startswith("/admin/rules/"):
        return (path.replace("/drafts/1", "/drafts/{draft_id}").replace("/versions/1", "/versions/{version}")
                .replace("/files/a.yaml", "/files/{name}"))
    return path.replace("/1", "/{event_id}").replace("/omnisend/", "/{name}/")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_the_token(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 401
    wrong = client.request(method, path, headers={"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert client.request(method, path, headers={"Authorization": TOKEN}).status_code == 401  # no scheme


@pytest.mark.parametrize(("method", "path"), ROUTES + [("get", "/admin/nothing-here"), ("delete", "/admin/events")])
def test_off_without_a_token(outbox: Outbox, method: str, path: str) -> None:
    with make_client(outbox, token=None) as c:
        answer = c.request(method, path, headers=AUTH)
    assert answer.status_code == 404 and answer.json() == {"error": "not found"}


def test_openapi_lists_every_route(client: TestClient) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, f"/admin{p}") for p, ops in doc["paths"].items() for m in ops}
    for method, path in ROUTES:
        assert (method, template(path)) in documented
    assert len(documented) == len(ROUTES)


def test_changes_are_in_the_actions_log_as_documented(client: TestClient) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    assert client.post("/admin/destinations/omnisend/pause", json={"reason": "maintenance"}, headers=AUTH).status_code \
        == 200
    client.post("/admin/dead/retry", json={"all": True}, headers=AUTH)
    log = client.get("/admin/actions", params={"limit": "1"}, headers=AUTH)
    check_response(doc, "/actions", "get", 200, log.json())
    assert log.json()["total"] == 2 and [(a["actor"], a["action"], a["target"]) for a in log.json()["actions"]] == [
        ("admin", "retry_dead", "every dead letter")]


def test_events_as_documented(client: TestClient) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    listing = client.get("/admin/events", params={"since": "2026-11-01T00:00:00Z", "limit": "10"}, headers=AUTH)
    assert listing.status_code == 200
    check_response(doc, "/events", "get", 200, listing.json())
    assert [e["id"] for e in listing.json()["events"]] == [2, 1]
    detail = client.get("/admin/events/2", headers=AUTH)
    check_response(doc, "/events/{event_id}", "get", 200, detail.json())
    assert "bob@example.com" not in detail.text
    revealed = client.get("/admin/events/2", params={"reveal": "true"}, headers=AUTH)
    assert revealed.json()["payload"]["email"] == "bob@example.com"
    missing = client.get("/admin/events/99", headers=AUTH)
    assert missing.status_code == 404
    check_response(doc, "/events/{event_id}", "get", 404, missing.json())


def test_lists_page_with_the_total_of_every_match(client: TestClient) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    second = client.get("/admin/events", params={"limit": "1", "offset": "1"}, headers=AUTH)
    check_response(doc, "/events", "get", 200, second.json())
    assert second.json() | {"events": [e["id"] for e in second.json()["events"]]} == {
        "events": [1], "total": 2, "limit": 1, "offset": 1}
    dead = client.get("/admin/dead", params={"offset": "1"}, headers=AUTH)
    check_response(doc, "/dead", "get", 200, dead.json())
    assert (dead.json()["dead"], dead.json()["total"]) == ([], 1)


@pytest.mark.parametrize("query", [{"since": "last tuesday"}, {"limit": "many"}, {"limit": "0"}, {"reveal": "maybe"},
                                   {"status": "delivered"},  # a message state, not an event status
                                   {"offset": "-1"}, {"offset": "next"}])
def test_bad_parameters_are_400(client: TestClient, query: dict[str, str]) -> None:
    answer = client.get("/admin/events", params=query, headers=AUTH)
    assert answer.status_code == 400 and next(iter(query)) in answer.json()["error"]


def test_dead_list_and_retry(client: TestClient, filled: Outbox) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    dead = client.get("/admin/dead", params={"destination": "ometria"}, headers=AUTH)
    check_response(doc, "/dead", "get", 200, dead.json())
    assert [d["last_status"] for d in dead.json()["dead"]] == [400]
    refused = client.post("/admin/dead/retry", json={}, headers=AUTH)
    assert refused.status_code == 400 and "all" in refused.json()["error"]
    assert client.post("/admin/dead/retry", json={"ids": "1"}, headers=AUTH).status_code == 400
    assert client.post("/admin/dead/retry", content=b"{not json", headers=AUTH).status_code == 400
    assert client.post("/admin/dead/retry", json={"everything": True}, headers=AUTH).status_code == 400
    done = client.post("/admin/dead/retry", json={"destination": "ometria"}, headers=AUTH)
    check_response(doc, "/dead/retry", "post", 200, done.json())
    assert done.json() == {"retried": 1}
    assert filled.rows("SELECT state FROM messages WHERE destination = 'ometria'") == [("pending",)]


def test_replay(client: TestClient) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    assert client.post("/admin/replay", json={}, headers=AUTH).status_code == 400
    # The fixtures are dated around NOW, not today: a relative "7d" would stop matching them as the days pass.
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 7 * DAY))
    dry = client.post("/admin/replay", json={"since": since, "dry_run": True}, headers=AUTH)
    check_response(doc, "/replay", "post", 200, dry.json())
    # a: delivered, skipped; b: its rule now sends to omnisend, a new message
    assert dry.json() | {"dry_run": None} == {"events": 2, "queued": 1, "requeued_dead": 0, "skipped_delivered": 1,
                                              "skipped_open": 0, "events_with_errors": 0, "dry_run": None}
    # only the events in one status: both are mapped, none had a mapping error
    for status, events in (("mapped", 2), ("mapping_error", 0)):
        only = client.post("/admin/replay", json={"since": since, "status": status, "dry_run": True}, headers=AUTH)
        assert only.json()["events"] == events
    wrong = client.post("/admin/replay", json={"since": since, "status": "lost"}, headers=AUTH)
    assert wrong.status_code == 400 and "status: one of" in wrong.json()["error"]


def test_replay_without_rules_is_503(filled: Outbox) -> None:
    with make_client(filled, rules=None) as c:
        answer = c.post("/admin/replay", json={"since": "7d"}, headers=AUTH)
    assert answer.status_code == 503 and "rules" in answer.json()["error"]


def test_pause_resume_and_stats(client: TestClient, filled: Outbox) -> None:
    doc = client.get("/admin/openapi.json", headers=AUTH).json()
    paused = client.post("/admin/destinations/ometria/pause", json={"reason": "their outage"}, headers=AUTH)
    check_response(doc, "/destinations/{name}/pause", "post", 200, paused.json())
    stats = client.get("/admin/outbox/stats", headers=AUTH)
    check_response(doc, "/outbox/stats", "get", 200, stats.json())
    ometria = stats.json()["destinations"]["ometria"]
    assert ometria["paused"] and ometria["pause_reason"] == "their outage" and ometria["counts"]["dead"] == 1
    resumed = client.post("/admin/destinations/ometria/resume", headers=AUTH)
    check_response(doc, "/destinations/{name}/resume", "post", 200, resumed.json())
    assert resumed.json() == {"destination": "ometria", "paused": False, "reason": None}
    unknown = client.post("/admin/destinations/klaviyo/pause", headers=AUTH)
    assert unknown.status_code == 404 and "known" in unknown.json()["error"]


def test_store_failure_is_503_not_500(client: TestClient, filled: Outbox) -> None:
    filled.store.write_sync(execute, "DROP TABLE attempts")
    answer = client.get("/admin/events/1", headers=AUTH)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


def test_ids_beyond_sqlite_range_are_not_found_not_500(client: TestClient) -> None:
    """Found by schemathesis: an id past 2**63 overflowed SQLite's integer and answered 500."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get(f"/admin/events/{2**64}", headers=auth).status_code == 404
    assert client.post("/admin/dead/retry", json={"ids": [2**64]}, headers=auth).status_code == 400


def test_an_event_nested_too_deep_to_take_now_is_shown_as_text(outbox: Outbox) -> None:
    import asyncio

    from bridge.model import Webhook

    deep = b"[" * 1000 + b"]" * 1000  # acknowledged before ingest refused JSON over 64 levels
    event = asyncio.run(outbox.store.ingest(Webhook("shopify", "orders/create", "deep", deep), now=NOW)).event_id
    client = make_client(outbox)
    for reveal in ("false", "true"):
        answer = client.get(f"/admin/events/{event}?reveal={reveal}", headers=AUTH)
        assert answer.status_code == 200 and answer.json()["payload"] == deep.decode()


def test_failed_tries_are_slowed_per_client_in_bounded_memory(outbox: Outbox) -> None:
    from bridge.ops.slowdown import FREE_TRIES, FailedTries

    client = make_client(outbox)
    waited = []
    for _ in range(FREE_TRIES + 2):
        began = time.monotonic()
        assert client.get("/admin/events", headers={"Authorization": "Bearer guess"}).status_code == 401
        waited.append(time.monotonic() - began)
    assert waited[-1] >= 1.0 and waited[-2] >= 0.5  # the 4th failure waits 0.5 s, the 5th 1 s
    assert client.get("/admin/events", headers=AUTH).status_code == 200

    now = [0.0]
    tries = FailedTries(max_clients=100, clock=lambda: now[0])
    assert [tries.failed("a") for _ in range(8)] == [0, 0, 0, 0.5, 1, 2, 4, 8]
    assert tries.failed("a") == 10 and tries.failed("b") == 0  # capped; another client is not slowed
    now[0] += 301
    assert tries.failed("a") == 0  # forgotten after five quiet minutes
    for n in range(10_000):
        tries.failed(f"client-{n}")
    assert len(tries) == 100
