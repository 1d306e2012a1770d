"""The log of operators' actions: every change made through the console or the admin API, with who
(the token's name and role), what and when, kept in the store (`Store.record_action`)."""

from __future__ import annotations

import time

import structlog

from bridge.access import Principal
from bridge.log import capped
from bridge.store.base import Store

log = structlog.get_logger("bridge.ops.actions")

DETAIL_CAP = 500


async def record(store: Store, who: Principal, action: str, target: str = "", detail: str = "",
                 now: float | None = None) -> None:
    """Log one action (committed when this returns). `detail` holds no personal data: callers pass counts,
    names of destinations and ids."""
    await store.record_action(time.time() if now is None else now, who.name, who.role.value, action,
                              capped(target, DETAIL_CAP), capped(detail, DETAIL_CAP))
    log.info("console.action", actor=who.name, role=who.role.value, action=action, target=capped(target, 120))
