"""The fake Omneo enforces the Batch Profiles contract (apis.md 3.7) and fires signed webhooks, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.fakes import create_omneo_app, serve_in_thread

AUTH = {"Authorization": "Bearer token"}
PATH = "/api/v3/profiles/batch"


def batch(*profiles: dict[str, Any], match: str = "email") -> dict[str, Any]:
    return {"match_criteria": match, "profiles": list(profiles)}


def member(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"email": f"m{n}@example.com", "first_name": "Mia", **extra}


@pytest.fixture
def app() -> Any:
    return create_omneo_app("token", emit_delay=0.0)


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        yield client


def test_a_valid_batch_is_queued_with_its_batch_id(client: httpx.Client, app: Any) -> None:
    response = client.post(PATH, json=batch(member(1), member(2, gender="female", birth_day=3)), headers=AUTH)
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["message"] == "Profiles queued for batch import." and data["batch_id"] in app.state.fake.batches
    assert client.post(PATH + ".json", json=batch(member(3)), headers=AUTH).status_code == 202
    assert len(app.state.fake.profiles) == 3


def test_the_bearer_token_is_required(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer other"}, {"Authorization": "token"}):
        response = client.post(PATH, json=batch(member()), headers=headers)
        assert (response.status_code, response.json()) == (401, {"message": "Unauthenticated."})


@pytest.mark.parametrize(("body", "field"), [
    ({"profiles": [member()]}, "match_criteria"),
    (batch(), "profiles"),
    (batch(*(member(n) for n in range(501))), "profiles"),
    (batch({"first_name": "x"}), "profiles.0.email"),
    (batch(member(1), {"email": "not-an-email"}), "profiles.1.email"),
    (batch(member(1), member(1)), "profiles.1.email"),
    (batch(member(1, mobile_phone="0412345678")), "profiles.0.mobile_phone"),
    (batch(member(1, mobile_phone="+61412345678"), member(2, mobile_phone="+61412345678")), "profiles.1.mobile_phone"),
    (batch(member(1, secondary_phone="12")), "profiles.0.secondary_phone"),
    (batch(member(1, gender="f")), "profiles.0.gender"),
    (batch(member(1, birth_month="6")), "profiles.0.birth_month"),
    (batch(member(1), match="shopify_id"), "profiles.0.identities"),
])
def test_an_invalid_batch_is_a_422_naming_the_field_and_nothing_is_applied(client: httpx.Client, app: Any,
                                                                           body: dict[str, Any], field: str) -> None:
    response = client.post(PATH, json=body, headers=AUTH)
    assert response.status_code == 422
    assert field in response.json()["errors"] and response.json()["message"]
    assert app.state.fake.profiles == {}


def test_a_mobile_another_profile_holds_exists(client: httpx.Client, app: Any) -> None:
    client.post(PATH, json=batch(member(1, mobile_phone="+61412345678")), headers=AUTH)
    response = client.post(PATH, json=batch(member(2, mobile_phone="+61412345678")), headers=AUTH)
    assert response.json()["errors"] == {"profiles.0.mobile_phone": ["The phone number exists"]}
    again = client.post(PATH, json=batch(member(1, mobile_phone="+61412345678", last_name="Lee")), headers=AUTH)
    assert again.status_code == 202  # its own number


def test_matching_on_an_identity(client: httpx.Client, app: Any) -> None:
    identity = [{"handle": "shopify_id", "identifier": "42"}]
    client.post(PATH, json=batch(member(1, identities=identity), match="shopify_id"), headers=AUTH)
    client.post(PATH, json=batch(member(2, identities=identity), match="shopify_id"), headers=AUTH)
    [profile] = app.state.fake.profiles.values()
    assert profile["email"] == "m2@example.com"


def test_429_with_retry_after_and_injected_failures(app: Any) -> None:
    limited = create_omneo_app("token", requests_per_minute=1, retry_after=9)
    with serve_in_thread(limited) as url, httpx.Client(base_url=url) as client:
        assert client.post(PATH, json=batch(member()), headers=AUTH).status_code == 202
        response = client.post(PATH, json=batch(member(2)), headers=AUTH)
        assert (response.status_code, response.headers["retry-after"]) == (429, "9")
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        app.state.fake.fail("status", status=503)
        assert client.post(PATH, json=batch(member()), headers=AUTH).status_code == 503


def test_the_profile_webhooks_come_back_signed(app: Any) -> None:
    received: list[tuple[str, bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((request.headers["x-omneo-event"], await request.body(), request.headers["x-omneo-hmac-sha256"]))
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/webhooks/omneo", hook, methods=["POST"])])
    with serve_in_thread(receiver) as hook_url, serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        app.state.fake.emit_to(hook_url + "/webhooks/omneo", "s3cret")
        client.post(PATH, json=batch(member(1, comms_attributes={"email_promo": True})), headers=AUTH)
        client.post(PATH, json=batch(member(1, last_name="Lee")), headers=AUTH)
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [event for event, _, _ in received] == ["profile.created", "profile.updated"]
    for _, body, signature in received:
        assert signature == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    import json
    created = json.loads(received[0][1])
    assert created["id"] and created["tier"]["name"] == "Bronze" and created["point_balance"] == 100
    assert created["attributes"]["comms"] == {"email_promo": True}
    assert json.loads(received[1][1])["last_name"] == "Lee"


def test_a_namespace_matching_the_token_sends_nothing_back(app: Any) -> None:
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        app.state.fake.emit_to("http://127.0.0.1:9/never", "s", namespace_blocks=True)
        client.post(PATH, json=batch(member()), headers=AUTH)
        time.sleep(0.2)
    assert app.state.fake.emitted == []
