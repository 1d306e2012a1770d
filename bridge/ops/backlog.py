"""The backlog: what was acknowledged and is not delivered yet, how old it is and when it will be gone.

A burst is acknowledged at once and delivered at the destinations' pace, so after one the backlog
grows and then drains. Operators read the same figures in `/metrics`, `/healthz` and
`bridge outbox stats`:

- events waiting to be mapped, and the age of the oldest (mapping yields to the acknowledgements
  while webhooks arrive, bridge/pressure.py);
- per destination, messages waiting or in flight, the age of the oldest pending one, the ceiling
  (records a second its rate limit lets through: requests a second times records a request) and the
  expected time to drain: its messages and the events still to map (one message each) at the ceiling.
  The worker reaches 0.95-1.00 of the ceiling once the webhooks stop (docs/benchmarks.md), so this
  is the time a backlog takes unless a destination slows down (429s, errors) or more arrives;
- `drain_seconds`: the longest of them, the whole backlog's.

A paused or unconfigured destination does not drain: its expected time is None (unknown), and the
whole backlog's is the longest of the others'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.store.base import Store, Unmapped


@dataclass(frozen=True)
class DestinationBacklog:
    messages: int  # pending and in flight
    oldest_pending_age_seconds: float | None
    ceiling_per_second: float
    drain_seconds: float | None  # None: it does not drain (paused, not configured, no ceiling)


@dataclass(frozen=True)
class Backlog:
    events_waiting: int
    oldest_event_age_seconds: float | None
    destinations: dict[str, DestinationBacklog]

    @property
    def drain_seconds(self) -> float:
        """The whole backlog's expected time to drain: the slowest delivering destination's (a paused or
        unconfigured one keeps its messages until it delivers again, shown on its own line)."""
        return max((d.drain_seconds for d in self.destinations.values() if d.drain_seconds is not None), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        """For /healthz and `bridge outbox stats --json`: seconds rounded to a tenth."""
        return {
            "events_waiting": self.events_waiting,
            "oldest_event_age_seconds": _round(self.oldest_event_age_seconds),
            "drain_seconds": _round(self.drain_seconds),
            "destinations": {
                name: {"messages": d.messages, "oldest_pending_age_seconds": _round(d.oldest_pending_age_seconds),
                       "ceiling_per_second": round(d.ceiling_per_second, 1), "drain_seconds": _round(d.drain_seconds)}
                for name, d in self.destinations.items()
            },
        }


def backlog(now: float, unmapped: Unmapped, counts: Mapping[tuple[str, str], int], oldest_pending: Mapping[str, float],
            ceilings: Mapping[str, float], stopped: set[str] | frozenset[str] = frozenset()) -> Backlog:
    """The backlog from the store's readings (`counts`: (destination, state) -> messages); `ceilings`: records
    a second of each destination; `stopped`: destinations that deliver nothing now (paused, not configured)."""
    waiting = unmapped["count"]
    oldest_event = unmapped["oldest_received_at"]
    names = sorted({*ceilings, *(d for d, _ in counts)})
    destinations = {}
    for name in names:
        messages = counts.get((name, "pending"), 0) + counts.get((name, "inflight"), 0)
        ceiling = ceilings.get(name, 0.0)
        drains = name not in stopped and ceiling > 0
        destinations[name] = DestinationBacklog(
            messages=messages,
            oldest_pending_age_seconds=max(now - oldest_pending[name], 0.0) if name in oldest_pending else None,
            ceiling_per_second=ceiling,
            drain_seconds=(messages + waiting) / ceiling if drains else None,
        )
    return Backlog(waiting, max(now - oldest_event, 0.0) if oldest_event is not None else None, destinations)


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


async def read_backlog(store: Store, ceilings: Mapping[str, float], now: float) -> Backlog:
    """The backlog as the store holds it now (four reads off partial indexes)."""
    states = await store.destination_states()
    paused = {name for name, state in states.items() if state["paused"]}
    return backlog(now, await store.unmapped(), await store.open_counts(), await store.oldest_pending(), ceilings,
                   paused)
