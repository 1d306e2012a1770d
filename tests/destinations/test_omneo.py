"""The Omneo adapter against the fake Omneo served on a loopback port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bridge.destinations.omneo import Omneo
from bridge.store.base import SentPrint

pytestmark = pytest.mark.anyio


def profile(n: int, **extra: Any) -> dict[str, Any]:
    return {"email": f"member{n}@example.com", "first_name": f"M{n}", "last_name": "Lee", **extra}


class Remembered:
    def __init__(self) -> None:
        self.prints: list[SentPrint] = []

    async def remember_sent(self, prints: Sequence[SentPrint]) -> None:
        self.prints.extend(prints)


@pytest.fixture
def log() -> Remembered:
    return Remembered()


@pytest.fixture
def omneo(omneo_url: str, dest_settings: Any, log: Remembered) -> Any:
    return Omneo(dest_settings("omneo", omneo_url, "on-token", requests_per_minute=6000), sent_log=log)


def fake(app: Any) -> Any:
    return app.state.fake


async def test_501_profiles_make_two_batches_with_their_batch_ids(omneo: Omneo, omneo_app: Any,
                                                                  make_message: Any, log: Remembered) -> None:
    messages = [make_message("profile", profile(n)) for n in range(501)]
    outcomes = await omneo.deliver(messages)
    await omneo.aclose()
    sent = fake(omneo_app).accepted("/api/v3/profiles/batch")
    assert [len(r.body["profiles"]) for r in sent] == [500, 1]
    assert all(r.body["match_criteria"] == "email" for r in sent)
    assert sent[0].headers["authorization"] == "Bearer on-token" and sent[0].headers["accept"] == "application/json"
    assert {o.kind for o in outcomes} == {"delivered"}
    assert {o.ref for o in outcomes} == set(fake(omneo_app).batches)  # each message keeps its batch's id
    assert len(fake(omneo_app).profiles) == 501
    assert len(log.prints) == 501  # one fingerprint per e-mail


async def test_what_is_written_is_remembered_before_omneo_has_it(omneo_url: str, omneo_app: Any, dest_settings: Any,
                                                                 make_message: Any) -> None:
    """Omneo may fire the profile's webhook, and the bridge map it, before its answer is back: the print of a
    write is kept before the request leaves, so that webhook is known for an echo."""
    seen: list[int] = []

    class Counting(Remembered):
        async def remember_sent(self, prints: Sequence[SentPrint]) -> None:
            seen.append(len(fake(omneo_app).profiles))  # what Omneo holds as the print is kept
            await super().remember_sent(prints)

    log = Counting()
    omneo = Omneo(dest_settings("omneo", omneo_url, "on-token", requests_per_minute=6000), sent_log=log)
    outcomes = await omneo.deliver([make_message("profile", profile(n)) for n in range(3)])
    await omneo.aclose()
    assert {o.kind for o in outcomes} == {"delivered"} and len(fake(omneo_app).profiles) == 3
    assert seen == [0] and len(log.prints) == 3


async def test_an_invalid_profile_is_a_dead_letter_naming_the_field_and_the_rest_go(
        omneo: Omneo, omneo_app: Any, make_message: Any) -> None:
    messages = [make_message("profile", profile(1, gender="f")),
                make_message("profile", profile(2, birth_day="14")),
                make_message("profile", profile(3, mobile_phone="0412 345 678")),
                make_message("profile", profile(4, birth_day=14, birth_month=6, birth_year=1991, gender="female",
                                                mobile_phone="+61412345678")),
                make_message("profile", {"first_name": "No email"}),
                make_message("profile", profile(5, birth_day=31, birth_month=6, birth_year=1991))]
    outcomes = await omneo.deliver(messages)
    await omneo.aclose()
    assert [o.kind for o in outcomes] == ["dead", "dead", "dead", "delivered", "dead", "dead"]
    assert "gender: must be one of male, female, withheld, other" in outcomes[0].detail
    assert "birth_day: must be a whole number" in outcomes[1].detail
    assert "mobile_phone: must be in E.164" in outcomes[2].detail
    assert "email: is required" in outcomes[4].detail
    assert "not a real date" in outcomes[5].detail
    [request] = fake(omneo_app).accepted("/api/v3/profiles/batch")
    assert [p["email"] for p in request.body["profiles"]] == ["member4@example.com"]


async def test_no_two_profiles_of_one_batch_share_an_email_or_a_mobile(omneo: Omneo, omneo_app: Any,
                                                                        make_message: Any) -> None:
    messages = [make_message("profile", profile(1, mobile_phone="+61412345678")),
                make_message("profile", {**profile(2), "email": "MEMBER1@example.com"}),
                make_message("profile", profile(3, mobile_phone="+61412345678")),
                make_message("profile", profile(4))]
    outcomes = await omneo.deliver(messages)
    await omneo.aclose()
    sent = [[p["email"] for p in r.body["profiles"]] for r in fake(omneo_app).recorded(path="/api/v3/profiles/batch")]
    assert sent[0] == ["member1@example.com", "member4@example.com"]
    # the later ones wait for the next batch; there member3's mobile is member1's now: Omneo refuses it (422),
    # it is a dead letter naming the field and the other profile of that batch is sent again on its own
    assert sent[1:] == [["MEMBER1@example.com", "member3@example.com"], ["MEMBER1@example.com"]]
    assert [o.kind for o in outcomes] == ["delivered", "delivered", "dead", "delivered"]
    assert "mobile_phone: The phone number exists" in outcomes[2].detail


async def test_one_match_criteria_per_batch(omneo: Omneo, omneo_app: Any, make_message: Any) -> None:
    by_id = {"match_criteria": "shopify_id"}
    messages = [make_message("profile", profile(1)),
                make_message("profile", profile(2, identities=[{"handle": "shopify_id", "identifier": "42"}],
                                                **by_id)),
                make_message("profile", profile(3, **by_id))]  # no identity to match on
    outcomes = await omneo.deliver(messages)
    await omneo.aclose()
    assert [o.kind for o in outcomes] == ["delivered", "delivered", "dead"]
    assert "identities: matching on `shopify_id` needs an identity" in outcomes[2].detail
    sent = fake(omneo_app).accepted("/api/v3/profiles/batch")
    assert [(r.body["match_criteria"], len(r.body["profiles"])) for r in sent] == [("email", 1), ("shopify_id", 1)]
    assert all("match_criteria" not in p for r in sent for p in r.body["profiles"])


async def test_a_refused_token_pauses_and_sends_nothing_more(omneo: Omneo, omneo_app: Any, make_message: Any) -> None:
    fake(omneo_app).api_key = "another-token"
    messages = [make_message("profile", profile(1)), make_message("profile", profile(1, first_name="again"))]
    outcomes = await omneo.deliver(messages)
    await omneo.aclose()
    assert [o.kind for o in outcomes] == ["pause", "pause"]
    assert "OMNEO_API_TOKEN" in outcomes[0].detail
    assert len(fake(omneo_app).recorded(path="/api/v3/profiles/batch")) == 1


async def test_a_429_is_retried_after_what_retry_after_says(omneo: Omneo, omneo_app: Any, make_message: Any) -> None:
    fake(omneo_app).fail("status", status=429, retry_after=7)
    [outcome] = await omneo.deliver([make_message("profile", profile(1))])
    assert (outcome.kind, outcome.retry_after) == ("retry", 7.0)
    assert omneo.limiter.state()["blocked_for_seconds"] > 6
    await omneo.aclose()


async def test_a_5xx_and_a_timeout_are_retried(omneo: Omneo, omneo_app: Any, make_message: Any) -> None:
    fake(omneo_app).fail("status", status=503)
    [outcome] = await omneo.deliver([make_message("profile", profile(1))])
    assert outcome.kind == "retry" and outcome.status == 503
    omneo.total_timeout = 0.5
    fake(omneo_app).fail("timeout", delay=2)
    [outcome] = await omneo.deliver([make_message("profile", profile(1))])
    assert outcome.kind == "retry" and "timeout" in outcome.detail
    await omneo.aclose()


async def test_a_taken_mobile_is_tried_once_as_secondary_phone_when_the_rule_allows(
        omneo: Omneo, omneo_app: Any, make_message: Any) -> None:
    fake(omneo_app).apply("email", [profile(9, mobile_phone="+61412345678")])
    allowed = make_message("profile", profile(1, mobile_phone="+61412345678", phone_exists="secondary_phone"))
    plain = make_message("profile", profile(2, mobile_phone="+61412345678"))
    other = make_message("profile", profile(3))
    outcomes = await omneo.deliver([allowed, plain, other])
    await omneo.aclose()
    assert [o.kind for o in outcomes] == ["delivered", "dead", "delivered"]
    assert "mobile_phone: The phone number exists" in outcomes[1].detail
    stored = fake(omneo_app).by_email("member1@example.com")
    assert stored["secondary_phone"] == "+61412345678" and "mobile_phone" not in stored
    assert "phone_exists" not in stored


async def test_a_422_naming_no_field_makes_dead_letters(omneo: Omneo, omneo_app: Any,
                                                                   make_message: Any) -> None:
    messages = [make_message("profile", profile(n)) for n in range(4)]
    fake(omneo_app).fail("status", status=422)  # once: {"error": "injected 422"}, no errors by field
    outcomes = await omneo.deliver(messages)
    await omneo.aclose()
    assert [o.kind for o in outcomes] == ["dead"] * 4  # Omneo named no field: nothing to resend differently
    assert len(fake(omneo_app).recorded(path="/api/v3/profiles/batch")) == 1


async def test_a_record_of_another_kind_is_refused(omneo: Omneo, make_message: Any) -> None:
    [outcome] = await omneo.deliver([make_message("contact", profile(1))])
    await omneo.aclose()
    assert outcome.kind == "dead" and "takes `profile`" in outcome.detail


async def test_a_422_naming_a_field_but_no_profile_is_narrowed_down_by_halves(dest_settings: Any,
                                                                               make_message: Any) -> None:
    import json

    import httpx

    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        profiles = json.loads(request.content)["profiles"]
        sizes.append(len(profiles))
        if any(p["email"] == "member2@example.com" for p in profiles):
            return httpx.Response(422, json={"message": "invalid", "errors": {"email": ["The email is blocked."]}})
        return httpx.Response(202, json={"data": {"batch_id": "b1"}})

    omneo = Omneo(dest_settings("omneo", "http://omneo.test/api", "t", requests_per_minute=6000),
                  transport=httpx.MockTransport(answer))
    outcomes = await omneo.deliver([make_message("profile", profile(n)) for n in range(4)])
    await omneo.aclose()
    assert [o.kind for o in outcomes] == ["delivered", "delivered", "dead", "delivered"]
    assert "email: The email is blocked." in outcomes[2].detail and outcomes[0].ref == "b1"
    assert sizes == [4, 2, 2, 1, 1]
