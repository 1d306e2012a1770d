"""The worker: maps stored events into outbox messages, and delivers the outbox.

One mapping loop, and for each destination its own delivery loops, so a slow
or failing destination never holds up the other. Every step is a short store
transaction: a worker killed at any point loses nothing, because a message it
had claimed becomes due again when its lease runs out.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog

from bridge.destinations import Destination
from bridge.echo import ECHO_TOPIC, EchoGuard
from bridge.log import mask_text, mask_values_of
from bridge.mapping import RuleSet
from bridge.mapping.process import MappingProcess, complete, map_events
from bridge.metrics import METRICS
from bridge.model import Event, Mapped, Message, Outcome, OwnCopies
from bridge.ops.prune import prune_daily
from bridge.pressure import Pressure
from bridge.retry import RetryPolicy
from bridge.settings import Settings
from bridge.store.base import EventFilter, Store
from bridge.waiting import attach, reads_lookups

log = structlog.get_logger("bridge.worker")

MAP_BATCH = 200
# While webhooks arrive at this process (bridge.pressure), a batch's save holds the store's writer,
# and the acknowledgements behind it, for a quarter of the time: ~5 ms instead of ~20 ms on SQLite.
MAP_BATCH_BUSY = 50
IDLE_POLL_SECONDS = 0.5
# While a burst is being sent, the request budget goes to sending and batch
# results wait; a result is read at the latest this long after it was due.
FOLLOW_UP_MAX_DELAY = 300.0
# Giving claimed messages back at a stop waits this long for the store, then leaves them to their lease.
RELEASE_SECONDS = 2.0
# Events waiting for a resource they name (a refund's order, bridge/waiting.py) are read again this
# often (a tenth of the wait when that is shorter), and soon after this worker kept a resource (another
# worker's may come from anywhere), but not more than once a RECHECK_MIN_SECONDS: a steady stream of
# orders does not read every waiting refund again for each one.
RECHECK_SECONDS = 30.0
RECHECK_MIN_SECONDS = 1.0

# Workers on one database map one at a time (Store.mapping_turn): the holder renews its turn every
# round; a worker that dies loses it after this long, and the others ask again this often.
MAP_TURN_SECONDS = 10.0
MAP_TURN_POLL_SECONDS = 1.0


class RulesSource(Protocol):
    @property
    def current(self) -> RuleSet | None: ...


@dataclass
class MapLoopHealth:
    """Whether the map loop gets through its batches: a round that keeps failing, or one batch that
    takes far longer than any should, is a `problem` for /healthz, /readyz and the metrics."""

    stall_seconds: float = 30.0
    failing_since: float | None = None
    cause: str | None = None
    busy_since: float | None = None

    def failed(self, cause: str, now: float) -> None:
        if self.failing_since is None:
            self.failing_since = now
        self.cause = cause
        METRICS.mapping_failure(cause.split(":", 1)[0])

    def succeeded(self) -> None:
        self.failing_since, self.cause = None, None

    def stalled_seconds(self, now: float) -> float:
        since = min((t for t in (self.failing_since, self.busy_since) if t is not None), default=now)
        return max(now - since, 0.0)

    def report(self, now: float) -> dict[str, Any]:
        """For /healthz and /readyz: ok, and the problem when there is one."""
        problem = self.problem(now)
        return {"ok": problem is None, "stalled_seconds": round(self.stalled_seconds(now), 1),
                **({"problem": problem} if problem else {})}

    def problem(self, now: float) -> str | None:
        if self.failing_since is not None and now - self.failing_since >= self.stall_seconds:
            return f"the map loop has failed every round for {now - self.failing_since:.0f} s: {self.cause}"
        if self.busy_since is not None and now - self.busy_since >= self.stall_seconds:
            return f"the map loop has been mapping one batch for {now - self.busy_since:.0f} s"
        return None


async def _finish(saving: asyncio.Task[None] | None) -> None:
    """Wait for a save of the map loop; its failure is logged (its events stay waiting)."""
    if saving is None:
        return
    try:
        await saving
    except Exception:
        log.exception("mapping.save_failed")


@dataclass
class Worker:
    settings: Settings
    store: Store
    rules: RulesSource
    destinations: Mapping[str, Destination]
    clock: Callable[[], float] = time.time
    concurrency: int = 2
    rng: random.Random = field(default_factory=random.Random)
    # The webhooks' load (bridge.pressure): in `bridge serve` this process's, in `bridge worker` the other
    # processes' (Arrivals); mapping and delivery rounds wait while it is busy.
    pressure: Pressure | None = None

    def __post_init__(self) -> None:
        self.policy = RetryPolicy(
            base_seconds=self.settings.retry_base_seconds,
            cap_seconds=self.settings.retry_cap_seconds,
            max_attempts=self.settings.retry_max_attempts,
            max_age_seconds=self.settings.retry_max_age_seconds,
            follow_up_seconds=self.settings.batch_follow_up_seconds,
        )
        self._stopping = asyncio.Event()
        self._events_waiting = asyncio.Event()
        self._messages_waiting = {name: asyncio.Event() for name in self.destinations}
        self._inflight: dict[int, Message] = {}
        self._idle: dict[str, bool] = dict.fromkeys(self.destinations, True)
        self.paused: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._mapping = (MappingProcess(self.settings.log_format, self.settings.log_level,
                                        self.settings.mapping_timeout_seconds, self.settings.mapping_memory_mb,
                                        self.settings.mapping_nice)
                         if self.settings.mapping == "process" else None)
        self.map_health = MapLoopHealth()
        self.echo_guard = EchoGuard(self.settings, self.store, self.clock)  # Omneo's echo of our own writes
        self._recheck_at = 0.0  # monotonic time of the next look at waiting events; 0: at once
        self._rechecked_at = -RECHECK_MIN_SECONDS  # monotonic time of the last
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this worker's mapping turn
        self._turn = False
        METRICS.watch_mapping(lambda: self.map_health.stalled_seconds(time.monotonic()))

    # -- wake-ups from the app (same process) -------------------------------

    def notify_event(self) -> None:
        self._events_waiting.set()

    def _woken(self, kind: str) -> None:
        """Another process stored events or queued messages (the store's hint)."""
        if kind == "events":
            self._events_waiting.set()
        else:
            for waiting in self._messages_waiting.values():
                waiting.set()

    # -- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        await self._load_pauses()
        self.store.on_wake(self._woken)
        if self._mapping is not None and self.rules.current is not None:
            self._mapping.start(self.rules.current)
        self._tasks = [asyncio.create_task(self._map_loop(), name="map")]
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="leases"))
        self._tasks.append(asyncio.create_task(prune_daily(self.store, self.settings, self._stopping, self.clock),
                                               name="prune"))
        for name, destination in self.destinations.items():
            for n in range(self.concurrency):
                self._tasks.append(asyncio.create_task(self._deliver_loop(destination), name=f"deliver-{name}-{n}"))
            if destination.follows_up:
                self._tasks.append(asyncio.create_task(self._follow_up_loop(destination), name=f"follow-up-{name}"))
        for name in self.destinations:
            if not self.destinations[name].configured:
                config = self.settings.destinations.get(name)
                variable = config.key_setting if config is not None else f"{name.upper()}_API_KEY"
                log.warning("destination.not_configured", destination=name,
                            hint=f"set {variable}; its messages wait in the outbox")

    def begin_stop(self) -> None:
        """Take no more work: each loop ends after what it is doing (stop() then waits for them)."""
        self._stopping.set()
        for event in (self._events_waiting, *self._messages_waiting.values()):
            event.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work, let in-flight deliveries finish within `timeout`, give back the rest."""
        self.begin_stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._inflight:
            try:
                released = await asyncio.wait_for(self.store.release(list(self._inflight.values()), self.clock()),
                                                  RELEASE_SECONDS)
                log.info("worker.released", messages=released)
            except Exception as exc:  # the store is away: the leases run out and the messages are claimed again
                log.warning("worker.release_failed", messages=len(self._inflight), error=type(exc).__name__)
            self._inflight.clear()
        self._tasks = []
        if self._mapping is not None:
            self._mapping.close()

    async def run_until_idle(self, timeout: float = 10.0) -> None:
        """Map and deliver until nothing is due (tests and one-shot runs)."""
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            busy = await self.map_once()
            for destination in self.destinations.values():
                busy += await self.deliver_once(destination)
            if not busy:
                return
        raise TimeoutError("worker still busy")

    # -- mapping ------------------------------------------------------------

    async def _map_loop(self) -> None:
        # While one batch's messages are saved (by the store's writer), the next batch is read
        # and mapped: the reads start past the last event handed to a save, whose events are
        # still 'received' until that save commits. Saves run one at a time, in order, so
        # messages keep the order of their events. Once a read comes back short (caught up),
        # the next one starts from the beginning again, after the last save: so an event
        # that stayed 'received' behind the cursor (its save failed) is mapped then.
        # Workers on one database take turns (Store.mapping_turn): one maps while the others wait
        # for its turn to end, instead of mapping the same events for one of them to keep.
        saving: asyncio.Task[None] | None = None
        after = 0
        try:
            while not self._stopping.is_set():
                events: list[Event] = []
                await self._yield()
                limit = MAP_BATCH_BUSY if self.pressure is not None and self.pressure.arriving() else MAP_BATCH
                try:
                    rules = self.rules.current
                    if rules is not None and not await self._take_turn():  # another worker maps now
                        if saving is not None:
                            done, saving = saving, None
                            await done
                        self.map_health.succeeded()
                        after = 0
                        await self._wait(self._stopping, MAP_TURN_POLL_SECONDS)
                        continue
                    if rules is not None:  # no valid rule set ever loaded: events wait, nothing is lost
                        if after == 0 and saving is not None:  # from the start: the last batch saved first
                            done, saving = saving, None
                            await done
                        if after == 0 and time.monotonic() >= self._recheck_at:
                            await self.recheck_waiting(rules)
                        events = await self.store.waiting_events(limit, after)
                        if self.pressure is not None:
                            self.pressure.behind = len(events) == limit
                        if saving is not None and reads_lookups(events):  # what they look up may be in it
                            done, saving = saving, None
                            await done
                        mapped = await self._map_ready(rules, events) if events else []
                        if saving is not None:  # one save at a time, in order
                            done, saving = saving, None
                            await done
                        if events:
                            saving = asyncio.create_task(self._save(mapped))
                    self.map_health.succeeded()
                    if events and not complete(events, mapped):  # ended at an event over its budget: the rest again
                        after = 0
                        continue
                    after = events[-1].id if len(events) == limit else 0
                except Exception as exc:
                    cause = f"{type(exc).__name__}: {mask_text(str(exc)[:2000])[:300]}"  # capped before masking
                    self.map_health.failed(cause, time.monotonic())
                    log.exception("mapping.loop_failed", cause=cause)
                    await _finish(saving)
                    saving, after, events = None, 0, []
                if not events:
                    await self._wait(self._events_waiting, IDLE_POLL_SECONDS)
                    self._events_waiting.clear()
        finally:  # stopped, or cancelled by stop(): the save under way is finished, not abandoned
            await _finish(saving)
            await self._give_turn_back()

    async def _take_turn(self) -> bool:
        """Whether this worker maps now: it takes or renews the mapping turn (Store.mapping_turn)."""
        self._turn = await self.store.mapping_turn(self.holder, MAP_TURN_SECONDS, self.clock())
        return self._turn

    async def _give_turn_back(self) -> None:
        """At a stop: another worker maps at once, not when this one's turn runs out."""
        if not self._turn:
            return
        self._turn = False
        try:
            await asyncio.wait_for(self.store.mapping_turn(self.holder, 0.0, self.clock()), RELEASE_SECONDS)
        except Exception as exc:  # the store is away: the turn runs out by itself
            log.warning("mapping.turn_not_given_back", error=type(exc).__name__)

    async def map_once(self) -> int:
        """Read, map and save one batch of waiting events; how many were read."""
        rules = self.rules.current
        if rules is None:
            return 0
        rechecked = await self.recheck_waiting(rules) if time.monotonic() >= self._recheck_at else 0
        events = await self.store.waiting_events(MAP_BATCH)
        if not events:
            return rechecked
        await self._save(await self._map_ready(rules, events))
        return len(events) + rechecked

    async def _map_ready(self, rules: RuleSet, events: Sequence[Event]) -> list[Mapped]:
        """Map the events whose lookups are found (or given up on); the others' mappings say they wait."""
        ready, waiting = await attach(self.store, events, self.clock(), self.settings.lookup_wait_seconds)
        mapped = await self._map(rules, ready) if ready else []
        return mapped + waiting

    async def recheck_waiting(self, rules: RuleSet) -> int:
        """Map the waiting events whose resource came, or whose wait is over; how many were mapped."""
        self._rechecked_at = time.monotonic()
        self._recheck_at = self._rechecked_at + min(RECHECK_SECONDS, max(self.settings.lookup_wait_seconds / 10, 0.5))
        after, count = 0, 0
        while True:
            events = await self.store.replayable_events(EventFilter(status="waiting"), after, MAP_BATCH)
            if not events:
                return count
            after = events[-1].id
            ready, _ = await attach(self.store, events, self.clock(), self.settings.lookup_wait_seconds)
            if ready:
                mapped = await self._map(rules, ready)
                # As a replay writes: a second worker doing the same at once queues nothing twice.
                summary = await self.store.apply_mappings(mapped, self.clock(), force=False, dry_run=False)
                self._log_mapped(mapped)
                count += len(mapped)
                if summary.queued:
                    for waiting in self._messages_waiting.values():
                        waiting.set()
            if len(events) < MAP_BATCH:
                return count

    async def _map(self, rules: RuleSet, events: Sequence[Event]) -> list[Mapped]:
        self.map_health.busy_since = time.monotonic()
        try:
            matched = await self.echo_guard.echoes(events)  # each with the sent prints it uses up
            echoes = {event.id for event in events if event.id in matched and event.topic == ECHO_TOPIC}
            others = [event for event in events if event.id not in echoes]
            if not others:
                mapped: list[Mapped] = []
            elif self._mapping is not None:
                mapped = await self._mapping.map(rules, others)
            else:
                mapped = await asyncio.to_thread(map_events, rules, others, self.settings.mapping_timeout_seconds)
            if not matched:
                return mapped
            mapped = [replace(m, forget_copies=replace(m.forget_copies, used_prints=matched[m.event_id]))
                      if m.event_id in matched else m for m in mapped]
            order = {event.id: n for n, event in enumerate(events)}
            echoed = [Mapped(event_id, "echo", [], [], [], forget_copies=OwnCopies(used_prints=matched[event_id]))
                      for event_id in echoes]
            return sorted([*mapped, *echoed], key=lambda m: order[m.event_id])
        finally:
            self.map_health.busy_since = None

    async def _save(self, mapped: Sequence[Mapped]) -> None:
        queued = await self.store.save_mappings(mapped, self.clock())
        self._log_mapped(mapped)
        if any(m.resource is not None for m in mapped):  # an event may be waiting for what was just kept
            self._recheck_at = min(self._recheck_at, self._rechecked_at + RECHECK_MIN_SECONDS)
        if queued:
            for event in self._messages_waiting.values():
                event.set()

    def _log_mapped(self, mapped: Sequence[Mapped]) -> None:
        for m in mapped:
            with structlog.contextvars.bound_contextvars(event_id=m.event_id):
                if m.status == "waiting":
                    log.info("event.waiting", reason=m.errors[0] if m.errors else "")
                elif m.errors:
                    log.warning("event.mapping_error", status=m.status, rules=m.rules, errors=m.errors)
                else:
                    log.info("event.mapped", status=m.status, rules=m.rules, messages=len(m.messages))

    # -- delivery -----------------------------------------------------------

    async def _lease_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                released = await self.store.release_expired(self.clock())
                if released:
                    log.warning("delivery.lease_expired", messages=released)
                    for event in self._messages_waiting.values():
                        event.set()
                await self.refresh_pauses()
            except Exception:
                log.exception("delivery.lease_loop_failed")
            await self._wait(self._stopping, min(self.settings.lease_seconds / 4, 5.0))

    async def _deliver_loop(self, destination: Destination) -> None:
        waiting = self._messages_waiting[destination.name]
        linger = destination.batch_linger_seconds
        while not self._stopping.is_set():
            await self._yield()
            try:
                count = await self.deliver_once(destination)
            except Exception:
                log.exception("delivery.loop_failed", destination=destination.name)
                count = 0
            self._idle[destination.name] = count == 0
            if count == 0:
                woken = await self._wait(waiting, IDLE_POLL_SECONDS)
                waiting.clear()
                if woken and linger:
                    # Let a burst gather into a fuller batch; costs `linger` once per idle period.
                    await self._wait(self._stopping, linger)

    async def deliver_once(self, destination: Destination) -> int:
        name = destination.name
        if not destination.configured or name in self.paused:
            return 0
        now = self.clock()
        messages = await self.store.claim(name, destination.max_batch, self.settings.lease_seconds, now)
        if not messages:
            return 0
        for m in messages:
            self._inflight[m.id] = m
        heartbeat = asyncio.create_task(self._renew_leases(messages))
        try:
            outcomes = await self._send(destination, messages)
        finally:
            heartbeat.cancel()
        await self._record(destination, messages, outcomes)
        # Only now: if delivery was cancelled (shutdown), the claims stay in
        # _inflight and stop() gives them back instead of leaving them to the lease.
        for m in messages:
            self._inflight.pop(m.id, None)
        return len(messages)

    async def _follow_up_loop(self, destination: Destination) -> None:
        while not self._stopping.is_set():
            await self._yield()
            try:
                count = await self.follow_up_once(destination)
            except Exception:
                log.exception("delivery.follow_up_failed", destination=destination.name)
                count = 0
            if count == 0:
                await self._wait(self._stopping, 1.0)

    async def follow_up_once(self, destination: Destination) -> int:
        """Read the result of one submitted batch; failed items become retries or dead letters."""
        name = destination.name
        if not destination.configured or name in self.paused:
            return 0
        now = self.clock()
        due_before = now if self._idle.get(name, True) else now - FOLLOW_UP_MAX_DELAY
        # A busy destination reads batch results late, except where a later message waits for one.
        claimed = await self.store.claim_batch(name, due_before, now + self.settings.lease_seconds,
                                               holding_due_before=now)
        if claimed is None:
            return 0
        ref, messages = claimed
        try:
            outcomes = await destination.follow_up(ref, messages)
        except Exception:
            log.exception("delivery.follow_up_failed", destination=name, batch=ref)
            outcomes = None
        refused = next((o for o in outcomes or [] if o.kind == "pause"), None)
        if refused is not None:  # the key was refused for the reading: the batch ran all the same, so its
            # items stay submitted (sending them again would duplicate them) until delivery resumes
            outcomes = [Outcome("submitted", refused.status, f"batch {ref} result not read: credentials refused",
                                ref=ref)] * len(messages)
        elif outcomes is None or len(outcomes) != len(messages):  # not finished yet: look again later
            outcomes = [Outcome("submitted", None, f"batch {ref} still processing", ref=ref)] * len(messages)
        await self._record(destination, messages, outcomes)
        if refused is not None:
            await self.pause(destination, f"credentials refused ({refused.status}): {refused.detail}")
        return len(messages)

    async def _renew_leases(self, messages: Sequence[Message]) -> None:
        """Keep the claim while a slow delivery runs, so no other worker sends the same messages."""
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            await self.store.extend(messages, self.clock() + lease)

    async def _send(self, destination: Destination, messages: Sequence[Message]) -> list[Outcome]:
        try:
            outcomes = await destination.deliver(messages)
        except Exception as exc:  # an adapter bug must not lose messages: retry them
            log.exception("delivery.adapter_failed", destination=destination.name)
            return [Outcome("retry", None, f"adapter error: {type(exc).__name__}")] * len(messages)
        if len(outcomes) != len(messages):
            return [Outcome("retry", None, "adapter returned a wrong number of outcomes")] * len(messages)
        return outcomes

    async def _record(self, destination: Destination, messages: Sequence[Message], outcomes: Sequence[Outcome]) -> None:
        now = self.clock()
        # A detail is stored, logged and shown to operators: never with what we sent of a person.
        outcomes = [replace(o, detail=mask_values_of(o.detail, m.record)) if o.detail else o
                    for m, o in zip(messages, outcomes)]
        results = []
        for message, outcome in zip(messages, outcomes):
            decision = self.policy.decide(message, outcome, now, self.rng)
            METRICS.attempt(message.destination, outcome, decision.state)
            results.append((message, outcome, decision))
            self._log_attempt(message, outcome, decision.state, decision.next_at - now)
        await self.store.complete(results, now)
        pause = next((o for o in outcomes if o.kind == "pause"), None)
        if pause is not None:
            await self.pause(destination, f"credentials refused ({pause.status}): {pause.detail}")

    def _log_attempt(self, message: Message, outcome: Outcome, state: str, delay: float) -> None:
        fields: dict[str, Any] = {
            "event_id": message.event_id, "message_id": message.id, "destination": message.destination,
            "kind": message.kind, "rule": message.rule, "status": outcome.status, "attempt": message.attempts,
        }
        if outcome.kind == "deferred":
            log.debug("delivery.deferred", delay_seconds=round(delay, 3), **fields)
        elif state == "submitted":
            log.info("delivery.submitted", batch=outcome.ref, **fields)
        elif state == "delivered":
            log.info("delivery.sent", **fields)
        elif state == "dead":
            log.warning("delivery.dead", detail=outcome.detail, **fields)
        elif outcome.kind == "pause":
            log.warning("delivery.paused", detail=outcome.detail, **fields)
        else:
            log.info("delivery.retry_scheduled", detail=outcome.detail, delay_seconds=round(delay, 3), **fields)

    async def pause(self, destination: Destination, reason: str) -> None:
        self.paused[destination.name] = reason
        await self.store.set_paused(destination.name, True, reason, destination.key_fingerprint, self.clock())
        log.error("destination.paused", destination=destination.name, reason=reason)

    async def resume(self, name: str) -> None:
        self.paused.pop(name, None)
        await self.store.set_paused(name, False, "resumed", None, self.clock())
        self._messages_waiting[name].set()
        log.info("destination.resumed", destination=name)

    async def _load_pauses(self) -> None:
        states = await self.store.destination_states()
        for name, state in states.items():
            destination = self.destinations.get(name)
            if destination is None or not state["paused"]:
                continue
            if state["key_fingerprint"] and state["key_fingerprint"] != destination.key_fingerprint:
                await self.resume(name)  # the credentials changed since the pause
            else:
                self.paused[name] = state["reason"] or "paused"

    async def refresh_pauses(self) -> None:
        """Pick up pause/resume done by an operator from another process."""
        states = await self.store.destination_states()
        for name, state in states.items():
            if name not in self.destinations:
                continue
            if state["paused"]:
                self.paused[name] = state["reason"] or "paused"
            elif self.paused.pop(name, None) is not None:
                self._messages_waiting[name].set()

    async def _yield(self) -> None:
        """Before a round: wait while the webhooks of this process need the event loop (bridge.pressure)."""
        if self.pressure is not None:
            METRICS.worker_yielded(await self.pressure.yield_to_webhooks(self._stopping))

    async def _wait(self, event: asyncio.Event, timeout: float) -> bool:
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
