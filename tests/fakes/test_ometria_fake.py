"""The fake Ometria enforces the push contract (apis.md section 2), over real HTTP."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from bridge.fakes import create_ometria_app, serve_in_thread

AUTH = {"X-Ometria-Auth": "key"}
ORDER = {"@type": "order", "id": "1", "timestamp": "2026-11-23T10:00:00Z", "grand_total": 1.5, "currency": "GBP"}


@pytest.fixture
def app() -> Any:
    return create_ometria_app("key")


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        yield client


def test_push_accepted(client: httpx.Client, app: Any) -> None:
    response = client.post("/v2/push", json=[ORDER], headers=AUTH)
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["accepted"], body["rejected"]) == ("OK", 1, 0) and body["request_id"]
    client.post("/v2/push", json=[{"@type": "order", "id": "1", "status": "cancelled", "timestamp": "t",
                                   "grand_total": 1, "currency": "GBP"}], headers=AUTH)
    assert app.state.fake.records[("order", "1")]["status"] == "cancelled"  # upsert merges


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
