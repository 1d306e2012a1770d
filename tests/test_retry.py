"""The retry policy decides from the outcome, the attempts and the message's age."""

from __future__ import annotations

import random

import pytest

from bridge.config import settings_from_env
from bridge.model import Message, Outcome
from bridge.retry import RetryPolicy


def message(attempts: int, created_at: float = 0.0) -> Message:
    return Message(1, 1, "omnisend", "event", "create", {}, "r", "", "k", attempts, created_at)


@pytest.mark.parametrize(
    "outcome, state",
    [(Outcome("delivered", 202), "delivered"), (Outcome("dead", 400), "dead"), (Outcome("retry", 503), "pending")],
)
def test_state_follows_outcome(outcome: Outcome, state: str) -> None:
    assert RetryPolicy().decide(message(1), outcome, now=10).state == state


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_seconds=1, cap_seconds=60)
    rng = random.Random(7)
    delays = [policy.backoff(5, rng) for _ in range(2000)]
    assert 0 <= min(delays) < 1 and 15 < max(delays) <= 16  # uniform over [0, 2**4]
    assert max(policy.backoff(30, rng) for _ in range(200)) <= 60


def test_retry_after_is_a_floor() -> None:
    decision = RetryPolicy(base_seconds=0.001).decide(message(1), Outcome("retry", 429, retry_after=30), now=100)
    assert decision.state == "pending" and decision.next_at >= 130


def test_gives_up_after_max_attempts_or_age() -> None:
    policy = RetryPolicy(max_attempts=5, max_age_seconds=3600)
    assert policy.decide(message(5), Outcome("retry", 503), now=10).state == "dead"
    assert policy.decide(message(4), Outcome("retry", 503), now=10).state == "pending"
    assert policy.decide(message(2, created_at=0), Outcome("retry", 503), now=3601).state == "dead"


def test_pause_does_not_count_the_attempt() -> None:
    decision = RetryPolicy(max_attempts=1).decide(message(1), Outcome("pause", 401), now=5)
    assert decision.state == "pending" and decision.refund_attempt


def test_deferred_waits_without_counting() -> None:
    decision = RetryPolicy(max_attempts=1).decide(message(1), Outcome("deferred", retry_after=4.0), now=10)
    assert decision.state == "pending" and decision.next_at == 14 and decision.refund_attempt


def test_a_batch_result_unread_for_max_age_becomes_a_dead_letter() -> None:
    # A submitted message holds back its key: it must not wait for the batch's deletion (7 days).
    policy = RetryPolicy(max_age_seconds=3600)
    waiting = Outcome("submitted", None, "batch b-1 still processing", ref="b-1")
    submitted = Message(1, 1, "omnisend", "event", "create", {}, "r", "order:1", "k", 1, 0.0, submitted_at=100.0)
    assert policy.decide(submitted, waiting, now=100 + 3599).state == "submitted"
    assert policy.decide(submitted, waiting, now=100 + 3600).state == "dead"
    # the age counts from the batch's acceptance, not from the message's creation
    assert policy.decide(message(1, created_at=-10_000.0), waiting, now=10).state == "submitted"


def test_default_policy_rides_out_an_outage_of_hours() -> None:
    """With the defaults a message failing without pause is kept for about the max age, not ~2 hours."""
    policy, rng = RetryPolicy(), random.Random(3)
    now, attempts = 0.0, 0
    while True:
        attempts += 1  # the worker counts the attempt before it asks the policy
        decision = policy.decide(message(attempts, created_at=0.0), Outcome("retry", 503), now=now, rng=rng)
        if decision.state == "dead":
            break
        now = decision.next_at
    assert now >= 20 * 3600  # the age (24 h) or nearly so, never the attempt count after ~1.8 h


def test_the_defaults_agree_between_the_policy_settings_and_an_empty_environment() -> None:
    from dataclasses import fields

    from bridge.settings import Settings

    empty, plain, policy = settings_from_env({}), Settings(), RetryPolicy()
    for f in fields(Settings):
        if f.name not in {"sources", "destinations"}:
            assert getattr(empty, f.name) == getattr(plain, f.name), f.name
    assert (policy.base_seconds, policy.cap_seconds, policy.max_attempts, policy.max_age_seconds,
            policy.follow_up_seconds) == (plain.retry_base_seconds, plain.retry_cap_seconds,
                                          plain.retry_max_attempts, plain.retry_max_age_seconds,
                                          plain.batch_follow_up_seconds)
