"""Prometheus metrics on a dedicated registry, served at GET /metrics.

Counters and histograms are incremented where things happen (the app, the
worker, the destinations) through the small methods of `Metrics`. The outbox
gauges are read from the database at scrape time by `OutboxCollector`, so
they are right across processes (`bridge serve --no-worker` beside
`bridge worker`) and survive restarts; each query is a count off one of the
store's partial indexes (pending, in flight, dead), so a scrape stays cheap
however many delivered messages are kept. Delivered messages are counted by
`bridge_deliveries_total` instead.

Labels carry no personal data: source, topic, destination, outcome, status
code. A source name comes from the URL, so unknown ones are folded into one
label value: anyone can post to /webhooks/<anything>.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.model import Outcome
from bridge.ops.backlog import backlog
from bridge.store.base import Store, Unmapped

log = structlog.get_logger("bridge.metrics")

WEBHOOK_OUTCOMES = (
    "accepted", "duplicate", "ping", "rejected_signature", "too_large", "invalid_json", "unknown_source",
    "store_failed", "rejected_other", "error",
)
# Answers a provider counts as delivered: their latency is what its timeout (Shopify: 5 s) measures.
ACKNOWLEDGED = frozenset({"accepted", "duplicate", "invalid_json"})
UNVERIFIED = frozenset({"rejected_signature", "too_large", "unknown_source", "rejected_other", "error", "ping"})
UNKNOWN_SOURCE = "_unknown"
MAX_TOPIC = 80
ACK_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.webhooks = WebhookCollector()
        r.register(self.webhooks)
        self.deliveries = Counter("bridge_deliveries", "Delivery attempts per message, by outcome and HTTP status",
                                  ["destination", "outcome", "status"], registry=r)
        self.retries = Counter("bridge_delivery_retries", "Messages scheduled for another attempt",
                               ["destination"], registry=r)
        self.dead_letters = Counter("bridge_dead_letters", "Messages that became dead letters",
                                    ["destination"], registry=r)
        self.rate_limit_waits = Counter("bridge_rate_limit_waits", "Times a delivery waited for the rate limiter",
                                        ["destination"], registry=r)
        self.rate_limit_wait_seconds = Counter("bridge_rate_limit_wait_seconds", "Time spent waiting for the rate limiter",
                                               ["destination"], registry=r)
        self.rate_limit_deferred = Counter("bridge_rate_limit_deferred", "Messages handed back unsent by the rate "
                                           "limiter, due again after the wait", ["destination"], registry=r)
        self.mapping_failures = Counter("bridge_mapping_loop_failures", "Rounds of the map loop that failed, by cause",
                                        ["cause"], registry=r)
        self.mapping_stalled = Gauge("bridge_mapping_stalled_seconds", "How long the map loop has been failing, or "
                                     "mapping one batch (0 while it keeps up)", registry=r)
        self.echoes = Counter("bridge_omneo_echoes", "Omneo profile.updated webhooks recognised as the echo of the "
                              "bridge's own write (recorded, not mapped)", registry=r)
        self.worker_yield_seconds = Counter("bridge_worker_yield_seconds", "Time the map and delivery loops waited "
                                            "for the webhooks of their process (the event loop ran late)", registry=r)
        self.loop_lag = Gauge("bridge_event_loop_lag_seconds", "How late the event loop runs a timer, at its "
                              "recent peak (webhooks wait as long before they are read)", registry=r)
        self._outbox: OutboxCollector | None = None

    # -- called by the app ----------------------------------------------------

    def webhook(self, source: str, topic: str, outcome: str, seconds: float | None = None) -> None:
        if outcome not in WEBHOOK_OUTCOMES:
            outcome = "error"
        if outcome == "unknown_source":
            source = UNKNOWN_SOURCE
        # The topic is only trusted once the signature verified.
        if outcome in UNVERIFIED:
            topic = ""
        self.webhooks.count(source, topic[:MAX_TOPIC], outcome, seconds if outcome in ACKNOWLEDGED else None)

    # -- called by the worker and the destinations ----------------------------

    def attempt(self, destination: str, outcome: Outcome, state: str) -> None:
        """One message's attempt and what the retry policy made of it (`state`: delivered, pending, dead)."""
        if outcome.kind == "deferred":  # nothing was sent: not a delivery attempt
            self.rate_limit_deferred.labels(destination).inc()
            return
        status = str(outcome.status) if outcome.status is not None else "none"
        self.deliveries.labels(destination, outcome.kind, status).inc()
        if state == "pending" and outcome.kind == "retry":
            self.retries.labels(destination).inc()
        elif state == "dead":
            self.dead_letters.labels(destination).inc()

    def echo(self, count: int = 1) -> None:
        """Omneo webhooks that only echoed the bridge's own writes (bridge.echo)."""
        self.echoes.inc(count)

    def mapping_failure(self, cause: str) -> None:
        """A round of the map loop failed; `cause` is the exception's name (a bounded set of labels)."""
        self.mapping_failures.labels(cause[:MAX_TOPIC]).inc()

    def watch_mapping(self, stalled_seconds: Callable[[], float]) -> None:
        """Read the map loop's stall at scrape time (the worker of this process)."""
        self.mapping_stalled.set_function(stalled_seconds)

    def worker_yielded(self, seconds: float) -> None:
        if seconds > 0:
            self.worker_yield_seconds.inc(seconds)

    def watch_loop_lag(self, lag: Callable[[], float]) -> None:
        """Read the event loop's lag at scrape time (bridge.pressure)."""
        self.loop_lag.set_function(lag)

    def rate_limit_wait(self, destination: str, seconds: float) -> None:
        if seconds > 0:
            self.rate_limit_waits.labels(destination).inc()
            self.rate_limit_wait_seconds.labels(destination).inc(seconds)

    # -- the outbox, read at scrape time ---------------------------------------

    def watch_store(self, store: Store, destinations: Iterable[str] = (),
                    ceilings: Mapping[str, float] | None = None) -> None:
        """Report the outbox of `store`; again replaces the previous one. `ceilings`: records a second each
        destination delivers at most (0 for one that is not configured), for the expected time to drain."""
        if self._outbox is not None:
            self.registry.unregister(self._outbox)
        self._outbox = OutboxCollector(store, tuple(destinations), dict(ceilings or {}))
        self.registry.register(self._outbox)

    def exposition(self) -> bytes:
        """The registry as Prometheus text, with the outbox as last read (`scrape` reads it first)."""
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """Read the outbox from the store, then render: what GET /metrics answers."""
        if self._outbox is not None:
            await self._outbox.read()
        return await asyncio.to_thread(self.exposition)


class WebhookCollector(Collector):
    """bridge_webhooks_received_total and bridge_webhook_ack_seconds, kept in plain integers.

    They are counted for every request, on the event loop. prometheus_client's labelled
    counter and histogram take a lock and several calls each (~2 us a webhook on this kind
    of machine); here a webhook costs two dictionary lookups and two additions, and the
    families are built at scrape time. Only the event loop counts (`bridge serve` runs
    one), so no lock is needed; a scrape from another thread reads a consistent copy of
    each dictionary.
    """

    def __init__(self, buckets: Sequence[float] = ACK_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.received: dict[tuple[str, str, str], int] = {}  # (source, topic, outcome) -> count
        # source -> [count in each bucket (not cumulative), then above the last], and the sum
        self.ack: dict[str, list[int]] = {}
        self.ack_sum: dict[str, float] = {}

    def count(self, source: str, topic: str, outcome: str, seconds: float | None) -> None:
        key = (source, topic, outcome)
        self.received[key] = self.received.get(key, 0) + 1
        if seconds is None:
            return
        counts = self.ack.get(source)
        if counts is None:
            counts = self.ack[source] = [0] * (len(self.buckets) + 1)
            self.ack_sum[source] = 0.0
        counts[bisect.bisect_left(self.buckets, seconds)] += 1  # the first bucket whose bound is >= seconds
        self.ack_sum[source] += seconds

    def describe(self) -> list[Metric]:
        return []  # built at scrape time

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily("bridge_webhooks_received", "Webhooks received, by what the bridge answered",
                                       labels=["source", "topic", "outcome"])
        for key, n in list(self.received.items()):
            received.add_metric(list(key), n)
        ack = HistogramMetricFamily("bridge_webhook_ack_seconds", "Time to acknowledge a webhook (stored or duplicate)",
                                    labels=["source"])
        sums = dict(self.ack_sum)
        for source, counts in list(self.ack.items()):
            cumulative, running = [], 0
            for bound, n in zip([*map(floatToGoString, self.buckets), "+Inf"], list(counts)):
                running += n
                cumulative.append((bound, running))
            ack.add_metric([source], cumulative, sums.get(source, 0.0))
        yield from (received, ack)


@dataclass(frozen=True)
class OutboxReading:
    """What the outbox gauges show, read from the store before a scrape."""

    counts: dict[tuple[str, str], int]
    oldest: dict[str, float]
    paused: set[str]
    unmapped: Unmapped


class OutboxCollector(Collector):
    """The outbox gauges. `read` (async, on the loop that owns the store) takes the reading;
    `collect` (prometheus_client, in any thread) shows it."""

    def __init__(self, store: Store, destinations: Sequence[str] = (), ceilings: Mapping[str, float] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.destinations = tuple(destinations)
        self.ceilings = dict(ceilings or {})
        self.clock = clock
        self.reading: OutboxReading | None = None

    async def read(self) -> None:
        try:
            states = await self.store.destination_states()
            self.reading = OutboxReading(await self.store.open_counts(), await self.store.oldest_pending(),
                                         {name for name, state in states.items() if state["paused"]},
                                         await self.store.unmapped())
        except Exception as exc:  # a scrape must answer even when the store does not
            log.warning("metrics.outbox_unreadable", reason=str(exc))
            self.reading = None

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bridge_outbox_scrape_ok", "1 when the outbox could be read for this scrape")
        reading = self.reading
        if reading is None:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        counts, oldest, paused = reading.counts, reading.oldest, reading.paused
        now = self.clock()
        names = sorted({*self.destinations, *(d for d, _ in counts), *paused})
        messages = GaugeMetricFamily("bridge_outbox_messages", "Messages by destination and state (delivered ones: "
                                     "see bridge_deliveries_total)", labels=["destination", "state"])
        depth = GaugeMetricFamily("bridge_outbox_depth", "Messages waiting or in flight", labels=["destination"])
        age = GaugeMetricFamily("bridge_outbox_oldest_pending_age_seconds",
                                "Age of the oldest pending message (0 when none)", labels=["destination"])
        pause = GaugeMetricFamily("bridge_destination_paused", "1 while delivery to the destination is paused",
                                  labels=["destination"])
        for name in names:
            for state in ("pending", "inflight", "submitted", "dead"):
                messages.add_metric([name, state], counts.get((name, state), 0))
            depth.add_metric([name], counts.get((name, "pending"), 0) + counts.get((name, "inflight"), 0))
            age.add_metric([name], max(now - oldest[name], 0.0) if name in oldest else 0.0)
            pause.add_metric([name], 1 if name in paused else 0)
        yield from (messages, depth, age, pause)
        yield from self._backlog(reading, now)

    def _backlog(self, reading: OutboxReading, now: float) -> Iterator[Metric]:
        """The backlog's part that has no messages yet, and the expected time to drain (bridge/ops/backlog.py)."""
        ceilings = {name: self.ceilings.get(name, 0.0) for name in {*self.destinations, *self.ceilings}}
        found = backlog(now, reading.unmapped, reading.counts, reading.oldest, ceilings, reading.paused)
        waiting = GaugeMetricFamily("bridge_events_unmapped", "Events acknowledged and waiting to be mapped")
        waiting.add_metric([], found.events_waiting)
        oldest = GaugeMetricFamily("bridge_events_unmapped_oldest_age_seconds",
                                   "Age of the oldest event waiting to be mapped (0 when none)")
        oldest.add_metric([], found.oldest_event_age_seconds or 0.0)
        drain = GaugeMetricFamily("bridge_backlog_drain_seconds", "Expected seconds until the destination has "
                                  "delivered its waiting messages and the events still to map, at its rate limit "
                                  "(absent while paused or not configured)", labels=["destination"])
        for name, d in found.destinations.items():
            if d.drain_seconds is not None:
                drain.add_metric([name], d.drain_seconds)
        yield from (waiting, oldest, drain)


METRICS = Metrics()
"""The process's metrics: the app, the worker and the destinations record here."""


# -- HTTP ---------------------------------------------------------------------


def metrics_route(metrics: Metrics = METRICS, path: str = "/metrics") -> Route:
    async def endpoint(request: Request) -> Response:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    return Route(path, endpoint, methods=["GET"])
