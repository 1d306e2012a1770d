"""The sliding-window limiter under a fake clock: no real sleeping."""

from __future__ import annotations

import asyncio

import pytest

from bridge.destinations.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(limit: int = 3, window: float = 1.0) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(limit, window, clock=clock, sleep=clock.sleep), clock


def test_window_holds_the_extra_request_back() -> None:
    rl, clock = limiter(3, 1.0)

    async def run() -> list[float]:
        times = []
        for _ in range(7):
            await rl.acquire()
            times.append(clock.now - 1000.0)
        return times

    times = asyncio.run(run())
    assert times[:3] == [0.0, 0.0, 0.0]
    assert times[3] >= 1.0 and times[6] >= 2.0
    # never more than 3 in any 1-second window
    assert all(times[i + 3] - times[i] >= 1.0 for i in range(len(times) - 3))


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


def test_per_second_keeps_fractional_rates() -> None:
    assert (RateLimiter.per_second(8).limit, RateLimiter.per_second(8).window) == (8, 1.0)
    half = RateLimiter.per_second(2.5)
    assert half.limit / half.window == pytest.approx(2.5)
    assert RateLimiter.per_minute(400).window == 60.0
