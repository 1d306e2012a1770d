"""Two web instances and two workers on one PostgreSQL database, against the fake APIs: a signed
burst spread over both web instances with resends that cross them, a worker and a web instance
killed mid-burst and started again; then PostgreSQL itself restarted during a burst."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pgserver
import psycopg
import pytest

from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread
from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import OMETRIA_KEY, OMNISEND_KEY, ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import omnisend_events

ORDERS = 80
CANCELLED = range(0, ORDERS, 4)
BASE_ID = 8200000000000


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    # Budgets a burst takes a while to get through, so the two workers must share them.
    omnisend = create_omnisend_app(OMNISEND_KEY, requests_per_minute=60, processing_seconds=0.01)
    ometria = create_ometria_app(OMETRIA_KEY, requests_per_second=4)
    with serve_in_thread(omnisend) as omnisend_url, serve_in_thread(ometria) as ometria_url:
        yield Fakes(omnisend, ometria, omnisend_url, ometria_url)


class Worker(BridgeProcess):
    """`bridge worker`: ready once its log says so."""

    def start(self, *args: str) -> Worker:
        import subprocess
        import sys

        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "worker", *args], cwd=self.workdir,
                                         env=self.child_env(), stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        wait_until(lambda: self.logs().count("worker.started") >= self.starts, timeout=self.ready_timeout)
        return self


def fleet_env(fakes: Fakes, url: str) -> dict[str, str]:
    return bridge_env(fakes, BRIDGE_DATABASE_URL=url, OMNISEND_REQUESTS_PER_MINUTE="60", OMETRIA_REQUESTS_PER_SECOND="4",
                      BRIDGE_PG_POOL_SIZE="3", BRIDGE_MAPPING="thread")


def folder(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path


def order_bodies(n: int) -> list[tuple[bytes, dict[str, str]]]:
    """The webhooks of order n: its creation and, for some, its cancellation right after."""
    order = json.loads((ROOT / "tests/payloads/shopify/orders_create.json").read_bytes())
    order["id"] = BASE_ID + n
    body = json.dumps(order).encode()
    hooks = [(body, shopify_headers(body, SHOPIFY_SECRET, "orders/create", event_id=f"create-{n}"))]
    if n in CANCELLED:
        cancel = json.loads((ROOT / "tests/payloads/shopify/orders_cancelled.json").read_bytes())
        cancel["id"] = BASE_ID + n
        body = json.dumps(cancel).encode()
        hooks.append((body, shopify_headers(body, SHOPIFY_SECRET, "orders/cancelled", event_id=f"cancel-{n}")))
    return hooks


def scalar(url: str, sql: str) -> Any:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def check_delivered(fakes: Fakes, acknowledged: set[int]) -> None:
    """Every acknowledged order (and cancellation) reached both fakes; repeats carry one idempotency key;
    a cancellation never arrives before its order; no rate window went over its limit."""
    records = [r for p in fakes.ometria.accepted("/v2/push") for r in p.body]
    first: dict[tuple[str, bool], int] = {}
    for position, r in enumerate(records):
        first.setdefault((r["id"], r.get("status") == "cancelled"), position)
    expected = {(str(BASE_ID + n), False) for n in acknowledged} | {
        (str(BASE_ID + n), True) for n in acknowledged if n in CANCELLED}
    assert expected <= set(first), f"not delivered to Ometria: {sorted(expected - set(first))[:5]}"
    for n in acknowledged:
        if n in CANCELLED:
            assert first[(str(BASE_ID + n), False)] < first[(str(BASE_ID + n), True)], f"order {n} out of order"

    # A repeat (a message sent again after its worker died) carries its idempotency key: so there is
    # one eventID per event sent, whatever the repeats.
    once = {e["eventID"]: e["eventName"] for e in omnisend_events(fakes)}
    assert Counter(once.values()) == {"placed order": len(acknowledged),
                                      "order canceled": len([n for n in acknowledged if n in CANCELLED])}

    # The budget is the account's: all workers together stay within it, at most one 429 a minute.
    recorded = [r for f in (fakes.omnisend, fakes.ometria) for r in f.recorded()]
    minutes = math.ceil((max(r.at for r in recorded) - min(r.at for r in recorded)) / 60) if recorded else 1
    too_many = [r for r in recorded if r.status == 429]
    assert len(too_many) <= max(1, minutes), \
        f"{len(too_many)} answers 429 in {minutes} minutes: the workers did not share the budget"


def test_two_web_instances_and_two_workers_lose_nothing_when_one_of_each_is_killed(
        tmp_path: Path, fakes: Fakes, pg_url: str) -> None:
    env = fleet_env(fakes, pg_url)
    webs = [BridgeProcess(folder(tmp_path, f"web{i}"), env).start("--no-worker") for i in range(2)]
    workers = [Worker(folder(tmp_path, f"worker{i}"), env).start() for i in range(2)]
    try:
        acknowledged: set[int] = set()
        for n in range(ORDERS):
            if n == ORDERS // 2:  # mid-burst: one worker and one web instance die, and come back
                workers[0].kill()
                webs[1].kill()
                workers[0].start()
                webs[1].start("--no-worker")
            hooks = order_bodies(n)
            for i, (body, headers) in enumerate(hooks):
                web, other = webs[(n + i) % 2], webs[(n + i + 1) % 2]
                answer = web.post("shopify", body, headers)
                assert answer.status_code == 200, answer.text
                resend = other.post("shopify", body, headers)  # the provider's resend reaches the other one
                assert resend.status_code == 200 and resend.json().get("status") == "duplicate", resend.text
            acknowledged.add(n)

        total = ORDERS + len(CANCELLED)
        wait_until(lambda: scalar(pg_url, "SELECT count(*) FROM messages WHERE state = 'delivered'") == 2 * total,
                   timeout=150, interval=0.5)
        assert scalar(pg_url, "SELECT count(*) FROM events") == total
        check_delivered(fakes, acknowledged)
    finally:
        for process in (*webs, *workers):
            process.stop()


@pytest.fixture
def own_server() -> Iterator[pgserver.Server]:
    """A PostgreSQL cluster of this test's own, which it may restart (never the machine's shared one)."""
    from glob import glob

    binaries = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pgserver.unavailable("no PostgreSQL binaries to start a cluster this test may restart")
    server = pgserver.start_cluster(Path(binaries[-1]).parent)
    yield server
    server.stop()


def test_postgres_restarted_during_a_burst_gets_503s_never_a_false_2xx_and_loses_nothing(
        tmp_path: Path, fakes: Fakes, own_server: pgserver.Server) -> None:
    url = own_server.create_database()
    env = fleet_env(fakes, url)
    web = BridgeProcess(folder(tmp_path, "web"), env).start("--no-worker")
    worker = Worker(folder(tmp_path, "worker"), env).start()
    answers: dict[int, int] = {}
    stop = threading.Event()

    def burst() -> None:
        n = 0
        while not stop.is_set() and n < ORDERS:
            body, headers = order_bodies(n)[0]
            try:
                answers[n] = httpx.post(f"{web.url}/webhooks/shopify", content=body, headers=headers,
                                        timeout=15).status_code
            except httpx.HTTPError:
                answers[n] = 0
            n += 1

    try:
        sender = threading.Thread(target=burst)
        sender.start()
        wait_until(lambda: len(answers) >= 10, timeout=30)
        own_server.halt()
        wait_until(lambda: 503 in answers.values(), timeout=30)
        own_server.start()
        sender.join(120)
        stop.set()
        assert set(answers.values()) <= {200, 503}, Counter(answers.values())
        assert Counter(answers.values())[503] >= 1
        # the same instances take webhooks again without a restart
        wait_until(lambda: web.post("shopify", *order_bodies(ORDERS + 1)[0]).status_code == 200, timeout=30)
        acknowledged = {n for n, status in answers.items() if status == 200} | {ORDERS + 1}
        with psycopg.connect(url) as conn:
            # each order's Shopify event id (kept with its headers; the dedupe key is the body's): create-<n>
            stored = {int(json.loads(headers)["x-shopify-event-id"].split("-")[1])
                      for (headers,) in conn.execute("SELECT headers FROM events")}
        assert acknowledged <= stored, f"acknowledged and not stored: {sorted(acknowledged - stored)}"
        wait_until(lambda: scalar(url, "SELECT count(*) FROM messages WHERE state = 'delivered'")
                   == 2 * len(stored), timeout=150, interval=0.5)
        records = {r["id"] for p in fakes.ometria.accepted("/v2/push") for r in p.body}
        assert {str(BASE_ID + n) for n in acknowledged} <= records
    finally:
        stop.set()
        web.stop()
        worker.stop()
