"""The console's reads on a grown store: the overview and event searches with 1,000,000 delivered messages.

Uses bench.grow_db's SQLite file (1,000,000 delivered messages of 500,000 old events, 100,000 waiting
messages of 50,000 recent events), adds what the console reads and grow_db does not write: one
lookup row per e-mail and order number of each event (distinct customers), and a log of 1,000 actions.
Then it times the console's pages through the real app (sign-in, templates, the store) in-process:
each page once to warm up, then the median and the slowest of ROUNDS.

Two shapes of the same store: `aged` (the delivered messages a month old, as grow_db makes them), and
`recent` (their delivery times spread over the last 24 hours: the charts and "delivered in the last
hour" then read every one of them, the worst case for the overview).

    python -m bench.console [--db PATH] [--rounds 7]
    python -m bench.console --database-url postgresql://... [--rounds 7]

On PostgreSQL (an empty database of its own: its tables are filled here) the same shape is made with
generate_series: 500,000 old events with two delivered messages each, 50,000 recent ones with two
waiting messages each, their lookup rows and 1,000 actions (no attempt rows: no page timed reads them).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import WORK, save
from bridge.log import fingerprint

ROUNDS = 7
TOKEN = "bench-console-operator-token"
PAGES = {
    "overview": "/console/",
    "overview_fragment": "/console/overview/fragment",
    "events_all": "/console/events",
    "events_by_email": "/console/events?q=customer-123456%40example.com",
    "events_by_order": "/console/events?q=%23123456",
    "events_by_source_topic": "/console/events?source=shopify&topic=orders%2Fcreate",
    "events_by_status": "/console/events?status=mapped",
    "events_last_hour": "/console/events?since=1h",
    "events_page_100": "/console/events?offset=5000",
    "dead": "/console/dead",
}


def prepare(path: Path, shape: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        if not conn.execute("SELECT EXISTS (SELECT 1 FROM event_lookup)").fetchone()[0]:
            rows = ((fingerprint(v), i) for (i,) in conn.execute("SELECT id FROM events").fetchall()
                    for v in (f"customer-{i}@example.com", str(i)))
            conn.executemany("INSERT INTO event_lookup (fingerprint, event_id) VALUES (?, ?)", rows)
            conn.executemany("INSERT INTO console_actions (at, actor, role, action, target, detail) VALUES"
                             " (?, 'bench', 'operator', 'retry_dead', 'every dead letter', '0 retried')",
                             [(time.time() - n,) for n in range(1000)])
        now = time.time()
        if shape == "recent":
            conn.execute("UPDATE messages SET updated_at = ? - (id % 86400) WHERE state = 'delivered'", (now,))
        else:
            conn.execute("UPDATE messages SET updated_at = ? - 30 * 86400 WHERE state = 'delivered'", (now,))
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


PG_FILL = [
    """INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, status, rules, mapped_at)
       SELECT 'shopify', 'orders/create', 'grow-' || g,
              CASE WHEN g <= 500000 THEN %(now)s - 30 * 86400 + g * 0.01 ELSE %(now)s - 3600 + (g - 500000) * 0.01 END,
              '{}', CASE WHEN g > 500000 THEN '{}'::bytea END, 'mapped', '["Shopify order placed"]', %(now)s
       FROM generate_series(1, 550000) AS g""",
    """INSERT INTO messages (event_id, destination, kind, action, rule, ordering_key, idempotency_key, record, state,
                            attempts, next_at, created_at, updated_at, last_status)
       SELECT e.id, d, 'event', 'create', 'Shopify order placed', 'order:' || e.id, 'grow-' || e.id || '-' || d,
              '{"n": 1}', CASE WHEN e.id <= 500000 THEN 'delivered' ELSE 'pending' END, 1, %(now)s, %(now)s,
              %(now)s - 30 * 86400, 202
       FROM events AS e, unnest(ARRAY['omnisend', 'ometria']) AS d ORDER BY e.id, d""",
    """INSERT INTO event_lookup (fingerprint, event_id)
       SELECT 'h:' || left(encode(sha256(convert_to(v, 'UTF8')), 'hex'), 10), e.id
       FROM events AS e, LATERAL (VALUES ('customer-' || e.id || '@example.com'), (e.id::text)) AS l(v)""",
    """INSERT INTO console_actions (at, actor, role, action, target, detail)
       SELECT %(now)s - g, 'bench', 'operator', 'retry_dead', 'every dead letter', '0 retried'
       FROM generate_series(1, 1000) AS g""",
]


def prepare_postgres(url: str, shape: str) -> None:
    import asyncio

    import psycopg

    from bridge.store.postgres.migrate import migrate

    asyncio.run(migrate(url))
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:  # type: ignore[index]
            for sql in PG_FILL:
                conn.execute(sql, {"now": now})
        if shape == "recent":
            conn.execute("UPDATE messages SET updated_at = %s - (id %% 86400) WHERE state = 'delivered'", (now,))
        else:
            conn.execute("UPDATE messages SET updated_at = %s - 30 * 86400 WHERE state = 'delivered'", (now,))
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load: index-only scans need it


def measure(path: Path, rounds: int, url: str = "") -> dict[str, Any]:
    from starlette.testclient import TestClient

    from bridge.access import tokens_from_env
    from bridge.app import create_app
    from bridge.settings import Settings

    settings = Settings(database_path=path, database_url=url, store_writer="thread", mapping="thread",
                        last_good_rules="off", console_tokens=tokens_from_env(f"bench:operator:{TOKEN}"))
    results: dict[str, Any] = {}
    with TestClient(create_app(settings, run_worker=False)) as client:
        assert client.post("/console/sign-in", data={"token": TOKEN}, follow_redirects=False).status_code == 303
        for name, url in PAGES.items():
            assert client.get(url).status_code == 200, url  # warm: the first read of each index
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                answer = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                assert answer.status_code == 200
            results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, default=WORK / "grown.db", help="a file bench.grow_db built")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database to fill and time instead")
    args = parser.parse_args()
    if args.database_url:
        report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "backend": "postgres", "rounds": args.rounds}
        for shape in ("aged", "recent"):
            prepare_postgres(args.database_url, shape)
            report[shape] = measure(WORK / "unused.db", args.rounds, args.database_url)
            print(shape, json.dumps(report[shape], indent=1))
        save("console-postgres", report)
        return
    conn = sqlite3.connect(args.db)
    counts = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
    conn.close()
    from bridge.store.sqlite.migrate import migrate
    from bridge.store.sqlite.writer import connect

    migrated = connect(args.db)
    migrate(migrated)  # the console's migration on a file grow_db built before it
    migrated.close()
    report = {"date": time.strftime("%Y-%m-%d"), "backend": "sqlite", "messages": counts, "rounds": args.rounds}
    for shape in ("aged", "recent"):
        prepare(args.db, shape)
        report[shape] = measure(args.db, args.rounds)
        print(shape, json.dumps(report[shape], indent=1))
    save("console", report)


if __name__ == "__main__":
    main()
