"""The console's replay jobs: every instance on the database reads what the instance running one wrote,
ids are never reused, and the old ones that ended are pruned while running ones are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.store.base import ReplaySummary, Store

from ..conftest import StoreFactory
from .support import T0

pytestmark = pytest.mark.anyio


async def test_a_job_is_read_as_its_instance_wrote_it(store: Store) -> None:
    job_id = await store.start_job("ana", "source shopify", "web-1:42", T0)
    started = await store.job(job_id)
    assert started is not None
    assert (started.id, started.actor, started.what, started.instance) == (job_id, "ana", "source shopify", "web-1:42")
    assert (started.started_at, started.heartbeat_at, started.done, started.total) == (T0, T0, 0, 0)
    assert started.finished_at is None and started.summary is None and started.error is None

    await store.job_progress(job_id, 200, 1000, T0 + 5)
    running = await store.job(job_id)
    assert running is not None and (running.done, running.total, running.heartbeat_at) == (200, 1000, T0 + 5)
    assert running.finished_at is None

    summary = ReplaySummary(events=1000, queued=12, requeued_dead=2, skipped_delivered=980, skipped_open=3,
                            events_with_errors=5)
    await store.finish_job(job_id, 1000, 1000, T0 + 9, summary, None)
    finished = await store.job(job_id)
    assert finished is not None and finished.summary == summary and finished.error is None
    assert (finished.done, finished.finished_at, finished.heartbeat_at) == (1000, T0 + 9, T0 + 9)
    assert await store.job(job_id + 1) is None


async def test_a_failed_job_keeps_why_and_how_far_it_got(store: Store) -> None:
    job_id = await store.start_job("ana", "topic orders/paid", "web-1:42", T0)
    await store.finish_job(job_id, 400, 1000, T0 + 3, None, "StoreUnavailable: PostgreSQL: server closed \x00")
    failed = await store.job(job_id)
    assert failed is not None and failed.summary is None and failed.finished_at == T0 + 3
    assert failed.error is not None and failed.error.startswith("StoreUnavailable: PostgreSQL: server closed")
    assert (failed.done, failed.total) == (400, 1000)


async def test_jobs_are_listed_newest_first_with_the_total(store: Store) -> None:
    ids = [await store.start_job(actor, f"source s{n}", "web-1:42", T0 + n) for n, actor in enumerate("abc")]
    page = await store.list_jobs(2)
    assert [j.id for j in page.items] == [ids[2], ids[1]] and page.total == 3
    rest = await store.list_jobs(2, offset=2)
    assert [(j.id, j.actor) for j in rest.items] == [(ids[0], "a")] and rest.total == 3


async def test_the_instances_on_one_database_see_each_others_jobs_with_ids_of_their_own(
        store_factory: StoreFactory, tmp_path: Path) -> None:
    async with store_factory(tmp_path) as one, store_factory(tmp_path) as two:
        a = await one.start_job("ana", "source shopify", "web-1:42", T0)
        b = await two.start_job("bo", "source woocommerce", "web-2:7", T0 + 1)
        assert a != b
        await one.job_progress(a, 3, 10, T0 + 2)
        seen = await two.job(a)
        assert seen is not None and (seen.instance, seen.done, seen.total) == ("web-1:42", 3, 10)
        await two.finish_job(b, 0, 0, T0 + 3, ReplaySummary(), None)
        other = await one.job(b)
        assert other is not None and other.finished_at == T0 + 3 and other.summary == ReplaySummary()


async def test_pruning_keeps_the_newest_and_every_job_still_running(store: Store) -> None:
    stale_before = T0 + 100
    ended = [await store.start_job("ana", f"source s{n}", "web-1:42", T0 + n) for n in range(3)]
    for job_id in ended:
        await store.finish_job(job_id, 1, 1, T0 + 10, ReplaySummary(events=1), None)
    running = await store.start_job("ana", "source long", "web-1:42", T0 + 3)
    await store.job_progress(running, 5, 100, stale_before)  # its heartbeat is recent
    gone = await store.start_job("ana", "source lost", "web-9:1", T0 + 4)  # no heartbeat since: its instance died
    newest = [await store.start_job("ana", f"source t{n}", "web-1:42", T0 + 5 + n) for n in range(2)]

    assert await store.prune_jobs(2, stale_before) == 4  # the three that ended and the one whose instance died
    assert [j.id for j in (await store.list_jobs(10)).items] == [*reversed(newest), running]
    assert await store.prune_jobs(2, stale_before) == 0

    assert await store.prune_jobs(0, stale_before + 1000) == 3  # nothing kept: every job has ended or stopped
    again = await store.start_job("ana", "source shopify", "web-1:42", T0 + 20)
    assert again > newest[-1] and gone < again  # an id is never given twice, even once its job is pruned
