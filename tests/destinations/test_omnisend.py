"""The Omnisend adapter against the fake Omnisend served on a loopback port."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.config import settings_from_env
from bridge.destinations.omnisend import Omnisend

pytestmark = pytest.mark.anyio


def placed_order(email: str = "jo@example.com", **extra: Any) -> dict[str, Any]:
    return {"eventName": "placed order", "eventVersion": "v2", "origin": "api",
            "contact": {"email": email}, "properties": {"orderID": "1001", "totalPrice": 19.99}, **extra}


def v3_order(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"orderID": f"{n}", "email": "jo@example.com", "currency": "EUR", "orderSum": 1999,
            "createdAt": "2026-11-23T10:00:00Z",
            "products": [{"productID": "p", "variantID": "v", "title": "T", "quantity": 1, "price": 1999}], **extra}


@pytest.fixture
def omnisend(omnisend_url: str, dest_settings: Any) -> Omnisend:
    return Omnisend(dest_settings("omnisend", omnisend_url, "os-key"))


async def test_single_event_headers_and_event_id(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    message = make_message("event", placed_order(), action="create")
    (outcome,) = await omnisend.deliver([message])
    await omnisend.aclose()
    assert (outcome.kind, outcome.status) == ("delivered", 202)
    (request,) = omnisend_app.state.fake.accepted("/api/events")
    assert request.headers["authorization"] == "Omnisend-API-Key os-key"
    assert request.headers["omnisend-version"] == "2026-03-15"
    assert "x-api-key" not in request.headers
    assert request.body["eventID"] == message.idempotency_key


async def test_rule_event_id_is_kept(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    own = "0b6d4c2e-8a8f-4f0e-9a51-1f6f3d2b9c11"
    await omnisend.deliver([make_message("event", placed_order(eventID=own), action="create")])
    await omnisend.aclose()
    assert omnisend_app.state.fake.accepted()[0].body["eventID"] == own


async def test_contact_text_over_omnisends_limits_is_shortened(omnisend: Omnisend, omnisend_app: Any,
                                                               make_message: Any) -> None:
    record = placed_order()
    record["contact"].update(firstName="Maximiliana-Evangelina-Theodora-Alexandrina-Wilhelmina", postalCode="X" * 25)
    (outcome,) = await omnisend.deliver([make_message("event", record, action="create")])
    await omnisend.aclose()
    assert outcome.kind == "delivered"  # the fake refuses a firstName over 50 characters
    (request,) = omnisend_app.state.fake.accepted("/api/events")
    contact = request.body["contact"]
    assert contact["firstName"] == record["contact"]["firstName"][:50] and len(contact["postalCode"]) == 20
    assert contact["email"] == "jo@example.com"


async def test_a_phone_over_omnisends_15_characters_is_left_out_when_email_names_the_contact(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    """A valid E.164 number of 15 digits is 16 characters, over contact.phone's maxLength 15 (apis.md 1.2):
    sent, it made Omnisend refuse the whole order event. It is left out (never cut: a cut number is
    someone else's); a contact known by that phone alone still sends it, and is refused."""
    record = placed_order()
    record["contact"]["phone"] = "+493012345678901"
    phone_only = {**placed_order(), "contact": {"phone": "+493012345678901"}}
    kept = {**placed_order(), "contact": {"email": "jo@example.com", "phone": "+61412345678"}}
    outcomes = await omnisend.deliver([make_message("event", r, action="create") for r in (record, phone_only, kept)])
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["delivered", "dead", "delivered"]
    sent, refused, third = [r.body["contact"] for r in omnisend_app.state.fake.recorded(path="/api/events")]
    assert sent == {"email": "jo@example.com"}
    assert refused == {"phone": "+493012345678901"} and third["phone"] == "+61412345678"


async def test_invalid_event_is_dead_with_masked_excerpt(omnisend: Omnisend, make_message: Any) -> None:
    record = placed_order("ann@example.com")
    del record["eventVersion"]
    record["contact"]["phone"] = "+370 612 34567"  # not E.164: the fake echoes nothing personal, we mask anyway
    (outcome,) = await omnisend.deliver([make_message("event", record, action="create")])
    await omnisend.aclose()
    assert (outcome.kind, outcome.status) == ("dead", 400)
    assert "eventVersion" in outcome.detail and len(outcome.detail) <= 300
    assert "ann@example.com" not in outcome.detail


async def test_many_events_go_as_one_batch_then_follow_up_gives_item_outcomes(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    """One request during the burst; the follow-up turns a refused item into a dead letter."""
    good = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(5)]
    bad_record = placed_order()
    del bad_record["origin"]
    bad = make_message("event", bad_record, action="create")
    messages = [*good[:2], bad, *good[2:]]
    submitted = await omnisend.deliver(messages)
    fake = omnisend_app.state.fake
    assert [r.path for r in fake.recorded()] == ["/api/batches"]
    assert all(o.kind == "submitted" and o.ref for o in submitted) and len({o.ref for o in submitted}) == 1
    (batch,) = fake.accepted("/api/batches")
    assert batch.body["endpoint"] == "events" and batch.body["method"] == "POST" and len(batch.body["items"]) == 6
    assert batch.headers["omnisend-version"] == "2026-03-15"

    outcomes = None
    for _ in range(100):  # the fake processes batches after a short delay
        outcomes = await omnisend.follow_up(submitted[0].ref or "", messages)
        if outcomes is not None:
            break
        await asyncio.sleep(0.02)
    await omnisend.aclose()
    assert outcomes is not None
    assert [o.kind for o in outcomes] == ["delivered"] * 2 + ["dead"] + ["delivered"] * 3
    assert "origin" in outcomes[2].detail
    assert not fake.recorded(path="/api/events")
    assert fake.recorded()[-1].path.endswith("/items")


async def test_a_refused_key_while_reading_a_batch_result_asks_for_a_pause(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    messages = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(4)]
    submitted = await omnisend.deliver(messages)
    omnisend_app.state.fake.api_key = "a-new-key"  # the key was revoked after the batch went in
    outcomes = await omnisend.follow_up(submitted[0].ref or "", messages)
    await omnisend.aclose()
    assert outcomes is not None and [(o.kind, o.status) for o in outcomes] == [("pause", 401)] * 4


async def test_a_key_refused_while_reading_a_batch_s_items_asks_for_a_pause_too(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(4)]
    submitted = await omnisend.deliver(messages)
    fake = omnisend_app.state.fake
    await asyncio.sleep(fake.processing_seconds * 4)  # the batch is finished, so its items are read
    get = omnisend._get

    async def revoked_before_the_items(path: str) -> Any:
        if path.endswith("/items"):
            fake.api_key = "a-new-key"  # revoked between the two reads
        return await get(path)

    monkeypatch.setattr(omnisend, "_get", revoked_before_the_items)
    outcomes = await omnisend.follow_up(submitted[0].ref or "", messages)
    await omnisend.aclose()
    assert outcomes is not None and [(o.kind, o.status) for o in outcomes] == [("pause", 401)] * 4
    assert fake.recorded()[-1].path.endswith("/items")


async def test_a_batch_this_key_may_not_read_is_taken_as_delivered_without_a_pause(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    """403: the batch ran (Omnisend accepted it), but this key cannot read it, as after a swap to
    another store's key. Pausing would stop all delivery for it, and reading again spend the limit."""
    messages = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(4)]
    submitted = await omnisend.deliver(messages)
    omnisend_app.state.fake.fail(status=403, count=1)
    outcomes = await omnisend.follow_up(submitted[0].ref or "", messages)
    await omnisend.aclose()
    assert outcomes is not None and [(o.kind, o.status) for o in outcomes] == [("delivered", 403)] * 4
    assert "cannot be read with this key" in outcomes[0].detail


@pytest.mark.parametrize("read", ["status", "items"])
async def test_a_batch_omnisend_deleted_is_taken_as_delivered_with_results_unknown(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any, monkeypatch: pytest.MonkeyPatch, read: str) -> None:
    """Batches are deleted after 7 days (apis.md 1.7): a 404 on either read ends the wait at once."""
    messages = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(4)]
    submitted = await omnisend.deliver(messages)
    fake = omnisend_app.state.fake
    await asyncio.sleep(fake.processing_seconds * 4)
    get = omnisend._get

    async def deleted(path: str) -> Any:
        if path.endswith("/items") == (read == "items"):
            fake.batches.clear()
        return await get(path)

    monkeypatch.setattr(omnisend, "_get", deleted)
    outcomes = await omnisend.follow_up(submitted[0].ref or "", messages)
    await omnisend.aclose()
    assert outcomes is not None and [(o.kind, o.status) for o in outcomes] == [("delivered", 404)] * 4
    assert "no longer exists" in outcomes[0].detail


async def test_batches_hold_at_most_100(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    messages = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(150)]
    outcomes = await omnisend.deliver(messages)
    await omnisend.aclose()
    assert all(o.kind == "submitted" for o in outcomes)
    assert [len(r.body["items"]) for r in omnisend_app.state.fake.accepted("/api/batches")] == [100, 50]


async def test_unfinished_batch_is_looked_at_again_later(omnisend_url: str, omnisend_app: Any, dest_settings: Any,
                                                          make_message: Any) -> None:
    omnisend_app.state.fake.processing_seconds = 60
    destination = Omnisend(dest_settings("omnisend", omnisend_url, "os-key"))
    messages = [make_message("event", placed_order(), action="create") for _ in range(4)]
    submitted = await destination.deliver(messages)
    assert await destination.follow_up(submitted[0].ref or "", messages) is None
    await destination.aclose()


async def test_v3_routes_and_headers(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    contact = {"identifiers": [{"type": "email", "id": "jo@example.com",
                                "channels": {"email": {"status": "subscribed"}}}]}
    messages = [
        make_message("contact", contact),
        make_message("order", v3_order(), action="create"),
        make_message("order", v3_order(orderSum=2999), action="replace"),
        make_message("order", {"orderID": "1", "paymentStatus": "paid", "orderSum": 1}, action="update"),
        make_message("cart", {"cartID": "k 1", "email": "jo@example.com", "currency": "EUR", "cartSum": 100},
                     action="create"),
        make_message("cart", {"cartID": "k 1", "currency": "EUR", "cartSum": 200}, action="update"),
    ]
    outcomes = await omnisend.deliver(messages)
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["delivered"] * 6, outcomes
    sent = omnisend_app.state.fake.accepted()
    assert [(r.method, r.path) for r in sent] == [
        ("POST", "/v3/contacts"), ("POST", "/v3/orders"), ("PUT", "/v3/orders/1"), ("PATCH", "/v3/orders/1"),
        ("POST", "/v3/carts"), ("PATCH", "/v3/carts/k 1"),
    ]
    assert all(r.headers["x-api-key"] == "os-key" and "authorization" not in r.headers for r in sent)
    assert sent[3].body == {"paymentStatus": "paid"}  # status fields only; the id is in the path


async def test_v3_float_money_is_dead(omnisend: Omnisend, make_message: Any) -> None:
    (outcome,) = await omnisend.deliver([make_message("order", v3_order(orderSum=19.99), action="create")])
    await omnisend.aclose()
    assert (outcome.kind, outcome.status) == ("dead", 400) and "orderSum" in outcome.detail


async def test_unsupported_action_and_missing_id_refused(omnisend: Omnisend, omnisend_app: Any,
                                                         make_message: Any) -> None:
    outcomes = await omnisend.deliver([make_message("order", v3_order(), action="upsert"),
                                       make_message("cart", {"cartSum": 1}, action="replace")])
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["dead", "dead"]
    assert omnisend_app.state.fake.recorded() == []


async def test_wrong_key_pauses(omnisend_url: str, dest_settings: Any, make_message: Any) -> None:
    destination = Omnisend(dest_settings("omnisend", omnisend_url, "nope"))
    outcomes = await destination.deliver([make_message("event", placed_order(), action="create"),
                                          make_message("order", v3_order(), action="create")])
    await destination.aclose()
    assert [(o.kind, o.status) for o in outcomes] == [("pause", 401), ("pause", 401)]


async def test_server_rate_headers_hold_requests_back(dest_settings: Any, make_message: Any) -> None:
    """X-Rate-Limit-Remaining: 0 makes the limiter wait for the reset instead of earning a 429."""
    from bridge.fakes import create_omnisend_app, serve_in_thread

    app = create_omnisend_app("os-key", requests_per_minute=2, window_seconds=1.0)
    with serve_in_thread(app) as url:
        destination = Omnisend(dest_settings("omnisend", url, "os-key", requests_per_minute=1000))
        outcomes = await destination.deliver(
            [make_message("event", placed_order(), action="create") for _ in range(3)]
        )
        await destination.aclose()
    assert [o.kind for o in outcomes] == ["delivered"] * 3
    recorded = app.state.fake.recorded()
    assert [r.status for r in recorded] == [202, 202, 202]
    assert recorded[2].at - recorded[0].at >= 0.95


async def test_503_and_429_are_retries(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    omnisend_app.state.fake.fail("status", status=503, count=1)
    (unavailable,) = await omnisend.deliver([make_message("event", placed_order(), action="create")])
    omnisend_app.state.fake.fail("status", status=429, count=1, retry_after=1)
    (throttled,) = await omnisend.deliver([make_message("event", placed_order(), action="create")])
    await omnisend.aclose()
    assert (unavailable.kind, unavailable.status) == ("retry", 503)
    assert (throttled.kind, throttled.retry_after) == ("retry", 1.0)
    assert omnisend.limiter.state()["throttled_total"] == 1


def test_prepare_matches_deliver_plan(dest_settings: Any, make_message: Any) -> None:
    destination = Omnisend(dest_settings("omnisend", "http://127.0.0.1:9", "k"))
    one = destination.prepare([make_message("event", placed_order(), action="create")])
    assert [(p.method, p.path) for p in one] == [("POST", "/api/events")]
    many = destination.prepare([make_message("event", placed_order(), action="create") for _ in range(4)])
    assert [(p.method, p.path, len(p.message_ids)) for p in many] == [("POST", "/api/batches", 4)]
    assert many[0].body["items"][0]["eventID"]


def v3_contact(email: str, channels: bool = True) -> dict[str, Any]:
    ident: dict[str, Any] = {"type": "email", "id": email}
    if channels:
        ident["channels"] = {"email": {"status": "subscribed"}}
    return {"identifiers": [ident], "firstName": "Jo"}


async def follow_up_until_done(destination: Omnisend, ref: str, messages: list[Any]) -> list[Any]:
    for _ in range(100):  # the fake processes batches after a short delay
        outcomes = await destination.follow_up(ref, messages)
        if outcomes is not None:
            return outcomes
        await asyncio.sleep(0.02)
    raise AssertionError("batch never finished")


async def test_many_contacts_go_as_one_v3_batch_then_follow_up(omnisend: Omnisend, omnisend_app: Any,
                                                                make_message: Any) -> None:
    messages = [make_message("contact", v3_contact(f"c{n}@example.com")) for n in range(6)]
    messages[3] = make_message("contact", v3_contact("nochannels@example.com", channels=False), action="create")
    messages.sort(key=lambda m: m.id)
    submitted = await omnisend.deliver(messages)
    fake = omnisend_app.state.fake
    assert [(r.method, r.path) for r in fake.recorded()] == [("POST", "/v3/batches")]
    assert all(o.kind == "submitted" for o in submitted) and len({o.ref for o in submitted}) == 1
    ref = submitted[0].ref or ""
    assert ref.startswith("v3:")
    (batch,) = fake.accepted("/v3/batches")
    assert batch.headers["x-api-key"] == "os-key" and "authorization" not in batch.headers
    assert (batch.body["method"], batch.body["endpoint"], len(batch.body["items"])) == ("POST", "contacts", 6)

    outcomes = await follow_up_until_done(omnisend, ref, messages)
    await omnisend.aclose()
    by_email = {m.record["identifiers"][0]["id"]: o for m, o in zip(messages, outcomes)}
    assert by_email.pop("nochannels@example.com").kind == "dead"
    assert {o.kind for o in by_email.values()} == {"delivered"} and len(by_email) == 5
    dead = outcomes[[m.record["identifiers"][0]["id"] for m in messages].index("nochannels@example.com")]
    assert dead.status == 400 and "channels" in dead.detail
    assert sorted(fake.contacts) == sorted(by_email)
    assert [r.path for r in fake.recorded()][1:] == [f"/v3/batches/{ref[3:]}", f"/v3/batches/{ref[3:]}/items"]
    assert not fake.recorded(path="/v3/contacts")


async def test_three_contacts_still_go_one_by_one(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    outcomes = await omnisend.deliver([make_message("contact", v3_contact(f"c{n}@example.com")) for n in range(3)])
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["delivered"] * 3
    assert [r.path for r in omnisend_app.state.fake.recorded()] == ["/v3/contacts"] * 3


async def test_order_creates_go_as_one_v3_batch(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    creates = [make_message("order", v3_order(n), action="create") for n in range(1, 5)]
    bad = make_message("order", v3_order(5, orderSum=19.99), action="create")
    replace = make_message("order", v3_order(1, orderSum=2999), action="replace")
    messages = [*creates[:2], bad, *creates[2:], replace]
    submitted = await omnisend.deliver(messages)
    fake = omnisend_app.state.fake
    assert [(r.method, r.path) for r in fake.recorded()] == [("POST", "/v3/batches"), ("PUT", "/v3/orders/1")]
    (batch,) = fake.accepted("/v3/batches")
    assert (batch.body["method"], batch.body["endpoint"]) == ("POST", "orders")
    assert [i["orderID"] for i in batch.body["items"]] == ["1", "2", "3", "4", "5"]  # sorted by message id
    assert [o.kind for o in submitted] == ["submitted"] * 5 + ["delivered"]
    batched = [m for m in messages if m is not replace]
    outcomes = await follow_up_until_done(omnisend, submitted[0].ref or "", batched)
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["delivered", "delivered", "dead", "delivered", "delivered"]
    assert outcomes[2].status == 400 and "orderSum" in outcomes[2].detail
    assert sorted(fake.orders) == ["1", "2", "3", "4"]


async def test_v3_items_without_a_usable_key_match_by_request(omnisend: Omnisend, omnisend_app: Any,
                                                              make_message: Any) -> None:
    """Same email twice and a contact without identifiers: matched by the request as sent."""
    messages = [make_message("contact", v3_contact("a@example.com")),
                make_message("contact", {"firstName": "nobody"}),
                make_message("contact", v3_contact("a@example.com", channels=False)),
                make_message("contact", v3_contact("b@example.com"))]
    submitted = await omnisend.deliver(messages)
    outcomes = await follow_up_until_done(omnisend, submitted[0].ref or "", messages)
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["delivered", "dead", "dead", "delivered"]
    assert "identifiers" in outcomes[1].detail and "channels" in outcomes[2].detail


def test_v3_item_pairing_falls_back_to_position(make_message: Any) -> None:
    """An echoed request we cannot recognise pairs by position among items of the same key."""
    from bridge.destinations.omnisend import _pair_v3_items

    first = make_message("contact", v3_contact("a@example.com"))
    second = make_message("contact", v3_contact("a@example.com", channels=False))
    entries = [{"request": {"identifiers": [{"id": "a@example.com", "type": "email", "x": 1}]}, "responseCode": 200},
               {"request": {"identifiers": [{"id": "a@example.com", "type": "email", "x": 2}]}, "responseCode": 400}]
    pairs = _pair_v3_items("contacts", [first, second], entries)
    assert pairs[first.id] is entries[0] and pairs[second.id] is entries[1]


async def test_plain_ref_is_an_api_batch(omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    """Rows submitted before v3 batching carry the /api batch id without a prefix."""
    messages = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(4)]
    submitted = await omnisend.deliver(messages)
    ref = submitted[0].ref or ""
    assert ":" not in ref
    outcomes = await follow_up_until_done(omnisend, ref, messages)
    await omnisend.aclose()
    assert [o.kind for o in outcomes] == ["delivered"] * 4
    assert omnisend_app.state.fake.recorded()[-1].path == f"/api/batches/{ref}/items"


def test_prepare_batches_contacts_and_order_creates(dest_settings: Any, make_message: Any) -> None:
    destination = Omnisend(dest_settings("omnisend", "http://127.0.0.1:9", "k"))
    contacts = [make_message("contact", v3_contact(f"c{n}@example.com"), action=a)
                for n, a in enumerate(["upsert", "create", "upsert", "create"])]
    orders = [make_message("order", v3_order(n), action="create") for n in range(3)]
    planned = destination.prepare([*contacts, *orders])
    assert [(p.method, p.path, len(p.message_ids)) for p in planned] == [
        ("POST", "/v3/batches", 4), ("POST", "/v3/orders", 1), ("POST", "/v3/orders", 1), ("POST", "/v3/orders", 1)]
    off = Omnisend(dest_settings("omnisend", "http://127.0.0.1:9", "k", batch_v3=False))
    assert [p.path for p in off.prepare(contacts)] == ["/v3/contacts"] * 4


async def test_a_record_json_cannot_carry_is_a_dead_letter_and_its_batch_still_goes(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    broken = make_message("event", placed_order(properties={"orderID": "1", "totalPrice": float("inf")}),
                          action="create")
    rest = [make_message("event", placed_order(f"c{n}@example.com"), action="create") for n in range(3)]
    outcomes = await omnisend.deliver([broken, *rest])
    await omnisend.aclose()
    assert outcomes[0].kind == "dead" and "cannot be sent as JSON" in outcomes[0].detail
    assert outcomes[0].kind not in {o.kind for o in outcomes[1:]}
    sent = omnisend_app.state.fake.accepted()
    assert sent and all("Infinity" not in str(r.body) and "inf" not in str(r.body) for r in sent)
    assert sum(len(r.body["items"]) if "items" in (r.body or {}) else 1 for r in sent if r.method == "POST") == 3


async def test_an_answer_lost_after_omnisend_took_the_event_is_retried_and_can_duplicate_it(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    """The at-least-once case docs/destinations.md states: Omnisend does not dedupe real-time events."""
    message = make_message("event", placed_order(), action="create")
    omnisend_app.state.fake.fail("lost_answer", count=1)
    (lost,) = await omnisend.deliver([message])
    (again,) = await omnisend.deliver([message])
    await omnisend.aclose()
    assert lost.kind == "retry" and "may have arrived" in lost.detail
    assert again.kind == "delivered"
    taken = omnisend_app.state.fake.accepted("/api/events")
    assert len(taken) == 2 and taken[0].body["eventID"] == taken[1].body["eventID"] == message.idempotency_key


# --- contact details on the 2026 line, without any subscription status -------------------------------

def contact_details(email: str = "jo@example.com", **extra: Any) -> dict[str, Any]:
    return {"identifiers": [{"type": "email", "id": email}, {"type": "phone", "id": "+61412345678"}],
            "firstName": "Jo", "birthdate": "1991-06-14", "customProperties": {"tier": "Gold"}, **extra}


async def test_contact_update_patches_the_known_contact_by_email_and_leaves_its_status(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    fake = omnisend_app.state.fake
    subscribed = {"identifiers": [{"type": "email", "id": "jo@example.com",
                                   "channels": {"email": {"status": "subscribed"}}}], "firstName": "J"}
    assert (await omnisend.deliver([make_message("contact", subscribed)]))[0].kind == "delivered"
    (outcome,) = await omnisend.deliver([make_message("contact", contact_details(), action="update")])
    await omnisend.aclose()
    assert (outcome.kind, outcome.status) == ("delivered", 200)
    (patch,) = fake.recorded(path="/api/contacts")
    assert (patch.method, patch.query) == ("PATCH", "email=jo@example.com")
    assert patch.headers["omnisend-version"] == "2026-03-15"
    assert "identifiers" not in patch.body and patch.body["firstName"] == "Jo"
    stored = fake.contacts["jo@example.com"]
    assert stored["firstName"] == "Jo" and stored["customProperties"] == {"tier": "Gold"}
    assert [i["channels"] for i in stored["identifiers"]] == [{"email": {"status": "subscribed"}}]


async def test_contact_update_of_an_unknown_email_creates_it_never_subscribed(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    """The fake stores an identifier created without a status as subscribed (v3's default): the adapter
    must give each one `nonSubscribed` when its PATCH finds no contact."""
    fake = omnisend_app.state.fake
    (outcome,) = await omnisend.deliver([make_message("contact", contact_details("new@example.com"), action="update")])
    await omnisend.aclose()
    assert (outcome.kind, outcome.status) == ("delivered", 201)
    patch, post = fake.recorded(path="/api/contacts")
    assert (patch.method, patch.status, post.method) == ("PATCH", 404, "POST")
    statuses = {i["id"]: i["channels"] for i in fake.contacts["new@example.com"]["identifiers"]}
    assert statuses == {"new@example.com": {"email": {"status": "nonSubscribed"}},
                        "+61412345678": {"sms": {"status": "nonSubscribed"}}}


async def test_contact_update_refused_details_are_a_dead_letter(omnisend: Omnisend, omnisend_app: Any,
                                                                make_message: Any) -> None:
    (outcome,) = await omnisend.deliver([make_message("contact", contact_details(countryCode="AUS"), action="update")])
    await omnisend.aclose()
    assert (outcome.kind, outcome.status) == ("dead", 400)
    assert "countryCode" in (outcome.detail or "")


# --- the catalogue on the 2026 line ----------------------------------------------------------------------

PRODUCT = {"id": "p 1", "title": "Shirt", "url": "https://shop.example.com/p1", "currency": "AUD", "status": "inStock",
           "variants": [{"id": "v1", "title": "M", "url": "https://shop.example.com/p1?v=1", "price": 89.95}]}


async def test_product_upsert_replaces_a_known_product_and_creates_an_unknown_one(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    fake = omnisend_app.state.fake
    (first,) = await omnisend.deliver([make_message("product", PRODUCT)])
    (second,) = await omnisend.deliver([make_message("product", {**PRODUCT, "title": "Linen Shirt"})])
    await omnisend.aclose()
    assert (first.kind, first.status, second.kind, second.status) == ("delivered", 201, "delivered", 200)
    assert [(r.method, r.path, r.status) for r in fake.recorded()] == [
        ("PUT", "/api/products/p 1", 404), ("POST", "/api/products", 201), ("PUT", "/api/products/p 1", 200)]  # as the server reads the path
    assert fake.products["p 1"]["title"] == "Linen Shirt"


async def test_category_upsert_patches_its_title_and_creates_it_when_missing(
        omnisend: Omnisend, omnisend_app: Any, make_message: Any) -> None:
    fake = omnisend_app.state.fake
    category = {"categoryID": "shirts", "title": "Shirts"}
    outcomes = await omnisend.deliver([make_message("category", category)])
    outcomes += await omnisend.deliver([make_message("category", {**category, "title": "Tops"})])
    await omnisend.aclose()
    assert [o.status for o in outcomes] == [201, 200]
    patch = fake.recorded()[-1]
    assert (patch.method, patch.path, patch.body) == ("PATCH", "/api/product-categories/shirts", {"title": "Tops"})
    assert fake.categories["shirts"]["title"] == "Tops"


# --- carts: kept in step, closed by the order ------------------------------------------------------------

CART = {"cartID": "c-1", "email": "jo@example.com", "currency": "AUD", "cartSum": 17990,
        "cartRecoveryUrl": "https://shop.example.com/recover/c-1",
        "products": [{"cartProductID": "k1", "productID": "p", "variantID": "v", "title": "Shirt", "quantity": 2,
                      "price": 8995}]}


async def test_cart_upsert_creates_then_updates_and_the_order_closes_it(omnisend: Omnisend, omnisend_app: Any,
                                                                        make_message: Any) -> None:
    fake = omnisend_app.state.fake
    outcomes = await omnisend.deliver([make_message("cart", CART)])
    outcomes += await omnisend.deliver([make_message("cart", {**CART, "cartSum": 8995})])
    assert fake.carts["c-1"]["cartSum"] == 8995 and fake.carts["c-1"]["cartRecoveryUrl"].endswith("/c-1")
    outcomes += await omnisend.deliver([make_message("cart", {"cartID": "c-1"}, action="delete")])
    outcomes += await omnisend.deliver([make_message("cart", {"cartID": "c-1"}, action="delete")])  # a resend
    await omnisend.aclose()
    assert [(o.kind, o.status) for o in outcomes] == [("delivered", 200), ("delivered", 200), ("delivered", 204),
                                                      ("delivered", 404)]
    assert [(r.method, r.path, r.status) for r in fake.recorded()] == [
        ("PATCH", "/v3/carts/c-1", 404), ("POST", "/v3/carts", 200), ("PATCH", "/v3/carts/c-1", 200),
        ("DELETE", "/v3/carts/c-1", 204), ("DELETE", "/v3/carts/c-1", 404)]
    assert "c-1" not in fake.carts and fake.recorded()[-1].headers["x-api-key"] == "os-key"


async def test_a_429_from_the_brand_wide_budget_waits_what_the_answer_says(dest_settings: Any,
                                                                            make_message: Any) -> None:
    """Two bridges share one brand's budget: the second knows nothing of the first's requests, is refused,
    and its whole destination then waits the minute the answer names, not the default tenth of a window."""
    from bridge.fakes import create_omnisend_app, serve_in_thread

    app = create_omnisend_app("os-key", requests_per_minute=1, retry_after_header=False)
    with serve_in_thread(app) as url:
        first, second = (Omnisend(dest_settings("omnisend", url, "os-key")) for _ in range(2))
        (sent,) = await first.deliver([make_message("event", placed_order(), action="create")])
        (refused,) = await second.deliver([make_message("event", placed_order(), action="create")])
        await first.aclose()
        await second.aclose()
    answer = app.state.fake.recorded()[-1]
    assert answer.status == 429 and "retry-after" not in {k.lower() for k in answer.headers}
    assert (sent.kind, refused.kind, refused.status) == ("delivered", "retry", 429)
    assert refused.retry_after is not None and refused.retry_after > 50
    assert second.limiter.state()["blocked_for_seconds"] > 50


async def test_a_route_with_its_own_limit_waits_its_turn_and_the_rest_go(omnisend_url: str, omnisend_app: Any,
                                                                         dest_settings: Any, make_message: Any) -> None:
    """OMNISEND_ROUTE_LIMITS=/api/contacts=15: requests there are spaced 4 s apart (a creation after a 404
    included), on a clock the test drives; events only keep to the brand-wide budget."""
    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

        async def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    omnisend = Omnisend(dest_settings("omnisend", omnisend_url, "os-key", route_limits={"/api/contacts": 15}),
                        clock=clock, sleep=clock.sleep)
    (created,) = await omnisend.deliver([make_message("contact", contact_details("a@example.com"), action="update")])
    route = omnisend.route_limiters["/api/contacts"]
    assert created.kind == "delivered" and route.state()["waited_seconds_total"] == pytest.approx(4.0, abs=0.1)
    (event,) = await omnisend.deliver([make_message("event", placed_order(), action="create")])
    (updated,) = await omnisend.deliver([make_message("contact", contact_details("a@example.com"), action="update")])
    await omnisend.aclose()
    assert event.kind == updated.kind == "delivered"
    assert route.state()["waited_seconds_total"] == pytest.approx(8.0, abs=0.3)
    assert [r.method for r in omnisend_app.state.fake.recorded(path="/api/contacts")] == ["PATCH", "POST", "PATCH"]
    assert omnisend.route_limiter("/api/contacts?email=x@example.com") is not None
    assert omnisend.route_limiter("/api/contactsx") is None and omnisend.route_limiter("/api/events") is None
    assert omnisend.state()["route_rate_limits"]["/api/contacts"]["limit"] == 15


def test_route_limits_setting() -> None:
    from bridge.errors import ConfigError

    options = settings_from_env({"OMNISEND_ROUTE_LIMITS": "/api/contacts=15, /api/products=400"}).destinations[
        "omnisend"].options
    assert options["route_limits"] == {"/api/contacts": 15.0, "/api/products": 400.0}
    assert settings_from_env({}).destinations["omnisend"].options["route_limits"] == {}
    for bad in ("contacts=15", "/api/contacts=5", "/api/contacts=many"):
        with pytest.raises(ConfigError, match="OMNISEND_ROUTE_LIMITS"):
            settings_from_env({"OMNISEND_ROUTE_LIMITS": bad})
