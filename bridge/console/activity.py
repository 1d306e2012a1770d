"""The overview's activity: the last 24 hours by the hour, and the last hour, read cheaply on every refresh.

What happened in a closed stretch of time does not change (a late delivery counts in the minute it
happened), so it is counted once and kept: closed hours for the charts, counted in the background
(a day of a million deliveries takes seconds to count; the charts fill in meanwhile), and closed
five-minute slots for the current hour and the rolling last hour. A refresh then reads only the
current slot and the start of the rolling hour: a few thousand rows at most (bench/console.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bridge.errors import StoreUnavailable
from bridge.store.base import ActivityBucket, Store

HOUR = 3600.0
SLOT = 300.0
HOURS = 24


def empty(start: float) -> ActivityBucket:
    return {"start": start, "received": {}, "delivered": {}, "dead": {}}


def merged(start: float, buckets: list[ActivityBucket]) -> ActivityBucket:
    total = empty(start)
    for bucket in buckets:
        for what in ("received", "delivered", "dead"):
            counts = total["received"] if what == "received" else total["delivered"] if what == "delivered" \
                else total["dead"]
            source = bucket["received"] if what == "received" else bucket["delivered"] if what == "delivered" \
                else bucket["dead"]
            for name, n in source.items():
                counts[name] = counts.get(name, 0) + n
    return total


@dataclass
class Activity:
    day: list[ActivityBucket]  # HOURS buckets, oldest first; the last is the current hour so far
    last_hour: ActivityBucket  # the rolling hour up to now
    counting: bool  # earlier hours are still being counted (shown as empty meanwhile)


class ActivityCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._hours: dict[int, ActivityBucket] = {}
        self._slots: dict[int, ActivityBucket] = {}
        self._counting: asyncio.Task[None] | None = None

    async def read(self, now: float) -> Activity:
        hour_start = now - now % HOUR
        slot_start = now - now % SLOT
        first_hour = hour_start - (HOURS - 1) * HOUR
        head = now - HOUR
        first_slot = head - head % SLOT + (SLOT if head % SLOT else 0)  # the first slot wholly in the last hour
        keep_from = min(first_slot, hour_start)
        self._hours = {s: b for s, b in self._hours.items() if s >= first_hour}
        self._slots = {s: b for s, b in self._slots.items() if s >= keep_from}

        closed_hours = [first_hour + n * HOUR for n in range(HOURS - 1)]
        missing_hours = [s for s in closed_hours if int(s) not in self._hours]
        if missing_hours and (self._counting is None or self._counting.done()):
            self._counting = asyncio.create_task(self._count_hours(missing_hours))

        slots = [keep_from + n * SLOT for n in range(round((slot_start - keep_from) / SLOT))]
        missing = [s for s in slots if int(s) not in self._slots]
        if missing:
            for bucket in await self.store.activity(missing[0], missing[-1] + SLOT, SLOT):
                self._slots[int(bucket["start"])] = bucket
        [live] = await self.store.activity(slot_start, now, max(now - slot_start, 1e-6))
        part = await self.store.activity(head, first_slot, first_slot - head) if first_slot > head else []

        this_hour = merged(hour_start, [b for s, b in self._slots.items() if s >= hour_start] + [live])
        last_hour = merged(head, part + [b for s, b in self._slots.items() if s >= first_slot] + [live])
        day = [self._hours.get(int(s)) or empty(s) for s in closed_hours] + [this_hour]
        return Activity(day, last_hour, bool(missing_hours))

    async def _count_hours(self, starts: list[float]) -> None:
        for start in reversed(starts):  # the most recent first: the likeliest to be looked at
            try:
                [bucket] = await self.store.activity(start, start + HOUR, HOUR)
            except StoreUnavailable:
                return  # counted again at the next refresh
            self._hours[int(start)] = bucket
