"""The store's interface: everything the rest of the bridge asks of storage, and the records it passes.

Every backend (SQLite in bridge/store/sqlite/; PostgreSQL beside it) implements
`Store`, and nothing outside bridge/store/ sees a connection, a cursor or SQL.
Callers say what they want: "the events matching this filter, 50 from offset 100,
with the total", "claim 20 due messages of omnisend". A backend that cannot answer
raises `bridge.errors.StoreUnavailable` (never its driver's own errors), so a
webhook is answered 503 and an operator command says to retry.

Times are Unix seconds (floats), passed in by the caller (`now`), so tests and a
fleet of processes agree on one clock per decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Generic, Iterable, Protocol, Sequence, TypedDict, TypeVar

from bridge.consent import ConsentRecord
from bridge.model import Decision, Event, IngestResult, Mapped, Message, Outcome, Webhook

MESSAGE_STATES = ("pending", "inflight", "submitted", "delivered", "dead")
OPEN_STATES = ("pending", "inflight", "submitted")  # states that hold back later messages of their key
# echo: an Omneo profile.updated carrying only what the bridge itself had just written (bridge.echo): not mapped
EVENT_STATUSES = ("received", "invalid_json", "mapped", "partial", "mapping_error", "no_rule", "ignored", "echo")
AREAS = ("events", "contacts", "consent", "orders", "carts", "products", "deletions")

T = TypeVar("T")


# -- filters ------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Events by source, topic, status and when they were received (`since` <= received_at < `until`)."""

    source: str | None = None
    topic: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class DeadFilter:
    """Dead letters by id, destination, and when they died (`since` <= died_at)."""

    ids: tuple[int, ...] = ()
    destination: str | None = None
    since: float | None = None

    @property
    def empty(self) -> bool:
        return not self.ids and self.destination is None and self.since is None


@dataclass(frozen=True)
class AuditFilter:
    """Attempts that wrote something (delivered, submitted) or were refused (dead), by destination,
    by an area the message writes (one of AREAS), and since when."""

    destination: str | None = None
    area: str | None = None
    since: float | None = None


# -- what lists return --------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: `items` from `offset`, at most `limit` of them, out of `total` matching."""

    items: list[T]
    total: int
    limit: int
    offset: int = 0


class EventSummary(TypedDict):
    id: int
    source: str
    topic: str
    dedupe_key: str
    received_at: float
    status: str
    rules: list[str]
    errors: list[str]
    duplicates: int  # resends answered 2xx and dropped
    body_pruned: bool
    messages: dict[str, int]  # state -> how many of the event's messages are in it


class AttemptEntry(TypedDict):
    at: float
    outcome: str
    status: int | None
    detail: str


class MessageDetail(TypedDict):
    id: int
    destination: str
    kind: str
    action: str
    rule: str
    ordering_key: str
    idempotency_key: str
    areas: list[str]
    state: str
    attempts: int
    next_at: float
    created_at: float
    updated_at: float
    last_status: int | None
    last_detail: str | None
    batch: str | None  # the destination's batch id (an Omnisend batch, an Omneo batch_id), once it took one
    record: dict[str, Any]
    trail: list[AttemptEntry]  # oldest first


class EventDetail(TypedDict):
    id: int
    source: str
    topic: str
    dedupe_key: str
    received_at: float
    mapped_at: float | None
    status: str
    rules: list[str]
    errors: list[str]
    duplicates: int
    headers: dict[str, str]
    body_pruned: bool
    payload: Any  # the parsed body; its text when it is not JSON; None once pruned
    messages: list[MessageDetail]  # in id order


class DeadLetter(TypedDict):
    id: int
    event_id: int
    destination: str
    kind: str
    rule: str
    idempotency_key: str
    attempts: int
    created_at: float
    died_at: float
    last_status: int | None
    last_detail: str


class AuditEntry(TypedDict):
    at: float
    outcome: str
    status: int | None
    detail: str | None
    message_id: int
    event_id: int
    destination: str
    kind: str
    action: str
    rule: str
    areas: list[str]
    record: dict[str, Any]
    source: str
    topic: str


class Unmapped(TypedDict):
    """Events stored and not mapped yet: the part of a backlog that has no messages yet."""

    count: int
    oldest_received_at: float | None  # None when there is none


class DestinationStats(TypedDict):
    counts: dict[str, int]  # every one of MESSAGE_STATES
    oldest_pending_age_seconds: float | None
    paused: bool
    pause_reason: str | None
    paused_at: float | None


class DestinationState(TypedDict):
    name: str
    paused: bool
    reason: str | None
    changed_at: float | None
    key_fingerprint: str | None  # which credentials a pause was about; None for an operator's pause


@dataclass(frozen=True)
class SentPrint:
    """What the bridge last wrote to one Omneo profile, for recognising its echo (bridge.echo): `key` is a
    hash of the profile's e-mail or of one identity, `fields` the compared field names (comma-separated),
    `digest` a hash of their values, `sent_at` when Omneo accepted the batch."""

    key: str
    fields: str
    digest: str
    sent_at: float


# -- what operator writes return ----------------------------------------------


@dataclass
class ReplaySummary:
    events: int = 0
    queued: int = 0  # new messages, and dead letters brought back
    requeued_dead: int = 0  # of which dead letters
    skipped_delivered: int = 0
    skipped_open: int = 0
    events_with_errors: int = 0
    dry_run: bool = False

    def add(self, other: ReplaySummary) -> None:
        for f in fields(self):
            if f.name != "dry_run":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PruneResult:
    messages: int = 0
    attempts: int = 0
    bodies: int = 0
    dedupe_keys: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PruneCutoffs:
    """What retention removes, as of three moments (see bridge.ops.prune):

    - delivered messages (and their attempts) last updated before `delivered_before`;
    - bodies of events received before `bodies_before` that are mapped and have no open or dead message;
    - event rows (the dedupe keys) received before `dedupe_before`, body gone, no message left.
    """

    delivered_before: float
    bodies_before: float
    dedupe_before: float


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str] = field(default_factory=list)  # applied by this call, in order
    current: str | None = None  # the newest version the database now has ("0001")
    created: bool = False  # this call made the schema of a database that had none: a new database


# -- the interface ------------------------------------------------------------


class Store(Protocol):
    # -- life cycle -----------------------------------------------------------

    async def open(self) -> None:
        """Connect (and start a writer, a pool), applying pending migrations first unless the store was
        made with migrate=False. Raises StoreUnavailable when the database cannot be reached."""
        ...

    async def close(self) -> None:
        """Finish what was handed over and disconnect. Safe to call twice."""
        ...

    def on_wake(self, callback: Callable[[str], None]) -> None:
        """Call `callback("events")` when another process stored events, `callback("messages")` when it
        queued messages. A hint, never the only way work is found (the worker polls as well):
        PostgreSQL sends it with LISTEN/NOTIFY; SQLite's one web process wakes its own worker."""
        ...

    async def migrate(self) -> MigrationStatus:
        """Apply the numbered migrations the database lacks; idempotent, safe beside another process
        doing the same. Works on an open or a closed store."""
        ...

    async def probe(self) -> None:
        """A tiny write, committed and undone, so readiness sees a writer that cannot commit.
        Raises StoreUnavailable; the caller bounds the time."""
        ...

    async def created_at(self) -> float | None:
        """When the database's schema was made (its first migration applied), None before. A migration
        that makes the schema from nothing logs `store.new_database`."""
        ...

    async def holds_events(self) -> bool:
        """Whether the database holds any event: a new one holds none (with created_at, /healthz shows
        a database a platform replaced by wiping its disk)."""
        ...

    # -- inbound events -------------------------------------------------------

    async def ingest(self, webhook: Webhook, now: float | None = None) -> IngestResult:
        """Commit an event unless its (source, dedupe key) is stored; returns after the commit."""
        ...

    async def waiting_events(self, limit: int, after: int = 0) -> list[Event]:
        """Events still to be mapped (status 'received') with id > `after`, in id order."""
        ...

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        """Record each event's mapping and queue its messages, unless another mapper did first;
        returns how many messages were queued. A message carrying a consent decision is queued only when
        `bridge.consent.judge` says so against the consent records, which are updated in the same
        transaction (`remember`)."""
        ...

    async def consent_records(self, contact: str) -> list[ConsentRecord]:
        """What the store knows of one contact's consent (`contact` is `bridge.consent.contact_fingerprint`
        of the e-mail): one record per channel and source, by channel then source."""
        ...

    # -- delivery -------------------------------------------------------------

    async def claim(self, destination: str, limit: int, lease_seconds: float, now: float) -> list[Message]:
        """Up to `limit` due pending messages of `destination`, in id order, leased until now + lease:
        never a message with an earlier open message of the same ordering key."""
        ...

    async def release_expired(self, now: float) -> int:
        """In-flight messages whose lease ran out back to pending, due now (a worker died)."""
        ...

    async def release(self, messages: Iterable[Message], now: float) -> int:
        """Give back claims unsent (shutdown): pending, due now, the attempt not counted."""
        ...

    async def extend(self, messages: Sequence[Message], lease_until: float) -> int:
        """Keep the claims of a slow delivery; only the claim's holder can."""
        ...

    async def claim_batch(self, destination: str, due_before: float, lease_until: float,
                          holding_due_before: float | None = None) -> tuple[str, list[Message]] | None:
        """One submitted batch whose result is due (next_at <= due_before, or <= holding_due_before when
        a later message of one of its keys waits for it): (batch ref, its messages), claimed until
        `lease_until`."""
        ...

    async def complete(self, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
        """Record each attempt and move its message on as decided; a stale claim changes nothing."""
        ...

    async def set_paused(self, name: str, paused: bool, reason: str, key_fingerprint: str | None,
                         now: float) -> None:
        """Pause or resume a destination for every process. An operator's pause has no fingerprint."""
        ...

    async def destination_states(self) -> dict[str, DestinationState]:
        ...

    async def take_budget(self, destination: str, per_second: float) -> float:
        """Take one request from `destination`'s budget, which every worker on this database shares
        (the account's rate limit): 0 when taken, else the seconds until one is free. A backend that
        runs one worker (SQLite) has nothing to share and answers 0."""
        ...

    async def block_budget(self, destination: str, per_second: float, seconds: float) -> None:
        """Nobody takes from `destination`'s budget for `seconds` (a worker got a 429 naming that wait)."""
        ...

    async def remember_sent(self, prints: Sequence[SentPrint]) -> None:
        """Keep each fingerprint under its key, replacing the one kept before (one row per key)."""
        ...

    async def sent_prints(self, keys: Sequence[str]) -> dict[str, SentPrint]:
        """The fingerprints kept under these keys (missing keys are left out)."""
        ...

    # -- what operators and metrics read --------------------------------------

    async def list_events(self, where: EventFilter, limit: int, offset: int = 0) -> Page[EventSummary]:
        """Newest first."""
        ...

    async def event_detail(self, event_id: int) -> EventDetail | None:
        ...

    async def outbox_stats(self, now: float, destinations: Sequence[str] = ()) -> dict[str, DestinationStats]:
        """Per destination, sorted by name; `destinations` appear even with an empty outbox."""
        ...

    async def open_counts(self) -> dict[tuple[str, str], int]:
        """(destination, state) -> count for pending, inflight, submitted and dead: cheap, for every scrape."""
        ...

    async def oldest_pending(self) -> dict[str, float]:
        """destination -> created_at of its oldest pending message."""
        ...

    async def unmapped(self) -> Unmapped:
        """Events waiting to be mapped: how many, and when the oldest arrived (off the index of waiting
        events: cheap enough for every scrape)."""
        ...

    async def list_dead(self, where: DeadFilter, limit: int, offset: int = 0) -> Page[DeadLetter]:
        """Most recently dead first."""
        ...

    async def retry_dead(self, where: DeadFilter, now: float) -> int:
        """Dead letters back to pending, due now, attempts and age restarted; returns how many."""
        ...

    async def audit(self, where: AuditFilter, limit: int, offset: int = 0) -> Page[AuditEntry]:
        """Newest first."""
        ...

    # -- replay ---------------------------------------------------------------

    async def count_replayable(self, where: EventFilter) -> int:
        """Events matching `where` that can be mapped again (body kept, valid JSON)."""
        ...

    async def replayable_events(self, where: EventFilter, after_id: int, limit: int) -> list[Event]:
        """The next replayable events after `after_id`, in id order."""
        ...

    async def apply_mappings(self, mapped: Sequence[Mapped], now: float, *, force: bool,
                             dry_run: bool) -> ReplaySummary:
        """Record replayed mappings; queue what is neither delivered nor open (unless `force`), bring
        dead letters back in place; a consent decision only as `save_mappings` would. With `dry_run`, only
        count. Atomic per call."""
        ...

    # -- retention ------------------------------------------------------------

    async def prune_delivered(self, before: float, limit: int) -> tuple[int, int]:
        """Delete up to `limit` delivered messages last updated before `before`, with their attempts:
        (messages, attempts) deleted."""
        ...

    async def prune_bodies(self, before: float, limit: int) -> int:
        """Drop up to `limit` bodies of events received before `before` that no replay needs."""
        ...

    async def prune_dedupe(self, before: float, limit: int) -> int:
        """Delete up to `limit` event rows received before `before` with no body and no message."""
        ...

    async def prune_preview(self, cutoffs: PruneCutoffs) -> PruneResult:
        """What a whole prune with these cutoffs would remove (a dry run)."""
        ...


__all__ = [
    "AREAS", "EVENT_STATUSES", "ConsentRecord", "MESSAGE_STATES", "OPEN_STATES",
    "AttemptEntry", "AuditEntry", "AuditFilter", "DeadFilter", "DeadLetter", "Decision", "DestinationState",
    "DestinationStats", "EventDetail", "EventFilter", "EventSummary", "IngestResult", "Mapped", "MessageDetail",
    "MigrationStatus", "Page", "PruneCutoffs", "PruneResult", "ReplaySummary", "SentPrint", "Store", "Unmapped",
]
