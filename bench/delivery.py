"""Delivery against the rate-limit ceiling: N Shopify orders through the bridge into the fake APIs.

1. Preload: N distinct signed orders/create webhooks are verified by the real Shopify source and
   committed through the real store API (SQLiteStore.ingest, group commit) into a fresh database.
2. Drain: `bridge serve` with its worker starts on that database against the fakes at their
   default limits (Omnisend 400 requests/min sliding window, Ometria 8 requests/s, 100 records a
   request). The fakes run in this process so their request logs can be read directly. The run
   stops when both fakes hold N records or at the deadline.
3. Check: every message the outbox marks delivered is in the fake exactly once; nothing missing,
   nothing twice.

    python -m bench.delivery [--orders 10000] [--deadline 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import OMETRIA_KEY, OMNISEND_KEY, SHOPIFY_SECRET, WORK, bridge_server, order_body, save
from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread
from bridge.settings import Secret, SourceSettings
from bridge.sign import shopify_headers
from bridge.sources.shopify import ShopifySource
from bridge.store import make_store

OMNISEND_PER_MIN = 400
OMETRIA_PER_S = 8
RECORDS_PER_REQUEST = 100


async def preload(db: Path | str, orders: int) -> float:
    """N distinct signed orders through the real verifier and the store's ingest, into a SQLite file or a
    database URL."""
    source = ShopifySource.from_settings(SourceSettings("shopify", "shopify", (Secret(SHOPIFY_SECRET),)))
    store = make_store(db, process=False)
    await store.open()
    t0 = time.perf_counter()
    try:
        for start in range(0, orders, 1000):
            hooks = []
            for i in range(start, min(orders, start + 1000)):
                body = order_body(order_id=6_000_000_000_000 + i, email=f"bench.customer{i}@example.com")
                hooks.append(source.verify(shopify_headers(body, SHOPIFY_SECRET, "orders/create",
                                                           event_id=f"delivery-{i}"), body))
            for part in range(0, len(hooks), 200):  # 1,000 at once waited over 3 s for PostgreSQL's pool
                await asyncio.gather(*(store.ingest(h) for h in hooks[part:part + 200]))
    finally:
        await store.close()
    return time.perf_counter() - t0


def omnisend_records(fake: Any) -> list[str]:
    with fake.lock:
        return [str(e.get("eventID")) for e in fake.events]


def ometria_records(fake: Any) -> list[str]:
    """Every record id in every accepted push (the fake's own store upserts, so read the log)."""
    with fake.lock:
        requests = list(fake.requests)
    return [str(r["id"]) for q in requests if q.path == "/v2/push" and q.status and q.status < 300
            for r in (q.body or [])]


def max_in_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def spans(times: list[float], limit: int) -> dict[str, float] | None:
    """The time `limit + 1` consecutive requests span: at least the window means no window held more than
    `limit`. Its median is the schedule's spacing; median - min is how much closer than that the
    requests came (timers, busy loops, the way to the server): what the limiter's slack must cover."""
    if len(times) <= limit:
        return None
    gaps = sorted(b - a for a, b in zip(times, times[limit:]))
    return {"min_s": round(gaps[0], 4), "median_s": round(gaps[len(gaps) // 2], 4),
            "closer_than_median_s": round(gaps[len(gaps) // 2] - gaps[0], 4)}


def summarise(name: str, fake: Any, ids: list[str], t_start: float, outbox: dict[str, str],
              ceiling_rps: float, window: float, limit: int) -> dict[str, Any]:
    with fake.lock:
        requests = list(fake.requests)
    sent = [q for q in requests if not q.path.startswith("/_fake")]
    times = sorted(q.at for q in sent)
    by_path = Counter(("GET " if q.method == "GET" else "") + q.path.split("/")[1] + "/" + q.path.split("/")[2]
                      + ("/{id}" if q.method == "GET" else "") + ("/items" if q.path.endswith("/items") else "")
                      for q in sent)
    record_times = sorted(q.at for q in sent if q.method != "GET" and q.status and q.status < 300)
    first, last = (times[0], record_times[-1]) if record_times else (t_start, t_start)
    counts = Counter(ids)
    delivered_keys = {k for k, state in outbox.items() if state == "delivered"}
    window_s = max(last - first, 1e-9)
    # Requests spent while records were flowing; Omnisend's batch follow-ups wait for an idle
    # destination, so they come after the burst and are reported apart.
    during = [q for q in sent if q.at <= last]
    records_per_request = len(ids) / len(during) if during else 0.0
    return {
        "records_received": len(ids),
        "distinct_records": len(counts),
        "duplicates": sum(c - 1 for c in counts.values() if c > 1),
        "outbox_messages": len(outbox),
        "outbox_states": dict(Counter(outbox.values())),
        "lost": len(delivered_keys - set(counts)),
        "not_marked_delivered": len(set(counts) - delivered_keys),
        "requests": len(sent),
        "requests_during_burst": len(during),
        "requests_after_burst": len(sent) - len(during),
        "requests_by_kind": dict(by_path),
        "status_429": sum(1 for q in sent if q.status == 429),
        "max_requests_in_any_window": max_in_window(times, window),
        "span_of_limit_plus_one_requests": spans(times, limit),
        "window_limit": limit,
        "window_seconds": window,
        "records_per_request": round(records_per_request, 2),
        "first_request_s": round(first - t_start, 3),
        "last_record_s": round(last - t_start, 3),
        "records_per_second": round(len(counts) / window_s, 1),
        "ceiling_records_per_second": ceiling_rps,
        "fraction_of_ceiling": round(len(counts) / window_s / ceiling_rps, 3),
        # Once the limit binds, the rate is (allowed requests/s) x (records per request).
        "sustained_fraction_of_ceiling": round(records_per_request / RECORDS_PER_REQUEST, 3),
    }


def summarise_both(omnisend: Any, ometria: Any, t_start: float,
                   message_rows: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """Both fakes against the outbox's (destination, idempotency key, state, record) rows."""
    outbox: dict[str, dict[str, str]] = {"omnisend": {}, "ometria": {}}
    order_ids: dict[str, str] = {}
    for dest, key, state, record in message_rows:
        outbox.setdefault(dest, {})[key] = state
        if dest == "ometria":  # Ometria orders are keyed by the order id, not the idempotency key
            order_ids[str(json.loads(record)["id"])] = key
    ometria_ids = [order_ids.get(i, f"unknown:{i}") for i in ometria_records(ometria.state.fake)]
    return {
        "omnisend": summarise("omnisend", omnisend.state.fake, omnisend_records(omnisend.state.fake), t_start,
                              outbox["omnisend"], OMNISEND_PER_MIN / 60 * RECORDS_PER_REQUEST, 60.0, OMNISEND_PER_MIN),
        "ometria": summarise("ometria", ometria.state.fake, ometria_ids, t_start, outbox["ometria"],
                             OMETRIA_PER_S * RECORDS_PER_REQUEST, 1.0, OMETRIA_PER_S),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the bridge's processes")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "delivery.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    preload_s = asyncio.run(preload(db, args.orders))
    print(f"preloaded {args.orders} webhooks in {preload_s:.1f} s", flush=True)

    omnisend = create_omnisend_app(OMNISEND_KEY)  # 400/min, the fake's default batch processing time
    ometria = create_ometria_app(OMETRIA_KEY)  # 8/s
    result: dict[str, Any] = {"orders": args.orders, "preload_seconds": round(preload_s, 2)}
    with serve_in_thread(omnisend) as omnisend_url, serve_in_thread(ometria) as ometria_url:
        env = {"OMNISEND_API_KEY": OMNISEND_KEY, "OMNISEND_BASE_URL": omnisend_url,
               "OMETRIA_API_KEY": OMETRIA_KEY, "OMETRIA_BASE_URL": ometria_url}
        env.update(kv.split("=", 1) for kv in args.env)
        result["env"] = dict(kv.split("=", 1) for kv in args.env)
        log = WORK / "delivery-bridge.log"
        log.unlink(missing_ok=True)
        t_start = time.monotonic()
        bridge = bridge_server(db, log, worker=True, env=env).start()
        result["startup_s"] = round(time.monotonic() - t_start, 3)
        timeline = []
        try:
            deadline = t_start + args.deadline
            while time.monotonic() < deadline:
                a, b = len(set(omnisend_records(omnisend.state.fake))), len(set(ometria_records(ometria.state.fake)))
                timeline.append((round(time.monotonic() - t_start, 1), a, b))
                if a >= args.orders and b >= args.orders:
                    break
                time.sleep(0.5)
            result["timed_out"] = time.monotonic() >= deadline
            # let the last completions commit and the batch results be read back
            settle = time.monotonic() + 60
            while time.monotonic() < settle:
                with sqlite3.connect(db) as conn:
                    open_count = conn.execute("SELECT count(*) FROM messages WHERE state IN"
                                              " ('pending', 'inflight', 'submitted')").fetchone()[0]
                if open_count == 0:
                    break
                time.sleep(0.5)
            result["settled_s"] = round(time.monotonic() - t_start, 1)
            result["bridge_peak_rss_kb"] = bridge.peak_rss_kb()
        finally:
            bridge.stop()
        with sqlite3.connect(db) as conn:
            message_rows = conn.execute("SELECT destination, idempotency_key, state, record FROM messages").fetchall()
            result["events_by_status"] = dict(conn.execute("SELECT status, count(*) FROM events GROUP BY status").fetchall())
        result.update(summarise_both(omnisend, ometria, t_start, message_rows))
        result["timeline_s_omnisend_ometria"] = timeline[:: max(1, len(timeline) // 40)]
    save("delivery", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
