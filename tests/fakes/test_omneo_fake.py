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

from bridge.destinations.http import tls_context
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
    with serve_in_thread(app) as url, httpx.Client(base_url=url, verify=tls_context()) as client:
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
        client.post(PATH, json=batch(member(1, comms_attributes={"email_promo": True,
                                                                 "email_consent_updated_at": "2025-03-02T09:14:21+11:00"})),
                    headers=AUTH)
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
    # Omneo's default comms, then what the API wrote, its decision time in Omneo's own form (UTC)
    assert created["attributes"]["comms"] == {"email_promo": True, "email_optout": False, "email_bounced": False,
                                              "sms_promo": False, "sms_optout": False, "push_promo": False,
                                              "email_consent_updated_at": "2025-03-01 22:14:21"}
    assert json.loads(received[1][1])["last_name"] == "Lee"


def test_a_namespace_matching_the_token_sends_nothing_back(app: Any) -> None:
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        app.state.fake.emit_to("http://127.0.0.1:9/never", "s", namespace_blocks=True)
        client.post(PATH, json=batch(member()), headers=AUTH)
        time.sleep(0.2)
    assert app.state.fake.emitted == []


def test_a_consent_time_that_is_not_a_date_is_refused(app: Any) -> None:
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        response = client.post(PATH, json=batch(member(1, comms_attributes={"email_consent_updated_at": "soon"})),
                               headers=AUTH)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["profiles.0.comms_attributes.email_consent_updated_at"]


def test_changes_made_in_omneo_itself_fire_their_webhooks(app: Any) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    async def hook(request: Request) -> Response:
        import json
        received.append((request.headers["x-omneo-event"], json.loads(await request.body())))
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/webhooks/omneo", hook, methods=["POST"])])
    with serve_in_thread(receiver) as hook_url, serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        # a namespace holds back only what the API token caused: a member's own changes still come
        app.state.fake.emit_to(hook_url + "/webhooks/omneo", "s3cret", namespace_blocks=True)
        joined = client.post("/_fake/omneo/members", json={"email": "in.store@example.org", "first_name": "Ari"})
        assert joined.status_code == 200
        profile = joined.json()
        assert profile["attributes"]["comms"]["email_promo"] is False
        assert "email_consent_updated_at" not in profile["attributes"]["comms"]  # a default: nobody decided
        chosen = client.post(f"/_fake/omneo/profiles/{profile['id']}/comms",
                             json={"email_promo": True, "at": "2026-01-02T03:04:05Z"}).json()
        assert chosen["attributes"]["comms"]["email_promo"] is True
        assert chosen["attributes"]["comms"]["email_optout"] is False
        assert chosen["attributes"]["comms"]["email_consent_updated_at"] == "2026-01-02 03:04:05"
        earned = client.post(f"/_fake/omneo/profiles/{profile['id']}/points", json={"points": 20}).json()
        assert earned["point_balance"] == 120
        assert earned["attributes"]["comms"]["email_consent_updated_at"] == "2026-01-02 03:04:05"  # unchanged
        assert client.post("/_fake/omneo/profiles/nobody/points", json={"points": 1}).status_code == 404
        assert client.post(f"/_fake/omneo/profiles/{profile['id']}/comms", json={}).status_code == 404
        deleted = client.delete(f"/_fake/omneo/profiles/{profile['id']}").json()
        assert deleted["profile_type"] == "deleted" and deleted["email"] == "in.store@example.org"
        assert app.state.fake.profiles == {}
        assert client.delete(f"/_fake/omneo/profiles/{profile['id']}").status_code == 404
    # each answered once its webhook was fired
    assert [event for event, _ in received] == ["profile.created", "profile.updated", "profile.updated",
                                                "profile.deleted"]
    assert received[2][1]["point_balance"] == 120
