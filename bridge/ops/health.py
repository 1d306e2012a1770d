"""Readiness: can this process take webhooks and turn them into deliveries?

`/healthz` (bridge.app) says how things are; `/readyz` says whether to send
traffic here, with a 503 naming what is wrong:

- the database takes a write: the store's probe (a row added and removed in one
  transaction), so a dead writer, a read-only volume or a lock held elsewhere
  show up, bounded by a timeout. The route probes at most once every PROBE_EVERY
  seconds and answers from the last probe in between: /readyz is unauthenticated,
  and each probe is a commit;
- rules are loaded (a broken rule file keeps the previous rules; none at all
  means events would wait unmapped);
- the map loop, when this process runs the worker, is not failing every round or stuck
  on one batch (events would wait unmapped);
- at least one destination is configured. One missing key is not enough to
  refuse traffic: its messages wait in the outbox and `/healthz` lists it.

A paused destination does not make the bridge unready: taking webhooks is
what keeps the providers from retrying and disabling their webhooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.store.base import Store

if TYPE_CHECKING:
    from bridge.destinations import Destination
    from bridge.mapping.reload import RunningRules

PROBE_TIMEOUT = 2.0
PROBE_EVERY = 1.0


async def check_database(store: Store, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(store.probe(), timeout)
    except TimeoutError:
        return {"ok": False, "error": f"no write committed within {timeout:g}s"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "write_ms": round((time.perf_counter() - started) * 1000, 1)}


class CachedProbe:
    """check_database at most once every `every` seconds; callers in between share the last answer."""

    def __init__(self, every: float = PROBE_EVERY) -> None:
        self.every = every
        self._answer: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()  # requests arriving during a probe wait for its answer

    async def __call__(self, store: Any) -> dict[str, Any]:
        async with self._lock:
            if self._answer is None or time.monotonic() - self._at >= self.every:
                self._answer = await check_database(store)
                self._at = time.monotonic()
            return self._answer


def check_rules(rules: RunningRules) -> dict[str, Any]:
    result: dict[str, Any] = {"ok": rules.current is not None, "loaded_at": rules.loaded_at}
    error = rules.error
    if error:
        result["error"] = str(error)
    return result


def check_destinations(destinations: Mapping[str, Destination]) -> dict[str, Any]:
    configured = sorted(name for name, d in destinations.items() if d.configured)
    missing = sorted(name for name in destinations if name not in configured)
    return {"ok": bool(configured), "configured": configured, "not_configured": missing}


def check_mapping(worker: Any) -> dict[str, Any]:
    if worker is None:
        return {"ok": True, "worker": False}
    report: dict[str, Any] = worker.map_health.report(time.monotonic())
    return report


async def readyz(bridge: Any, probe: CachedProbe | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when every check passes, else 503 with `problems`. `probe`: a cached database check."""
    checks = {
        "database": await (probe(bridge.store) if probe is not None else check_database(bridge.store)),
        "rules": check_rules(bridge.rules),
        "destinations": check_destinations(bridge.destinations),
        "mapping": check_mapping(bridge.worker),
    }
    problems = []
    if not checks["database"]["ok"]:
        problems.append(f"database: {checks['database']['error']}")
    if not checks["rules"]["ok"]:
        problems.append("rules: none loaded" + (f" ({checks['rules']['error']})" if "error" in checks["rules"] else ""))
    if not checks["mapping"]["ok"]:
        problems.append(f"mapping: {checks['mapping']['problem']}")
    if not checks["destinations"]["ok"]:
        problems.append("destinations: none configured (set OMNISEND_API_KEY, OMETRIA_API_KEY or OMNEO_API_TOKEN)")
    ready = not problems
    body = {"status": "ready" if ready else "not_ready", "checks": checks, "problems": problems}
    return (200 if ready else 503), body


def readyz_route(path: str = "/readyz", probe_every: float = PROBE_EVERY) -> Route:
    probe = CachedProbe(probe_every)

    async def readyz_endpoint(request: Request) -> Response:
        status, body = await readyz(request.app.state.bridge, probe)
        return JSONResponse(body, status_code=status)

    return Route(path, readyz_endpoint, methods=["GET"])
