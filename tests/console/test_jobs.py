"""Replays of a whole search run as jobs kept in the store: any instance of a fleet shows any job, ids are
the store's, a job whose instance went away reads as stopped, and the old ones that ended are forgotten."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bridge.console.jobs import KEEP_JOBS, STALE_SECONDS, Jobs, Reached, state
from bridge.ops.replay import Progress
from bridge.store import SQLiteStore
from bridge.store.base import ConsoleJob, ReplaySummary, Store

from .support import app_client, fill, settings_for, sign_in

T0 = 1_796_000_000.0
WAIT = 60.0  # how long a test waits for a background job before it fails: a loaded machine is slow, never wrong


# -- the jobs on a store, with the clock the test sets ------------------------------------------------


async def wait_for_job(store: Store, job_id: int, ready: Callable[[ConsoleJob], bool]) -> ConsoleJob:
    """The job once `ready(job)` is true (the job runs in the background: this waits, it does not time)."""
    deadline = time.monotonic() + WAIT
    while True:
        job = await store.job(job_id)
        assert job is not None
        if ready(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job}"
        await asyncio.sleep(0.02)


def run(tmp_path: Path, test: Callable[[Store], Awaitable[None]]) -> None:
    async def go() -> None:
        store = SQLiteStore(tmp_path / "bridge.db")
        await store.open()
        try:
            await test(store)
        finally:
            await store.close()

    asyncio.run(go())


def test_progress_reaches_the_store_while_the_job_runs_and_the_end_carries_the_summary(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        jobs = Jobs(store, clock=lambda: T0, instance="web-1:42")
        halfway = asyncio.Event()
        summary = ReplaySummary(events=3, queued=2, skipped_delivered=1)

        async def work(progress: Progress) -> ReplaySummary:
            progress(0, 3)
            progress(1, 3)
            await halfway.wait()
            progress(3, 3)
            return summary

        job_id = await jobs.start("ana", "source shopify", work)
        running = await wait_for_job(store, job_id, lambda j: j.done == 1)
        assert (running.total, running.instance, running.actor, running.what) == (3, "web-1:42", "ana", "source shopify")
        assert jobs.state(running) == "running" and running.finished_at is None
        halfway.set()
        finished = await wait_for_job(store, job_id, lambda j: j.finished_at is not None)
        assert finished.summary == summary and finished.error is None and jobs.state(finished) == "finished"
        assert (finished.done, finished.total, finished.finished_at) == (3, 3, T0)

    run(tmp_path, test)


def test_a_job_that_fails_keeps_how_far_it_got_and_why_without_personal_data(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        jobs = Jobs(store, clock=lambda: T0, instance="web-1:42")

        async def work(progress: Progress) -> ReplaySummary:
            progress(200, 600)
            raise RuntimeError("the rule for jane@example.com broke")

        job_id = await jobs.start("ana", "source shopify", work)
        failed = await wait_for_job(store, job_id, lambda j: j.finished_at is not None)
        assert jobs.state(failed) == "failed" and failed.summary is None
        assert (failed.done, failed.total) == (200, 600)
        assert failed.error is not None and failed.error.startswith("RuntimeError: the rule for ")
        assert "jane@example.com" not in failed.error

    run(tmp_path, test)


def test_a_job_whose_instance_is_silent_for_30_seconds_reads_as_stopped(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        now = [T0]
        other = Jobs(store, clock=lambda: now[0], instance="web-2:7")  # the instance the page is read from
        job_id = await store.start_job("ana", "source shopify", "web-1:42", T0)  # web-1 started it ...
        await store.job_progress(job_id, 200, 1000, T0 + 5)  # ... and was last heard from 5 s later
        for at, expected in ((T0 + 5, "running"), (T0 + 5 + STALE_SECONDS, "running"),
                             (T0 + 6 + STALE_SECONDS, "stopped")):
            now[0] = at
            job = await other.get(job_id)
            assert job is not None and other.state(job) == expected, at - T0
        await store.job_progress(job_id, 300, 1000, now[0])  # heard from again (a pause, not an end)
        job = await other.get(job_id)
        assert job is not None and other.state(job) == "running"

    run(tmp_path, test)


def test_an_ended_job_never_reads_as_stopped() -> None:
    job = ConsoleJob(1, "ana", "source shopify", "web-1:42", T0, T0 + 9, 3, 3, T0 + 9, ReplaySummary(events=3))
    assert state(job, T0 + 10 * STALE_SECONDS) == "finished"
    assert state(replace(job, summary=None, error="StoreUnavailable: gone"), T0 + 10 * STALE_SECONDS) == "failed"
    reached = Reached()
    reached(4, 9)
    assert (reached.done, reached.total) == (4, 9)


def test_starting_a_job_forgets_the_oldest_ended_ones_and_keeps_those_running(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        still_running = await store.start_job("bo", "source woocommerce", "web-2:7", T0 - 100)
        ended = [await store.start_job("ana", f"source s{n}", "web-1:42", T0 + n) for n in range(KEEP_JOBS + 5)]
        for job_id in ended:
            await store.finish_job(job_id, 1, 1, T0 + 100, ReplaySummary(events=1), None)
        await store.job_progress(still_running, 10, 100, T0 + 200)

        async def work(progress: Progress) -> ReplaySummary:
            return ReplaySummary()

        jobs = Jobs(store, clock=lambda: T0 + 201, instance="web-1:42")
        newest = await jobs.start("ana", "source shopify", work)
        await wait_for_job(store, newest, lambda j: j.finished_at is not None)
        kept = [j.id for j in (await store.list_jobs(100)).items]
        assert kept == [newest, *reversed(ended[-(KEEP_JOBS - 1):]), still_running]

    run(tmp_path, test)


# -- the console of two instances on one store --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def two_instances(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, TestClient]]:
    """Two instances of the real app on one store, as behind a load balancer (PostgreSQL: the session's
    database, emptied; skipped without a server)."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # mappings/ of the repository
    settings = settings_for(tmp_path / "bridge.db")
    if request.param == "postgres":
        settings = replace(settings, database_url=request.getfixturevalue("pg_url"))
    with app_client(settings) as one, app_client(settings) as two:
        yield one, two


def fragment_when_ended(client: TestClient, job: str) -> str:
    """The job's fragment, read until it ends (a wait for the background job, not a timing)."""
    deadline = time.monotonic() + WAIT
    while "data-finished" not in (page := client.get(f"{job}/fragment").text):
        assert time.monotonic() < deadline, page
        time.sleep(0.05)
    return page


def test_a_job_started_on_one_instance_is_shown_by_another_and_after_a_restart(two_instances: tuple[TestClient, TestClient]) -> None:
    one, two = two_instances
    for n in range(3):
        fill(one, n)
    csrf = sign_in(one, "operator")
    two.cookies.update(one.cookies)  # the same browser: the session cookie is good on every instance

    started = one.post("/console/replay", data={"csrf": csrf, "source": "shopify"}, follow_redirects=False)
    assert started.status_code == 303
    job = started.headers["location"]
    page = fragment_when_ended(two, job)
    assert "Finished: 3 events replayed" in page and "3 of 3 events" in page
    shown = two.get(job).text
    assert f"<h1>Replay {job.rsplit('/', 1)[1]}</h1>" in shown and "source shopify, started by op" in shown
    assert "data-live" not in shown

    again = two.post("/console/replay", data={"csrf": csrf, "source": "shopify"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] != job  # the store's ids: one per job
    assert "Finished: 3 events replayed" in fragment_when_ended(one, again.headers["location"])

    listed = one.get("/console/jobs").text
    assert "2 of 2 replays" in listed and listed.count("<td>finished</td>") == 2
    assert f'href="{job}"' in listed and f'href="{again.headers["location"]}"' in listed

    with app_client(one.app.state.bridge.settings) as restarted:  # type: ignore[attr-defined]
        restarted.cookies.update(one.cookies)
        assert "Finished: 3 events replayed" in restarted.get(job).text  # a restart forgets no job

    missing = two.get("/console/jobs/999999")
    assert missing.status_code == 404 and "No replay job 999999" in missing.text
    assert two.get(f"/console/jobs/{2**63}").status_code == 404


def test_a_job_whose_instance_went_away_says_so_and_that_running_it_again_is_safe(client: TestClient) -> None:
    store = client.app.state.bridge.store  # type: ignore[attr-defined]
    portal = client.portal  # type: ignore[attr-defined]
    now = time.time()
    lost = portal.call(store.start_job, "op", "source shopify", "web-9:1", now - 60)
    portal.call(store.job_progress, lost, 200, 1000, now - STALE_SECONDS - 5)
    live = portal.call(store.start_job, "op", "source woocommerce", "web-1:42", now)
    sign_in(client, "viewer")

    page = client.get(f"/console/jobs/{lost}").text
    assert "Stopped: the instance running it (web-9:1) went away" in page and "200 of 1000 events" in page
    assert "What it queued is kept. Start the replay again to finish it" in page and "idempotency key" in page
    assert "data-live" not in page
    running = client.get(f"/console/jobs/{live}").text
    assert "Running…" in running and f'data-live="/console/jobs/{live}/fragment"' in running
    listed = client.get("/console/jobs").text
    assert "<td>stopped</td>" in listed and "<td>running</td>" in listed and "200 of 1000 (20%)" in listed
