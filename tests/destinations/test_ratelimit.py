"""The evenly spacing limiter under a fake clock: no real sleeping."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from bridge.destinations.ratelimit import RateLimiter
from bridge.fakes.control import SlidingWindow
from bridge.model import BudgetSlot


class FakeClock:
    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.overshoot = overshoot  # a real timer wakes a little late

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + self.overshoot


def limiter(limit: int = 3, window: float = 1.0, **kwargs: float) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock(kwargs.pop("overshoot", 0.0))
    return RateLimiter(limit, window, clock=clock, sleep=clock.sleep, **kwargs), clock  # type: ignore[arg-type]


async def take(rl: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await rl.acquire()
        times.append(clock.now - 1000.0)
    return times


def test_requests_are_spaced_evenly_not_burst() -> None:
    rl, clock = limiter(8, 1.0)
    times = asyncio.run(take(rl, clock, 25))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0.0
    assert gaps == pytest.approx([rl.interval] * 24)
    assert rl.interval == pytest.approx(1.02 / 8)  # the slack is 2% of the window
    assert all(times[i + 8] - times[i] >= 1.0 for i in range(len(times) - 8))


def test_concurrent_callers_share_one_schedule() -> None:
    rl, clock = limiter(10, 1.0)

    async def run() -> list[float]:
        times: list[float] = []

        async def caller() -> None:
            for _ in range(10):
                await rl.acquire()
                times.append(clock.now - 1000.0)

        await asyncio.gather(*(caller() for _ in range(4)))
        return times

    times = sorted(asyncio.run(run()))
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([rl.interval] * 39)


def test_late_wake_ups_do_not_slow_the_schedule() -> None:
    """A timer that wakes 2 ms late every time still gets the full rate: the schedule runs from when a request was due."""
    rl, clock = limiter(8, 1.0, overshoot=0.002)
    times = asyncio.run(take(rl, clock, 801))
    assert 800 / (times[-1] - times[0]) == pytest.approx(8 / 1.02, rel=1e-3)


def test_a_pause_is_not_paid_back_as_a_burst() -> None:
    rl, clock = limiter(8, 1.0)
    asyncio.run(take(rl, clock, 3))
    clock.now += 30.0
    times = asyncio.run(take(rl, clock, 3))
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([rl.interval] * 2)


def test_a_small_burst_when_asked_never_breaks_the_window() -> None:
    rl, clock = limiter(8, 1.0, burst=3)
    times = asyncio.run(take(rl, clock, 40))
    assert times[:3] == pytest.approx([0.0, 0.0, 0.0])
    assert all(times[i + 8] - times[i] >= 1.0 for i in range(len(times) - 8))
    with pytest.raises(ValueError):
        RateLimiter(8, 1.0, burst=9)


def test_long_run_against_the_exact_sliding_window() -> None:
    """20,000 requests through the fake APIs' exact window, arriving 1-11 ms after leaving: no 429, >= 0.97 of the rate."""
    rl, clock = limiter(8, 1.0)
    server = SlidingWindow(8, 1.0)
    jitter = random.Random(7)

    async def run() -> tuple[int, list[float]]:
        refused, arrivals = 0, []
        for _ in range(20_000):
            await rl.acquire()
            arrival = clock.now + jitter.uniform(0.001, 0.011)
            allowed, _, _ = server.check(arrival)
            refused += not allowed
            arrivals.append(arrival)
            rl.observe(200 if allowed else 429, {})
        return refused, sorted(arrivals)

    refused, arrivals = asyncio.run(run())
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert refused == 0
    assert rate / 8 >= 0.97


def test_429_blocks_until_retry_after() -> None:
    rl, clock = limiter(100, 1.0)
    rl.observe(429, {"Retry-After": "5"})
    assert rl.wait_time() == pytest.approx(5.0)
    assert rl.state()["blocked_for_seconds"] == pytest.approx(5.0)
    asyncio.run(rl.acquire())
    assert clock.now == pytest.approx(1005.0)
    assert rl.state()["throttled_total"] == 1


def test_429_without_hint_uses_reset_then_default() -> None:
    rl, _ = limiter(400, 60.0)
    rl.observe(429, {"X-Rate-Limit-Reset": "9"})
    assert rl.wait_time() == pytest.approx(9.0)
    rl2, _ = limiter(400, 60.0)
    rl2.observe(429, {})
    assert rl2.wait_time() == pytest.approx(6.0)


def test_429_body_retry_after_is_honoured_like_the_header() -> None:
    """Omnisend's 2026 429 names its wait in the body (`retryAfter: 45`): that is the pause, not the default 6 s."""
    rl, _ = limiter(400, 60.0)
    rl.observe(429, {}, 45.0)
    assert rl.wait_time() == pytest.approx(45.0)
    header_first, _ = limiter(400, 60.0)
    header_first.observe(429, {"Retry-After": "5", "X-Rate-Limit-Reset": "9"}, 45.0)
    assert header_first.wait_time() == pytest.approx(5.0)
    over_reset, _ = limiter(400, 60.0)
    over_reset.observe(429, {"X-Rate-Limit-Reset": "9"}, 45.0)
    assert over_reset.wait_time() == pytest.approx(45.0)


def test_after_a_block_requests_resume_at_the_even_pace() -> None:
    rl, clock = limiter(8, 1.0)
    asyncio.run(take(rl, clock, 2))
    rl.observe(429, {"Retry-After": "2"})
    times = asyncio.run(take(rl, clock, 4))
    assert times[0] == pytest.approx(rl.interval + 2.0)  # blocked from the moment of the 429
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([rl.interval] * 3)


def test_server_remaining_zero_waits_for_reset() -> None:
    rl, clock = limiter(400, 60.0)
    rl.observe(200, {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "4"})
    asyncio.run(rl.acquire())
    assert clock.now == pytest.approx(1004.0)


def test_max_wait_gives_up_without_taking_a_slot() -> None:
    rl, clock = limiter(100, 1.0)
    rl.block(30)
    assert asyncio.run(rl.acquire(max_wait=10)) is False
    assert clock.slept == [] and rl.acquired_total == 0


def test_max_wait_shorter_than_the_interval_gives_up() -> None:
    rl, _ = limiter(1, 60.0)
    assert asyncio.run(rl.acquire(max_wait=10)) is True
    assert asyncio.run(rl.acquire(max_wait=10)) is False
    assert rl.wait_time() == pytest.approx(rl.interval)


def test_state_reports_the_schedule() -> None:
    rl, clock = limiter(8, 1.0)
    asyncio.run(take(rl, clock, 3))
    state = rl.state()
    assert state["sent_in_window"] == 3 and state["acquired_total"] == 3
    assert state["interval_seconds"] == pytest.approx(0.1275)
    assert state["waited_seconds_total"] == pytest.approx(2 * rl.interval)


def test_per_second_keeps_fractional_rates() -> None:
    assert (RateLimiter.per_second(8).limit, RateLimiter.per_second(8).window) == (8, 1.0)
    half = RateLimiter.per_second(2.5)
    assert half.limit / half.window == pytest.approx(2.5)
    assert RateLimiter.per_minute(400).window == 60.0


@pytest.mark.parametrize(
    "requests, slow, delay",
    [
        # one request takes 60 ms instead of 2 to arrive and answer: the one `limit` later waits
        (40, 5, 0.058),
        # the first request opens the connection (40 ms); only later answers show what quick is
        (20, 0, 0.040),
    ],
    ids=["stalled-request", "slow-first-request"],
)
def test_a_slow_answer_counts_from_when_the_request_may_have_arrived(requests: int, slow: int, delay: float) -> None:
    """The server's exact sliding window never refuses a request, whichever request was slow."""
    rl, clock = limiter(8, 1.0)
    server = SlidingWindow(8, 1.0)

    async def run() -> int:
        refused = 0
        for n in range(requests):
            await rl.acquire()
            took = delay if n == slow else 0.001
            allowed, _, _ = server.check(clock.now + took)
            refused += not allowed
            clock.now += took + 0.001
            rl.observe(200 if allowed else 429, {})
        return refused

    assert asyncio.run(run()) == 0


class SharedSchedule:
    """The store's shared schedule under the fake clock: numbered slots `1 / rate` apart, a held slot no
    earlier than its hold; `delays` are how long each answer takes to come back (a slow round trip, or
    a process the machine did not run)."""

    def __init__(self, clock: FakeClock, delays: list[float]) -> None:
        self.clock, self.delays, self.next_at, self.taken = clock, delays, 0.0, 0
        self.slots: list[float] = []
        self.holds: dict[int, float] = {}

    async def take(self, rate: float, max_wait: float | None) -> BudgetSlot:
        now = self.clock.now
        self.taken += 1
        slot = max(self.next_at, now, self.holds.get(self.taken, now))
        self.next_at = slot + 1 / rate
        self.slots.append(slot)
        self.clock.now += self.delays.pop(0) if self.delays else 0.001
        return BudgetSlot(slot - now, slot, self.taken)  # the store's clock is ours

    async def block(self, rate: float, seconds: float) -> None:
        pass

    async def hold(self, number: int, not_before: float) -> None:
        if number > self.taken:
            self.holds[number] = max(self.holds.get(number, not_before), not_before)


def share(rl: RateLimiter, shared: SharedSchedule) -> None:
    rl.share(shared.take, shared.block, shared.hold)


# The fake store's answers take 1 ms: its clock is known to within that, which counts as late.
KNOWN_WITHIN = 0.001


def test_a_shared_slot_is_never_used_early_and_a_request_a_slow_answer_made_late_holds_back_a_later_slot() -> None:
    """The third answer comes 89 ms late, and with it the request: the slot 8 numbers on goes a window and
    the rest of the slack after the third request, and the slots between them keep their place."""
    async def go() -> tuple[list[float], RateLimiter, SharedSchedule]:
        rl, clock = limiter(8, 1.0)
        shared = SharedSchedule(clock, [0.001, 0.001, 0.090])
        share(rl, shared)
        sent = []
        for _ in range(13):
            sent += await take(rl, clock, 1)
            await asyncio.sleep(0)  # the hold runs as a task
        return sent, rl, shared

    sent, rl, shared = asyncio.run(go())
    slots = [s - 1000.0 for s in shared.slots]
    assert all(slot <= at for at, slot in zip(sent, slots)), "never before its slot"
    late = sent[2] - slots[2]
    assert late > 0.080 and rl.late_sends == 1 and list(shared.holds) == [3 + 8]
    interval = 1 / rl.shared_rate
    assert [b - a for a, b in itertools.pairwise(slots[3:10])] == pytest.approx([interval] * 6)
    assert slots[10] - sent[2] >= 1.0 + rl.shared_slack - rl.shared_late - 1e-9, "a window and the margin after it"
    assert slots[11] - slots[10] == pytest.approx(interval)


def test_a_slow_answer_for_a_slot_further_away_than_it_was_slow_costs_nothing() -> None:
    """The slot is read on the store's clock: once its distance from ours is known, a slow answer
    only shortens the wait."""
    async def go() -> tuple[list[float], RateLimiter, SharedSchedule]:
        rl, clock = limiter(8, 1.0)
        shared = SharedSchedule(clock, [0.001, 0.001, 0.090, 0.001])
        share(rl, shared)
        sent = await take(rl, clock, 2)
        shared.next_at = clock.now + 0.5  # another worker holds the next half second
        sent += await take(rl, clock, 2)
        await asyncio.sleep(0)
        return sent, rl, shared

    sent, rl, shared = asyncio.run(go())
    slots = [s - 1000.0 for s in shared.slots]
    assert all(slot <= at <= slot + KNOWN_WITHIN + 1e-3 for at, slot in zip(sent, slots)), "the drift allowed for"
    assert rl.late_sends == 0 and shared.holds == {}


def test_the_shared_slack_is_a_small_time_not_a_share_of_the_window() -> None:
    """Two workers sharing Ometria's 8/s or Omnisend's 400/min may use 0.97 and 0.99 of them."""
    ometria, omnisend = RateLimiter(8, 1.0), RateLimiter(400, 60.0)
    assert ometria.shared_rate / 8 >= 0.97
    assert omnisend.shared_rate * 60 / 400 >= 0.99
    assert omnisend.shared_slack == omnisend.slack, "never less than one process's own slack"


def test_a_slow_answer_holds_back_a_later_slot_by_how_late_the_request_may_have_arrived() -> None:
    """The third request's answer comes 58 ms slower than the quickest: it may have reached the server
    that late, so the slot 8 numbers on goes no earlier than a window and the margin after that."""
    async def go() -> tuple[RateLimiter, SharedSchedule, list[float]]:
        rl, clock = limiter(8, 1.0)
        shared = SharedSchedule(clock, [])
        share(rl, shared)
        sent = []
        for n in range(4):
            await rl.acquire()
            sent.append(clock.now)
            clock.now += 0.060 if n == 2 else 0.002
            rl.observe(200, {})
            await asyncio.sleep(0)  # the hold runs as a task
        return rl, shared, sent

    rl, shared, sent = asyncio.run(go())
    margin = rl.shared_slack - rl.shared_late
    assert shared.holds == {11: pytest.approx(sent[2] + 0.058 + KNOWN_WITHIN + 1.0 + margin, abs=1e-3)}
    assert rl.state()["shared_late_total"] == 1


def test_late_requests_within_a_window_cost_the_latest_lateness_not_their_sum() -> None:
    """Five requests in a row each reach the server 60 ms late (a process not run for a while): the
    schedule loses 60 ms less the tolerance once, not five times."""
    async def go() -> tuple[list[float], RateLimiter]:
        rl, clock = limiter(8, 1.0)
        shared = SharedSchedule(clock, [])
        share(rl, shared)
        sent = []
        for n in range(20):
            await rl.acquire()
            sent.append(clock.now)
            clock.now += 0.062 if 2 <= n < 7 else 0.002
            rl.observe(200, {})
            await asyncio.sleep(0)
        return sent, rl

    sent, rl = asyncio.run(go())
    interval = 1 / rl.shared_rate
    lost = (sent[-1] - sent[0]) - 19 * interval
    assert rl.late_sends == 5
    assert 0.060 - rl.shared_late - 0.005 < lost < 0.060 - rl.shared_late + 0.005


def test_two_workers_sharing_the_budget_never_overrun_the_window_when_either_runs_late() -> None:
    """Two limiters take turns on one shared schedule; requests reach the server's exact window 1-11 ms
    after they leave, and one in ten is held up 20-150 ms on its way (a process not run, a busy loop),
    one in ten wakes up to its slot 20-150 ms late. No 429, and at least 0.9 of the rate (simulated time)."""
    clock = FakeClock()
    shared = SharedSchedule(clock, [])
    workers = [RateLimiter(8, 1.0, clock=clock, sleep=clock.sleep) for _ in range(2)]
    for rl in workers:
        share(rl, shared)
    server = SlidingWindow(8, 1.0)
    chance = random.Random(23)

    async def run() -> tuple[int, list[float]]:
        refused, arrivals = 0, []
        for n in range(4_000):
            rl = workers[n % 2]
            shared.delays.append(chance.uniform(0.020, 0.150) if chance.random() < 0.1 else 0.001)
            await rl.acquire()
            held = chance.uniform(0.020, 0.150) if chance.random() < 0.1 else 0.0
            arrival = clock.now + chance.uniform(0.001, 0.011) + held
            allowed, _, _ = server.check(arrival)
            refused += not allowed
            arrivals.append(arrival)
            clock.now = arrival + 0.002
            rl.observe(200 if allowed else 429, {})
            await asyncio.sleep(0)  # the moves run as tasks
        return refused, sorted(arrivals)

    refused, arrivals = asyncio.run(run())
    assert refused == 0
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) / 8 >= 0.9
