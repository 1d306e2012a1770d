"""Group commit on PostgreSQL (bridge/store/postgres/groups.py), against a commit function that records its groups.

No database here: what a group does in PostgreSQL is in the contract tests and tests/store/test_postgres.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bridge.errors import StoreUnavailable
from bridge.model import IngestResult
from bridge.store.postgres.groups import MIN_WAIT, IngestGroups
from bridge.store.sqlite.ingest import EventRow


def row(key: str) -> EventRow:
    return ("shopify", "orders/create", key, 0.0, "{}", b"{}", "received")


class Recorder:
    """Commits each group after `release` is set; fails the groups whose rows include a key in `failing`."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.waits: list[float] = []
        self.release = asyncio.Event()
        self.release.set()
        self.committing = 0
        self.most_at_once = 0
        self.failing: set[str] = set()

    async def __call__(self, rows: Sequence[EventRow], wait: float) -> list[IngestResult]:
        keys = [r[2] for r in rows]
        self.groups.append(keys)
        self.waits.append(wait)
        self.committing += 1
        self.most_at_once = max(self.most_at_once, self.committing)
        try:
            await self.release.wait()
            if self.failing & set(keys):
                raise StoreUnavailable("PostgreSQL: the server went away")
            return [IngestResult(int(k.removeprefix("k")), duplicate=False) for k in keys]
        finally:
            self.committing -= 1


def test_the_webhooks_of_one_loop_iteration_share_one_commit_and_each_gets_its_own_result() -> None:
    async def go() -> None:
        commit = Recorder()
        groups = IngestGroups(commit, in_flight=2, wait=3.0)
        results = await asyncio.gather(*(groups.ingest(row(f"k{n}")) for n in range(10)))
        assert commit.groups == [[f"k{n}" for n in range(10)]]
        assert [r.event_id for r in results] == list(range(10))

    asyncio.run(go())


def test_webhooks_arriving_while_groups_commit_wait_for_a_free_slot_and_go_together() -> None:
    async def go() -> None:
        commit = Recorder()
        commit.release.clear()
        groups = IngestGroups(commit, in_flight=2, wait=3.0)
        first = [asyncio.create_task(groups.ingest(row(f"k{n}"))) for n in range(3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        second = [asyncio.create_task(groups.ingest(row(f"k{n}"))) for n in range(3, 5)]
        await asyncio.sleep(0.01)
        later = [asyncio.create_task(groups.ingest(row(f"k{n}"))) for n in range(5, 9)]
        await asyncio.sleep(0.01)
        assert commit.groups == [["k0", "k1", "k2"], ["k3", "k4"]], "two groups in flight, the rest waits"
        assert not any(t.done() for t in first + second + later), "no answer before its commit"
        commit.release.set()
        await asyncio.gather(*first, *second, *later)
        assert commit.groups[2:] == [["k5", "k6", "k7", "k8"]]
        assert commit.most_at_once == 2

    asyncio.run(go())


def test_a_group_holds_at_most_max_rows() -> None:
    async def go() -> None:
        commit = Recorder()
        groups = IngestGroups(commit, in_flight=1, wait=3.0, max_rows=4)
        await asyncio.gather(*(groups.ingest(row(f"k{n}")) for n in range(10)))
        assert [len(g) for g in commit.groups] == [4, 4, 2]
        assert [k for g in commit.groups for k in g] == [f"k{n}" for n in range(10)], "arrival order kept"

    asyncio.run(go())


def test_a_failed_group_fails_each_of_its_callers_with_the_stores_error_and_the_next_group_commits() -> None:
    async def go() -> None:
        commit = Recorder()
        commit.failing = {"k1"}
        groups = IngestGroups(commit, in_flight=1, wait=3.0)
        failed = await asyncio.gather(*(groups.ingest(row(f"k{n}")) for n in range(3)), return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in failed), failed
        assert (await groups.ingest(row("k7"))).event_id == 7

    asyncio.run(go())


def test_a_caller_waits_for_a_connection_at_most_the_store_wait_from_its_arrival() -> None:
    async def go() -> None:
        commit = Recorder()
        commit.release.clear()
        groups = IngestGroups(commit, in_flight=1, wait=0.5)
        first = asyncio.create_task(groups.ingest(row("k0")))
        await asyncio.sleep(0.01)
        queued = asyncio.create_task(groups.ingest(row("k1")))
        await asyncio.sleep(0.2)
        commit.release.set()
        await asyncio.gather(first, queued)
        assert 0.3 < commit.waits[0] <= 0.5
        assert MIN_WAIT <= commit.waits[1] <= 0.31, "the time it queued behind the first group is counted"

    asyncio.run(go())


def test_closing_commits_what_waits_then_refuses_more() -> None:
    async def go() -> None:
        commit = Recorder()
        groups = IngestGroups(commit, in_flight=1, wait=3.0, max_rows=2)
        waiting = [asyncio.create_task(groups.ingest(row(f"k{n}"))) for n in range(5)]
        await asyncio.sleep(0)
        await groups.close()
        assert [r.event_id for r in await asyncio.gather(*waiting)] == list(range(5))
        with pytest.raises(StoreUnavailable):
            await groups.ingest(row("k9"))

    asyncio.run(go())


def test_closing_just_after_the_last_answer_returns() -> None:
    async def go() -> None:
        groups = IngestGroups(Recorder(), in_flight=1, wait=3.0)
        await groups.ingest(row("k1"))  # answered before its group's task has ended
        await asyncio.wait_for(groups.close(), 5)

    asyncio.run(go())
