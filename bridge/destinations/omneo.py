"""Omneo: profiles written through the Batch Profiles endpoint, `POST {OMNEO_BASE_URL}/v3/profiles/batch`
(apis.md 3.7).

A request carries `match_criteria` and 1-500 profiles. Every profile is checked first
(omneo_profiles.problems): one that cannot be valid is a dead letter naming the field and the rest go.
Profiles share a batch only with the same `match_criteria` and never with another profile of the same
e-mail or mobile (those wait for the next batch, in order).

Omneo queues the batch and answers with its `batch_id`; the profiles' results come back as
`profile.created` / `profile.updated` webhooks, not in the answer. So an accepted batch is `delivered`, and
each message keeps the `batch_id` (shown by `bridge events show` and the admin API), and the adapter
remembers what it wrote to each profile (bridge.echo), so that the `profile.updated` Omneo sends back for
this very write is recognised as its echo.

Answers: 401/403 pause the destination (Omneo's tokens expire: a person issues a new one); 429 and 5xx
are retried, honouring `Retry-After`; a 422 `{"errors": {"profiles.3.email": [...]}}` makes a dead letter
of each profile it names (by index; a 422 naming no index, for a batch of several, is narrowed down by
sending each half again), and the others are sent again. `errors.mobile_phone: ["The phone number exists"]`
is tried once more with the number as `secondary_phone` when the rule says `phone_exists: secondary_phone`.
Omneo publishes no rate limit: the bridge paces at OMNEO_REQUESTS_PER_MINUTE (60 by default).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

import structlog

from bridge import echo
from bridge.destinations.base import HttpDestination, Planned
from bridge.destinations.catalog import OMNEO_MAX_PROFILES
from bridge.destinations.http import excerpt
from bridge.destinations.omneo_profiles import Profile, batches, problems, profile_of
from bridge.destinations.ratelimit import Clock, RateLimiter, Sleep
from bridge.model import Message, Outcome, PreparedRequest
from bridge.settings import DestinationSettings
from bridge.store.base import SentPrint

log = structlog.get_logger("bridge.destinations.omneo")

BATCH_PATH = "/v3/profiles/batch"
KIND = "profile"
PHONE_EXISTS = "exists"  # Omneo's "The phone number exists"
_INDEXED = re.compile(r"^profiles\.(\d+)\.(.+)$")


class SentLog(Protocol):
    """Where what was written to each profile is kept for recognising its echo (bridge.store.base.Store)."""

    async def remember_sent(self, prints: Sequence[SentPrint]) -> None: ...


class Omneo(HttpDestination):
    max_batch = OMNEO_MAX_PROFILES

    def __init__(self, settings: DestinationSettings, *, sent_log: SentLog | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.sent_log = sent_log
        self.batches_total = 0

    def make_limiter(self, settings: DestinationSettings, *, clock: Clock, sleep: Sleep) -> RateLimiter:
        return RateLimiter.per_minute(float(settings.options.get("requests_per_minute", 60.0)), clock=clock,
                                      sleep=sleep)

    def auth_headers(self, request: PreparedRequest) -> dict[str, str]:
        token = self.settings.api_key.value if self.settings.api_key else ""
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    # --- planning (pure) -----------------------------------------------------------------------

    def plan(self, messages: Sequence[Message]) -> tuple[list[Planned], dict[int, Outcome]]:
        refused: dict[int, Outcome] = {}
        profiles: list[Profile] = []
        for message in messages:
            if message.kind != KIND:
                refused[message.id] = Outcome("dead", detail=f"omneo has no record kind {message.kind!r}; "
                                                             "it takes `profile`")
                continue
            profile = profile_of(message.id, message.record)
            found = problems(profile, message.record.get("phone_exists"))
            if found:
                refused[message.id] = Outcome("dead", detail=excerpt("not sent, the profile is invalid: "
                                                                     + "; ".join(found)))
                continue
            profiles.append(profile)
        by_id = {m.id: m for m in messages}
        planned = [self._batch(group, by_id) for group in batches(profiles)]
        return planned, refused

    def _batch(self, group: Sequence[Profile], by_id: dict[int, Message]) -> Planned:
        body = {"match_criteria": group[0].match_criteria, "profiles": [p.body for p in group]}
        ids = tuple(p.message_id for p in group)
        return Planned(PreparedRequest(self.name, "POST", BATCH_PATH, body, ids), tuple(by_id[i] for i in ids))

    # --- delivery ------------------------------------------------------------------------------

    async def send_planned(self, item: Planned) -> dict[int, Outcome]:
        profiles = [profile_of(m.id, m.record) for m in item.messages]
        return await self._send(profiles, {m.id: m for m in item.messages})

    async def _send(self, profiles: list[Profile], by_id: dict[int, Message]) -> dict[int, Outcome]:
        planned = self._batch(profiles, by_id)
        # Remembered before the request leaves: Omneo may fire the profile's webhook, and the bridge map it,
        # before the answer is back. A print of a write that then fails is harmless: a webhook that matches it
        # carries only what the shop already sent everywhere, and it expires with the echo window.
        await self._remember(profiles)
        exchange = await self.exchange(planned.request)
        outcome = exchange.outcome
        if outcome.kind == "delivered" and exchange.response is not None:
            return await self._accepted(profiles, outcome.status, exchange.response)
        if outcome.kind == "pause":
            detail = outcome.detail or "token refused"
            outcome = Outcome("pause", outcome.status, excerpt(f"{detail} (Omneo API tokens expire: issue a new one "
                                                               "and set OMNEO_API_TOKEN)"))
        if outcome.status != 422 or exchange.response is None:
            return {p.message_id: outcome for p in profiles}
        return await self._refused(profiles, by_id, _errors(exchange.response), outcome)

    async def _accepted(self, profiles: list[Profile], status: int | None, response: Any) -> dict[int, Outcome]:
        batch_id = _batch_id(response)
        self.batches_total += 1
        detail = f"queued in Omneo batch {batch_id}" if batch_id else "queued by Omneo (no batch_id in the answer)"
        return {p.message_id: Outcome("delivered", status, detail, ref=batch_id) for p in profiles}

    async def _remember(self, profiles: list[Profile]) -> None:
        """Keep the fingerprints of what is about to be written, to know Omneo's echo of it (bridge.echo)."""
        if self.sent_log is None:
            return
        now = time.time()
        prints = [p for profile in profiles for p in echo.sent_prints(profile.body, now)]
        try:
            await self.sent_log.remember_sent(prints)
        except Exception as exc:  # the write still goes: its echo is then mapped, as any update would be
            log.warning("omneo.echo_not_remembered", profiles=len(profiles), error=type(exc).__name__)

    async def _refused(self, profiles: list[Profile], by_id: dict[int, Message], errors: dict[str, list[str]],
                       outcome: Outcome) -> dict[int, Outcome]:
        """A 422: dead letters for the profiles it names, the phone-number clash tried as `secondary_phone`,
        and the others sent again."""
        named: dict[int, list[str]] = {}
        unnamed: list[str] = []
        for field, messages in errors.items():
            match = _INDEXED.match(field)
            if match is not None and int(match.group(1)) < len(profiles):
                named.setdefault(int(match.group(1)), []).append(f"{match.group(2)}: {'; '.join(messages)}")
            elif len(profiles) == 1:
                named.setdefault(0, []).append(f"{field}: {'; '.join(messages)}")
            else:
                unnamed.append(f"{field}: {'; '.join(messages)}")
        if not named:
            if len(profiles) == 1 or not unnamed:
                return {p.message_id: Outcome("dead", 422, outcome.detail) for p in profiles}
            half = len(profiles) // 2  # which profile it was is not said: each half on its own narrows it down
            halves = await self._send(profiles[:half], by_id)
            halves.update(await self._send(profiles[half:], by_id))
            return halves
        results: dict[int, Outcome] = {}
        again: list[Profile] = []
        for index, profile in enumerate(profiles):
            reasons = named.get(index)
            if reasons is None:
                again.append(profile)
            elif _phone_exists(reasons) and profile.phone_exists == "secondary_phone" and profile.mobile:
                again.append(profile.with_secondary_phone())
            else:
                results[profile.message_id] = Outcome("dead", 422, excerpt("refused by Omneo: " + "; ".join(reasons)))
        if again:
            results.update(await self._send(again, by_id))
        return results

    def state(self) -> dict[str, Any]:
        return {**super().state(), "batches_total": self.batches_total}


def _phone_exists(reasons: list[str]) -> bool:
    """Only the mobile number is refused, because another profile holds it."""
    return all(r.startswith("mobile_phone:") and PHONE_EXISTS in r.lower() for r in reasons)


def _errors(response: Any) -> dict[str, list[str]]:
    """Laravel's `{"message", "errors": {"<field>": ["..."]}}` as field -> messages."""
    try:
        body = response.json()
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict):
        return {}
    return {str(field): [str(m) for m in (messages if isinstance(messages, list) else [messages])]
            for field, messages in errors.items()}


def _batch_id(response: Any) -> str | None:
    """`{"data": {"message": "Profiles queued for batch import.", "batch_id": "..."}}`."""
    try:
        body = response.json()
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    value = data.get("batch_id") if isinstance(data, dict) else None
    return str(value)[:200] if value not in (None, "") else None
