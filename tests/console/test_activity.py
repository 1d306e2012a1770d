"""The overview's activity: the rolling last hour and the current hour are exact, with closed slots and hours
counted once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.console.activity import HOUR, HOURS, ActivityCache
from bridge.model import Webhook
from bridge.store import SQLiteStore

NOW = 1_796_000_000.0 + 1234.5  # not on a slot's edge


def test_the_last_hour_and_the_day_count_exactly_what_happened_when(tmp_path: Path) -> None:
    ages = [5, 299, 301, 1500, 3599, 3601, 2 * HOUR + 10, 23 * HOUR - 1, 30 * HOUR]

    async def go() -> None:
        store = SQLiteStore(tmp_path / "b.db")
        await store.open()
        try:
            for n, age in enumerate(ages):
                await store.ingest(Webhook("shopify", "orders/paid", f"e{n}", b"{}"), now=NOW - age)
            cache = ActivityCache(store)
            first = await cache.read(NOW)
            assert first.last_hour["received"] == {"shopify": 5}  # 5 s to 3599 s ago
            hour_start = NOW - NOW % HOUR
            assert first.day[-1]["received"] == {"shopify": sum(1 for a in ages if NOW - a >= hour_start)}
            assert len(first.day) == HOURS and first.counting
            while cache._counting is not None and not cache._counting.done():
                await asyncio.sleep(0.01)
            later = await cache.read(NOW + 60)  # a minute on: one more event, nothing recounted wrongly
            await store.ingest(Webhook("shopify", "orders/paid", "new", b"{}"), now=NOW + 30)
            later = await cache.read(NOW + 60)
            assert not later.counting
            assert later.last_hour["received"] == {"shopify": 5}  # the one 3599 s ago left; the new one came
            in_day = sum(1 for a in ages if NOW - a >= (NOW + 60) - (NOW + 60) % HOUR - (HOURS - 1) * HOUR) + 1
            assert sum(b["received"].get("shopify", 0) for b in later.day) == in_day
            moved = await cache.read(NOW + 400)  # the slot of NOW has closed and is read from the cache
            expected = sum(1 for a in ages if 0 <= a + 400 < HOUR) + 1
            assert moved.last_hour["received"] == {"shopify": expected}
        finally:
            await store.close()

    asyncio.run(go())
