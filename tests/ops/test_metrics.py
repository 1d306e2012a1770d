"""Metrics: counters from the app and worker, outbox gauges read at scrape time, no personal data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from bridge.app import Bridge
from bridge.metrics import ACK_BUCKETS, Metrics, metrics_route
from bridge.model import Outcome
from bridge.settings import Settings, SourceSettings, secrets_from
from bridge.sign import shopify_headers
from bridge.store.sqlite.writer import execute
from bridge.webhooks import WebhookEndpoint

from .support import NOW, Outbox


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = asyncio.run(metrics.scrape()).decode()
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
    assert "jane" not in asyncio.run(m.scrape()).decode()
    assert value(m, "bridge_webhook_ack_seconds_count", source="shopify") == 2


def test_the_acknowledgement_histogram_reads_as_prometheus_clients_own() -> None:
    """Counted in plain integers on the hot path, exposed exactly as a prometheus_client Histogram would be."""
    m = Metrics()
    reference = CollectorRegistry()
    histogram = Histogram("bridge_webhook_ack_seconds", "x", ["source"], buckets=ACK_BUCKETS, registry=reference)
    observed = [0.0001, 0.002, 0.0020001, 0.01, 0.3, 5.0, 9.5, 0.004]  # on a bound, just past one, past the last
    for seconds in observed:
        m.webhook("shopify", "orders/create", "accepted", seconds)
        histogram.labels("shopify").observe(seconds)
    m.webhook("omneo", "profile.updated", "duplicate", 0.05)
    histogram.labels("omneo").observe(0.05)
    m.webhook("shopify", "orders/create", "rejected_signature", 0.001)  # not an acknowledgement: not timed

    def histogram_samples(registry_text: str) -> dict[Any, float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(registry_text) for s in family.samples
                if family.name == "bridge_webhook_ack_seconds" and not s.name.endswith("_created")}

    ours = histogram_samples(asyncio.run(m.scrape()).decode())
    assert ours == histogram_samples(generate_latest(reference).decode())
    assert ours[("bridge_webhook_ack_seconds_bucket", (("le", "0.002"), ("source", "shopify")))] == 2
    assert ours[("bridge_webhook_ack_seconds_count", (("source", "shopify"),))] == len(observed)


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
    outbox.store.write_sync(
        execute, "INSERT INTO destination_state (name, paused, reason) VALUES ('ometria', 1, 'credentials refused')")
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
    outbox.store.write_sync(execute, "DROP TABLE destination_state")
    m = Metrics()
    m.watch_store(outbox.store)
    m.webhook("shopify", "orders/create", "accepted")
    assert value(m, "bridge_outbox_scrape_ok") == 0
    assert value(m, "bridge_webhooks_received_total", source="shopify", topic="orders/create", outcome="accepted") == 1


def test_every_answer_of_the_webhook_endpoint_is_counted(tmp_path: Path) -> None:
    """The real endpoint on a real store: each answer under its outcome, the topic only once verified."""
    m = Metrics()
    secret = "shpss_metrics"
    settings = Settings(database_path=tmp_path / "b.db", max_body_bytes=2048, store_writer="thread",  # opened off the loop
                        sources={"shopify": SourceSettings("shopify", "shopify", secrets_from(secret))})
    bridge = Bridge.build(settings, rules=None, destinations={})
    app = Starlette(routes=[Route("/webhooks/{source}", WebhookEndpoint(bridge, m), methods=["POST"]), metrics_route(m)])
    body = b'{"id": 1}'
    signed = shopify_headers(body, secret, "orders/paid", event_id="e1")
    bridge.store.open_sync()
    try:
        with TestClient(app) as client:
            assert client.post("/webhooks/shopify", content=body, headers=signed).status_code == 200
            assert client.post("/webhooks/shopify", content=body, headers=signed).status_code == 200  # duplicate
            bad = b'{"id": '
            assert client.post("/webhooks/shopify", content=bad,
                               headers=shopify_headers(bad, secret, "orders/paid")).status_code == 400
            forged = shopify_headers(body, "wrong", "orders/forged")
            assert client.post("/webhooks/shopify", content=body, headers=forged).status_code == 401
            big = b" " * 4096
            assert client.post("/webhooks/shopify", content=big, headers=signed).status_code == 413
            assert client.post("/webhooks/jane@example.com", content=body).status_code == 404
            bridge.store.write_sync(execute, "DROP TABLE events")
            down = client.post("/webhooks/shopify", content=body, headers=shopify_headers(body, secret, "orders/paid"))
            assert down.status_code == 503
            scraped = client.get("/metrics")
    finally:
        bridge.store.close_sync()
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    counted = {dict(labels)["outcome"]: dict(labels) for name, labels in samples(m) if name == "bridge_webhooks_received_total"}
    assert set(counted) == {"accepted", "duplicate", "invalid_json", "rejected_signature", "too_large",
                            "store_failed", "unknown_source"}
    assert counted["duplicate"] == {"source": "shopify", "topic": "orders/paid", "outcome": "duplicate"}
    assert counted["rejected_signature"]["topic"] == ""  # a forged topic never becomes a label
    assert counted["unknown_source"]["source"] == "_unknown"
    assert value(m, "bridge_webhook_ack_seconds_count", source="shopify") == 3  # accepted, duplicate, invalid_json
    assert "jane" not in scraped.text and "forged" not in scraped.text


def test_backlog_gauges_count_the_events_to_map_and_the_time_to_drain(outbox: Outbox) -> None:
    for n in range(4):
        outbox.map(outbox.ingest(f"m{n}", at=NOW - 50), [("omnisend", f"k{n}")], at=NOW - 50)
    outbox.ingest("w1", at=NOW - 30)
    outbox.ingest("w2", at=NOW - 10)
    m = Metrics()
    m.watch_store(outbox.store, ["omnisend", "ometria"], {"omnisend": 2.0, "ometria": 0.0})
    m._outbox.clock = lambda: NOW  # type: ignore[union-attr]
    assert value(m, "bridge_events_unmapped") == 2
    assert value(m, "bridge_events_unmapped_oldest_age_seconds") == 30
    assert value(m, "bridge_backlog_drain_seconds", destination="omnisend") == 3.0  # (4 messages + 2 events) / 2 a second
    assert value(m, "bridge_backlog_drain_seconds", destination="ometria") is None  # not configured: no estimate


def test_the_event_loop_lag_and_the_workers_yield_are_exported() -> None:
    m = Metrics()
    m.watch_loop_lag(lambda: 0.012)
    m.worker_yielded(0.5)
    m.worker_yielded(0.0)
    assert value(m, "bridge_event_loop_lag_seconds") == 0.012
    assert value(m, "bridge_worker_yield_seconds_total") == 0.5
