"""Mapping off the web process's interpreter: the worker's rules run in a process of their own.

Mapping is pure Python and CPU-bound. In a thread of `bridge serve` it shares one GIL
with the event loop that takes webhooks and sends deliveries, so during a burst the
three take turns on one core while the other idles; with mapping in its own process
they overlap (docs/benchmarks.md, Delivery).

The child loads the rules from the same directory and maps with them only when it holds
the very set the worker holds: `LoadedRules.fingerprint` names the files' texts and the
area policy. A child that loads something else (a file saved since, or one that no
longer loads) answers None, and that batch is mapped in a thread with the worker's own
rules, as before. So are batches while the child starts, after it died (a new one is
started), and for rule sets without a fingerprint (tests' fixed rules).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Sequence

import structlog

from bridge.mapping import MapResult, RuleSet
from bridge.model import Event, Mapped

log = structlog.get_logger("bridge.mapping")

PARENT_CHECK_SECONDS = 1.0
RESTART_AFTER_SECONDS = 30.0  # a child that failed is not started again sooner: the thread maps meanwhile


def map_events(rules: RuleSet, events: Sequence[Event]) -> list[Mapped]:
    """Run the rules over events (CPU work: in the mapping process, or a thread)."""
    mapped = []
    for event in events:
        if event.status == "invalid_json":
            continue
        try:
            result = rules.map(event)
        except Exception as exc:  # a bug in a rule must not stop the others
            result = MapResult(errors=[f"mapping failed: {type(exc).__name__}: {exc}"])
        messages = [(m, m.idempotency_key(event.source, event.dedupe_key)) for m in result.messages]
        mapped.append(Mapped(event.id, result.status, result.rules, result.errors, messages))
    return mapped


class MappingProcess:
    """One child process that maps batches with the worker's current rules, when it holds them."""

    def __init__(self, log_format: str = "json", log_level: str = "info") -> None:
        self._logging = (log_format, log_level)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._ready: asyncio.Future[Any] | None = None
        self._not_before = 0.0
        # The worker's set the child could not load (the directory holds other files now), and
        # until when it is not asked again: loading a directory costs the child ~0.5 s.
        self._declined: tuple[str, float] | None = None
        self.mapped_here = 0  # batches the child mapped (tests, and the benchmark's reading)

    async def map(self, rules: RuleSet, events: Sequence[Event]) -> list[Mapped]:
        fingerprint = getattr(rules, "fingerprint", None)
        declined = self._declined is not None and self._declined[0] == fingerprint and time.monotonic() < self._declined[1]
        if fingerprint is not None and not declined:
            mapped = await self._in_child(rules, fingerprint, events)
            if mapped is not None:
                self.mapped_here += 1
                return mapped
        return await asyncio.to_thread(map_events, rules, events)

    def start(self, rules: Any) -> None:
        """Start the child now (the worker does at start), so that a first burst does not wait for it."""
        fingerprint = getattr(rules, "fingerprint", None)
        if fingerprint is None or self._pool is not None or time.monotonic() < self._not_before:
            return
        # spawn, not fork: the parent runs an event loop and threads. The child loads
        # the rules once; until it has, batches go to the thread.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_child,
            initargs=(*self._logging, os.getpid()))
        self._ready = asyncio.get_running_loop().run_in_executor(
            self._pool, _load, str(rules.directory), rules.allowed_areas, fingerprint)

    async def _in_child(self, rules: Any, fingerprint: str, events: Sequence[Event]) -> list[Mapped] | None:
        loop = asyncio.get_running_loop()
        self.start(rules)
        if self._ready is None or not self._ready.done():
            return None
        try:
            self._ready.result()  # raises what starting the child raised
            mapped = await loop.run_in_executor(self._pool, _map, str(rules.directory), rules.allowed_areas,
                                                fingerprint, list(events))
            if mapped is None:
                if self._declined is None or self._declined[0] != fingerprint:
                    log.info("mapping.process_other_rules", hint="the rules on disk are not the ones the worker runs "
                             "(saved since, or failing the check): a thread maps until they are")
                self._declined = (fingerprint, time.monotonic() + RESTART_AFTER_SECONDS)
            return mapped
        except BrokenProcessPool:
            log.warning("mapping.process_stopped", hint=f"a new one starts in {RESTART_AFTER_SECONDS:.0f} s; "
                        "meanwhile a thread maps")
        except Exception as exc:  # an event or a result that does not pickle, say: the thread maps this batch
            log.warning("mapping.process_failed", reason=f"{type(exc).__name__}: {exc}")
        self.close()
        self._not_before = time.monotonic() + RESTART_AFTER_SECONDS
        return None

    def close(self) -> None:
        """Stop the child now. A batch it was mapping is not saved: its events stay waiting."""
        pool, self._pool, self._ready = self._pool, None, None
        if pool is None:
            return
        children = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for child in children:  # it ignores SIGTERM, and a runaway rule would hold up the exit
            with contextlib.suppress(Exception):
                child.kill()


# -- the child ------------------------------------------------------------------------------------

_rules: Any = None  # the child's LoadedRules


def _start_child(log_format: str, log_level: str, parent: int) -> None:
    import signal
    import threading

    from bridge.log import configure

    # A PaaS sends SIGTERM to the whole process group: the parent's shutdown stops the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure(log_format, log_level)
    # A parent killed outright (SIGKILL, OOM) leaves the child waiting on its queue for
    # ever: it goes when it finds itself adopted by another process.
    def leave_with_the_parent() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=leave_with_the_parent, name="parent-watch", daemon=True).start()


def _load(directory: str, allowed: Any, fingerprint: str) -> bool:
    """Load the directory's rules; whether they are the ones named by `fingerprint`."""
    global _rules
    from bridge.errors import RulesError
    from bridge.mapping.loader import load_rules

    if _rules is None or _rules.fingerprint != fingerprint:
        try:
            _rules = load_rules(Path(directory), allowed)
        except RulesError:
            _rules = None
            return False
    return bool(_rules.fingerprint == fingerprint)


def _map(directory: str, allowed: Any, fingerprint: str, events: list[Event]) -> list[Mapped] | None:
    if not _load(directory, allowed, fingerprint):
        return None
    return map_events(_rules, events)
