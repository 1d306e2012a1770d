"""The PostgreSQL store beside itself: several instances on one database, its schema, its URL, its errors."""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pgserver
import psycopg
import pytest

from bridge.config import settings_from_env
from bridge.destinations.ratelimit import RateLimiter
from bridge.errors import ConfigError, StoreUnavailable
from bridge.model import Decision, Mapped, Outcome, Outgoing, Webhook
from bridge.settings import Settings, masked_url
from bridge.store import make_store
from bridge.store.base import AuditFilter, DeadFilter, EventFilter, PruneCutoffs
from bridge.store.migrations import migrations
from bridge.store.postgres import PostgresStore
from bridge.store.postgres.connection import libpq_url, mask_text, unavailable
from bridge.store.postgres.migrate import migrate


def hook(key: str) -> Webhook:
    return Webhook(source="shopify", topic="orders/create", dedupe_key=key, body=b'{"id": 1}', headers={})


class opened:
    """`async with opened(url) as store`: a PostgresStore open on this loop."""

    def __init__(self, url: str, **options: Any) -> None:
        self.store = PostgresStore(url, **options)

    async def __aenter__(self) -> PostgresStore:
        await self.store.open()
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


async def produce(store: PostgresStore, name: str, count: int, keys: int) -> None:
    """Ingest `count` events, each sent twice, and map what waits: one keyed message per event."""
    for n in range(count):
        for _ in range(2):
            await store.ingest(hook(f"{name}-{n}"))
        events = await store.waiting_events(50)
        mapped = [Mapped(e.id, "mapped", ["r"], [], [(Outgoing("ometria", "event", {"event": e.id}, "r",
                                                               key=f"k{e.id % keys}"), f"idem-{e.id}")])
                  for e in events]
        await store.save_mappings(mapped, 0.0)


async def deliver(store: PostgresStore, sent: list[tuple[int, int, str]], stop: asyncio.Event, rng: random.Random,
                  die_after: int | None = None) -> None:
    """Claim and complete until `stop`; a tenth of attempts fail and retry. With `die_after`, stop
    after that many claims without completing the last (a worker killed holding leases)."""
    claims = 0
    now = 0.0
    while not stop.is_set():
        now = asyncio.get_running_loop().time()
        messages = await store.claim("ometria", 10, 1.0, now)
        claims += 1
        if die_after is not None and claims >= die_after and messages:
            return
        results = []
        for m in messages:
            if rng.random() < 0.1:
                results.append((m, Outcome("retry", 503), Decision("pending", next_at=now + 0.05)))
            else:
                sent.append((m.id, m.event_id, m.key))
                results.append((m, Outcome("delivered", 200), Decision("delivered")))
        await store.complete(results, now)
        await store.release_expired(now)
        if not messages:
            await asyncio.sleep(0.01)


def test_several_producers_and_claimers_deliver_each_message_once_in_order_per_key(pg_url: str) -> None:
    async def go() -> None:
        async with opened(pg_url, pool_size=3) as web1, opened(pg_url, pool_size=3) as web2, \
                opened(pg_url, pool_size=4) as worker1, opened(pg_url, pool_size=4) as worker2:
            sent: list[tuple[int, int, str]] = []
            stop = asyncio.Event()
            rng = random.Random(7)
            claimers = [asyncio.create_task(deliver(w, sent, stop, rng)) for w in (worker1, worker2, worker1)]
            dying = asyncio.create_task(deliver(worker2, sent, stop, rng, die_after=3))
            await asyncio.gather(produce(web1, "a", 120, 7), produce(web2, "b", 120, 7), produce(web1, "c", 60, 7))
            for _ in range(50):
                await produce(web2, "flush", 0, 7)  # whatever waits is mapped
            async def settled() -> None:
                while await worker1.waiting_events(1) or await open_count(pg_url):
                    await asyncio.sleep(0.1)
            await asyncio.wait_for(settled(), 60)
            stop.set()
            await asyncio.gather(*claimers, dying)

            ids = [message_id for message_id, _, _ in sent]
            assert len(ids) == len(set(ids)), "a message was delivered twice"
            assert len(ids) == 300, "every event's message delivered"
            by_key: dict[str, list[int]] = defaultdict(list)
            for message_id, _, key in sent:
                by_key[key].append(message_id)
            assert all(order == sorted(order) for order in by_key.values()), "order per key"

    asyncio.run(go())


async def open_count(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM messages WHERE state IN ('pending', 'inflight', 'submitted')")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


def test_an_event_committed_after_a_later_id_is_mapped_before_events_received_after_it(pg_url: str) -> None:
    """Ids are taken at insert, not at commit: the mapper must not pass an id still being committed."""
    async def go() -> None:
        async with opened(pg_url) as store:
            slow = await psycopg.AsyncConnection.connect(pg_url)
            await slow.execute("SELECT pg_advisory_xact_lock_shared(%s)", (0x62726964_67650001,))
            await slow.execute("INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, status)"
                               " VALUES ('shopify', 't', 'slow', 0, '{}', '\\x7b7d', 'received')")
            fast = await store.ingest(hook("fast"))
            reading = asyncio.create_task(store.waiting_events(10))
            await asyncio.sleep(0.3)
            assert not reading.done(), "the mapper read past an id whose ingest had not committed"
            await slow.commit()
            await slow.close()
            events = await asyncio.wait_for(reading, 5)
            assert [e.dedupe_key for e in events] == ["slow", "fast"] and events[0].id < fast.event_id

    asyncio.run(go())


def test_events_ingested_in_groups_by_two_instances_are_each_mapped_once_in_id_order(pg_url: str) -> None:
    """Groups commit out of id order across instances: a mapper reading behind them never skips an id."""
    async def go() -> None:
        async with opened(pg_url) as web1, opened(pg_url) as web2, opened(pg_url) as mapper:
            read: list[int] = []
            done = asyncio.Event()

            async def map_loop() -> None:
                after = 0
                while True:
                    finished = done.is_set()
                    events = await mapper.waiting_events(50, after)
                    read.extend(e.id for e in events)
                    after = events[-1].id if events else after
                    if finished and not events:
                        return
                    await asyncio.sleep(0)

            async def burst(store: PostgresStore, name: str) -> list[int]:
                ids = []
                for n in range(20):
                    results = await asyncio.gather(*(store.ingest(hook(f"{name}-{n}-{k % 7}")) for k in range(10)))
                    ids += [r.event_id for r in results if not r.duplicate]
                return ids

            reading = asyncio.create_task(map_loop())
            stored = await asyncio.gather(burst(web1, "a"), burst(web2, "b"))
            done.set()
            await asyncio.wait_for(reading, 30)
            assert read == sorted(read), "read in id order"
            assert sorted(read) == sorted(stored[0] + stored[1]), "each stored event read once"

    asyncio.run(go())


def test_a_group_whose_connection_dies_mid_commit_fails_every_webhook_in_it_and_stores_none(pg_url: str) -> None:
    async def go() -> None:
        async with opened(pg_url) as store, await psycopg.AsyncConnection.connect(pg_url) as mapper, \
                await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await mapper.execute("SELECT pg_advisory_xact_lock(%s)", (0x62726964_67650001,))  # the horizon's lock, held
            keys = ["x", "y", "x", "z"]
            ingests = [asyncio.create_task(store.ingest(hook(k))) for k in keys]
            for _ in range(100):  # until the group's insert waits for the lock
                cur = await admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                          " AND application_name = 'bridge' AND wait_event_type = 'Lock'")
                waiting = [r[0] for r in await cur.fetchall()]
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting, "the group never waited for the lock"
            for pid in waiting:
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            outcomes = await asyncio.gather(*ingests, return_exceptions=True)
            await mapper.rollback()
            assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
            again = [await store.ingest(hook(k)) for k in ("x", "y", "z")]
            assert not any(r.duplicate for r in again), "nothing of the failed group was stored"

    asyncio.run(go())


def test_two_instances_migrating_at_once_apply_each_migration_once(pg_server: pgserver.Server) -> None:
    url = pg_server.create_database()
    try:
        async def go() -> None:
            first, second = await asyncio.gather(migrate(url), migrate(url))
            names = [m.name for m in migrations("postgres")]
            assert sorted([first.applied, second.applied]) == [[], names]
            assert first.current == second.current == names[-1][:4]
            assert sorted([first.created, second.created]) == [False, True]  # the one that made the schema
            again = await migrate(url)
            assert again.applied == [] and again.current == names[-1][:4] and not again.created

        asyncio.run(go())
    finally:
        pg_server.drop_database(url)


def test_a_database_this_start_migrated_from_nothing_is_announced_as_new(pg_server: pgserver.Server) -> None:
    """As a new SQLite file is: store.new_database in the log (the URL's password masked), and it holds no
    event until the first; a later start, or another instance, finds the same creation time."""
    from structlog.testing import capture_logs

    url = pg_server.create_database()
    try:
        async def go() -> None:
            with capture_logs() as logs:
                async with opened(url) as store:
                    made = await store.created_at()
                    assert made is not None and not await store.holds_events()
                    await store.ingest(hook("first"))
                    assert await store.holds_events()
            assert [e["url"] for e in logs if e["event"] == "store.new_database"] == [masked_url(url)]
            with capture_logs() as logs:
                async with opened(url) as again:
                    assert await again.created_at() == made and await again.holds_events()
            assert not [e for e in logs if e["event"] == "store.new_database"]

        asyncio.run(go())
    finally:
        pg_server.drop_database(url)


def test_a_store_opened_without_migrating_names_what_is_missing(pg_server: pgserver.Server) -> None:
    url = pg_server.create_database()
    try:
        async def go() -> None:
            with pytest.raises(StoreUnavailable, match="bridge migrate"):
                await PostgresStore(url, migrate=False).open()

        asyncio.run(go())
    finally:
        pg_server.drop_database(url)


def test_terminated_connections_give_503s_then_the_pool_recovers(pg_url: str) -> None:
    async def go() -> None:
        async with opened(pg_url, pool_size=2) as store:
            await store.ingest(hook("before"))
            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                    " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            outcomes = []
            for n in range(4):
                try:
                    outcomes.append(await store.ingest(hook(f"after-{n}")))
                except StoreUnavailable:
                    outcomes.append(None)
            assert outcomes[-1] is not None, "the pool did not recover"
            stored = {e.dedupe_key for e in await store.waiting_events(10)}
            assert {f"after-{n}" for n, o in enumerate(outcomes) if o is not None} <= stored

    asyncio.run(go())


# -- the URL and the settings (no server needed) --


def test_both_url_schemes_are_accepted_and_bridge_database_url_wins() -> None:
    assert libpq_url("postgres://u:p@db.example:5432/d") == "postgresql://u:p@db.example:5432/d"
    heroku = settings_from_env({"DATABASE_URL": "postgres://u:p@h/d"})
    assert heroku.database_url == "postgres://u:p@h/d"
    both = settings_from_env({"DATABASE_URL": "postgres://u:p@h/d", "BRIDGE_DATABASE_URL": "postgresql://x@y/z"})
    assert both.database_url == "postgresql://x@y/z"
    local = settings_from_env({"DATABASE_URL": "postgres://u:p@h/d", "BRIDGE_DATABASE_URL": "sqlite:///here.db"})
    assert local.database_url == "" and str(local.database_path) == "here.db"
    assert settings_from_env({}).store_url == "sqlite:///bridge.db"
    assert settings_from_env({"BRIDGE_PG_POOL_SIZE": "6", "BRIDGE_PG_NOTIFY": "false"}).pg_pool_size == 6


@pytest.mark.parametrize("url", ["postgres://u:s3cret@host:notaport/d", "postgresql://u:s3cret@/d",
                                 "postgresql://u:s3cret@h/d?nosuchoption=1"])
def test_a_malformed_url_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_store(url)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_server_that_refuses_is_one_line_without_the_password() -> None:
    async def go() -> None:
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = make_store(f"postgres://bridge:wr0ngpass@127.0.0.1:{port}/bridge")
        with pytest.raises(StoreUnavailable) as caught:
            await store.open()
        message = str(caught.value)
        assert "wr0ngpass" not in message and "\n" not in message and "refused" in message

    asyncio.run(go())


def test_a_refused_password_is_reported_without_it() -> None:
    """The server's own words come through, any echo of the password masked (this machine's server
    trusts every local connection, so the refusal is made here)."""
    refused = psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "bridge"'
                                       "\nDETAIL: password=wr0ngpass")
    message = str(unavailable(refused, "postgresql://bridge:wr0ngpass@db/bridge"))
    assert message == 'PostgreSQL: connection failed: FATAL:  password authentication failed for user "bridge"'
    assert mask_text("password=wr0ngpass host=db", "postgresql://bridge:wr0ngpass@db/b") == "password=*** host=db"


def test_operator_reads_and_writes_follow_a_message_through_death_retry_replay_and_pruning(pg_url: str) -> None:
    async def go() -> None:
        async with opened(pg_url) as store:
            event = await store.ingest(hook("e1"), now=10.0)
            await store.ingest(hook("e1"), now=11.0)
            msg = Outgoing("ometria", "contact", {"id": "c1"}, "r", key="contact:c1", areas=("contacts",))
            await store.save_mappings([Mapped(event.event_id, "mapped", ["r"], [], [(msg, "idem-1")])], 20.0)
            [claimed] = await store.claim("ometria", 10, 60, 30.0)
            await store.complete([(claimed, Outcome("dead", 400, "bad"), Decision("dead", 30.0))], 30.0)
            page = await store.list_events(EventFilter(source="shopify"), 10)
            assert page.total == 1 and page.items[0]["duplicates"] == 1 and page.items[0]["messages"] == {"dead": 1}
            detail = await store.event_detail(event.event_id)
            assert detail is not None and detail["payload"] == {"id": 1}
            assert detail["messages"][0]["trail"][0]["outcome"] == "dead"
            dead = await store.list_dead(DeadFilter(destination="ometria"), 10)
            assert [d["id"] for d in dead.items] == [claimed.id] and dead.items[0]["last_detail"] == "bad"
            stats = await store.outbox_stats(40.0, ["omnisend", "ometria"])
            assert stats["ometria"]["counts"]["dead"] == 1 and stats["omnisend"]["counts"]["pending"] == 0
            assert (await store.audit(AuditFilter(area="contacts"), 10)).total == 1
            assert await store.retry_dead(DeadFilter(ids=(claimed.id,)), 50.0) == 1
            assert await store.open_counts() == {("ometria", "pending"): 1}
            assert [m.id for m in await store.claim("ometria", 10, 60, 50.0)] == [claimed.id], "its lane woke up"
            assert await store.count_replayable(EventFilter()) == 1
            [again] = await store.replayable_events(EventFilter(), 0, 10)
            summary = await store.apply_mappings([Mapped(again.id, "mapped", ["r"], [], [(msg, "idem-1")])], 60.0,
                                                 force=False, dry_run=False)
            assert summary.skipped_open == 1 and summary.queued == 0
            result = await store.prune_preview(PruneCutoffs(100.0, 100.0, 100.0))
            assert result.messages == 0 and result.dedupe_keys == 0

    asyncio.run(go())


def test_two_workers_rate_limiters_share_one_budget(pg_url: str) -> None:
    """Each limiter alone would send 10 a second; sharing the account's bucket, both together do."""
    async def go() -> None:
        async with opened(pg_url) as one, opened(pg_url) as two:
            sent: list[float] = []
            limiters = [RateLimiter(10, 1.0), RateLimiter(10, 1.0)]
            for limiter, store in zip(limiters, (one, two)):
                limiter.share(functools.partial(store.take_budget, "ometria"),
                              functools.partial(store.block_budget, "ometria"),
                              functools.partial(store.hold_budget, "ometria"))

            async def send(limiter: RateLimiter) -> None:
                for _ in range(12):
                    assert await limiter.acquire()
                    sent.append(time.monotonic())

            await asyncio.gather(*(send(limiter) for limiter in limiters))
            sent.sort()
            busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
            assert busiest <= 10, f"{busiest} requests in one second"

    asyncio.run(go())


def test_the_shared_budget_reserves_slots_one_interval_apart_for_every_worker(pg_url: str) -> None:
    """Each take reserves the next slot of one schedule: two stores taking in turn at one a second get waits
    a second apart (less what passed between the takes); a slot beyond max_wait is not reserved; a block
    and a hold move the schedule."""
    async def go() -> None:
        async with opened(pg_url) as one, opened(pg_url) as two:
            slots = [await store.take_budget("ometria", 1.0) for store in (one, two, one, two)]
            waits = [slot.wait for slot in slots]
            assert waits[0] < 0.01
            for earlier, later in itertools.pairwise(waits):
                assert 0.5 < later - earlier <= 1.0 + 1e-6
            for earlier_slot, later_slot in itertools.pairwise(slots):
                assert later_slot.at is not None and earlier_slot.at is not None
                assert later_slot.at - earlier_slot.at == pytest.approx(1.0), "on the database's clock"
            far = (await one.take_budget("ometria", 1.0, max_wait=0.5)).wait
            assert far > 0.5, "the next slot is ~4 s away"
            after = (await two.take_budget("ometria", 1.0)).wait
            assert far - 0.5 < after <= far + 1e-6, "the slot refused above was not reserved (else ~1 s later)"
            await one.block_budget("ometria", 1.0, 50.0)
            blocked = await two.take_budget("ometria", 1.0, max_wait=1.0)
            assert blocked.wait > 45 and blocked.at is not None, "nothing reserved within a second"
            await one.hold_budget("ometria", blocked.number, blocked.at + 20.0)
            held = await two.take_budget("ometria", 1.0, max_wait=1.0)
            assert blocked.wait + 19 < held.wait <= blocked.wait + 20 + 1e-6 and held.number == blocked.number
            assert (await two.take_budget("omnisend", 1.0)).wait == 0.0, "each destination has its own schedule"

    asyncio.run(go())


def test_workers_on_one_database_take_turns_to_map(pg_url: str) -> None:
    """One holds the turn while it renews it; another takes it when it runs out (a worker died) or is given back."""
    async def go() -> None:
        async with opened(pg_url) as one, opened(pg_url) as two:
            t = 1_795_000_000.0
            assert await one.mapping_turn("a", 10.0, t)
            assert not await two.mapping_turn("b", 10.0, t + 1)
            assert await one.mapping_turn("a", 10.0, t + 5)
            assert not await two.mapping_turn("b", 10.0, t + 12), "a renewed its turn until t + 15"
            assert await two.mapping_turn("b", 10.0, t + 16), "a's turn ran out: a died"
            assert not await one.mapping_turn("a", 10.0, t + 17)
            await one.mapping_turn("a", 0.0, t + 18)  # not its turn to give back: nothing changes
            assert not await one.mapping_turn("a", 10.0, t + 19)
            await two.mapping_turn("b", 0.0, t + 20)
            assert await one.mapping_turn("a", 10.0, t + 20.5), "b gave it back at its stop"

    asyncio.run(go())


def test_two_workers_map_each_event_once_and_the_other_maps_once_one_stops(pg_url: str) -> None:
    from test_worker import Holder, ScriptedDestination

    from bridge.worker import MAP_TURN_SECONDS, Worker

    async def go() -> None:
        async with opened(pg_url) as first_store, opened(pg_url) as second_store:
            workers = [Worker(Settings(mapping="thread"), store, Holder(), {"omnisend": ScriptedDestination("omnisend")})
                       for store in (first_store, second_store)]
            mapped: dict[str, list[int]] = {w.holder: [] for w in workers}
            for worker in workers:
                original = worker._map

                async def counting(rules: Any, events: Any, worker: Worker = worker, original: Any = original) -> Any:
                    mapped[worker.holder].extend(e.id for e in events)
                    return await original(rules, events)

                worker._map = counting  # type: ignore[method-assign]

            async def all_mapped(count: int) -> None:
                deadline = time.monotonic() + 20
                while (await first_store.list_events(EventFilter(status="received"), 1)).total or \
                        (await first_store.list_events(EventFilter(), 1)).total < count:
                    assert time.monotonic() < deadline, "events still waiting"
                    await asyncio.sleep(0.1)

            for n in range(300):
                await first_store.ingest(hook(f"turn-{n}"))
            for worker in workers:
                await worker.start()
            try:
                await all_mapped(300)
                every = [i for ids in mapped.values() for i in ids]
                assert sorted(every) == sorted(set(every)) and len(every) == 300, "each event mapped once"
                [holder] = [w for w in workers if mapped[w.holder]]
                await holder.stop()
                other = next(w for w in workers if w is not holder)
                # the stopped worker's turn would run until ~10 s from now had it not been given back
                assert await second_store.mapping_turn(other.holder, MAP_TURN_SECONDS, time.time())
                for n in range(10):
                    await first_store.ingest(hook(f"after-{n}"))
                await all_mapped(310)
                assert len(mapped[other.holder]) == 10
            finally:
                for worker in workers:
                    await worker.stop()

    asyncio.run(go())


def test_bridge_migrate_on_postgres(pg_server: pgserver.Server, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    url = pg_server.create_database()
    try:
        monkeypatch.setenv("DATABASE_URL", url.replace("postgresql://", "postgres://"))  # as Heroku sets it
        monkeypatch.delenv("BRIDGE_DATABASE_URL", raising=False)
        assert main(["migrate"]) == 0
        assert ", ".join(m.name for m in migrations("postgres")) in capsys.readouterr().out
        assert main(["migrate"]) == 0
        assert f"nothing to apply; the database is at {migrations('postgres')[-1].version}" in capsys.readouterr().out
    finally:
        pg_server.drop_database(url)


def test_a_worker_hears_of_new_events_and_messages_from_another_process(pg_url: str) -> None:
    async def go() -> None:
        async with opened(pg_url) as web, opened(pg_url) as worker, opened(pg_url, notify=False) as quiet:
            heard: list[str] = []
            unheard: list[str] = []
            worker.on_wake(heard.append)
            quiet.on_wake(unheard.append)
            await asyncio.sleep(0.5)  # the listener connects
            for n in range(5):  # a burst is announced once or twice, not five times
                await web.ingest(hook(f"w{n}"))
            deadline = asyncio.get_running_loop().time() + 10
            while "events" not in heard and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert "events" in heard and heard.count("events") < 5
            [event, *_] = await web.waiting_events(10)
            msg = Outgoing("ometria", "event", {"n": 1}, "r", key="k")
            await web.save_mappings([Mapped(event.id, "mapped", ["r"], [], [(msg, "idem")])], 0.0)
            while "messages" not in heard and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert "messages" in heard
            assert unheard == [], "BRIDGE_PG_NOTIFY=false listens to nothing"

    asyncio.run(go())


def test_without_psycopg_the_bridge_runs_on_sqlite_and_names_the_extra_for_postgres(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None\n"  # as if not installed
        "import bridge.app, bridge.cli, bridge.worker\n"
        "from bridge.errors import ConfigError\n"
        "from bridge.store import make_store\n"
        f"make_store({str(tmp_path / 'b.db')!r})\n"
        "try:\n"
        "    make_store('postgres://u:p@h/d')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'bridge[postgres]'" in done.stdout


def test_a_pause_by_one_worker_stops_every_worker_on_the_database(pg_url: str) -> None:
    from test_worker import Holder, ScriptedDestination

    from bridge.worker import Worker

    async def go() -> None:
        async with opened(pg_url) as first_store, opened(pg_url) as second_store:
            refused = ScriptedDestination("omnisend", script=["pause"])
            other = ScriptedDestination("omnisend")
            first = Worker(Settings(mapping="thread"), first_store, Holder(), {"omnisend": refused})
            second = Worker(Settings(mapping="thread"), second_store, Holder(), {"omnisend": other})
            for n in range(2):
                await first_store.ingest(Webhook("shopify", "orders/create", f"p{n}", f'{{"id": {n}}}'.encode(), {}))
            await first.map_once()
            assert await first.deliver_once(refused) == 1 and "omnisend" in first.paused  # 401: paused
            await second.refresh_pauses()  # what its lease loop does every few seconds
            assert "omnisend" in second.paused and await second.deliver_once(other) == 0 and other.calls == []
            await second.resume("omnisend")
            await first.refresh_pauses()
            assert first.paused == {}

    asyncio.run(go())


def test_a_429_one_worker_gets_holds_back_the_other(pg_url: str) -> None:
    async def go() -> None:
        async with opened(pg_url) as one, opened(pg_url) as two:
            limiters = [RateLimiter(10, 1.0), RateLimiter(10, 1.0)]
            for limiter, store in zip(limiters, (one, two)):
                limiter.share(functools.partial(store.take_budget, "omnisend"),
                              functools.partial(store.block_budget, "omnisend"),
                              functools.partial(store.hold_budget, "omnisend"))
            assert await limiters[0].acquire()
            limiters[0].observe(429, {"Retry-After": "2"})
            await asyncio.sleep(0.3)  # the block reaches the database
            started = time.monotonic()
            assert not await limiters[1].acquire(max_wait=1.0), "the other worker would send into the 429"
            assert await limiters[1].acquire()
            assert time.monotonic() - started >= 1.5

    asyncio.run(go())
