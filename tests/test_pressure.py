"""The worker's yield to the webhooks of its process (bridge.pressure): when it waits, and for how long at most."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bridge.model import Webhook
from bridge.pressure import BUSY_WINDOW_SECONDS, HALF_LIFE_SECONDS, Arrivals, Pressure
from bridge.store.sqlite.store import SQLiteStore


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_busy_only_while_webhooks_arrive_and_the_loop_runs_late() -> None:
    clock = Clock()
    pressure = Pressure(lag_limit=0.005, clock=clock)
    pressure.record_lag(0.050)
    assert not pressure.busy()  # late, but no webhook: the worker's own work, not a reason to wait
    pressure.webhook()
    assert pressure.busy()
    clock.now += BUSY_WINDOW_SECONDS + 0.01
    pressure.record_lag(0.050)
    assert not pressure.busy()  # the last webhook is a while ago


def test_busy_while_webhooks_wait_for_their_answer_though_the_loop_is_on_time() -> None:
    clock = Clock()
    pressure = Pressure(lag_limit=0.005, answer_limit=0.020, clock=clock)
    pressure.webhook()
    assert pressure.arriving() and not pressure.busy()
    pressure.answered(0.004)
    assert not pressure.busy()  # answered promptly: the worker goes on
    pressure.answered(0.060)  # waited for its commit behind the worker's save, say
    pressure.answered(0.003)
    assert pressure.busy() and pressure.answer == 0.060
    clock.now += 2 * HALF_LIFE_SECONDS
    assert abs(pressure.answer - 0.015) < 1e-9 and not pressure.busy()
    clock.now += BUSY_WINDOW_SECONDS
    pressure.answered(0.500)
    assert not pressure.arriving() and not pressure.busy()  # no webhook for a while


def test_the_lag_is_held_at_its_peak_and_halves_every_half_life() -> None:
    clock = Clock()
    pressure = Pressure(lag_limit=0.005, clock=clock)
    pressure.webhook()
    pressure.record_lag(0.040)
    pressure.record_lag(0.001)  # a prompt timer right after does not hide the stall
    assert pressure.lag == 0.040
    clock.now += HALF_LIFE_SECONDS
    assert abs(pressure.lag - 0.020) < 1e-9
    clock.now += 3 * HALF_LIFE_SECONDS  # 2.5 ms: under the limit again
    pressure.webhook()
    assert not pressure.busy()


def test_a_round_waits_while_busy_but_never_longer_than_max_wait() -> None:
    pressure = Pressure(lag_limit=0.005, max_wait=0.3)  # the real clock

    async def run() -> float:
        async def keeps_busy() -> None:  # webhooks keep coming and the loop keeps running late
            while True:
                pressure.webhook()
                pressure.record_lag(0.030)
                await asyncio.sleep(0.005)

        pressure.webhook()
        pressure.record_lag(0.030)
        busy = asyncio.create_task(keeps_busy())
        try:
            return await pressure.yield_to_webhooks()
        finally:
            busy.cancel()

    waited = asyncio.run(run())
    assert 0.3 <= waited < 10  # it ends: a burst that never stops slows the worker without stopping it
    assert pressure.yielded_seconds == waited


def test_a_calm_loop_or_a_stop_does_not_wait() -> None:
    clock = Clock()
    pressure = Pressure(lag_limit=0.005, clock=clock)
    pressure.webhook()
    pressure.record_lag(0.001)
    assert asyncio.run(pressure.yield_to_webhooks()) == 0.0
    pressure.record_lag(0.050)
    stopping = asyncio.Event()
    stopping.set()
    assert asyncio.run(pressure.yield_to_webhooks(stopping)) == 0.0


def test_the_watch_measures_a_stalled_loop() -> None:
    pressure = Pressure()

    async def run() -> None:
        watch = asyncio.create_task(pressure.watch())
        await asyncio.sleep(0.03)
        time.sleep(0.06)
        await asyncio.sleep(0.02)
        watch.cancel()

    asyncio.run(run())
    assert pressure.lag > 0.02


def test_a_worker_of_its_own_waits_while_new_events_arrive_and_it_is_behind() -> None:
    clock = Clock()
    arrivals = Arrivals(clock=clock)
    arrivals.saw(500)  # the first reading: events stored before this worker started are no arrival
    arrivals.behind = True
    assert not arrivals.busy()
    clock.now += 0.25
    arrivals.saw(900)
    assert arrivals.busy()
    arrivals.behind = False  # its last read was short: it keeps up, and waits for nothing
    assert not arrivals.busy()
    arrivals.behind = True
    clock.now += BUSY_WINDOW_SECONDS + 0.01
    arrivals.saw(900)  # nothing new for a while: the burst is over, the backlog drains at full speed
    assert not arrivals.busy()
    for _ in range(8):  # a trickle (20 a second) goes on: a worker behind maps at full speed all the same
        clock.now += 0.25
        arrivals.saw(arrivals.newest + 5)
    assert not arrivals.arriving() and not arrivals.busy()


@pytest.mark.anyio
async def test_arrivals_are_read_from_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "bridge.db", process=False)
    await store.open()
    arrivals = Arrivals(behind=True, busy_rate=10.0)
    watch = asyncio.create_task(arrivals.watch_store(store))
    try:
        await asyncio.sleep(0.05)
        assert arrivals.newest == 0 and not arrivals.busy()
        await asyncio.gather(*(store.ingest(Webhook("shopify", "orders/create", f"k{n}", b"{}", {}))
                               for n in range(300)))
        for _ in range(100):
            if arrivals.busy():
                break
            await asyncio.sleep(0.05)
        assert arrivals.busy() and arrivals.newest == 300
    finally:
        watch.cancel()
        await store.close()
