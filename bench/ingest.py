"""Ingest ceiling: signed orders/create webhooks acknowledged per second, bridge vs a bare Starlette app.

wrk (closed loop, keep-alive connections, one thread) posts the same signed ~7 KB body with a new
X-Shopify-Event-Id on every request (bench/post.lua), to the bare app and to the bridge in turns,
`rounds` times each; each server's median run is reported. Then the bridge alone is held at half
its median peak by bench/paced.py (open loop) to read its p99 at a sustainable rate. After each
run the SQLite file is read: events committed must match the 200 answers.

A ceiling is each server's rate at the concurrency it does best at, and the two differ: the bare
app answers at once and peaks with few connections, the bridge answers after a group commit and
needs more requests in flight to keep its event loop busy while it waits. So by default
(`--connections auto`) a short sweep (CONCURRENCY_SWEEP, 2 s each, the two servers in turns) picks
each server's own connection count, and the rounds run each server at its own. A number instead
runs both at that count.

    python -m bench.ingest [--db PATH] [--label NAME] [--seconds 10] [--connections auto|N] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import BENCH, PYTHON, ROOT, SHOPIFY_SECRET, WORK, VariedOrders, bare_server, bench_db, bridge_server, save
from bridge.sign import shopify_headers

ORDERS = VariedOrders()
IDS_LOCK = threading.Lock()
MAX_RATE = 20_000  # signed bodies a second of wrk run: above any bridge rate here (past the end, post.lua
# starts again from the first, whose resends the bridge answers as duplicates: the committed count shows it)


def write_request_files() -> dict[str, str]:
    WORK.mkdir(parents=True, exist_ok=True)
    sample = ORDERS.body(b"0" * VariedOrders.WIDTH)
    headers = shopify_headers(sample, SHOPIFY_SECRET, "orders/create")
    headers.pop("X-Shopify-Event-Id")
    headers["X-Shopify-Hmac-Sha256"] = "@@HMAC@@"
    (WORK / "body.json").write_bytes(ORDERS.body(b"@@ORDER_ID@@#######"))  # as wide as an id: post.lua puts one there
    (WORK / "headers.txt").write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    return {"BENCH_BODY_FILE": str(WORK / "body.json"), "BENCH_HEADERS_FILE": str(WORK / "headers.txt"),
            "body_bytes": str(len(sample))}


def write_ids(count: int) -> Path:
    """A file of `count` new signed order ids for one wrk run (bench/post.lua)."""
    with IDS_LOCK:
        pairs = ORDERS.take(count)
    path = WORK / f"ids-{uuid.uuid4().hex[:8]}.txt"
    with path.open("w") as out:
        out.writelines(f"{digits.decode()} {sig}\n" for digits, sig in pairs)
    return path


def wrk(url: str, seconds: float, connections: int, files: dict[str, str]) -> dict[str, Any]:
    """One wrk run; several may run at once (from threads), each with ids of its own."""
    env = dict(os.environ, **{k: v for k, v in files.items() if k.startswith("BENCH_")})
    ids = write_ids(int(MAX_RATE * seconds) + connections)
    env["BENCH_IDS_FILE"] = str(ids)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s",
            "-s", str(BENCH / "post.lua"), url + "/webhooks/shopify"]
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    finally:
        ids.unlink(missing_ok=True)
    line = next(text for text in out.splitlines() if text.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    r["ok"] = r["requests"] - r["non_2xx"]
    r["rps"] = round(r["requests"] / (r["duration_us"] / 1e6), 1)
    r["p50_ms"], r["p99_ms"] = r["p50_us"] / 1000, r["p99_us"] / 1000
    r["argv"] = " ".join(argv)
    return r


CONCURRENCY_SWEEP = (16, 32, 64, 128, 256)
SWEEP_SECONDS = 2.0
PACED_CONNECTIONS = 32  # the open-loop generator's pool: enough for half of any peak seen here


def sweep(urls: dict[str, str], files: dict[str, str]) -> dict[str, dict[int, float]]:
    """2xx answers a second of each server at each connection count of CONCURRENCY_SWEEP, in turns."""
    rates: dict[str, dict[int, float]] = {name: {} for name in urls}
    for connections in CONCURRENCY_SWEEP:
        for name, url in urls.items():
            run = wrk(url, SWEEP_SECONDS, connections, files)
            rates[name][connections] = round(run["ok"] / (run["duration_us"] / 1e6), 1)  # 2xx only
    return rates


def best(rates: dict[int, float]) -> int:
    return max(rates, key=lambda c: rates[c])


def paced(url: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    argv = [PYTHON, "-m", "bench.paced", url, "--rate", str(rate), "--seconds", str(seconds),
            "--connections", str(connections)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(text for text in out.splitlines() if text.startswith("PACED_JSON "))
    return json.loads(line[len("PACED_JSON "):])


def count_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the middle one of an odd number)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--in-place", action="store_true", help="use --db itself, not a copy")
    parser.add_argument("--db", type=Path, default=None, help="start from a copy of this database (growth)")
    parser.add_argument("--label", default="ingest")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", default="auto",
                        help="wrk connections for both servers, or auto: each server at its best of a sweep")
    parser.add_argument("--rounds", type=int, default=5, help="wrk runs of each server, taken in turns")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-paced", action="store_true")
    parser.add_argument("--stack", choices=["uvloop", "asyncio"], default="uvloop",
                        help="uvicorn's HTTP stack for both servers (bench/stack.py)")
    parser.add_argument("--writer", choices=["process", "thread"], default="process",
                        help="where the bridge's store writer runs (BRIDGE_STORE_WRITER)")
    args = parser.parse_args()
    files = write_request_files()
    result: dict[str, Any] = {"body_bytes": int(files["body_bytes"]), "seconds": args.seconds,
                              "rounds": args.rounds, "stack": args.stack, "writer": args.writer}

    db = bench_db(args.label, args.db, args.in_place)
    log = WORK / f"{args.label}-bridge.log"
    log.unlink(missing_ok=True)
    # Both servers stay up and are loaded in turns, so that a slow minute of the machine
    # falls on both; the reported run of each is its median.
    bare = None if args.skip_bare else bare_server(WORK / f"{args.label}-bare.log", args.stack).start()
    bridge = bridge_server(db, log, worker=False, stack=args.stack, env={"BRIDGE_STORE_WRITER": args.writer}).start()
    try:
        urls = {"bridge": bridge.url} if bare is None else {"bare": bare.url, "bridge": bridge.url}
        for url in urls.values():
            wrk(url, args.warmup, 32, files)
        if args.connections == "auto":
            rates = sweep(urls, files)
            result["sweep"] = {name: {str(c): rps for c, rps in r.items()} for name, r in rates.items()}
            connections = {name: best(r) for name, r in rates.items()}
        else:
            connections = dict.fromkeys(urls, int(args.connections))
        result["connections"] = connections["bridge"]
        result["bare_connections"] = connections.get("bare")
        bare_runs: list[dict[str, Any]] = []
        bridge_runs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            if bare is not None:
                bare_runs.append(wrk(bare.url, args.seconds, connections["bare"], files))
            before = count_events(db)
            peak = wrk(bridge.url, args.seconds, connections["bridge"], files)
            time.sleep(0.5)  # requests wrk abandoned at its deadline finish committing
            peak["events_committed"] = count_events(db) - before
            # wrk stops with up to `connections` requests in flight: those may be committed, never counted as 200s.
            peak["committed_minus_200"] = peak["events_committed"] - peak["ok"]
            bridge_runs.append(peak)
        result["bridge"] = median_run(bridge_runs)
        result["bridge_runs"] = [r["rps"] for r in bridge_runs]
        if bare_runs:
            result["bare"] = median_run(bare_runs)
            result["bare_runs"] = [r["rps"] for r in bare_runs]
            result["round_ratios"] = [round(x["rps"] / b["rps"], 3) for b, x in zip(bare_runs, bridge_runs)]

        if not args.skip_paced:
            rate = round(result["bridge"]["rps"] / 2)
            # The peak runs leave gigabytes of dirty pages: let the kernel write them back first, so
            # that the p99 at a sustainable rate measures that rate, not the flush of the last peak.
            os.sync()
            before = count_events(db)
            held = paced(bridge.url, rate, args.seconds, PACED_CONNECTIONS)
            time.sleep(0.2)
            held["events_committed"] = count_events(db) - before
            held["committed_minus_200"] = held["events_committed"] - held["statuses"].get("200", 0)
            result["half_rate"] = held
            if bare is not None:  # the same load on the bare app: the floor of the generator and the stack
                result["half_rate_bare"] = paced(bare.url, rate, args.seconds, PACED_CONNECTIONS)
        result["bridge_peak_rss_kb"] = bridge.peak_rss_kb()
        result["db_bytes_after"] = db.stat().st_size
    finally:
        bridge.stop()
        if bare is not None:
            bare.stop()
    result["bridge_log_lines"] = sum(1 for _ in log.open("rb"))
    result["bridge_log_head"] = log.read_text(errors="replace").splitlines()[:3]
    if "bare" in result:
        result["ratio"] = round(result["bridge"]["rps"] / result["bare"]["rps"], 3)
    save(args.label, result)
    print(json.dumps({k: v for k, v in result.items() if k != "bridge_log_head"}, indent=1))


if __name__ == "__main__":
    main()
