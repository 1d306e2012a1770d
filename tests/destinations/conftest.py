from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.fakes import create_ometria_app, create_omneo_app, create_omnisend_app, serve_in_thread
from bridge.model import Message
from bridge.settings import DestinationSettings, Secret

MakeMessage = Callable[..., Message]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_message() -> MakeMessage:
    ids = itertools.count(1)

    def make(kind: str, record: dict[str, Any], action: str = "upsert", key: str = "") -> Message:
        n = next(ids)
        return Message(
            id=n, event_id=n, destination="test", kind=kind, action=action, record=record, rule="rule",
            key=key, idempotency_key=str(uuid.uuid5(uuid.NAMESPACE_URL, f"msg-{n}")), attempts=0,
            created_at=time.time(),
        )

    return make


@pytest.fixture
def dest_settings() -> Callable[..., DestinationSettings]:
    def build(name: str, base_url: str, key: str | None, **options: Any) -> DestinationSettings:
        return DestinationSettings(name, base_url, Secret(key) if key else None, options)

    return build


@pytest.fixture
def omnisend_app() -> Any:
    return create_omnisend_app("os-key", processing_seconds=0.05)


@pytest.fixture
def omnisend_url(omnisend_app: Any) -> Iterator[str]:
    with serve_in_thread(omnisend_app) as url:
        yield url


@pytest.fixture
def ometria_app() -> Any:
    return create_ometria_app("om-key")


@pytest.fixture
def ometria_url(ometria_app: Any) -> Iterator[str]:
    with serve_in_thread(ometria_app) as url:
        yield url


@pytest.fixture
def omneo_app() -> Any:
    return create_omneo_app("on-token")


@pytest.fixture
def omneo_url(omneo_app: Any) -> Iterator[str]:
    with serve_in_thread(omneo_app) as url:
        yield url + "/api"
