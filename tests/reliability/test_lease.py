"""A claim that takes longer than its lease must not be delivered a second time by the other delivery loop.

Omnisend contacts go one request each, so a claim of N contacts takes N round trips (and at the real
budget of 400 requests a minute, 100 contacts take 15 s of rate limiting alone). Here every contact
answer takes 0.6 s and the lease is 2 s: a claim of 6 outlives its lease after about 3 contacts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.conftest import Fakes
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread

from .conftest import FAST_OMETRIA_PER_SECOND, FAST_OMNISEND_PER_MINUTE
from .process import OMETRIA_KEY, OMNISEND_KEY, Bridge, reliability_env, wait_until
from .traffic import Sender, contact_email, omnisend_contacts, profile

CONTACT_LATENCY = 0.6  # one contact; a claim of several one by one outlives the 2 s lease
BATCH_LATENCY = 3.0  # a batch of contacts: one request that alone outlives the lease


class SlowContacts:
    """Answers /v3/contacts and /v3/batches correctly, but late."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v3/contacts":
            await asyncio.sleep(CONTACT_LATENCY)
        elif scope["type"] == "http" and scope["path"] == "/v3/batches" and scope["method"] == "POST":
            await asyncio.sleep(BATCH_LATENCY)
        await self.app(scope, receive, send)


@pytest.fixture
def slow_fakes() -> Iterator[Fakes]:
    omnisend = create_omnisend_app(OMNISEND_KEY, processing_seconds=0.01, requests_per_minute=FAST_OMNISEND_PER_MINUTE)
    ometria = create_ometria_app(OMETRIA_KEY, requests_per_second=FAST_OMETRIA_PER_SECOND)
    with serve_in_thread(SlowContacts(omnisend)) as omnisend_url, serve_in_thread(ometria) as ometria_url:
        yield Fakes(omnisend, ometria, omnisend_url, ometria_url)


def test_a_claim_outliving_its_lease_is_not_delivered_twice(workdir: Path, slow_fakes: Fakes) -> None:
    bridge = Bridge(workdir, reliability_env(slow_fakes, BRIDGE_LEASE_SECONDS="2")).start()
    try:
        items = [profile(n) for n in range(200, 206)]
        Sender(bridge.url, items).run()
        wait_until(bridge.settled, timeout=60, interval=0.2)
        deliveries = Counter(contact_email(c) for c in omnisend_contacts(slow_fakes))
        print(f"\nlease: {sum(deliveries.values())} contact deliveries for {len(items)} profiles")
        assert set(deliveries) == {i.email for i in items}
        assert max(deliveries.values()) == 1, {k: v for k, v in deliveries.items() if v > 1}
    finally:
        bridge.stop()
