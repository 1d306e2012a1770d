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

Each event has a budget (bridge.mapping.budget): its loops stop when it runs over its time,
wherever it is mapped. The child also says, in memory shared with the worker, which event
and rule it is mapping since when; the worker watches that and the child's memory, and kills
a child that has spent over its time on one event (plus a grace) or grown over its memory.
That event becomes a mapping error naming the rule, and the batch ends there: its other
events are read and mapped again, by the rules current then (a rule fixed meanwhile runs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import multiprocessing.sharedctypes
import os
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bridge import erasure
from bridge.mapping import budget, lookups
from bridge.mapping.areas import Allowed
from bridge.mapping.engine import over_budget
from bridge.mapping.loader import LoadedRules, load_rules
from bridge.mapping.result import MapResult, RuleSet
from bridge.model import Event, Mapped
from bridge.search import fingerprints

log = structlog.get_logger("bridge.mapping")

PARENT_CHECK_SECONDS = 1.0
RESTART_AFTER_SECONDS = 30.0  # a child that failed is not started again sooner: the thread maps meanwhile
WATCH_SECONDS = 0.25  # how often the worker looks at a child mapping a batch
GRACE_SECONDS = 2.0  # beyond an event's budget, before its child is killed (its loops stop at the budget)
LOAD_SECONDS = 60.0  # a child still loading rules (mapping no event) after this is killed


def map_events(rules: RuleSet, events: Sequence[Event], seconds: float = budget.DEFAULT_SECONDS) -> list[Mapped]:
    """Run the rules over events (CPU work: in the mapping process, or a thread). An event over its
    budget of `seconds` ends the batch: the events after it are not mapped (they are read again)."""
    previous = budget.configure(seconds)
    mapped = []
    try:
        for event in events:
            if event.status == "invalid_json":
                continue
            try:
                result = rules.map(event)
            except Exception as exc:  # a bug in a rule must not stop the others
                result = MapResult(errors=[f"mapping failed: {type(exc).__name__}: {exc}"])
            mapped.append(mapped_of(event, result))
            if result.over_budget:
                break
    finally:
        budget.configure(previous)
    return mapped


def mapped_of(event: Event, result: MapResult) -> Mapped:
    """What saving an event's mapping writes: its result, and beside it what the store keeps or forgets
    because of the event itself (its search keys, a kept order, a person's erasure), whatever its rules made."""
    messages = [(m, m.idempotency_key(event.source, event.dedupe_key)) for m in result.messages]
    return Mapped(event.id, result.status, result.rules, result.errors, messages, search_keys=search_keys_of(event),
                  resource=lookups.resource_of(event), forget_resources=lookups.forgotten(event),
                  forget_copies=erasure.copies_of(event))


def search_keys_of(event: Event) -> tuple[str, ...]:
    """What the event is found by: the e-mails and order numbers in its body (bridge.search)."""
    return fingerprints(event.body, event.topic)


def complete(events: Sequence[Event], mapped: Sequence[Mapped]) -> bool:
    """Whether every event of a batch was mapped (a batch ends early at an event over its budget)."""
    done = {m.event_id for m in mapped}
    return all(event.id in done for event in events if event.status != "invalid_json")


class MappingProcess:
    """One child process that maps batches with the worker's current rules, when it holds them."""

    def __init__(self, log_format: str = "json", log_level: str = "info",
                 seconds: float = budget.DEFAULT_SECONDS, memory_mb: int = 512, nice: int = 0) -> None:
        self._logging = (log_format, log_level)
        self.nice = nice
        self.seconds = seconds
        self.memory_bytes = memory_mb * 1024 * 1024
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        # What the child maps: [event id, rule position, monotonic time the event started (0: none), its pid].
        self._progress: Any = None
        self._ready: asyncio.Future[bool] | None = None
        self._not_before = 0.0
        # The worker's set the child could not load (the directory holds other files now), and
        # until when it is not asked again: loading a directory costs the child ~0.5 s.
        self._declined: tuple[str, float] | None = None
        self.mapped_here = 0  # batches the child mapped (tests, and the benchmark's reading)

    async def map(self, rules: RuleSet, events: Sequence[Event]) -> list[Mapped]:
        # Only a set loaded from a folder can be loaded by the child as well; any other maps in a thread.
        if isinstance(rules, LoadedRules) and not self._declines(rules.fingerprint):
            mapped = await self._in_child(rules, rules.fingerprint, events)
            if mapped is not None:
                self.mapped_here += 1
                return mapped
        return await asyncio.to_thread(map_events, rules, events, self.seconds)

    def _declines(self, fingerprint: str) -> bool:
        """The child could not load this set a moment ago, and is not asked again yet."""
        return self._declined is not None and self._declined[0] == fingerprint and time.monotonic() < self._declined[1]

    def start(self, rules: RuleSet) -> None:
        """Start the child now (the worker does at start), so that a first burst does not wait for it."""
        if not isinstance(rules, LoadedRules) or self._pool is not None or time.monotonic() < self._not_before:
            return
        fingerprint = rules.fingerprint
        # The child loads the rules once; until it has, batches go to the thread.
        pool = self._spawn()
        self._ready = asyncio.get_running_loop().run_in_executor(
            pool, _load, str(rules.directory), rules.allowed_areas, fingerprint)

    def _spawn(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn, not fork: the parent runs an event loop and threads.
        context = multiprocessing.get_context("spawn")
        self._progress = multiprocessing.sharedctypes.RawArray("d", 4)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=context, initializer=_start_child,
            initargs=(*self._logging, os.getpid(), self._progress, self.nice))
        return self._pool

    async def compare(self, running: Path, draft: Path, allowed: Allowed | None, events: Sequence[Event],
                      total_seconds: float) -> list[Compared]:
        """Map `events` with the rules of two folders, in the child (never in this process): what each set
        makes of each event, in order. Each event has its mapping budget; the whole stops after
        `total_seconds` (the events left are not in the answer). Raises PreviewStopped when the child went
        over its memory or time, or died, naming the event and rule when known."""
        if self._pool is None:
            self._spawn()
        assert self._pool is not None
        self._progress[2] = 0.0
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, _compare, str(running), str(draft), allowed, list(events), self.seconds, total_seconds)
        asked = time.monotonic()
        while True:
            try:
                done, _ = await asyncio.wait({future}, timeout=WATCH_SECONDS)
                if done:
                    return future.result()
            except BrokenProcessPool:
                self.close()
                raise PreviewStopped("the mapping process stopped during the preview") from None
            event_id, started = int(self._progress[0]), self._progress[2]
            now = time.monotonic()
            if started and _resident_bytes(int(self._progress[3])) > self.memory_bytes:
                why = f"the mapping process grew over {self.memory_bytes // 2**20} MB on event {event_id}"
            elif started and now - started > self.seconds + GRACE_SECONDS:
                why = f"event {event_id} took over {self.seconds:g} s to map"
            elif now - asked > total_seconds + LOAD_SECONDS:
                why = "the mapping process did not answer"
            else:
                continue
            future.add_done_callback(_retrieve)
            self.close()
            raise PreviewStopped(why)

    async def _in_child(self, rules: LoadedRules, fingerprint: str, events: Sequence[Event]) -> list[Mapped] | None:
        loop = asyncio.get_running_loop()
        self.start(rules)
        if self._ready is None or not self._ready.done():
            return None
        try:
            self._ready.result()  # raises what starting the child raised
            self._progress[2] = 0.0
            future = loop.run_in_executor(self._pool, _map, str(rules.directory), rules.allowed_areas,
                                          fingerprint, list(events), self.seconds)
            mapped = await self._watch(future, rules, events)
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

    async def _watch(self, future: asyncio.Future[list[Mapped] | None], rules: LoadedRules,
                     events: Sequence[Event]) -> list[Mapped] | None:
        """The child's answer; or, when it went over an event's budget, that event's mapping error
        (the child is killed and a new one started)."""
        asked = time.monotonic()
        while True:
            done, _ = await asyncio.wait({future}, timeout=WATCH_SECONDS)
            if done:
                return future.result()
            event_id, position, started = self._progress[0], int(self._progress[1]), self._progress[2]
            now = time.monotonic()
            memory = _resident_bytes(int(self._progress[3]))
            if started and memory > self.memory_bytes:
                why = f"the mapping process grew over {self.memory_bytes // 2**20} MB"
            elif started and now - started > self.seconds + GRACE_SECONDS:
                why = f"it took over {self.seconds:g} s"
            elif not started and now - asked > LOAD_SECONDS:
                why = "the mapping process did not answer"
            else:
                continue
            future.add_done_callback(_retrieve)
            log.error("mapping.process_over_budget", event_id=int(event_id), reason=why,
                      hint="the mapping process is stopped and started again; the event is a mapping error")
            self.close()
            if not started:
                self._not_before = time.monotonic() + RESTART_AFTER_SECONDS
                return None
            event = next((e for e in events if e.id == int(event_id)), None)
            return [_over_budget(rules, int(event_id), event, position, why)]

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


class PreviewStopped(Exception):
    """A preview's mapping process was stopped (memory, time) or died; the message says why."""


@dataclass(frozen=True)
class Compared:
    """What two rule sets made of one event (bridge.rules.preview)."""

    event_id: int
    before: Mapped
    after: Mapped


def _over_budget(rules: RuleSet, event_id: int, event: Event | None, position: int, why: str) -> Mapped:
    """The mapping error of the event a killed child was mapping, naming its rule when known. What the
    event itself asks of the store (an erasure, say) is kept: a rule over its budget must not undo it."""
    if 0 <= position < len(rules.rules):
        result = over_budget(rules.rules[position], why)
    else:
        result = MapResult(errors=[f"mapping this event stopped: {why}, the mapping budget of one event"])
    if event is None:
        return Mapped(event_id, result.status, result.rules, result.errors, [])
    return mapped_of(event, result)


def _resident_bytes(pid: int) -> int:
    """A process's resident memory (Linux /proc), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A killed child's batch fails: its exception is expected, and read so that asyncio does not warn."""
    if not future.cancelled():
        future.exception()


# -- the child ------------------------------------------------------------------------------------

_rules: LoadedRules | None = None  # the child's rules
_progress: Any = None  # shared with the parent: [event id, rule position, started (monotonic) or 0, pid]


def _report(event_id: int, position: int) -> None:
    _progress[0], _progress[1] = event_id, position
    if position < 0:
        _progress[2] = time.monotonic()


def _start_child(log_format: str, log_level: str, parent: int, progress: Any, nice: int = 0) -> None:
    import signal
    import threading

    from bridge.log import configure

    # Mapping can wait and acknowledgements cannot: at a lower OS priority the child takes the CPU the
    # web process and the store's writer leave (a burst at 1,000/s otherwise queues the answers behind it).
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)

    # A PaaS sends SIGTERM to the whole process group: the parent's shutdown stops the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure(log_format, log_level)
    global _progress
    _progress = progress
    _progress[3] = os.getpid()
    budget.progress = _report
    # A parent killed outright (SIGKILL, OOM) leaves the child waiting on its queue for
    # ever: it goes when it finds itself adopted by another process.
    def leave_with_the_parent() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=leave_with_the_parent, name="parent-watch", daemon=True).start()


def _load(directory: str, allowed: Allowed | None, fingerprint: str) -> bool:
    """Load the directory's rules; whether they are the ones named by `fingerprint`."""
    global _rules
    if _rules is None or _rules.fingerprint != fingerprint:
        try:
            _rules = load_rules(Path(directory), allowed)
        except Exception:  # RulesError, or anything a broken folder raises: the worker's thread maps
            _rules = None
            return False
    return bool(_rules.fingerprint == fingerprint)


_sets: dict[str, LoadedRules] = {}  # the child's rule sets by folder, for previews


def _compare(running: str, draft: str, allowed: Allowed | None, events: list[Event], seconds: float,
             total_seconds: float) -> list[Compared]:
    """In the child: each event mapped by both sets, until `total_seconds` have passed."""
    for directory in (running, draft):
        if directory not in _sets:
            if len(_sets) >= 8:  # previews come and go: keep a few sets, not every one ever previewed
                _sets.clear()
            _sets[directory] = load_rules(Path(directory), allowed)
    deadline = time.monotonic() + total_seconds
    compared = []
    try:
        for event in events:
            if time.monotonic() > deadline:
                break
            before = map_events(_sets[running], [event], seconds)
            after = map_events(_sets[draft], [event], seconds)
            if before and after:
                compared.append(Compared(event.id, before[0], after[0]))
    finally:
        _progress[2] = 0.0
    return compared


def _map(directory: str, allowed: Allowed | None, fingerprint: str, events: list[Event],
         seconds: float) -> list[Mapped] | None:
    try:
        if not _load(directory, allowed, fingerprint) or _rules is None:
            return None
        return map_events(_rules, events, seconds)
    finally:
        _progress[2] = 0.0
