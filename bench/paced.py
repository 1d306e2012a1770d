"""An open-loop paced load generator: signed webhooks at a fixed rate, latency from the scheduled time.

wrk2 is not packaged in Debian and wrk is closed-loop (a slow answer delays the next request, which
hides queueing: coordinated omission). Here request i is due at t0 + i/rate whatever happened
before; up to `connections` keep-alive connections send them, and a request that waits for a free
connection has that wait counted in its latency. Raw asyncio streams on uvloop (httpx costs about
0.8 ms of CPU a request, too much to hold thousands a second on a core shared with the server).

    python bench/paced.py URL --rate 2000 --seconds 10 [--connections 32] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import uvloop

from bench.common import SHOPIFY_SECRET, VariedOrders
from bridge.sign import shopify_headers


def request_bytes(host: str, body: bytes, headers: dict[str, str], event_id: str) -> bytes:
    lines = ["POST /webhooks/shopify HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k != "X-Shopify-Event-Id"]
    lines.append(f"X-Shopify-Event-Id: {event_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(url: str, rate: float, seconds: float, connections: int, drain_timeout: float = 30.0) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    orders = VariedOrders()
    headers = shopify_headers(orders.body(b"0" * VariedOrders.WIDTH), SHOPIFY_SECRET, "orders/create")
    total = int(rate * seconds)
    signed = iter(orders.take(total))  # a new signed body a request, made before the clock starts
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                _, due = item
                try:
                    digits, signature = next(signed)
                    writer.write(request_bytes(f"{host}:{port}", orders.body(digits),
                                               headers | {"X-Shopify-Hmac-Sha256": signature},
                                               str(uuid.uuid4())))  # as Shopify's ids
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - due)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open before the clock starts
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    sent = 0
    while sent < total:
        due_now = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due_now:
            queue.put_nowait((sent, t0 + sent / rate))
            sent += 1
        # 1 ms, the resolution of libuv's timers: a shorter sleep is a timer of 0 ms, so the loop
        # polls without sleeping and the generator takes a whole core from the server it measures
        # (it did until 2026-12-02: ~1.0 core at 4,500/s, against ~0.23 now). A request is sent up
        # to ~1 ms after it is due and that lag counts in its latency: `--rate` against the bare
        # app shows this floor (bench/ingest.py runs both).
        await asyncio.sleep(0.001)
    send_end = time.perf_counter()
    for _ in workers:
        queue.put_nowait(None)
    _, pending = await asyncio.wait(workers, timeout=drain_timeout)
    for task in pending:
        task.cancel()
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "target_rate": rate, "seconds": seconds, "connections": connections, "sent": total,
        "answered": len(latencies), "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors, "unanswered": total - len(latencies) - errors,
        "achieved_rate": round(len(latencies) / elapsed, 1), "send_seconds": round(send_end - t0, 3),
        "p50_ms": round(pct(50), 3), "p90_ms": round(pct(90), 3), "p99_ms": round(pct(99), 3),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "generator_cores": round(cpu / elapsed, 2),  # the CPU this generator took from the machine
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    result = uvloop.run(run(args.url, args.rate, min(args.seconds, 60.0), args.connections))
    print("PACED_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
