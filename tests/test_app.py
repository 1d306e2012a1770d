"""The web app: every answer a provider can get, and what is stored behind it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bridge.app import create_app
from bridge.config import settings_from_env
from bridge.mapping.reload import FixedRules
from bridge.settings import Secret, Settings, SourceSettings, secrets_from
from bridge.sign import omneo_headers, shopify_headers, woocommerce_headers
from bridge.store.sqlite.rows import unpack_body
from bridge.store.sqlite.writer import execute

SECRET = "shpss_app_test"


class NoRules(FixedRules):
    """No rules loaded."""


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    sources = {
        "shopify": SourceSettings("shopify", "shopify", secrets_from(f"old-secret,{SECRET}")),
        "omneo": SourceSettings("omneo", "omneo", secrets_from("omneo-secret")),
        "woocommerce": SourceSettings("woocommerce", "woocommerce", secrets_from("woo-secret")),
    }
    return Settings(database_path=tmp_path / "b.db", sources=sources, max_body_bytes=4096, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path), run_worker=False, rules=NoRules())
    with TestClient(app) as c:
        yield c


def rows(client: TestClient, sql: str) -> list[tuple[object, ...]]:
    store = client.app.state.bridge.store  # type: ignore[attr-defined]
    return [tuple(r) for r in store.reader().execute(sql)]


ORDER = json.dumps({"id": 5324830114101123, "email": "jane@example.com", "total_price": "10.00"}).encode()


def test_accepts_then_drops_the_resend(client: TestClient) -> None:
    headers = shopify_headers(ORDER, SECRET, "orders/create", event_id="evt-1")
    first = client.post("/webhooks/shopify", content=ORDER, headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["content-length"] == str(len(first.content)) and "transfer-encoding" not in first.headers
    resend = dict(headers, **{"X-Shopify-Webhook-Id": "another-delivery"})
    again = client.post("/webhooks/shopify", content=ORDER, headers=resend)
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert rows(client, "SELECT source, topic, status, duplicates FROM events") == [("shopify", "orders/create", "received", 1)]
    [(stored, codec)] = rows(client, "SELECT body, body_codec FROM events")
    assert unpack_body(stored, codec) == ORDER  # the exact bytes, for replays


def test_wrong_signature_is_401_and_stores_nothing(client: TestClient) -> None:
    headers = shopify_headers(ORDER, "not-the-secret", "orders/create")
    response = client.post("/webhooks/shopify", content=ORDER, headers=headers)
    assert response.status_code == 401
    tampered = client.post("/webhooks/shopify", content=ORDER.replace(b"10.00", b"0.01"),
                           headers=shopify_headers(ORDER, SECRET, "orders/create"))
    assert tampered.status_code == 401
    assert rows(client, "SELECT count(*) FROM events") == [(0,)]


def test_unknown_source_is_404(client: TestClient) -> None:
    assert client.post("/webhooks/nope", content=b"{}").status_code == 404


def test_too_large_is_413_declared_or_streamed(client: TestClient) -> None:
    big = b"{" + b" " * 5000 + b"}"
    assert client.post("/webhooks/shopify", content=big, headers=shopify_headers(big, SECRET, "orders/create")).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    assert client.post("/webhooks/shopify", content=chunks(), headers={"X-Shopify-Topic": "orders/create"}).status_code == 413
    assert rows(client, "SELECT count(*) FROM events") == [(0,)]


def test_malformed_json_is_400_and_kept_for_inspection(client: TestClient) -> None:
    body = b'{"id": 1, "email": '
    response = client.post("/webhooks/shopify", content=body, headers=shopify_headers(body, SECRET, "orders/create"))
    assert response.status_code == 400
    [(status, stored, codec)] = rows(client, "SELECT status, body, body_codec FROM events")
    assert (status, unpack_body(stored, codec)) == ("invalid_json", body)


def test_a_resent_malformed_body_gets_the_same_400_and_is_stored_once(client: TestClient) -> None:
    body = b'{"id": 1, "email": '
    headers = shopify_headers(body, SECRET, "orders/create")
    first = client.post("/webhooks/shopify", content=body, headers=headers)
    again = client.post("/webhooks/shopify", content=body, headers=headers)  # Shopify retries any non-2xx
    assert (first.status_code, again.status_code) == (400, 400)
    assert again.json()["event_id"] == first.json()["event_id"]
    assert "already stored" in again.json()["error"]
    assert rows(client, "SELECT status, duplicates FROM events") == [("invalid_json", 1)]


def test_unknown_topic_is_accepted_and_recorded(client: TestClient) -> None:
    body = b'{"id": 7}'
    response = client.post("/webhooks/omneo", content=body, headers=omneo_headers(body, "omneo-secret", "planet.exploded"))
    assert response.status_code == 200
    assert rows(client, "SELECT topic FROM events") == [("planet.exploded",)]


def test_woocommerce_ping_is_200_and_not_stored(client: TestClient) -> None:
    response = client.post("/webhooks/woocommerce", content=b"webhook_id=12",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    body = b'{"id": 5, "date_modified": "2026-11-20T10:00:00"}'
    signed = client.post("/webhooks/woocommerce", content=body, headers=woocommerce_headers(body, "woo-secret", "order.created"))
    assert signed.status_code == 200
    assert rows(client, "SELECT source FROM events") == [("woocommerce",)]


def test_store_failure_is_503_never_2xx(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), run_worker=False, rules=NoRules())
    with TestClient(app) as c:
        c.app.state.bridge.store.write_sync(execute, "DROP TABLE events")  # type: ignore[attr-defined]
        response = c.post("/webhooks/shopify", content=ORDER, headers=shopify_headers(ORDER, SECRET, "orders/create"))
        assert response.status_code == 503 and response.headers["retry-after"]


def test_healthz_names_what_is_not_configured(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert "destination omnisend: no API key" in health["not_configured"]
    assert health["destinations"]["ometria"] == {"configured": False, "paused": False, "pause_reason": None}
    assert health["rules"]["loaded"] is False


def test_healthz_shows_the_backlog_of_acknowledged_webhooks(tmp_path: Path) -> None:
    """Stored and not yet mapped (no worker here): the backlog, its age and, per configured destination, the
    expected time to drain at its rate limit."""
    from bridge.destinations.registry import build_destinations
    from bridge.settings import DestinationSettings

    settings = make_settings(tmp_path)
    destinations = build_destinations({"omnisend": DestinationSettings("omnisend", "http://127.0.0.1:9", Secret("k")),
                                       "ometria": DestinationSettings("ometria", "http://127.0.0.1:9")})
    app = create_app(settings, run_worker=False, rules=NoRules(), destinations=destinations)
    with TestClient(app) as c:
        assert c.get("/healthz").json()["backlog"]["events_waiting"] == 0
        for n in range(3):
            body = json.dumps({"id": n, "email": "jane@example.com"}).encode()
            assert c.post("/webhooks/shopify", content=body,
                          headers=shopify_headers(body, SECRET, "orders/create", event_id=f"evt-{n}")).status_code == 200
        c.app.state.bridge._backlog = None  # type: ignore[attr-defined]  # read again now, not a second later
        backlog = c.get("/healthz").json()["backlog"]
    assert backlog["events_waiting"] == 3 and backlog["oldest_event_age_seconds"] >= 0
    omnisend, ometria = backlog["destinations"]["omnisend"], backlog["destinations"]["ometria"]
    assert omnisend["ceiling_per_second"] > 0 and omnisend["drain_seconds"] == round(3 / omnisend["ceiling_per_second"], 1)
    assert ometria["drain_seconds"] is None  # no API key: its messages would wait
    assert backlog["drain_seconds"] == omnisend["drain_seconds"]


header_names = st.sampled_from([
    "X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Event-Id", "X-Omneo-Hmac-SHA256", "X-Omneo-Event",
    "X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "webhook-id", "webhook-timestamp", "webhook-signature",
    "Content-Type", "X-Random",
])
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(["shopify", "omneo", "woocommerce", "other"]),
       headers=st.dictionaries(header_names, header_values, max_size=6),
       body=st.binary(max_size=600) | st.just(ORDER))
def test_random_input_never_5xx_never_accepted(client: TestClient, source: str, headers: dict[str, str], body: bytes) -> None:
    response = client.post(f"/webhooks/{source}", content=body, headers=headers)
    assert response.status_code < 500
    if response.status_code == 200:  # only the WooCommerce ping may pass unsigned, and it stores nothing
        assert source == "woocommerce" and response.json() == {"status": "ok"}
    assert rows(client, "SELECT count(*) FROM events") == [(0,)]


def test_omnisend_batching_can_be_switched_off_from_the_environment() -> None:
    from bridge.errors import ConfigError

    assert settings_from_env({}).destinations["omnisend"].options["batch_events"] is True
    off = settings_from_env({"OMNISEND_BATCH_EVENTS": "false", "OMNISEND_BATCH_V3": "0"}).destinations["omnisend"]
    assert off.options["batch_events"] is False and off.options["batch_v3"] is False
    with pytest.raises(ConfigError, match="OMNISEND_BATCH_EVENTS must be true or false"):
        settings_from_env({"OMNISEND_BATCH_EVENTS": "sometimes"})


def test_webhook_paths_the_fast_route_does_not_take_still_get_starlettes_answers(client: TestClient) -> None:
    """BridgeApp sends only `POST /webhooks/{name}` straight to the endpoint; everything else is routed as usual."""
    assert client.get("/webhooks/shopify").status_code == 405
    assert client.post("/webhooks/").status_code == 404
    assert client.post("/webhooks/shopify/extra", content=ORDER).status_code == 404
    headers = shopify_headers(ORDER, SECRET, "orders/create", event_id="evt-fast")
    assert client.post("/webhooks/shopify", content=ORDER, headers=headers).json()["status"] == "accepted"
    assert rows(client, "SELECT count(*) FROM events") == [(1,)]


def test_a_new_database_is_announced_until_it_holds_an_event(tmp_path: Path) -> None:
    """A platform that wiped the disk leaves a new, empty database: the log and /healthz say so."""
    from structlog.testing import capture_logs

    with capture_logs() as logs, TestClient(create_app(make_settings(tmp_path), run_worker=False, rules=NoRules())) as c:
        database = c.get("/healthz").json()["database"]
        assert database["new"] is True and database["created_at_utc"].endswith("Z")
        headers = shopify_headers(ORDER, SECRET, "orders/create", event_id="evt-new")
        assert c.post("/webhooks/shopify", content=ORDER, headers=headers).status_code == 200
        assert c.get("/healthz").json()["database"] == {"new": False, "created_at_utc": database["created_at_utc"]}
    assert [e["path"] for e in logs if e["event"] == "store.new_database"] == [str(tmp_path / "b.db")]

    with capture_logs() as logs, TestClient(create_app(make_settings(tmp_path), run_worker=False, rules=NoRules())) as c:
        assert c.get("/healthz").json()["database"] == {"new": False, "created_at_utc": database["created_at_utc"]}
    assert not [e for e in logs if e["event"] == "store.new_database"]


def test_an_empty_database_from_an_earlier_start_is_still_new(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path), run_worker=False, rules=NoRules())) as c:
        made = c.get("/healthz").json()["database"]["created_at_utc"]
    with TestClient(create_app(make_settings(tmp_path), run_worker=False, rules=NoRules())) as c:
        assert c.get("/healthz").json()["database"] == {"new": True, "created_at_utc": made}


@pytest.mark.slow  # starts two bridge processes
def test_healthz_names_the_rules_each_instance_runs(tmp_path: Path) -> None:
    """Two instances on the same files show the same hash; a changed file, or other areas allowed, another."""
    import shutil

    from bridge.mapping.reload import RulesHolder

    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parent.parent / "mappings", rules, ignore=shutil.ignore_patterns("README*"))

    def shown(**overrides: object) -> dict[str, object]:
        holder = RulesHolder(rules, saved_dir=None, **overrides)  # type: ignore[arg-type]
        with TestClient(create_app(make_settings(tmp_path), run_worker=False, rules=holder)) as c:
            return c.get("/healthz").json()["rules"]  # type: ignore[no-any-return]

    first, second = shown(), shown()
    assert first["loaded"] and len(str(first["hash"])) == 16 and first["hash"] == second["hash"]
    assert shown(allowed_areas={"omnisend": frozenset({"events"}), "ometria": frozenset({"events"})})["hash"] != first["hash"]
    some = sorted(rules.glob("*.yaml"))[0]
    some.write_text(some.read_text() + "\n# edited\n")
    assert shown()["hash"] != first["hash"]
    assert shown()["hash"] == shown()["hash"]
def test_a_trailing_slash_is_the_same_webhook_and_nothing_redirects(client: TestClient) -> None:
    headers = shopify_headers(ORDER, SECRET, "orders/create")
    answer = client.post("/webhooks/shopify/", content=ORDER, headers=headers, follow_redirects=False)
    assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    evil = {"Host": "evil.example"}
    for method, path in (("GET", "/healthz/"), ("GET", "/readyz/"), ("POST", "/webhooks/shopify//"),
                         ("GET", "/webhooks/shopify/")):
        answer = client.request(method, path, headers=evil, follow_redirects=False)
        assert answer.status_code in (404, 405) and "location" not in answer.headers, (method, path)


def test_production_refuses_an_admin_token_under_32_characters() -> None:
    from bridge.errors import ConfigError

    complete = {"BRIDGE_ENV": "production", "SHOPIFY_WEBHOOK_SECRET": "s", "OMNEO_WEBHOOK_SECRET": "s",
                "WOOCOMMERCE_WEBHOOK_SECRET": "s", "OMNISEND_API_KEY": "k", "OMETRIA_API_KEY": "k"}
    with pytest.raises(ConfigError, match="32 characters"):
        settings_from_env(dict(complete, BRIDGE_ADMIN_TOKEN="a"))
    assert settings_from_env(dict(complete, BRIDGE_ADMIN_TOKEN="a" * 32)).admin_token is not None
    assert settings_from_env(complete).admin_token is None  # no admin API at all is fine
    assert settings_from_env({"BRIDGE_ADMIN_TOKEN": "a"}).admin_token is not None  # development takes any


def test_healthz_shows_paths_only_with_the_admin_token(tmp_path: Path) -> None:
    from bridge.mapping.saved import SavedCopy

    class BrokenRules(NoRules):
        def __init__(self) -> None:
            super().__init__()
            self.error = f"{tmp_path}/mappings/orders.yaml:3:5: unknown field"
            self.running_saved = SavedCopy(tmp_path / "b.db.last-good-rules" / "0123456789abcdef", 1.0,
                                           str(tmp_path / "mappings"))

    token = "t" * 40
    broken = BrokenRules()
    app = create_app(make_settings(tmp_path, admin_token=Secret(token)), run_worker=False, rules=broken)
    with TestClient(app) as c:
        public = c.get("/healthz").text
        wrong = c.get("/healthz", headers={"Authorization": "Bearer nope"}).text
        private = c.get("/healthz", headers={"Authorization": f"Bearer {token}"}).json()
    for shown in (public, wrong):
        assert str(tmp_path) not in shown and "orders.yaml:3:5: unknown field" in shown
    assert private["rules"]["error"] == broken.error
    assert private["rules"]["running_saved_copy"]["copied_from"] == str(tmp_path / "mappings")
