"""The retry policy: a pure function from an attempt's outcome to what happens next."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bridge.model import Decision, Message, Outcome


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 1.0
    cap_seconds: float = 600.0
    max_attempts: int = 300  # ~24 h of failures at the cap: an outage of hours is ridden out, max_age decides
    max_age_seconds: float = 24 * 3600.0
    # How long after a batch was accepted its result is first read.
    follow_up_seconds: float = 5.0

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Capped exponential backoff with full jitter (AWS architecture blog's "Full Jitter")."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return (rng or random).uniform(0, ceiling)

    def decide(self, message: Message, outcome: Outcome, now: float, rng: random.Random | None = None) -> Decision:
        if outcome.kind == "delivered":
            return Decision("delivered", now)
        if outcome.kind == "dead":
            return Decision("dead", now)
        if outcome.kind == "submitted":
            # Still no readable result (the batch runs on, or its status cannot be read): the
            # message holds back its key meanwhile, so after max_age it becomes a dead letter
            # an operator can see and replay, rather than waiting for the batch to be deleted.
            if message.submitted_at is not None and now - message.submitted_at >= self.max_age_seconds:
                return Decision("dead", now)
            return Decision("submitted", now + self.follow_up_seconds)
        if outcome.kind == "deferred":
            return Decision("pending", now + (outcome.retry_after or 0.0), refund_attempt=True)
        if outcome.kind == "pause":
            # The destination refused our credentials: the message waits with the
            # destination and this attempt does not count against it.
            return Decision("pending", now, refund_attempt=True)
        too_old = now - message.created_at >= self.max_age_seconds
        if message.attempts >= self.max_attempts or too_old:
            return Decision("dead", now)
        delay = self.backoff(message.attempts, rng)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        return Decision("pending", now + delay)
