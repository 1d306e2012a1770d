"""The fake Omnisend enforces the documented contracts (apis.md section 1), over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.destinations.http import tls_context
from bridge.fakes import create_omnisend_app, serve_in_thread

API = {"Authorization": "Omnisend-API-Key key", "Omnisend-Version": "2026-03-15"}
V3 = {"X-API-KEY": "key"}
EVENT = {"eventName": "my custom event", "origin": "api", "contact": {"email": "a@example.com"}}
ORDER = {"orderID": "1", "email": "a@example.com", "currency": "EUR", "orderSum": 100,
         "createdAt": "2026-11-23T10:00:00Z"}


@pytest.fixture
def app() -> Any:
    return create_omnisend_app("key", requests_per_minute=400, processing_seconds=0.05)


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, verify=tls_context()) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [{}, {"Omnisend-Version": "2026-03-15"}, {"Authorization": "key", "Omnisend-Version": "2026-03-15"},
     {"X-API-KEY": "key", "Omnisend-Version": "2026-03-15"},
     {"Authorization": "Omnisend-API-Key wrong", "Omnisend-Version": "2026-03-15"}],
)
def test_api_line_auth(client: httpx.Client, headers: dict[str, str]) -> None:
    response = client.post("/api/events", json=EVENT, headers=headers)
    assert response.status_code == 401
    assert response.json()["status"] == 401 and response.json()["type"].startswith("https://problems.omnisend.com/")


def test_rate_reset_never_exceeds_the_window() -> None:
    # at this clock reading (now + 60.0) - now is a hair over 60.0: the header said 61
    app = create_omnisend_app("key", clock=lambda: 969.7851625490861)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        response = client.post("/api/events", json=EVENT, headers=API)
    assert response.headers["X-Rate-Limit-Reset"] == "60"


def test_version_header_required(client: httpx.Client) -> None:
    response = client.post("/api/events", json=EVENT, headers={"Authorization": "Omnisend-API-Key key"})
    assert response.status_code == 400


def test_event_accepted_with_rate_headers(client: httpx.Client, app: Any) -> None:
    response = client.post("/api/events", json=EVENT, headers=API)
    assert response.status_code == 202
    assert response.headers["X-Rate-Limit-Limit"] == "400"
    assert response.headers["X-Rate-Limit-Remaining"] == "399"
    assert 1 <= int(response.headers["X-Rate-Limit-Reset"]) <= 60
    assert app.state.fake.events == [EVENT]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"eventName": ""}, "eventName"), ({"origin": None}, "origin"), ({"contact": {"firstName": "A"}}, "contact"),
     ({"eventName": "placed order"}, "eventVersion"), ({"eventID": "not-a-uuid"}, "eventID"),
     ({"contact": {"phone": "+1234567890123456"}}, "contact.phone")],
)
def test_event_validation_problem(client: httpx.Client, change: dict[str, Any], field: str) -> None:
    response = client.post("/api/events", json={**EVENT, **change}, headers=API)
    assert response.status_code == 400
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["instance"].startswith("urn:omnisend:request:")
    assert field in [e["field"] for e in body["errors"]]


def test_batch_lifecycle(client: httpx.Client) -> None:
    items = [EVENT, {**EVENT, "origin": ""}]
    created = client.post("/api/batches", json={"method": "POST", "endpoint": "events", "items": items}, headers=API)
    assert created.status_code == 201
    batch_id, total = created.json()["batchID"], created.json()["totalCount"]
    assert total == 2
    assert client.get(f"/api/batches/{batch_id}", headers=API).json()["status"] == "inProgress"
    time.sleep(0.06)
    status = client.get(f"/api/batches/{batch_id}", headers=API).json()
    assert (status["status"], status["finishedCount"], status["errorsCount"]) == ("finished", 2, 1)
    listed = client.get(f"/api/batches/{batch_id}/items", headers=API).json()
    assert [i["responseCode"] for i in listed["responses"]] == [202]
    assert [i["responseCode"] for i in listed["errors"]] == [400]
    assert listed["errors"][0]["request"] == items[1]
    assert client.get("/api/batches/nope", headers=API).status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"method": "POST", "endpoint": "events", "items": []},
     {"method": "POST", "endpoint": "events", "items": [EVENT] * 101},
     {"method": "DELETE", "endpoint": "events", "items": [EVENT]},
     {"method": "POST", "endpoint": "orders", "items": [EVENT]}],
)
def test_batch_shape_enforced(client: httpx.Client, body: dict[str, Any]) -> None:
    assert client.post("/api/batches", json=body, headers=API).status_code == 400


def test_v3_auth_and_error_shape(client: httpx.Client) -> None:
    assert client.post("/v3/orders", json=ORDER, headers={"X-API-KEY": "wrong"}).status_code == 401
    assert client.post("/v3/orders", json=ORDER, headers={"Authorization": "Omnisend-API-Key key"}).status_code == 401
    missing = client.post("/v3/orders", json={"orderID": "1"}, headers=V3)
    assert missing.status_code == 422
    assert set(missing.json()) == {"error", "fields"} and "currency" in missing.json()["fields"]
    float_money = client.post("/v3/orders", json={**ORDER, "orderSum": 1.5}, headers=V3)
    assert float_money.status_code == 400 and "orderSum" in float_money.json()["fields"]


def test_v3_orders_lifecycle(client: httpx.Client, app: Any) -> None:
    assert client.patch("/v3/orders/1", json={"paymentStatus": "paid"}, headers=V3).status_code == 404
    assert client.post("/v3/orders", json=ORDER, headers=V3).json() == {"orderID": "1", "email": "a@example.com",
                                                                        "phone": None}
    assert client.put("/v3/orders/1", json={**ORDER, "orderSum": 200}, headers=V3).status_code == 200
    assert client.patch("/v3/orders/1", json={"paymentStatus": "paid"}, headers=V3).status_code == 200
    assert client.patch("/v3/orders/1", json={"orderSum": 5}, headers=V3).status_code == 400
    assert client.patch("/v3/orders/1", json={"paymentStatus": "maybe"}, headers=V3).status_code == 400
    assert app.state.fake.orders["1"]["orderSum"] == 200 and app.state.fake.orders["1"]["paymentStatus"] == "paid"


def test_v3_carts_and_contacts(client: httpx.Client) -> None:
    cart = {"cartID": "c1", "email": "a@example.com", "currency": "EUR", "cartSum": 100,
            "products": [{"cartProductID": "1", "productID": "p", "variantID": "v", "title": "T",
                          "quantity": 1, "price": 100}]}
    assert client.post("/v3/carts", json=cart, headers=V3).status_code == 200
    assert client.post("/v3/carts", json={**cart, "email": None, "phone": "+370"}, headers=V3).status_code == 422
    bad_price = {**cart, "products": [{**cart["products"][0], "price": 1.0}]}
    assert client.post("/v3/carts", json=bad_price, headers=V3).status_code == 400
    assert client.patch("/v3/carts/c1", json={"cartSum": 300}, headers=V3).status_code == 422  # needs currency too
    assert client.patch("/v3/carts/c1", json={"cartSum": 300, "currency": "EUR"}, headers=V3).status_code == 200
    contact = {"identifiers": [{"type": "email", "id": "a@example.com",
                                "channels": {"email": {"status": "subscribed"}}}]}
    assert client.post("/v3/contacts", json=contact, headers=V3).status_code == 200
    no_channels = {"identifiers": [{"type": "email", "id": "a@example.com"}]}
    assert client.post("/v3/contacts", json=no_channels, headers=V3).status_code == 400


def test_rate_limit_sliding_window() -> None:
    app = create_omnisend_app("key", requests_per_minute=3, window_seconds=60)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        codes = [client.post("/api/events", json=EVENT, headers=API) for _ in range(4)]
    assert [r.status_code for r in codes] == [202, 202, 202, 429]
    throttled = codes[3]
    assert throttled.headers["X-Rate-Limit-Remaining"] == "0"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json()["type"] == "https://problems.omnisend.com/rate-limit-exceeded"


def test_control_routes_over_http(client: httpx.Client) -> None:
    assert client.post("/_fake/fail", json={"mode": "status", "status": 503, "count": 2}).status_code == 200
    assert [client.post("/api/events", json=EVENT, headers=API).status_code for _ in range(3)] == [503, 503, 202]
    assert client.post("/_fake/fail", json={"mode": "status", "status": 401, "seconds": 0.2}).status_code == 200
    assert client.post("/api/events", json=EVENT, headers=API).status_code == 401
    time.sleep(0.25)
    assert client.post("/api/events", json=EVENT, headers=API).status_code == 202
    recorded = client.get("/_fake/requests").json()
    assert [r["status"] for r in recorded] == [503, 503, 202, 401, 202]
    assert recorded[2]["method"] == "POST" and recorded[2]["path"] == "/api/events"
    assert recorded[2]["body"] == EVENT and recorded[2]["headers"]["omnisend-version"] == "2026-03-15"
    assert len(client.get("/_fake/requests", params={"accepted": "1"}).json()) == 2
    client.post("/_fake/reset")
    assert client.get("/_fake/requests").json() == []
    assert client.post("/_fake/fail", json={"mode": "explode"}).status_code == 400


def test_timeout_and_reset_injection(client: httpx.Client) -> None:
    client.post("/_fake/fail", json={"mode": "timeout", "delay": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/events", json=EVENT, headers=API, timeout=0.2)
    client.post("/_fake/fail", json={"mode": "reset"})
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/api/events", json=EVENT, headers=API)


CONTACT = {"identifiers": [{"type": "email", "id": "a@example.com", "channels": {"email": {"status": "subscribed"}}}]}


def test_v3_batch_auth(client: httpx.Client) -> None:
    body = {"method": "POST", "endpoint": "contacts", "items": [CONTACT]}
    assert client.post("/v3/batches", json=body, headers={"X-API-KEY": "wrong"}).status_code == 401
    assert client.post("/v3/batches", json=body, headers=API).status_code == 401
    assert client.get("/v3/batches/nope", headers={}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{"method": "POST", "endpoint": "contacts", "items": []},
     {"method": "POST", "endpoint": "contacts", "items": [CONTACT] * 1001},
     {"method": "POST", "endpoint": "contacts"},
     {"method": "PUT", "endpoint": "contacts", "items": [CONTACT]},
     {"method": "PATCH", "endpoint": "orders", "items": [ORDER]},
     {"method": "POST", "endpoint": "carts", "items": [{}]},
     {"method": "POST", "endpoint": "events", "items": [{}]},
     {"method": "POST", "endpoint": "contacts", "items": [CONTACT], "eventID": "e1"}],
)
def test_v3_batch_shape_enforced(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v3/batches", json=body, headers=V3)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "fields"}


def test_v3_batch_limits_accept_1000_and_put_orders(client: httpx.Client) -> None:
    many = [{"identifiers": [{**CONTACT["identifiers"][0], "id": f"c{n}@example.com"}]} for n in range(1000)]
    assert client.post("/v3/batches", json={"method": "POST", "endpoint": "contacts", "items": many},
                       headers=V3).json()["totalCount"] == 1000
    assert client.post("/v3/batches", json={"method": "PUT", "endpoint": "orders", "items": [ORDER]},
                       headers=V3).status_code == 200
    assert client.post("/v3/batches", json={"method": "POST", "endpoint": "events", "eventID": "e1",
                                            "items": [{"email": "a@example.com"}]}, headers=V3).status_code == 200


def test_v3_contacts_batch_lifecycle(client: httpx.Client, app: Any) -> None:
    no_channels = {"identifiers": [{"type": "email", "id": "b@example.com"}]}
    items = [CONTACT, no_channels, {"firstName": "nobody"}]
    created = client.post("/v3/batches", json={"method": "POST", "endpoint": "contacts", "items": items}, headers=V3)
    assert created.status_code == 200
    batch_id = created.json()["batchID"]
    assert created.json()["totalCount"] == 3
    pending = client.get(f"/v3/batches/{batch_id}", headers=V3).json()
    assert (pending["status"], pending["finishedCount"], pending["endpoint"]) == ("pending", 0, "contacts")
    time.sleep(0.06)
    status = client.get(f"/v3/batches/{batch_id}", headers=V3).json()
    assert (status["status"], status["totalCount"], status["finishedCount"], status["errorsCount"]) == \
        ("finished", 3, 3, 2)
    listed = client.get(f"/v3/batches/{batch_id}/items", headers=V3).json()
    assert [(i["request"], i["responseCode"]) for i in listed["responses"]] == [(CONTACT, 200)]
    assert listed["responses"][0]["response"]["contactID"]
    assert [(i["request"], i["responseCode"]) for i in listed["errors"]] == [(no_channels, 400), (items[2], 400)]
    assert "identifiers.0.channels" in listed["errors"][0]["response"]["fields"]
    assert list(app.state.fake.contacts) == ["a@example.com"]
    assert client.get("/v3/batches/nope", headers=V3).status_code == 404
    assert client.get(f"/api/batches/{batch_id}", headers=API).status_code == 404  # the other line's batch


def test_v3_orders_batch_items_checked_like_single_orders(client: httpx.Client, app: Any) -> None:
    items = [ORDER, {**ORDER, "orderID": "2", "orderSum": 1.5}, {"orderID": "3"}]
    created = client.post("/v3/batches", json={"method": "POST", "endpoint": "orders", "items": items}, headers=V3)
    time.sleep(0.06)
    listed = client.get(f"/v3/batches/{created.json()['batchID']}/items", headers=V3).json()
    assert [i["responseCode"] for i in listed["responses"]] == [200]
    assert [(i["request"]["orderID"], i["responseCode"]) for i in listed["errors"]] == [("2", 400), ("3", 422)]
    assert "orderSum" in listed["errors"][0]["response"]["fields"]
    assert list(app.state.fake.orders) == ["1"]


# --- formats, enums and versions (apis.md 1.2, 1.4-1.6) ---------------------------------------------

PLACED = {"eventName": "placed order", "eventVersion": "v2", "origin": "api", "contact": {"email": "a@example.com"},
          "properties": {"orderID": "1", "orderNumber": 1042, "currency": "AUD", "totalPrice": 221.35,
                         "subTotalTaxIncluded": True, "discounts": [{"code": "W", "amount": 3.5, "type": "percentage"}],
                         "lineItems": [{"productID": "p", "productPrice": 89.95, "productQuantity": 2}]}}
CHECKOUT = {"eventName": "started checkout", "origin": "api", "contact": {"email": "a@example.com"},
            "properties": {"cartID": "c", "currency": "AUD", "value": 179.9,
                           "lineItems": [{"productID": "p", "productPrice": 89.95, "productQuantity": 2}]}}


def _with(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `event` with `value` at the dotted `path` (list indexes as numbers)."""
    copy = json.loads(json.dumps(event))
    *parents, last = path.split(".")
    node: Any = copy
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node.setdefault(step, {})
    node[int(last) if isinstance(node, list) else last] = value
    return copy


@pytest.mark.parametrize(
    ("event", "field"),
    [(_with(EVENT, "eventTime", "2026-11-23T10:00:00"), "eventTime"),  # no offset
     (_with(EVENT, "eventTime", "2026-11-23 10:00:00"), "eventTime"),
     (_with(EVENT, "eventTime", "23/11/2026 10:00"), "eventTime"),
     (_with(EVENT, "eventTime", "2026-02-30T10:00:00Z"), "eventTime"),
     (_with(EVENT, "eventTime", 1763892000), "eventTime"),
     (_with(PLACED, "eventVersion", "v1"), "eventVersion"),
     (_with(PLACED, "eventVersion", ""), "eventVersion"),
     (_with(EVENT, "eventVersion", "v2"), "eventVersion"),  # a custom event takes none
     (_with(CHECKOUT, "eventVersion", "v2"), "eventVersion"),  # the cart events' version is ""
     ({**EVENT, "eventName": "viewed product", "eventVersion": "v2"}, "eventVersion"),
     (_with(EVENT, "eventID", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"), "eventID"),  # a v1 UUID
     (_with(EVENT, "contact.phone", "0412345678"), "contact.phone"),
     (_with(EVENT, "contact.phone", "+61 412 345 678"), "contact.phone"),
     (_with(EVENT, "contact.phone", "+493012345678901"), "contact.phone"),  # E.164, but over maxLength 15
     (_with(EVENT, "contact.birthdate", "14/06/1991"), "contact.birthdate"),
     (_with(EVENT, "contact.gender", "female"), "contact.gender"),
     (_with(EVENT, "contact.tags", [f"t{n}" for n in range(101)]), "contact.tags"),
     (_with(EVENT, "contact.optIns", [{"channel": "push", "createdAt": "2026-11-23T10:00:00Z"}]),
      "contact.optIns.0.channel"),
     (_with(EVENT, "contact.optOuts", [{"channel": "email"}] * 11), "contact.optOuts"),
     (_with(EVENT, "contact.consents", [{"channel": "email", "createdAt": "yesterday"}]),
      "contact.consents.0.createdAt"),
     (_with(EVENT, "contact.consents", [{"channel": "email", "userAgent": "u" * 201}]),
      "contact.consents.0.userAgent"),
     (_with(CHECKOUT, "properties.currency", "aud"), "properties.currency"),
     (_with(CHECKOUT, "properties.value", "179.90"), "properties.value"),
     (_with(CHECKOUT, "properties.lineItems.0.productPrice", "89.95"), "properties.lineItems.0.productPrice"),
     ({**_with(CHECKOUT, "properties.addedItem", {"productQuantity": "2"}), "eventName": "added product to cart"},
      "properties.addedItem.productQuantity"),
     (_with(PLACED, "properties.orderNumber", "1042"), "properties.orderNumber"),
     (_with(PLACED, "properties.totalPrice", "221.35"), "properties.totalPrice"),
     (_with(PLACED, "properties.subTotalTaxIncluded", "true"), "properties.subTotalTaxIncluded"),
     (_with(PLACED, "properties.discounts.0.amount", "3.5"), "properties.discounts.0.amount"),
     (_with(PLACED, "properties.lineItems.0.productQuantity", True), "properties.lineItems.0.productQuantity"),
     ({**PLACED, "eventName": "ordered product", "properties": {"orderID": "1", "product": {"productPrice": "1"}}},
      "properties.product.productPrice")],
)
def test_event_format_refused(client: httpx.Client, event: dict[str, Any], field: str) -> None:
    response = client.post("/api/events", json=event, headers=API)
    assert response.status_code == 400, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    "event",
    [PLACED, CHECKOUT, _with(CHECKOUT, "eventVersion", ""), _with(EVENT, "eventVersion", ""),
     _with(EVENT, "eventTime", "2021-07-01T00:00:00Z"), _with(EVENT, "eventTime", "2026-11-20 10:15:30+11:00"),
     _with(EVENT, "eventTime", "2026-11-20T10:15:30.123456-05:00"),
     _with(EVENT, "eventID", "0b6d4c2e-8a8f-4f0e-9a51-1f6f3d2b9c11"),  # v4
     _with(EVENT, "eventID", "886313e1-3b8a-5372-9b90-0c9aee199e5d"),  # v5, as the bridge derives them
     _with(PLACED, "contact", {"phone": "+1234567890", "birthdate": "1991-06-14", "gender": "f",
                               "optIns": [{"channel": "sms", "createdAt": "2026-11-23T10:00:00Z"}]}),
     # a custom event's properties are free-form; undocumented values are not refused
     _with(EVENT, "properties", {"totalPrice": "text", "when": "whenever"}),
     _with(PLACED, "properties.paymentStatus", "pending"),
     _with(PLACED, "properties.discounts.0.type", "fixed_amount")],
)
def test_event_format_accepted(client: httpx.Client, event: dict[str, Any]) -> None:
    response = client.post("/api/events", json=event, headers=API)
    assert response.status_code == 202, response.text


def test_batch_item_with_a_bad_event_time_is_an_item_error(client: httpx.Client) -> None:
    items = [PLACED, _with(PLACED, "eventTime", "2026-11-23T10:00:00")]
    created = client.post("/api/batches", json={"method": "POST", "endpoint": "events", "items": items}, headers=API)
    time.sleep(0.06)
    listed = client.get(f"/api/batches/{created.json()['batchID']}/items", headers=API).json()
    assert [i["responseCode"] for i in listed["responses"]] == [202]
    [error] = listed["errors"]
    assert error["responseCode"] == 400 and [e["field"] for e in error["response"]["errors"]] == ["eventTime"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"createdAt": "23/11/2026"}, "createdAt"), ({"createdAt": "2026-11-23"}, "createdAt"),
     ({"discountType": "fixed_amount"}, "discountType"), ({"discountValue": 1.5}, "discountValue"),
     ({"subTotalTaxIncluded": "yes"}, "subTotalTaxIncluded"),
     ({"billingAddress": {"countryCode": "AUS"}}, "billingAddress.countryCode"),
     ({"shippingAddress": {"countryCode": "A"}}, "shippingAddress.countryCode")],
)
def test_v3_order_format_refused(client: httpx.Client, change: dict[str, Any], field: str) -> None:
    response = client.post("/v3/orders", json={**ORDER, **change}, headers=V3)
    assert response.status_code == 400 and field in response.json()["fields"]


def test_v3_order_formats_accepted(client: httpx.Client) -> None:
    order = {**ORDER, "createdAt": "2026-11-23T10:00:00+11:00", "updatedAt": "2026-11-23T10:00:00",
             "discountType": "fixedAmount", "discountValue": 350, "subTotalTaxIncluded": False,
             "billingAddress": {"countryCode": "AU"}, "orderNumber": 1042}
    assert client.post("/v3/orders", json=order, headers=V3).status_code == 200
    # Omnisend holds orderNumber as an integer and currency as exactly 3 characters
    for change, field in (({"orderNumber": "1042"}, "orderNumber"), ({"currency": "EURO"}, "currency")):
        refused = client.post("/v3/orders", json={**order, **change}, headers=V3)
        assert refused.status_code == 400 and field in refused.json()["fields"]
    assert client.post("/v3/orders", json={**order, "createdAt": "2026-11-23T10:00:00"}, headers=V3).status_code == 200


CART = {"cartID": "c1", "email": "a@example.com", "currency": "EUR", "cartSum": 100}


@pytest.mark.parametrize(
    ("change", "field"),
    [({"createdAt": "yesterday"}, "createdAt"), ({"updatedAt": "2026-11-23 10:00"}, "updatedAt"),
     ({"currency": "EURO"}, "currency"), ({"cartRecoveryUrl": "shop/cart/c1"}, "cartRecoveryUrl")],
)
def test_v3_cart_format_refused(client: httpx.Client, change: dict[str, Any], field: str) -> None:
    response = client.post("/v3/carts", json={**CART, **change}, headers=V3)
    assert response.status_code == 400 and field in response.json()["fields"]


def test_v3_cart_formats_accepted_and_checked_on_patch(client: httpx.Client) -> None:
    cart = {**CART, "createdAt": "2026-11-23T10:00:00Z", "cartRecoveryUrl": "https://shop.example.com/cart/c1"}
    assert client.post("/v3/carts", json=cart, headers=V3).status_code == 200
    money = {"currency": cart["currency"], "cartSum": cart["cartSum"]}  # every cart PATCH carries them
    assert client.patch("/v3/carts/c1", json={"updatedAt": "2026-11-23T11:00:00Z", **money},
                        headers=V3).status_code == 200
    refused = client.patch("/v3/carts/c1", json={"updatedAt": "11:00", **money}, headers=V3)
    assert refused.status_code == 400 and "updatedAt" in refused.json()["fields"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"birthdate": "1991-6-14"}, "birthdate"), ({"countryCode": "AUS"}, "countryCode"),
     ({"sendWelcomeEmail": "true"}, "sendWelcomeEmail"),
     ({"identifiers": [{"type": "email", "id": "a@example.com", "channels": {"email": {"status": "yes"}}}]},
      "identifiers.0.channels.email.status"),
     ({"identifiers": [{"type": "email", "id": "a@example.com", "channels": {"sms": {"status": "subscribed"}}}]},
      "identifiers.0.channels"),
     ({"identifiers": [{"type": "phone", "id": "+61412345678", "channels": {"email": {"status": "subscribed"}}}]},
      "identifiers.0.channels")],
)
def test_v3_contact_format_refused(client: httpx.Client, change: dict[str, Any], field: str) -> None:
    response = client.post("/v3/contacts", json={**CONTACT, **change}, headers=V3)
    assert response.status_code == 400 and field in response.json()["fields"]


def test_v3_contact_formats_accepted(client: httpx.Client) -> None:
    contact = {"identifiers": [CONTACT["identifiers"][0],
                               {"type": "phone", "id": "+61412345678", "channels": {"sms": {"status": "nonSubscribed"}}}],
               "birthdate": "1991-06-14", "countryCode": "AU", "gender": "f", "sendWelcomeEmail": False}
    assert client.post("/v3/contacts", json=contact, headers=V3).status_code == 200


# --- 2026 contacts --------------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"identifiers": [{"type": "phone", "id": "+61412345678"}]}, "identifiers"),  # creating needs an email
    ({"identifiers": [{"type": "email"}]}, "identifiers.0.id"),
    ({"identifiers": [{"type": "email", "id": "a@example.com", "channels": {"email": {}}}]},
     "identifiers.0.channels.email.status"),
    ({"identifiers": [{"type": "email", "id": "a@example.com"}, {"type": "phone", "id": "0412 345 678"}]},
     "identifiers.1.id"),
    ({"identifiers": [{"type": "email", "id": "a@example.com"}], "countryCode": "AUS"}, "countryCode"),
    ({"identifiers": [{"type": "email", "id": "a@example.com"}], "birthdate": "14/06/1991"}, "birthdate"),
    ({"identifiers": [{"type": "email", "id": "a@example.com"}], "tags": ["t"] * 101}, "tags"),
    ({"identifiers": [{"type": "email", "id": "a@example.com"}], "customProperties": ["x"]}, "customProperties"),
])
def test_api_contact_contract(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = client.post("/api/contacts", json=body, headers=API)
    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]


def test_api_contact_upsert_and_update_by_email(client: httpx.Client, app: Any) -> None:
    fake = app.state.fake
    assert client.post("/api/contacts", json={"identifiers": [{"type": "email", "id": "a@example.com"}]},
                       headers={"X-API-KEY": "key"}).status_code == 401
    assert client.patch("/api/contacts?email=b@example.com", json={"firstName": "B"}, headers=API).status_code == 404
    assert client.patch("/api/contacts", json={"firstName": "B"}, headers=API).status_code == 400
    created = client.post("/api/contacts", json={"identifiers": [{"type": "email", "id": "a@example.com"}]},
                          headers=API)
    assert created.status_code == 201
    # the worst case the bridge must never trigger: an identifier created without a status is subscribed
    assert fake.contacts["a@example.com"]["identifiers"][0]["channels"] == {"email": {"status": "subscribed"}}
    updated = client.patch("/api/contacts?email=a@example.com", json={"firstName": "A", "customProperties": {"x": 1}},
                           headers=API)
    assert updated.status_code == 200 and fake.contacts["a@example.com"]["firstName"] == "A"
    again = client.post("/api/contacts", json={"identifiers": [{"type": "email", "id": "a@example.com"}],
                                               "customProperties": {"y": 2}}, headers=API)
    assert again.status_code == 200
    assert fake.contacts["a@example.com"]["customProperties"] == {"x": 1, "y": 2}


# --- 2026 products and categories --------------------------------------------------------------------

PRODUCT = {"id": "p1", "title": "Shirt", "url": "https://shop.example.com/p1", "currency": "AUD", "status": "inStock",
           "variants": [{"id": "v1", "title": "M", "url": "https://shop.example.com/p1?v=1", "price": 89.95}]}


@pytest.mark.parametrize("change, field", [
    ({"currency": None}, "currency"), ({"currency": "AUDD"}, "currency"), ({"status": "active"}, "status"),
    ({"url": "shop/p1"}, "url"), ({"title": "x" * 256}, "title"), ({"variants": []}, "variants"),
    ({"variants": [{"id": "v1", "title": "M", "url": "https://shop.example.com/p1", "price": "89.95"}]},
     "variants.0.price"),
    ({"variants": [{"id": "v1", "title": "M", "price": 1}]}, "variants.0.url"),
    ({"tags": ["t"] * 101}, "tags"),
])
def test_product_contract(client: httpx.Client, change: dict[str, Any], field: str) -> None:
    response = client.post("/api/products", json={**PRODUCT, **change}, headers=API)
    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]


def test_product_create_conflict_replace_and_unknown(client: httpx.Client, app: Any) -> None:
    assert client.put("/api/products/p1", json=PRODUCT, headers=API).status_code == 404
    assert client.post("/api/products", json=PRODUCT, headers=API).status_code == 201
    assert client.post("/api/products", json=PRODUCT, headers=API).status_code == 409
    replaced = client.put("/api/products/p1", json={**PRODUCT, "title": "Linen Shirt"}, headers=API)
    assert replaced.status_code == 200 and app.state.fake.products["p1"]["title"] == "Linen Shirt"
    assert client.put("/api/products/p2", json=PRODUCT, headers=API).status_code == 400  # id differs from the path
    assert client.post("/api/products", json=PRODUCT, headers=V3).status_code == 401


def test_category_create_and_update(client: httpx.Client, app: Any) -> None:
    assert client.patch("/api/product-categories/c1", json={"title": "Shirts"}, headers=API).status_code == 404
    assert client.post("/api/product-categories", json={"title": "Shirts"}, headers=API).status_code == 400
    assert client.post("/api/product-categories", json={"categoryID": "c1", "title": "Shirts"},
                       headers=API).status_code == 201
    assert client.patch("/api/product-categories/c1", json={"title": "Tops"}, headers=API).status_code == 200
    assert app.state.fake.categories["c1"]["title"] == "Tops"


def test_cart_patch_must_carry_currency_and_cart_sum_and_delete_closes(client: httpx.Client, app: Any) -> None:
    cart = {"cartID": "c1", "email": "a@example.com", "currency": "EUR", "cartSum": 100}
    assert client.post("/v3/carts", json=cart, headers=V3).status_code == 200
    refused = client.patch("/v3/carts/c1", json={"cartRecoveryUrl": "https://shop.example.com/r"}, headers=V3)
    assert refused.status_code == 422 and set(refused.json()["fields"]) == {"currency", "cartSum"}
    assert client.patch("/v3/carts/c1", json={"currency": "EUR", "cartSum": 250}, headers=V3).status_code == 200
    assert client.delete("/v3/carts/c1", headers=V3).status_code == 204 and "c1" not in app.state.fake.carts
    assert client.delete("/v3/carts/c1", headers=V3).status_code == 404
