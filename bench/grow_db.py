"""A store that has been running a while: 1,000,000 delivered and 100,000 waiting messages.

Built fast with executemany in one transaction on the product's own schema (its migrations,
bridge/store/migrations/sqlite/).
Shape, from the shipped rules (one Shopify order -> one Omnisend event + one Ometria order):
500,000 old events whose two messages were delivered (bodies pruned to NULL, as `bridge prune`
does after the retention window; dedupe keys kept), one attempt row per delivered message, and
50,000 recent events (bodies kept) whose two messages wait, due now. Records are the real mapped
records. The file lives outside the repository (BENCH_WORKDIR).

    python -m bench.grow_db [--delivered 1000000] [--waiting 100000] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

from bench.common import WORK, order_body, save
from bridge.store.sqlite.migrate import migrate
from bridge.store.sqlite.rows import pack_body
from bridge.store.sqlite.writer import PAGE_SIZE


def build(path: Path, delivered: int, waiting: int) -> dict[str, float]:
    from bench.mapping import hand_map, sample_event

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # the page size the bridge gives a new database
    conn.execute("PRAGMA journal_mode = OFF")  # one bulk transaction into a throw-away file
    conn.execute("PRAGMA synchronous = OFF")
    migrate(conn)
    event = sample_event()
    omnisend, ometria = hand_map(event)
    records = {"omnisend": json.dumps(omnisend.record, separators=(",", ":")),
               "ometria": json.dumps(ometria.record, separators=(",", ":"))}
    kinds = {"omnisend": ("event", "create"), "ometria": ("order", "upsert")}
    headers = json.dumps(dict(event.headers))
    body, codec = pack_body(order_body())  # as the writer stores it
    now = time.time()
    old_events, new_events = delivered // 2, waiting // 2
    conn.execute("BEGIN")

    def events(start: int, count: int, age: float, status: str, with_body: bool):
        for i in range(start, start + count):
            yield (i, "shopify", "orders/create", f"grow.myshopify.com:event:grow-{i}", now - age + i * 0.01,
                   headers, body if with_body else None, codec if with_body else None, status,
                   '["Shopify order placed"]', now - age + i * 0.01)

    sql_event = ("INSERT INTO events (id, source, topic, dedupe_key, received_at, headers, body, body_codec, status,"
                 " rules, mapped_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    conn.executemany(sql_event, events(1, old_events, 30 * 86400, "mapped", False))
    conn.executemany(sql_event, events(old_events + 1, new_events, 3600, "mapped", True))

    def messages(first_event: int, count: int, state: str):
        for e in range(first_event, first_event + count):
            for dest in ("omnisend", "ometria"):
                kind, action = kinds[dest]
                yield (e, dest, kind, action, "Shopify order placed", f"order:{e}", f"grow-{e}-{dest}",
                       records[dest], state, 1 if state == "delivered" else 0, now, now, now,
                       202 if state == "delivered" else None)

    sql_msg = ("INSERT INTO messages (event_id, destination, kind, action, rule, ordering_key, idempotency_key,"
               " record, state, attempts, next_at, created_at, updated_at, last_status) VALUES"
               " (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    conn.executemany(sql_msg, messages(1, old_events, "delivered"))
    conn.executemany(sql_msg, messages(old_events + 1, new_events, "pending"))
    conn.execute("INSERT INTO attempts (message_id, at, outcome, status, detail) SELECT id, updated_at, 'delivered',"
                 " 202, '' FROM messages WHERE state = 'delivered'")
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")  # as the bridge leaves its file
    counts = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
    conn.close()
    return {"seconds": round(time.perf_counter() - t0, 1), "bytes": path.stat().st_size,
            "events": old_events + new_events, **{f"messages_{k}": v for k, v in counts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delivered", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=WORK / "grown.db")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = build(args.out, args.delivered, args.waiting)
    save("grow_db", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
