"""The two store backends side by side: ingest with 1 and 2 web processes, and delivery with 2 workers.

Ingest: for SQLite (a file) and PostgreSQL (a fresh database on BENCH_PG_URL's server), 1 and then 2
`bridge serve --no-worker` processes on one database, loaded at once by one wrk each (the same
total connections, split between them), in turns, `rounds` times. Reported: 2xx answers a second
summed over the processes, the worst p99, and events committed against 200s (nothing acknowledged
may be missing).

Growth: the same store as bench/grow_db.py (1,000,000 delivered messages with their attempts, 100,000
waiting) made in a PostgreSQL database with SQL; then, in turns, a store holding only the waiting
messages and the grown one are each loaded by wrk through one `bridge serve --no-worker`, and their
waiting messages claimed and completed through the store interface (the delivery path without HTTP).
The medians are compared: every figure within 10% is the target.

Delivery: N orders preloaded through the store interface into a fresh PostgreSQL database, then
one `bridge serve --no-worker` and two `bridge worker` processes drain them into the fakes at their
default limits: the two workers share each destination's budget. Reported as bench/delivery.py
reports one worker on SQLite: fraction of the ceiling, 429s, the most requests in any window, lost
and duplicated records.

    python -m bench.backends [ingest|delivery|growth|all] [--seconds 8] [--rounds 3] [--connections 64] [--orders 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import (
    OMETRIA_KEY,
    OMNISEND_KEY,
    PYTHON,
    ROOT,
    SHOPIFY_SECRET,
    WORK,
    Server,
    bridge_server,
    cpu_seconds,
    machine,
    order_body,
    save,
)
from bench.delivery import OMETRIA_PER_S, OMNISEND_PER_MIN, ometria_records, omnisend_records, preload, summarise_both
from bench.ingest import write_request_files, wrk
from bridge.config import settings_from_env

PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# -- databases ------------------------------------------------------------------------------------


@contextmanager
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on BENCH_PG_URL's server for one run, dropped after it."""
    import psycopg

    name = f"bridge_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(label: str) -> Iterator[str]:
    db = WORK / f"{label}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    try:
        yield f"sqlite:///{db}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read of the bridge's tables, on either backend (the benchmark checks what was stored)."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql).fetchall())
    import psycopg

    with psycopg.connect(url) as conn:
        return list(conn.execute(sql).fetchall())


def count_events(url: str) -> int:
    return int(rows(url, "SELECT count(*) FROM events")[0][0])


# -- ingest ---------------------------------------------------------------------------------------


def web(url: str, label: str, index: int) -> Server:
    return bridge_server(url, WORK / f"{label}-web{index}.log", worker=False)


def wrk_all(servers: list[Server], seconds: float, connections: int, files: dict[str, str]) -> dict[str, Any]:
    """One wrk a server, at once, the connections split between them."""
    each = max(1, connections // len(servers))
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(pool.map(lambda s: wrk(s.url, seconds, each, files), servers))
    ok = sum(r["ok"] for r in results)
    seconds_run = max(r["duration_us"] for r in results) / 1e6
    return {"ok": ok, "rps": round(ok / seconds_run, 1), "p99_ms": max(r["p99_ms"] for r in results),
            "non_2xx": sum(r["non_2xx"] for r in results), "per_process_rps": [r["rps"] for r in results],
            "connections_each": each}


def ingest(seconds: float, rounds: int, connections: int) -> dict[str, Any]:
    files = write_request_files()
    setups = [(backend, webs) for backend in ("sqlite", "postgres") for webs in (1, 2)]
    runs: dict[str, list[dict[str, Any]]] = {f"{b}-{w}": [] for b, w in setups}
    for _ in range(rounds):  # in turns, so a slow minute of the machine falls on every setup
        for backend, webs in setups:
            name = f"{backend}-{webs}"
            database = pg_database() if backend == "postgres" else sqlite_database(f"backends-{name}")
            with database as url:
                servers = [web(url, f"backends-{name}", i).start() for i in range(webs)]
                try:
                    wrk_all(servers, 2, connections, files)  # warm-up
                    before = count_events(url)
                    run = wrk_all(servers, seconds, connections, files)
                    time.sleep(0.5)  # requests wrk abandoned at its deadline finish committing
                    run["events_committed"] = count_events(url) - before
                    run["committed_minus_200"] = run["events_committed"] - run["ok"]
                    runs[name].append(run)
                finally:
                    for server in servers:
                        server.stop()
    medians = {name: sorted(r, key=lambda x: x["rps"])[len(r) // 2] for name, r in runs.items()}
    return {"seconds": seconds, "rounds": rounds, "connections": connections,
            "body_bytes": int(files["body_bytes"]), "median": medians,
            "runs": {name: [x["rps"] for x in r] for name, r in runs.items()}}


# -- delivery -------------------------------------------------------------------------------------


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OMNISEND_", "OMETRIA_", "SHOPIFY_"))}
    full.update(env)
    with log.open("ab") as out:
        return subprocess.Popen([PYTHON, "-m", "bridge", "worker"], cwd=ROOT, env=full, stdout=out,
                                stderr=subprocess.STDOUT)


async def map_all(url: str) -> float:
    """Map every waiting event through the store as a worker does, before any worker starts; seconds taken."""
    import structlog

    from bridge.mapping.areas import allowed_from_settings
    from bridge.mapping.loader import load_rules
    from bridge.settings import Settings
    from bridge.store import make_store
    from bridge.worker import Worker

    class Rules:
        current = load_rules(ROOT / "mappings", allowed_from_settings(settings_from_env({})))

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # the worker's info lines
    store = make_store(url, process=False)
    await store.open()
    t0 = time.perf_counter()
    try:
        worker = Worker(Settings(mapping="thread"), store, Rules(), {})
        while await worker.map_once():
            pass
    finally:
        await store.close()
    return time.perf_counter() - t0


def delivery(orders: int, deadline: float, workers: int, premapped: bool = False, nice: int | None = None) -> dict[str, Any]:
    """Two workers drain `orders` preloaded events into the fakes; with `premapped` the events are mapped
    before they start, so the drain measures the delivery path and the shared budget alone. `nice`: the
    workers' and their mapping processes' OS priority instead of the default."""
    from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread

    result: dict[str, Any] = {"orders": orders, "workers": workers, "backend": "postgres", "premapped": premapped,
                              "worker_nice": nice}
    with pg_database() as url:
        result["preload_seconds"] = round(asyncio.run(preload(url, orders)), 2)
        if premapped:
            result["premap_seconds"] = round(asyncio.run(map_all(url)), 2)
        omnisend = create_omnisend_app(OMNISEND_KEY)
        ometria = create_ometria_app(OMETRIA_KEY)
        with serve_in_thread(omnisend) as omnisend_url, serve_in_thread(ometria) as ometria_url:
            env = {"OMNISEND_API_KEY": OMNISEND_KEY, "OMNISEND_BASE_URL": omnisend_url,
                   "OMETRIA_API_KEY": OMETRIA_KEY, "OMETRIA_BASE_URL": ometria_url,
                   "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET, "BRIDGE_DATABASE_URL": url,
                   "BRIDGE_MAPPINGS_DIR": str(ROOT / "mappings"), "BRIDGE_LOG_FORMAT": "json"}
            if nice is not None:
                env |= {"BRIDGE_WORKER_NICE": str(nice), "BRIDGE_MAPPING_NICE": str(nice)}
            t_start = time.monotonic()
            server = web(url, "backends-delivery", 0)
            server.env.update(env)
            server.start()
            logs = [WORK / f"backends-delivery-worker{i}.log" for i in range(workers)]
            for log in logs:
                log.unlink(missing_ok=True)
            procs = [start_worker(env, log) for log in logs]
            timeline = []
            roots = [p.pid for p in procs] + ([server.proc.pid] if server.proc else [])
            database = url.rsplit("/", 1)[1]
            cpu_first: dict[str, float] | None = None
            try:
                end = t_start + deadline
                while time.monotonic() < end:
                    a = len(set(omnisend_records(omnisend.state.fake)))
                    b = len(set(ometria_records(ometria.state.fake)))
                    timeline.append((round(time.monotonic() - t_start, 1), a, b))
                    if cpu_first is None and a + b:
                        cpu_first, first_records = cpu_seconds(roots, database), a + b
                    if a >= orders and b >= orders:
                        break
                    time.sleep(0.5)
                result["timed_out"] = time.monotonic() >= end
                result["load_average_at_end"] = round(os.getloadavg()[0], 1)  # what else ran on the machine
                if cpu_first is not None:  # from the first records received to the last: the drain's CPU
                    cpu_last = cpu_seconds(roots, database)
                    drained = (a + b - first_records) / 2
                    result["cpu_ms_per_order"] = {k: round((cpu_last[k] - cpu_first[k]) * 1000 / max(drained, 1), 3)
                                                  for k in cpu_last}
                settle = time.monotonic() + 60
                while time.monotonic() < settle:
                    if rows(url, "SELECT count(*) FROM messages WHERE state IN ('pending', 'inflight', 'submitted')")[0][0] == 0:
                        break
                    time.sleep(0.5)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(30)
                server.stop()
            result["shared_late_sends"] = late_sends(logs)
            result.update(summarise_both(omnisend, ometria, t_start, rows(
                url, "SELECT destination, idempotency_key, state, record FROM messages")))
            for name, fake, limit, window in (("omnisend", omnisend, OMNISEND_PER_MIN, 60.0),
                                              ("ometria", ometria, OMETRIA_PER_S, 1.0)):
                result[name]["time_split"] = where_time_went(fake.state.fake, limit, window)
            result["timeline_s_omnisend_ometria"] = timeline[:: max(1, len(timeline) // 40)]
    return result


def late_sends(logs: list[Path]) -> dict[str, int]:
    """Requests late enough to their shared slot to hold a later slot back, by limit ("8/1.0 s": Ometria)."""
    late: dict[str, int] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"rate_limit.late"' in line:
                entry = json.loads(line)
                name = f"{entry['limit']}/{entry['window']} s"
                late[name] = late.get(name, 0) + 1
    return late


def where_time_went(fake: Any, limit: int, window: float) -> dict[str, float]:
    """From a destination's first request to its last: the time the shared schedule's spacing accounts for
    (its slack included), and the rest: slots held back after late requests, and slots no worker was
    ready to take (CPU, or the work between two requests)."""
    from bridge.destinations.ratelimit import RateLimiter

    with fake.lock:
        times = sorted(q.at for q in fake.requests if not q.path.startswith("/_fake"))
    if len(times) < 2:
        return {}
    rate = RateLimiter(limit, window).shared_rate
    span, schedule = times[-1] - times[0], (len(times) - 1) / rate
    return {"span_s": round(span, 3), "schedule_s": round(schedule, 3), "beyond_schedule_s": round(span - schedule, 3),
            "schedule_fraction_of_limit": round(rate * window / limit, 3)}


# -- growth ---------------------------------------------------------------------------------------


def fill(url: str, delivered: int, waiting: int) -> dict[str, Any]:
    """The shape of bench/grow_db.py in PostgreSQL: old events (bodies pruned) whose two messages were
    delivered, one attempt each, and recent events whose two messages wait, due now, each in its lane."""
    import psycopg

    from bench.mapping import hand_map, sample_event
    from bridge.store.sqlite.rows import pack_body

    asyncio.run(migrate(url))
    event = sample_event()
    omnisend, ometria = hand_map(event)
    body, codec = pack_body(order_body())
    now = time.time()
    old, new = delivered // 2, waiting // 2
    params = {"now": now, "headers": json.dumps(dict(event.headers)), "body": body, "codec": codec,
              "omnisend": json.dumps(omnisend.record, separators=(",", ":")),
              "ometria": json.dumps(ometria.record, separators=(",", ":")), "old": old, "new": new}
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, body_codec, status, rules, mapped_at)"
            " SELECT 'shopify', 'orders/create', 'grow.myshopify.com:event:grow-' || i, %(now)s - 30 * 86400 + i * 0.01,"
            " %(headers)s, NULL, NULL, 'mapped', '[\"Shopify order placed\"]', %(now)s - 30 * 86400 + i * 0.01"
            " FROM generate_series(1, %(old)s::bigint) AS i", params)
        conn.execute(
            "INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, body_codec, status, rules, mapped_at)"
            " SELECT 'shopify', 'orders/create', 'grow.myshopify.com:event:new-' || i, %(now)s - 3600 + i * 0.01,"
            " %(headers)s, %(body)s, %(codec)s, 'mapped', '[\"Shopify order placed\"]', %(now)s - 3600 + i * 0.01"
            " FROM generate_series(1, %(new)s::bigint) AS i", params)
        for state, first, count in (("delivered", 1, old), ("pending", old + 1, new)):
            conn.execute(
                "INSERT INTO messages (event_id, destination, kind, action, rule, ordering_key, idempotency_key, record,"
                " state, attempts, next_at, created_at, updated_at, last_status)"
                " SELECT e, d.dest, d.kind, d.action, 'Shopify order placed', 'order:' || e, 'grow-' || e || '-' || d.dest,"
                " d.record, %(state)s, %(attempts)s, %(now)s, %(now)s, %(now)s, %(status)s::integer"
                " FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS e CROSS JOIN (VALUES ('omnisend', 'event', 'create', %(omnisend)s),"
                " ('ometria', 'order', 'upsert', %(ometria)s)) AS d(dest, kind, action, record) ORDER BY e, d.dest",
                {**params, "state": state, "attempts": 1 if state == "delivered" else 0,
                 "status": 202 if state == "delivered" else None, "first": first, "last": first + count - 1})
        conn.execute("INSERT INTO lanes (destination, ordering_key, ready_at) SELECT destination, ordering_key, min(next_at)"
                     " FROM messages WHERE state = 'pending' GROUP BY destination, ordering_key")
        conn.execute("INSERT INTO attempts (message_id, at, outcome, status, detail) SELECT id, updated_at, 'delivered',"
                     " 202, '' FROM messages WHERE state = 'delivered'")
        conn.execute("VACUUM ANALYZE")
        counts: dict[str, int] = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall())
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return {"seconds": round(time.perf_counter() - t0, 1), "bytes": int(size[0]) if size else 0,
            **{f"messages_{k}": v for k, v in counts.items()}}


async def migrate(url: str) -> None:
    from bridge.store import make_store

    store = make_store(url, process=False)
    await store.open()
    await store.close()


async def claim_rate(url: str, seconds: float, most: int = 20_000) -> float:
    """Waiting messages claimed 100 at a time and completed as delivered, through the store, a second.
    At most `most`, so that the grown store keeps waiting messages for every round."""
    from bridge.model import Decision, Outcome
    from bridge.store import make_store

    store = make_store(url, process=False)
    await store.open()
    done, t0 = 0, time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds and done < most:
            for destination in ("omnisend", "ometria"):
                claimed = await store.claim(destination, 100, 60, time.time())
                await store.complete([(m, Outcome("delivered", 202), Decision("delivered")) for m in claimed], time.time())
                done += len(claimed)
    finally:
        await store.close()
    return done / (time.perf_counter() - t0)


def growth(seconds: float, rounds: int, connections: int, delivered: int, waiting: int) -> dict[str, Any]:
    files = write_request_files()
    figures: dict[str, dict[str, list[float]]] = {"empty": {}, "grown": {}}
    with pg_database() as grown_url:
        made = fill(grown_url, delivered, waiting)
        for _ in range(rounds):
            for name in ("empty", "grown"):
                database = pg_database() if name == "empty" else contextlib.nullcontext(grown_url)
                with database as url:
                    if name == "empty":
                        fill(url, 0, waiting)
                    server = web(url, f"backends-growth-{name}", 0).start()
                    try:
                        wrk_all([server], 2, connections, files)  # warm-up
                        run = wrk_all([server], seconds, connections, files)
                    finally:
                        server.stop()
                    rate = asyncio.run(claim_rate(url, seconds))
                for figure, value in (("ingest requests/s (wrk)", run["rps"]), ("ingest p99 at peak (ms)", run["p99_ms"]),
                                      ("claim and complete (messages/s)", rate)):
                    figures[name].setdefault(figure, []).append(round(value, 1))
    out: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "connections": connections, "store": made, "figures": {}}
    for figure, empty in figures["empty"].items():
        grown = figures["grown"][figure]
        out["figures"][figure] = {"empty": empty, "grown": grown, "empty_median": sorted(empty)[len(empty) // 2],
                                  "grown_median": sorted(grown)[len(grown) // 2],
                                  "higher_is_better": not figure.endswith("(ms)")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", nargs="?", choices=["ingest", "delivery", "growth", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=150.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mapped", choices=["during", "before", "both"], default="both",
                        help="delivery: events mapped during the drain, before it, or both runs")
    # The bridge's default (10) leaves the CPU to its web process, which is idle in these drains; on a
    # machine shared with other work it also leaves the CPU to that work, which is not what is measured.
    parser.add_argument("--nice", type=int, default=0, help="delivery: the workers' OS priority (the bridge's default: 10)")
    parser.add_argument("--delivered", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=100_000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    when = {"date": datetime.date.today().isoformat(), "machine": machine()}  # this part may run alone
    if args.part in ("ingest", "all"):
        started_load = [round(x, 1) for x in os.getloadavg()]  # others' work on the machine shows here
        result = when | ingest(args.seconds, args.rounds, args.connections)
        result["load"] = {"start": started_load, "end": [round(x, 1) for x in os.getloadavg()]}
        save("backends-ingest", result)
        print(json.dumps(result, indent=1))
    if args.part in ("delivery", "all"):
        # mapped during the drain (as one deployment works), and mapped before it (the delivery path alone)
        for name, premapped in (("backends-delivery", False), ("backends-delivery-premapped", True)):
            if args.mapped != "both" and premapped != (args.mapped == "before"):
                continue
            result = when | delivery(args.orders, args.deadline, args.workers, premapped, args.nice)
            save(name, result)
            print(json.dumps({k: v for k, v in result.items() if k != "timeline_s_omnisend_ometria"}, indent=1))
    if args.part in ("growth", "all"):
        result = when | growth(args.seconds, args.rounds, args.connections, args.delivered, args.waiting)
        save("backends-growth", result)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
