"""Metrics: counters from the app and worker, outbox gauges read at scrape time, no personal data."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bridge.model import Outcome
from bridge.ops.metrics import Metrics, instrumented, metrics_route

from .support import NOW, Outbox


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def test_webhook_counts_and_latency() -> None:
    m = Metrics()
    m.webhook("shopify", "orders/create", "accepted", 0.004)
    m.webhook("shopify", "orders/create", "duplicate", 0.002)
    m.webhook("shopify", "orders/create", "rejected_signature", 0.001)
    m.webhook("jane@example.com", "", "unknown_source", 0.001)
    assert value(m, "bridge_webhooks_received_total", source="shopify", topic="orders/create", outcome="accepted") == 1
    # an unverified topic and an unknown source never become label values
    assert value(m, "bridge_webhooks_received_total", source="shopify", topic="", outcome="rejected_signature") == 1
    assert value(m, "bridge_webhooks_received_total", source="_unknown", topic="", outcome="unknown_source") == 1
    assert "jane" not in m.exposition().decode()
    assert value(m, "bridge_webhook_ack_seconds_count", source="shopify") == 2


def test_delivery_outcomes() -> None:
    m = Metrics()
    m.attempt("omnisend", Outcome("delivered", 202), "delivered")
    m.attempt("omnisend", Outcome("retry", 503), "pending")
    m.attempt("omnisend", Outcome("retry", None, "timeout"), "dead")
    m.attempt("ometria", Outcome("dead", 400), "dead")
    m.attempt("omnisend", Outcome("deferred", None, retry_after=1.5), "pending")
    m.rate_limit_wait("omnisend", 0.5)
    m.rate_limit_wait("omnisend", 0.0)
    assert value(m, "bridge_deliveries_total", destination="omnisend", outcome="retry", status="503") == 1
    assert value(m, "bridge_deliveries_total", destination="omnisend", outcome="retry", status="none") == 1
    assert value(m, "bridge_delivery_retries_total", destination="omnisend") == 1
    assert value(m, "bridge_dead_letters_total", destination="omnisend") == 1
    assert value(m, "bridge_dead_letters_total", destination="ometria") == 1
    assert value(m, "bridge_rate_limit_waits_total", destination="omnisend") == 1
    assert value(m, "bridge_rate_limit_wait_seconds_total", destination="omnisend") == 0.5
    assert value(m, "bridge_rate_limit_deferred_total", destination="omnisend") == 1
    assert value(m, "bridge_deliveries_total", destination="omnisend", outcome="deferred", status="none") is None


def test_outbox_gauges_read_the_store(outbox: Outbox) -> None:
    for n in range(3):
        outbox.map(outbox.ingest(f"e{n}", at=NOW), [("omnisend", f"k{n}")], at=NOW - 100)
    outbox.deliver("omnisend", "dead", 400)
    outbox.map(outbox.ingest("p", at=NOW), [("omnisend", "kp")], at=NOW - 100)
    outbox.store.write_sync(lambda c: c.execute(
        "INSERT INTO destination_state (name, paused, reason) VALUES ('ometria', 1, 'credentials refused')"))
    m = Metrics()
    m.watch_store(outbox.store, ["omnisend", "ometria"])
    m._outbox.clock = lambda: NOW  # type: ignore[union-attr]
    assert value(m, "bridge_outbox_messages", destination="omnisend", state="dead") == 3
    assert value(m, "bridge_outbox_messages", destination="omnisend", state="pending") == 1
    assert value(m, "bridge_outbox_depth", destination="omnisend") == 1
    assert value(m, "bridge_outbox_depth", destination="ometria") == 0
    assert value(m, "bridge_outbox_oldest_pending_age_seconds", destination="omnisend") == 100
    assert value(m, "bridge_destination_paused", destination="ometria") == 1
    assert value(m, "bridge_destination_paused", destination="omnisend") == 0
    assert value(m, "bridge_outbox_scrape_ok") == 1


def test_unreadable_outbox_still_scrapes(outbox: Outbox) -> None:
    outbox.store.write_sync(lambda c: c.execute("DROP TABLE destination_state"))
    m = Metrics()
    m.watch_store(outbox.store)
    m.webhook("shopify", "orders/create", "accepted")
    assert value(m, "bridge_outbox_scrape_ok") == 0
    assert value(m, "bridge_webhooks_received_total", source="shopify", topic="orders/create", outcome="accepted") == 1


def test_route_and_instrumented_webhook_endpoint() -> None:
    m = Metrics()
    answers = {
        "ok": JSONResponse({"status": "accepted", "event_id": 1}),
        "dup": JSONResponse({"status": "duplicate", "event_id": 1}),
        "bad": JSONResponse({"error": "body is not valid JSON", "event_id": 2}, status_code=400),
        "sig": JSONResponse({"error": "bad signature"}, status_code=401),
        "big": JSONResponse({"error": "too large"}, status_code=413),
        "down": JSONResponse({"error": "retry later"}, status_code=503),
        "nope": JSONResponse({"error": "no source"}, status_code=404),
    }

    async def receive(request: Request) -> Response:
        kind = request.query_params["answer"]
        if kind in ("ok", "dup", "bad"):
            request.state.webhook_topic = "orders/paid"
        return answers[kind]

    app = Starlette(routes=[Route("/webhooks/{source}", instrumented(receive, m), methods=["POST"]), metrics_route(m)])
    with TestClient(app) as client:
        for kind in answers:
            client.post(f"/webhooks/shopify?answer={kind}")
        scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    got = {k[1] for k in samples(m) if k[0] == "bridge_webhooks_received_total"}
    assert {dict(labels)["outcome"] for labels in got} == {
        "accepted", "duplicate", "invalid_json", "rejected_signature", "too_large", "store_failed", "unknown_source"}
    assert value(m, "bridge_webhooks_received_total", source="shopify", topic="orders/paid", outcome="duplicate") == 1
    assert value(m, "bridge_webhooks_received_total", source="_unknown", topic="", outcome="unknown_source") == 1
    assert "bridge_webhooks_received_total" in scraped.text
