"""The worker maps waiting events and turns outcomes into retries, dead letters and pauses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.mapping import MapResult
from bridge.mapping.reload import FixedRules
from bridge.model import Event, Message, Outcome, Outgoing, PreparedRequest, Webhook
from bridge.settings import Settings
from bridge.store import SQLiteStore
from bridge.worker import Worker
from tests.mapping.test_rules import ORDER_HEAD


@dataclass
class ScriptedDestination:
    """Unit-test double: answers from a script, records what it was given."""

    name: str
    script: list[str] = field(default_factory=list)  # outcome kinds, one per deliver call
    max_batch: int = 10
    configured: bool = True
    calls: list[list[int]] = field(default_factory=list)
    key_fingerprint: str | None = None
    batch_linger_seconds: float = 0.0
    follows_up: bool = False

    async def follow_up(self, ref: str, messages: Sequence[Message]) -> list[Outcome] | None:
        raise NotImplementedError
    ceiling: float = 100.0

    def prepare(self, messages: Sequence[Message]) -> list[PreparedRequest]:
        return []

    async def deliver(self, messages: Sequence[Message]) -> list[Outcome]:
        self.calls.append([m.id for m in messages])
        kind = self.script.pop(0) if self.script else "delivered"
        if kind == "boom":
            raise RuntimeError("adapter bug")
        return [Outcome(kind, {"delivered": 202, "retry": 503, "dead": 400, "pause": 401}[kind], "x")] * len(messages)  # type: ignore[arg-type]

    def state(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        pass


@dataclass
class OneRule:
    one_key: bool = True  # every message about one entity ("o"), or one entity per event ("o<id>")

    def map(self, event: Event) -> MapResult:
        if event.topic == "unknown":
            return MapResult()
        n = event.payload()["id"]
        return MapResult(messages=[Outgoing("omnisend", "event", {"id": n}, rule="r", key="o" if self.one_key else f"o{n}")],
                         rules=["r"])


class Holder(FixedRules):
    """The running rules, which a test may swap (`holder.current = ...`)."""

    def __init__(self, current: Any = None) -> None:
        super().__init__(current if current is not None else OneRule())


def make(store: SQLiteStore, dest: ScriptedDestination, clock: list[float], rules: OneRule | None = None) -> Worker:
    settings = Settings(retry_base_seconds=1, retry_cap_seconds=1, retry_max_attempts=3)
    return Worker(settings, store, Holder(rules or OneRule()), {"omnisend": dest}, clock=lambda: clock[0])


async def ingest(store: SQLiteStore, n: int, topic: str = "orders/create") -> None:
    await store.ingest(Webhook("shopify", topic, f"k{n}", f'{{"id": {n}}}'.encode()))


def states(store: SQLiteStore) -> list[tuple[str, int]]:
    return [tuple(r) for r in store.reader().execute("SELECT state, attempts FROM messages ORDER BY id")]


def test_maps_and_delivers(store: SQLiteStore) -> None:
    async def go() -> None:
        dest = ScriptedDestination("omnisend")
        worker = make(store, dest, [0.0])
        await ingest(store, 1)
        await ingest(store, 2, topic="unknown")
        await worker.run_until_idle()
        assert states(store) == [("delivered", 1)]
        statuses = [r[0] for r in store.reader().execute("SELECT status FROM events ORDER BY id")]
        assert statuses == ["mapped", "no_rule"]

    asyncio.run(go())


def test_retries_then_dead_letter(store: SQLiteStore) -> None:
    async def go() -> None:
        clock = [0.0]
        dest = ScriptedDestination("omnisend", script=["retry", "boom", "retry"])
        worker = make(store, dest, clock)
        await ingest(store, 1)
        for _ in range(3):
            await worker.run_until_idle()
            clock[0] += 10
        assert states(store) == [("dead", 3)]
        trail = [tuple(r) for r in store.reader().execute("SELECT outcome FROM attempts ORDER BY id")]
        assert trail == [("retry",), ("retry",), ("retry",)]

    asyncio.run(go())


def test_pause_holds_everything_until_resumed(store: SQLiteStore) -> None:
    async def go() -> None:
        dest = ScriptedDestination("omnisend", script=["pause"])
        worker = make(store, dest, [0.0])
        await ingest(store, 1)
        await worker.run_until_idle()
        assert "omnisend" in worker.paused and states(store) == [("pending", 0)]
        await worker.run_until_idle()
        assert len(dest.calls) == 1  # nothing is sent while paused
        await worker.resume("omnisend")
        await worker.run_until_idle()
        assert states(store) == [("delivered", 1)]

    asyncio.run(go())


def test_unconfigured_destination_keeps_messages_waiting(store: SQLiteStore) -> None:
    async def go() -> None:
        dest = ScriptedDestination("omnisend", configured=False)
        await ingest(store, 1)
        await make(store, dest, [0.0]).run_until_idle()
        assert states(store) == [("pending", 0)] and dest.calls == []

    asyncio.run(go())


@dataclass
class HangingDestination(ScriptedDestination):
    async def deliver(self, messages: Sequence[Message]) -> list[Outcome]:
        self.calls.append([m.id for m in messages])
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def test_stop_gives_back_claims_whose_delivery_it_cancelled(store: SQLiteStore) -> None:
    async def go() -> None:
        dest = HangingDestination("omnisend")
        worker = make(store, dest, [0.0])
        await ingest(store, 1)
        await worker.map_once()
        task = asyncio.create_task(worker.deliver_once(dest))
        while not dest.calls:
            await asyncio.sleep(0.01)
        assert states(store) == [("inflight", 1)]
        worker._tasks = [task]
        await worker.stop(timeout=0.1)
        assert states(store) == [("pending", 0)]  # given back at once, not left to the lease

    asyncio.run(go())


@dataclass
class BatchingDestination(ScriptedDestination):
    """Accepts everything into one asynchronous batch; the batch's result is ready after `ready` follow-ups."""

    ready: int = 1
    looks: int = 0
    follows_up: bool = True

    async def deliver(self, messages: Sequence[Message]) -> list[Outcome]:
        self.calls.append([m.id for m in messages])
        return [Outcome("submitted", 201, "batch b1 accepted", ref="b1")] * len(messages)

    async def follow_up(self, ref: str, messages: Sequence[Message]) -> list[Outcome] | None:
        assert ref == "b1"
        self.looks += 1
        if self.looks < self.ready:
            return None
        return [Outcome("dead", 400, "item refused") if m.record["id"] == 2 else Outcome("delivered", 202)
                for m in messages]


def test_a_submitted_batch_is_followed_up_and_refused_items_die(store: SQLiteStore) -> None:
    async def go() -> None:
        clock = [0.0]
        dest = BatchingDestination("omnisend", ready=2)
        worker = make(store, dest, clock, OneRule(one_key=False))  # three orders: one batch (one key would wait)
        for n in (1, 2, 3):
            await ingest(store, n)
        await worker.run_until_idle()
        assert [s for s, _ in states(store)] == ["submitted"] * 3
        assert await worker.follow_up_once(dest) == 0  # not due yet
        clock[0] += worker.policy.follow_up_seconds
        assert await worker.follow_up_once(dest) == 3  # still processing: looked at again later
        assert [s for s, _ in states(store)] == ["submitted"] * 3
        clock[0] += worker.policy.follow_up_seconds
        assert await worker.follow_up_once(dest) == 3
        assert [s for s, _ in states(store)] == ["delivered", "dead", "delivered"]
        sent = [mid for call in dest.calls for mid in call]
        assert sorted(sent) == [1, 2, 3]  # a submitted message is never sent again

    asyncio.run(go())


def test_a_key_refused_while_reading_a_batch_pauses_and_keeps_the_items_submitted(store: SQLiteStore) -> None:
    """The batch ran; only its result could not be read. Sending its items again would duplicate them."""
    async def go() -> None:
        clock = [0.0]
        dest = BatchingDestination("omnisend")

        async def refused(ref: str, messages: Sequence[Message]) -> list[Outcome]:
            return [Outcome("pause", 401, "invalid API key")] * len(messages)

        dest.follow_up = refused  # type: ignore[method-assign]
        worker = make(store, dest, clock, OneRule(one_key=False))
        for n in (1, 2, 3):
            await ingest(store, n)
        await worker.run_until_idle()
        clock[0] += worker.policy.follow_up_seconds
        assert await worker.follow_up_once(dest) == 3
        assert states(store) == [("submitted", 1)] * 3
        assert "omnisend" in worker.paused and "401" in worker.paused["omnisend"]
        assert store.reader().execute("SELECT paused FROM destination_state WHERE name = 'omnisend'").fetchone()[0] == 1
        clock[0] += worker.policy.follow_up_seconds
        assert await worker.follow_up_once(dest) == 0  # paused: no more reading with a refused key
        await worker.run_until_idle()
        assert len(dest.calls) == 1  # and nothing sent again

    asyncio.run(go())


def test_a_busy_destination_reads_batch_results_only_when_overdue(store: SQLiteStore) -> None:
    async def go() -> None:
        clock = [0.0]
        dest = BatchingDestination("omnisend")
        worker = make(store, dest, clock)
        await ingest(store, 1)
        await worker.run_until_idle()
        clock[0] += worker.policy.follow_up_seconds
        worker._idle["omnisend"] = False  # a burst is being sent
        assert await worker.follow_up_once(dest) == 0
        clock[0] += 300
        assert await worker.follow_up_once(dest) == 1

    asyncio.run(go())


def test_a_busy_destination_reads_at_once_the_result_a_later_message_of_its_key_waits_for(store: SQLiteStore) -> None:
    async def go() -> None:
        clock = [0.0]
        dest = BatchingDestination("omnisend")
        worker = make(store, dest, clock)  # one key for every message: the second waits for the first
        await ingest(store, 1)
        await worker.run_until_idle()
        await ingest(store, 2)
        await worker.map_once()
        assert await worker.deliver_once(dest) == 0  # held back by the submitted batch
        assert [s for s, _ in states(store)] == ["submitted", "pending"]
        worker._idle["omnisend"] = False  # busy with other keys
        assert await worker.follow_up_once(dest) == 0  # not due yet
        clock[0] += worker.policy.follow_up_seconds
        assert await worker.follow_up_once(dest) == 1  # due, and a message waits for it: not 300 s later
        assert await worker.deliver_once(dest) == 1
        assert [mid for call in dest.calls for mid in call] == [1, 2]

    asyncio.run(go())


def test_the_map_loop_reads_and_maps_the_next_batch_while_the_last_one_is_saved(store: SQLiteStore) -> None:
    """A burst of 2.5 batches: every event mapped once, messages in event order, a read during a save."""
    async def go() -> None:
        for n in range(450):
            await ingest(store, n)
        timeline: list[tuple[str, float]] = []
        reads, saves = store.waiting_events, store.save_mappings

        async def read(limit: int, after: int = 0) -> list[Event]:
            timeline.append((f"read after {after}", time.monotonic()))
            return await reads(limit, after)

        async def save(mapped: Any, now: float) -> int:
            timeline.append(("save", time.monotonic()))
            await asyncio.sleep(0.05)  # a slow writer: the next batch is read and mapped meanwhile
            try:
                return await saves(mapped, now)
            finally:
                timeline.append(("saved", time.monotonic()))

        store.waiting_events, store.save_mappings = read, save  # type: ignore[method-assign]
        worker = make(store, ScriptedDestination("omnisend", configured=False), [0.0], OneRule(one_key=False))
        await worker.start()
        try:
            for _ in range(200):
                if store.reader().execute("SELECT count(*) FROM events WHERE status = 'received'").fetchone()[0] == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        rows = store.reader().execute("SELECT event_id FROM messages ORDER BY id").fetchall()
        assert [r[0] for r in rows] == list(range(1, 451))  # each event once, in order
        steps = [step for step, _ in timeline]
        # batch 2 is read (and mapped) before batch 1's save ends, batch 3 before batch 2's; after the
        # short batch 3 the next read starts from the beginning, once batch 3 is saved
        assert steps[:10] == ["read after 0", "read after 200", "save", "saved", "read after 400", "save", "saved",
                              "save", "saved", "read after 0"]

    asyncio.run(go())


@dataclass
class EchoingDestination(ScriptedDestination):
    """Refuses every record with an error that quotes the names it was sent, as APIs do."""

    async def deliver(self, messages: Sequence[Message]) -> list[Outcome]:
        return [Outcome("dead", 400, f"contact.firstName: '{m.record['contact']['firstName']}' is longer than 50 "
                                     f"characters ({m.record['contact']['lastName']})") for m in messages]


@dataclass
class NamedRule:
    def map(self, event: Event) -> MapResult:
        record = {"contact": {"firstName": "Wilhelmina Jacqueline", "lastName": "Featherstonehaugh"}}
        return MapResult(messages=[Outgoing("omnisend", "event", record, rule="r", key="o")], rules=["r"])


def test_a_destination_error_never_stores_or_logs_the_names_it_echoes(store: SQLiteStore, capsys: Any) -> None:
    async def go() -> None:
        worker = Worker(Settings(), store, Holder(NamedRule()), {"omnisend": EchoingDestination("omnisend")},
                        clock=lambda: 0.0)
        await ingest(store, 1)
        await worker.run_until_idle()

    asyncio.run(go())
    (detail,) = [r[0] for r in store.reader().execute("SELECT last_detail FROM messages")]
    trail = " ".join(r[0] for r in store.reader().execute("SELECT detail FROM attempts"))
    captured = capsys.readouterr()
    logged = captured.out + captured.err
    assert "delivery.dead" in logged
    assert "longer than 50 characters" in detail and "h:" in detail
    for text in (detail, trail, logged):
        assert "Wilhelmina" not in text and "Featherstonehaugh" not in text


@dataclass
class GeneratorRule:
    """Unit-test double for a rule set that slips a value no store can save (a generator) into a record."""

    def map(self, event: Event) -> MapResult:
        record = {"skus": (sku for sku in ("a", "b"))}
        return MapResult(messages=[Outgoing("omnisend", "event", record, rule="r", key="o")], rules=["r"])


def test_a_failing_map_loop_is_a_metric_a_log_line_and_a_problem_for_healthz_and_readyz(store: SQLiteStore) -> None:
    from structlog.testing import capture_logs

    from bridge.app import Bridge
    from bridge.metrics import METRICS
    from bridge.ops.health import readyz

    def failures() -> float:
        return METRICS.registry.get_sample_value("bridge_mapping_loop_failures_total", {"cause": "TypeError"}) or 0.0

    async def go() -> None:
        await ingest(store, 1)
        holder = Holder(GeneratorRule())
        worker = Worker(Settings(mapping="thread"), store, holder, {"omnisend": ScriptedDestination("omnisend")})
        worker.map_health.stall_seconds = 0.3
        bridge = Bridge(Settings(), store, {}, holder, {"omnisend": ScriptedDestination("omnisend")},  # type: ignore[dict-item]
                        worker=worker)
        before = failures()
        with capture_logs() as logs:
            await worker.start()
            try:
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if worker.map_health.problem(time.monotonic()):
                        break
                status, body = await readyz(bridge)
                assert status == 503 and any(p.startswith("mapping: the map loop has failed every round")
                                             for p in body["problems"]), body
                assert "TypeError" in body["checks"]["mapping"]["problem"]
                assert (await bridge.health())["mapping"]["ok"] is False
                assert (await bridge.health())["mapping"]["problem"].startswith("the map loop has failed every round")
                assert failures() > before
                assert METRICS.registry.get_sample_value("bridge_mapping_stalled_seconds", {}) >= 0.3
                holder.current = OneRule()  # the rules are fixed: the loop gets through again
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if worker.map_health.problem(time.monotonic()) is None:
                        break
                assert (await readyz(bridge))[0] == 200 and (await bridge.health())["mapping"]["ok"] is True
            finally:
                await worker.stop()
        failed = [entry for entry in logs if entry["event"] == "mapping.loop_failed"]
        assert failed and failed[0]["cause"].startswith("TypeError")

    asyncio.run(go())


HOSTILE_AND_OTHER = ORDER_HEAD + """\
          contact: {email: "{{ email }}"}
          properties:
            tags: "{{ [customer.tag] }}"
  - name: Reward
    on: omneo reward.created
    send:
      - to: omnisend event "reward"
        fields:
          origin: api
          contact: {email: "{{ email }}"}
"""


def test_a_value_that_cannot_be_saved_is_an_error_of_its_event_not_of_the_batch(store: SQLiteStore,
                                                                                 tmp_path: Path) -> None:
    from bridge.mapping import load_rules

    (tmp_path / "rules.yaml").write_text(HOSTILE_AND_OTHER)
    rules = load_rules(tmp_path)

    async def go() -> None:
        await store.ingest(Webhook("shopify", "orders/create", "s1", b'{"email": "a@b.c", "customer": {}}'))
        await store.ingest(Webhook("omneo", "reward.created", "o1", b'{"email": "a@b.c"}'))
        worker = Worker(Settings(mapping="thread"), store, Holder(rules), {"omnisend": ScriptedDestination("omnisend")})
        assert await worker.map_once() == 2
        rows = store.reader().execute("SELECT source, status, errors FROM events ORDER BY id").fetchall()
        assert [(r[0], r[1]) for r in rows] == [("shopify", "mapping_error"), ("omneo", "mapped")]
        assert "rules.yaml:10 rule 'Order'" in rows[0][2] and "properties.tags.0" in rows[0][2]

    asyncio.run(go())


def test_mapping_and_delivery_wait_while_the_webhooks_of_their_process_are_busy(store: SQLiteStore) -> None:
    """While webhooks arrive and the event loop runs late, no round starts (up to max_wait, here longer than the
    test); once they stop, the backlog is mapped and delivered."""
    from bridge.pressure import BUSY_WINDOW_SECONDS, Pressure

    async def go() -> None:
        now = [100.0]
        pressure = Pressure(lag_limit=0.005, max_wait=3600.0, clock=lambda: now[0])
        pressure.webhook()
        pressure.record_lag(1.0)  # the clock stands still: busy until it moves
        for n in range(5):
            await ingest(store, n)
        dest = ScriptedDestination("omnisend")
        worker = make(store, dest, [0.0], OneRule(one_key=False))
        worker.pressure = pressure
        await worker.start()
        try:
            await asyncio.sleep(0.5)
            assert states(store) == [] and dest.calls == []  # nothing mapped, nothing sent
            now[0] += BUSY_WINDOW_SECONDS + 1  # the webhooks stopped
            for _ in range(200):
                if len(states(store)) == 5 and all(s == "delivered" for s, _ in states(store)):
                    break
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        assert states(store) == [("delivered", 1)] * 5
        assert pressure.yielded_seconds > 0

    asyncio.run(go())
