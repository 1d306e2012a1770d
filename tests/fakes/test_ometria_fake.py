"""The fake Ometria enforces the push contract (apis.md section 2), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.destinations.http import tls_context
from bridge.fakes import create_ometria_app, serve_in_thread

AUTH = {"X-Ometria-Auth": "key"}
ORDER = {"@type": "order", "id": "1", "timestamp": "2026-11-23T10:00:00Z", "grand_total": 1.5, "currency": "GBP"}


@pytest.fixture
def app() -> Any:
    return create_ometria_app("key")


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, verify=tls_context()) as client:
        yield client


def test_push_accepted(client: httpx.Client, app: Any) -> None:
    response = client.post("/v2/push", json=[ORDER], headers=AUTH)
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["accepted"], body["rejected"]) == ("OK", 1, 0) and body["request_id"]
    client.post("/v2/push", json=[{"@type": "order", "id": "1", "status": "cancelled", "timestamp": ORDER["timestamp"],
                                   "grand_total": 1, "currency": "GBP"}], headers=AUTH)
    assert app.state.fake.records[("order", "1")]["status"] == "cancelled"


def test_upsert_without_merge_replaces_and_with_merge_fills_in(client: httpx.Client, app: Any) -> None:
    """Without `@merge` the record replaces the stored one; with it, unset fields come from the stored one, so a
    partial update (no total, no currency) is whole and accepted."""
    client.post("/v2/push", json=[{**ORDER, "web_id": "#1"}], headers=AUTH)
    client.post("/v2/push", json=[ORDER], headers=AUTH)
    assert "web_id" not in app.state.fake.records[("order", "1")]
    partial = client.post("/v2/push", json=[{"@type": "order", "id": "1", "@merge": True, "status": "refunded"}],
                          headers=AUTH)
    assert partial.json()["rejected"] == 0
    assert app.state.fake.records[("order", "1")] == {**ORDER, "@merge": True, "status": "refunded"}
    lone = client.post("/v2/push", json=[{"@type": "order", "id": "2", "@merge": True, "status": "refunded"}],
                       headers=AUTH)
    assert lone.json()["rejected"] == 1  # nothing stored to fill in from


@pytest.mark.parametrize("headers", [{}, {"X-Ometria-Auth": "nope"}, {"X-API-KEY": "key"}])
def test_auth(client: httpx.Client, headers: dict[str, str]) -> None:
    assert client.post("/v2/push", json=[ORDER], headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [(ORDER, "array"), ([], "records"), ([ORDER] * 101, "records"),
     ([ORDER, {**ORDER, "@type": "contact", "email": "a@b.c"}], "one object type"),
     ([{**ORDER, "id": ""}], "id"), ([{**ORDER, "@type": "cart"}], "@type"),
     ([{**ORDER, "properties": {"x": "y" * 61_500}}], "Record is too large.")],
)
def test_push_contract(client: httpx.Client, body: Any, message: str) -> None:
    response = client.post("/v2/push", json=body, headers=AUTH)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_later_validation_counts_rejected(client: httpx.Client) -> None:
    body = [ORDER, {"@type": "order", "id": "2"}]
    assert client.post("/v2/push", json=body, headers=AUTH).json()["rejected"] == 1
    errors = client.get("/v2/push/_errors", headers=AUTH).json()
    assert errors and set(errors[0]) == {"error_message", "error_path"}


def test_rate_limit_8_per_second() -> None:
    app = create_ometria_app("key", retry_after=1)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        codes = [client.post("/v2/push", json=[ORDER], headers=AUTH) for _ in range(9)]
    assert [r.status_code for r in codes] == [202] * 8 + [429]
    assert codes[8].headers["Retry-After"] == "1"
    assert len(app.state.fake.accepted()) == 8 and len(app.state.fake.recorded()) == 9


def test_in_process_control(client: httpx.Client, app: Any) -> None:
    app.state.fake.fail("status", status=401, count=1)
    assert client.post("/v2/push", json=[ORDER], headers=AUTH).status_code == 401
    assert client.post("/v2/push", json=[ORDER], headers=AUTH).status_code == 202
    app.state.fake.reset()
    assert app.state.fake.recorded() == [] and app.state.fake.records == {}


# --- formats, enums and property types (apis.md 2.3-2.5): refused in Ometria's later validation ----

CONTACT = {"@type": "contact", "id": "c1", "email": "a@example.com"}
EVENT = {"@type": "custom_event", "id": "e1", "event_type": "omneo_reward", "timestamp": "2023-05-25T15:32:52+00:00",
         "identity_email": "a@example.com"}


@pytest.mark.parametrize(
    ("record", "path"),
    [({**ORDER, "timestamp": "23/11/2026 10:00"}, "root > timestamp"),
     ({**ORDER, "timestamp": "2026-11-23 10:00:00+00:00"}, "root > timestamp"),  # ISO 8601 puts a T there
     ({**ORDER, "timestamp": 1763892000}, "root > timestamp"),
     ({**ORDER, "currency": "gbp"}, "root > currency"), ({**ORDER, "currency": "£"}, "root > currency"),
     ({**ORDER, "is_valid": "false"}, "root > is_valid"),
     ({**ORDER, "lineitems": [{"product_id": "p", "is_on_sale": "yes"}]}, "root > lineitems > 0 > is_on_sale"),
     ({**ORDER, "@merge": "true"}, "root > @merge"),
     ({**CONTACT, "phone_number": "07700 900123"}, "root > phone_number"),
     ({**CONTACT, "phone_number": "+4930123456789012"}, "root > phone_number"),  # 16 digits: not E.164
     ({**CONTACT, "marketing_optin": "yes"}, "root > marketing_optin"),
     ({**CONTACT, "timestamp_subscribed": "2026/11/23"}, "root > timestamp_subscribed"),
     ({**CONTACT, "gender": "female"}, "root > gender"),
     ({**CONTACT, "@force_optin": "true"}, "root > @force_optin"),
     ({**EVENT, "timestamp": "2023-05-25T15:32:52"}, "root > timestamp"),  # custom events need the offset
     ({**EVENT, "event_type": "e" * 33}, "root > event_type"),
     ({**EVENT, "properties": {"note": "x" * 513}}, "root > properties > note"),
     ({**EVENT, "properties": {"expires_at": "2026-12-21 23:59:59"}}, "root > properties > expires_at"),
     ({**EVENT, "properties": "gold"}, "root > properties")],
)
def test_later_validation_refuses_bad_values(client: httpx.Client, record: dict[str, Any], path: str) -> None:
    answer = client.post("/v2/push", json=[record], headers=AUTH)
    assert answer.status_code == 202 and (answer.json()["accepted"], answer.json()["rejected"]) == (0, 1)
    errors = client.get("/v2/push/_errors", headers=AUTH).json()
    assert path in [e["error_path"] for e in errors]
    assert all(e["error_message"].startswith("not a valid value") for e in errors)


@pytest.mark.parametrize(
    "record",
    [{**ORDER, "timestamp": "2026-11-23T10:00:00"}, {**ORDER, "timestamp": "2026-11-20T10:15:30.5+11:00"},
     {**ORDER, "is_valid": False, "status": "whatever", "lineitems": [{"product_id": "p", "is_on_sale": True}]},
     {**CONTACT, "phone_number": "+447700900123", "marketing_optin": "NOT_SPECIFIED", "gender": "o",
      "timestamp_subscribed": "2026-11-23T10:00:00Z", "@force_optin": True, "@merge": True},
     {**CONTACT, "phone_number": "", "timestamp_unsubscribed": None},  # blank: may clear the stored value
     {**EVENT, "event_type": "e" * 32, "identity_email": None, "identity_account_id": "CUST-1",
      "properties": {"note": "x" * 512, "gold": True, "points": 150, "total": 10.5, "products": ["p1", "p2"],
                     "expires_at": "2026-12-21T23:59:59Z", "day": "2026-12-21", "nested": {"a": 1}}}],
)
def test_later_validation_accepts_documented_values(client: httpx.Client, record: dict[str, Any]) -> None:
    answer = client.post("/v2/push", json=[record], headers=AUTH).json()
    assert (answer["accepted"], answer["rejected"]) == (1, 0), client.get("/v2/push/_errors", headers=AUTH).json()


def test_gdpr_anonymisation_contract_and_its_six_a_minute() -> None:
    app = create_ometria_app("key", requests_per_second=100)  # the push budget out of the way
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        gdpr_contract(client, app)


def gdpr_contract(client: httpx.Client, app: Any) -> None:
    path = "/v2/data-deletion-requests"
    assert client.post(path, json={"email": "a@example.com"}, headers={"X-Ometria-Auth": "nope"}).status_code == 401
    assert client.post(path, json={"email": "not an email"}, headers=AUTH).status_code == 400
    assert client.post(path, json={"email": "nobody@example.com"}, headers=AUTH).status_code == 404
    client.post("/v2/push", json=[{"@type": "contact", "id": "c1", "email": "a@example.com", "firstname": "A"}],
                headers=AUTH)
    done = client.post(path, json={"email": "A@example.com", "comment": "redact"}, headers=AUTH)
    assert done.status_code == 201 and done.json()["action"] == "anonymise"
    assert app.state.fake.records[("contact", "c1")] == {"@type": "contact", "id": "c1"}
    answers = [client.post(path, json={"email": f"p{n}@example.com"}, headers=AUTH) for n in range(4)]
    # the seventh in a minute is refused, whatever the answers of the six before
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0 and "6 a minute" in answers[-1].json()["message"]


def test_order_amounts_and_refunded_counts_must_be_numbers_and_a_merged_list_is_replaced_whole(
        client: httpx.Client, app: Any) -> None:
    lines = [{"product_id": "p1", "quantity": 2, "unit_price": 89.95}, {"product_id": "p2", "quantity": 1, "unit_price": 35}]
    client.post("/v2/push", json=[{**ORDER, "lineitems": lines}], headers=AUTH)
    refunded = [{**lines[0], "quantity_refunded": 1, "refunded": 89.95}]
    client.post("/v2/push", json=[{"@type": "order", "id": "1", "@merge": True, "lineitems": refunded}], headers=AUTH)
    assert app.state.fake.records[("order", "1")]["lineitems"] == refunded  # not merged item by item
    for bad in ({"quantity_refunded": "1"}, {"quantity_refunded": 1.5}, {"refunded": "89.95"}, {"unit_price": "1"}):
        answer = client.post("/v2/push", json=[{"@type": "order", "id": "1", "@merge": True,
                                                "lineitems": [{**lines[0], **bad}]}], headers=AUTH).json()
        assert answer["rejected"] == 1, bad
        [field] = bad
        assert app.state.fake.errors[-1]["error_path"] == f"root > lineitems > 0 > {field}"
    answer = client.post("/v2/push", json=[{**ORDER, "grand_total": "221.35"}], headers=AUTH).json()
    assert answer["rejected"] == 1 and app.state.fake.errors[-1]["error_path"] == "root > grand_total"
