"""The Ometria adapter against the fake Ometria served on a loopback port."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.destinations.ometria import Ometria

pytestmark = pytest.mark.anyio


def order(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"o{n}", "timestamp": "2026-11-23T10:00:00+00:00", "grand_total": 10.5, "currency": "GBP", **extra}


def contact(n: int) -> dict[str, Any]:
    return {"id": f"c{n}", "email": f"c{n}@example.com"}


def event(**extra: Any) -> dict[str, Any]:
    return {"event_type": "tier_up", "timestamp": "2026-11-23T10:00:00+00:00", "identity_email": "a@example.com", **extra}


@pytest.fixture
def ometria(ometria_url: str, dest_settings: Any) -> Any:
    return Ometria(dest_settings("ometria", ometria_url, "om-key", requests_per_second=100))


async def test_one_type_per_request_and_auth_header(ometria: Ometria, ometria_app: Any, make_message: Any) -> None:
    messages = [make_message("order", order(1)), make_message("contact", contact(1)),
                make_message("order", order(2)), make_message("custom_event", event())]
    outcomes = await ometria.deliver(messages)
    await ometria.aclose()
    assert [o.kind for o in outcomes] == ["delivered"] * 4
    sent = ometria_app.state.fake.accepted("/v2/push")
    assert len(sent) == 3
    for request in sent:
        assert request.headers["x-ometria-auth"] == "om-key"
        assert len({record["@type"] for record in request.body}) == 1
    assert [r["id"] for r in sent[0].body] == ["o1", "o2"]
    # custom events get the idempotency key as id
    assert sent[2].body[0]["id"] == messages[3].idempotency_key


async def test_at_most_100_records_per_request(ometria: Ometria, ometria_app: Any, make_message: Any) -> None:
    messages = [make_message("order", order(n)) for n in range(250)]
    outcomes = await ometria.deliver(messages)
    await ometria.aclose()
    assert all(o.kind == "delivered" for o in outcomes)
    assert [len(r.body) for r in ometria_app.state.fake.accepted()] == [100, 100, 50]


async def test_record_over_60kb_refused_rest_sent(ometria: Ometria, ometria_app: Any, make_message: Any) -> None:
    big = make_message("order", order(1, properties={"blob": "x" * 61_000}))
    small = make_message("order", order(2))
    outcomes = await ometria.deliver([big, small])
    await ometria.aclose()
    assert outcomes[0].kind == "dead" and "60 KB" in outcomes[0].detail
    assert outcomes[1].kind == "delivered"
    (request,) = ometria_app.state.fake.accepted()
    assert [r["id"] for r in request.body] == ["o2"]


async def test_partial_rejection_finds_the_rejected_record(ometria: Ometria, ometria_app: Any,
                                                          make_message: Any) -> None:
    # Ometria answers only counts; halving the request again narrows them down to the bad record.
    records = [order(n) for n in range(7)]
    records[4] = {"id": "o4", "timestamp": "2026-11-23T10:00:00+00:00"}  # no grand_total/currency
    outcomes = await ometria.deliver([make_message("order", r) for r in records])
    await ometria.aclose()
    assert [o.kind for o in outcomes] == ["delivered"] * 4 + ["dead"] + ["delivered"] * 2
    assert "rejected 1" in outcomes[4].detail and "_errors" in outcomes[4].detail
    sizes = [len(r.body) for r in ometria_app.state.fake.accepted("/v2/push")]
    assert sizes == [7, 3, 4, 2, 1, 1, 2]  # the whole, its halves, down to the bad record, and the rest
    assert {key[1] for key in ometria_app.state.fake.records} == {f"o{n}" for n in range(7)} - {"o4"}


async def test_all_rejected_is_dead(ometria: Ometria, make_message: Any) -> None:
    (outcome,) = await ometria.deliver([make_message("product", {"id": "p1"})])  # product without title
    await ometria.aclose()
    assert outcome.kind == "dead" and "rejected 1" in outcome.detail


async def test_wrong_key_pauses_and_stops_sending(ometria_url: str, ometria_app: Any, dest_settings: Any,
                                                  make_message: Any) -> None:
    destination = Ometria(dest_settings("ometria", ometria_url, "wrong"))
    outcomes = await destination.deliver([make_message("order", order(1)), make_message("contact", contact(1))])
    await destination.aclose()
    assert [(o.kind, o.status) for o in outcomes] == [("pause", 401), ("pause", 401)]
    assert len(ometria_app.state.fake.recorded()) == 1  # the second request was not sent


async def test_503_retries_then_delivers(ometria: Ometria, ometria_app: Any, make_message: Any) -> None:
    ometria_app.state.fake.fail("status", status=503, count=1, retry_after=2)
    message = make_message("order", order(1))
    (first,) = await ometria.deliver([message])
    (second,) = await ometria.deliver([message])
    await ometria.aclose()
    assert (first.kind, first.status, first.retry_after) == ("retry", 503, 2.0)
    assert second.kind == "delivered"


async def test_429_retry_after_is_respected(dest_settings: Any, make_message: Any) -> None:
    """After a 429 with Retry-After, the next request waits for it: none reaches the server earlier."""
    from bridge.fakes import create_ometria_app, serve_in_thread

    app = create_ometria_app("om-key", requests_per_second=2, retry_after=1)
    with serve_in_thread(app) as url:
        destination = Ometria(dest_settings("ometria", url, "om-key", requests_per_second=100))
        kinds = ["order", "contact", "product"]
        records = [order(1), contact(1), {"id": "p1", "title": "T"}]
        first = await destination.deliver([make_message(k, r) for k, r in zip(kinds, records)])
        assert [o.kind for o in first] == ["delivered", "delivered", "retry"]
        assert first[2].retry_after == 1.0
        (again,) = await destination.deliver([make_message("product", {"id": "p1", "title": "T"})])
        await destination.aclose()
    assert again.kind == "delivered"
    recorded = app.state.fake.recorded()
    throttled = next(r for r in recorded if r.status == 429)
    later = [r for r in recorded if r.at > throttled.at]
    assert later and all(r.at - throttled.at >= 0.95 for r in later)


async def test_timeout_and_reset_are_retries(ometria_url: str, ometria_app: Any, dest_settings: Any,
                                             make_message: Any) -> None:
    destination = Ometria(dest_settings("ometria", ometria_url, "om-key", timeout_seconds=0.3))
    ometria_app.state.fake.fail("timeout", delay=1.5)
    (timed_out,) = await destination.deliver([make_message("order", order(1))])
    ometria_app.state.fake.fail("reset")
    (dropped,) = await destination.deliver([make_message("order", order(2))])
    await destination.aclose()
    assert timed_out.kind == "retry" and "timeout" in timed_out.detail
    assert dropped.kind == "retry" and dropped.status is None


async def test_unsendable_records_are_dead_before_sending(ometria: Ometria, make_message: Any) -> None:
    # an unknown kind or a record without id would make Ometria refuse the whole request
    (unknown,) = await ometria.deliver([make_message("cart", {"id": "x"})])
    assert unknown.kind == "dead"
    (no_id,) = await ometria.deliver([make_message("order", {"timestamp": "t"})])
    await ometria.aclose()
    assert no_id.kind == "dead" and "no id" in no_id.detail


def test_prepare_is_pure_and_matches(make_message: Any, dest_settings: Any) -> None:
    destination = Ometria(dest_settings("ometria", "http://127.0.0.1:9", "k"))
    messages = [make_message("order", order(1)), make_message("custom_event", event(id="e1"))]
    prepared = destination.prepare(messages)
    assert [(p.method, p.path, p.message_ids) for p in prepared] == [("POST", "/v2/push", (1,)), ("POST", "/v2/push", (2,))]
    assert prepared[0].body == [{**order(1), "@type": "order"}]
    assert prepared[1].body[0]["id"] == "e1"
    assert destination.max_batch == 100


async def test_not_configured(dest_settings: Any, make_message: Any) -> None:
    destination = Ometria(dest_settings("ometria", "http://127.0.0.1:9", None))
    assert destination.configured is False
    (outcome,) = await destination.deliver([make_message("order", order(1))])
    await destination.aclose()
    assert outcome.kind == "pause"


async def test_a_record_json_cannot_carry_is_a_dead_letter_and_the_rest_of_its_batch_goes(
        ometria: Ometria, ometria_app: Any, make_message: Any) -> None:
    # A NaN must not go out as null (Ometria would erase the field), and JSON cannot carry it, nor
    # a lone surrogate: retrying would fail the same way, and take the whole request with it.
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"x": deep}
    bad = [make_message("order", order(1, grand_total=float("nan"))),
           make_message("order", order(2, properties={"note": "\ud800"})),
           make_message("order", order(3, properties=deep))]
    good = make_message("order", order(4, properties={"city": "Zürich 東京"}))
    outcomes = await ometria.deliver([*bad, good])
    await ometria.aclose()
    assert [o.kind for o in outcomes] == ["dead", "dead", "dead", "delivered"]
    assert all("cannot be sent as JSON" in o.detail for o in outcomes[:3])
    [sent] = ometria_app.state.fake.accepted("/v2/push")
    assert [r["id"] for r in sent.body] == ["o4"] and sent.body[0]["properties"] == {"city": "Zürich 東京"}
    assert sent.headers["content-type"] == "application/json"
    assert ometria.limiter.acquired_total == 1


async def test_an_answer_lost_after_ometria_took_the_push_is_harmless(ometria: Ometria, ometria_app: Any,
                                                                     make_message: Any) -> None:
    message = make_message("order", order(1))
    ometria_app.state.fake.fail("lost_answer", count=1)
    (lost,) = await ometria.deliver([message])
    (again,) = await ometria.deliver([message])
    await ometria.aclose()
    assert lost.kind == "retry" and "may have arrived" in lost.detail and again.kind == "delivered"
    assert len(ometria_app.state.fake.accepted("/v2/push")) == 2
    assert list(ometria_app.state.fake.records) == [("order", "o1")]  # pushed twice, stored once (upsert by id)


# --- GDPR anonymisation -----------------------------------------------------------------------------------

async def test_erasure_anonymises_a_known_contact_and_an_unknown_one_is_done(ometria_url: str, ometria_app: Any,
                                                                             dest_settings: Any, make_message: Any) -> None:
    fake = ometria_app.state.fake
    fake.erasure_window.limit = 100  # this test is not about the fake's limit; the bridge's own is set wide too
    ometria = Ometria(dest_settings("ometria", ometria_url, "om-key", erasures_per_minute=600))
    await ometria.deliver([make_message("contact", contact(1))])
    email = contact(1)["email"]
    known, unknown = await ometria.deliver([make_message("erasure", {"email": email, "comment": "shopify customers/redact"},
                                                         action="create"),
                                            make_message("erasure", {"email": "nobody@example.com"}, action="create")])
    await ometria.aclose()
    assert (known.kind, known.status) == ("delivered", 201)
    assert (unknown.kind, unknown.status) == ("delivered", 404) and "nothing to anonymise" in (unknown.detail or "")
    request = fake.recorded(path="/v2/data-deletion-requests")[0]
    assert request.headers["x-ometria-auth"] == "om-key"
    assert request.body == {"email": email, "action": "anonymise", "comment": "shopify customers/redact"}
    assert "email" not in fake.records[("contact", "c1")] and len(fake.erasures) == 1


async def test_erasures_keep_to_their_own_six_a_minute(ometria_url: str, dest_settings: Any,
                                                       make_message: Any) -> None:
    """The push budget (8/s) is not the anonymisation budget: the seventh request in a minute waits (deferred)."""
    ometria = Ometria(dest_settings("ometria", ometria_url, "om-key", max_wait_seconds=0.0))
    outcomes = []
    for n in range(7):
        outcomes += await ometria.deliver([make_message("erasure", {"email": f"p{n}@example.com"}, action="create")])
    await ometria.aclose()
    assert [o.kind for o in outcomes[:1]] == ["delivered"]
    assert all(o.kind == "deferred" for o in outcomes[1:])  # each 10 s apart on the even schedule
    assert ometria.state()["erasure_rate_limit"]["limit"] == 6 and ometria.state()["rate_limit"]["limit"] == 8
