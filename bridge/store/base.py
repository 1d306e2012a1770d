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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Generic, Protocol, TypedDict, TypeVar

from bridge.consent import ConsentRecord
from bridge.model import BudgetSlot, Decision, Event, IngestResult, Mapped, Message, Outcome, Webhook

MESSAGE_STATES = ("pending", "inflight", "submitted", "delivered", "dead")
OPEN_STATES = ("pending", "inflight", "submitted")  # states that hold back later messages of their key
# echo: an Omneo profile.updated carrying only what the bridge itself had just written (bridge.echo): not mapped
# waiting: mapped later, when a resource it names arrives (a refund's order), or when it gives up on it
# (bridge/mapping/lookups.py)
EVENT_STATUSES = ("received", "invalid_json", "mapped", "partial", "mapping_error", "no_rule", "ignored", "echo",
                  "waiting")
AREAS = ("events", "contacts", "consent", "orders", "carts", "products", "deletions")

T = TypeVar("T")


# -- filters ------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Events by source, topic, status, when they were received (`since` <= received_at < `until`), and
    by `search_key`: the fingerprint of an e-mail address or an order number in the payload (bridge.search)."""

    source: str | None = None
    topic: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    search_key: str | None = None
    event_id: int | None = None  # one event (a replay of it)


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
# -- rule sets kept in the store ----------------------------------------------

RULE_ORIGINS = ("folder", "publish", "rollback", "import")


@dataclass(frozen=True)
class RuleVersion:
    """One published rule set. Versions count up from 1 and are never changed; the highest is the
    one every instance runs. `files` (file name -> text) is empty in listings."""

    version: int
    created_at: float
    author: str
    message: str
    origin: str  # one of RULE_ORIGINS: imported from the rules folder, published, rolled back, `bridge rules import`
    digest: str  # names the files' texts (bridge.rules.files.digest)
    based_on: int | None = None  # the version a draft started from, or the one a rollback restored
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleDraft:
    """A rule set being edited: not run anywhere until published. `files` is empty in listings."""

    id: int
    created_at: float
    updated_at: float
    author: str
    base_version: int | None  # the published version it started from
    files: dict[str, str] = field(default_factory=dict)


class RuleAction(TypedDict):
    """One entry of the rules' audit log: who did what, when, to which version or draft."""

    at: float
    actor: str
    action: str  # draft.save, draft.delete, check, preview, publish, rollback, import, export
    version: int | None
    draft: int | None
    detail: str


class ActivityBucket(TypedDict):
    """What happened in [start, start + the bucket's length): events received per source, messages
    delivered and messages that died per destination."""

    start: float
    received: dict[str, int]
    delivered: dict[str, int]
    dead: dict[str, int]


class ConsoleAction(TypedDict):
    """One change made through the console or the admin API: who, what, when."""

    id: int
    at: float
    actor: str  # the token's name
    role: str
    action: str
    target: str
    detail: str


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


@dataclass(frozen=True)
class ConsoleJob:
    """A replay of a search that the console runs in the background of one instance (bridge.console.jobs).
    That instance writes `done` of `total` events as it goes, each write its heartbeat (`heartbeat_at`),
    and at the end when it finished, with the replay's summary or why it failed (`error`)."""

    id: int
    actor: str  # the token's name
    what: str  # the search replayed, as the actions log describes it
    instance: str  # the process that runs it
    started_at: float
    heartbeat_at: float
    done: int = 0
    total: int = 0
    finished_at: float | None = None
    summary: ReplaySummary | None = None
    error: str | None = None


@dataclass
class PruneResult:
    messages: int = 0
    attempts: int = 0
    bodies: int = 0
    dedupe_keys: int = 0
    resources: int = 0
    sent_prints: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PruneCutoffs:
    """What retention removes, as of three moments (see bridge.ops.prune):

    - delivered messages (and their attempts) last updated before `delivered_before`;
    - bodies of events received before `bodies_before` that are mapped and have no open or dead message;
    - event rows (the dedupe keys) received before `dedupe_before`, body gone, no message left;
    - resources kept for lookups whose latest event was received before `resources_before`.
    - Omneo sent prints (bridge.echo) written before `sent_prints_before`: past the echo window, they can
      no longer recognise an echo.

    Consent records are never pruned: they are the decisions that later ones are judged against.
    """

    delivered_before: float
    bodies_before: float
    dedupe_before: float
    resources_before: float = float("-inf")
    sent_prints_before: float = 0.0


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

    async def newest_event_id(self) -> int:
        """The id of the newest stored event, 0 when there is none: a worker in a process of its own sees
        webhooks arrive at another process by it (bridge.pressure.Arrivals)."""
        ...

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        """Record each event's mapping and queue its messages, unless another mapper did first;
        returns how many messages were queued. A message carrying a consent decision is queued only when
        `bridge.consent.judge` says so against the consent records, which are updated in the same
        transaction (`remember`). A mapping with a `resource` also keeps the event's body as that
        resource's latest state, unless a later event of it is kept already; one with `forget` deletes
        those kept resources (of the event's source)."""
        ...

    async def consent_records(self, contact: str) -> list[ConsentRecord]:
        """What the store knows of one contact's consent (`contact` is `bridge.consent.contact_fingerprint`
        of the e-mail): one record per channel and source, by channel then source."""
        ...

    async def resources(self, source: str, kind: str, refs: Sequence[str]) -> dict[str, bytes]:
        """ref -> the body of the latest event kept for the resource (`source`, `kind`, `ref`): what a
        lookup reads (a refund's order). Refs never kept, or pruned, are absent."""
        ...

    async def mapping_turn(self, holder: str, seconds: float, now: float) -> bool:
        """Whether `holder` (one worker) maps now: it takes the turn when nobody holds it or the holder's
        ran out, and renews it when it holds it, until now + `seconds` (0 gives it back). Workers on one
        database map one at a time, so none maps events another is mapping (harmless, only wasted:
        save_mappings keeps one mapping an event). A backend that runs one worker (SQLite) answers True."""
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

    async def take_budget(self, destination: str, per_second: float, max_wait: float | None = None) -> BudgetSlot:
        """Reserve one request of `destination`'s budget, which every worker on this database shares (the
        account's rate limit): slots `1 / per_second` apart on one schedule, the next free one reserved.
        Returns the seconds until that slot (0: now), the slot on the database's clock and its number;
        the caller sends then. A slot more than `max_wait` away is not reserved (its wait is returned). A backend
        that runs one worker (SQLite) has nothing to share and answers a wait of 0 and no slot."""
        ...

    async def block_budget(self, destination: str, per_second: float, seconds: float) -> None:
        """No slot of `destination`'s budget for `seconds` from now (a worker got a 429 naming that wait)."""
        ...

    async def hold_budget(self, destination: str, number: int, not_before: float) -> None:
        """`destination`'s slot numbered `number` (BudgetSlot.number) no earlier than `not_before` on the
        database's clock (a request reached the destination late, and the one `limit` slots after it must
        still be a window later); the slots after it follow. Nothing changes when that slot is reserved
        already. One worker (SQLite): nothing to hold."""
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

    async def activity(self, since: float, until: float, bucket_seconds: float) -> list[ActivityBucket]:
        """Every bucket of `bucket_seconds` from `since` up to `until`, oldest first, empty ones included."""
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

    async def record_action(self, at: float, actor: str, role: str, action: str, target: str, detail: str) -> None:
        """Add a change to the console's log of actions (committed before the call returns)."""
        ...

    async def list_actions(self, limit: int, offset: int = 0) -> Page[ConsoleAction]:
        """The log of actions, newest first."""
        ...

    # -- the console's replay jobs --------------------------------------------

    async def start_job(self, actor: str, what: str, instance: str, now: float) -> int:
        """Record a job that `instance` starts running now; its id, never one an earlier job had."""
        ...

    async def job_progress(self, job_id: int, done: int, total: int, now: float) -> None:
        """Record how far a job got; `now` is its heartbeat."""
        ...

    async def finish_job(self, job_id: int, done: int, total: int, now: float, summary: ReplaySummary | None,
                         error: str | None) -> None:
        """Record that a job ended now, with its replay's summary or why it failed."""
        ...

    async def job(self, job_id: int) -> ConsoleJob | None:
        ...

    async def list_jobs(self, limit: int, offset: int = 0) -> Page[ConsoleJob]:
        """Jobs, newest first."""
        ...

    async def prune_jobs(self, keep: int, stale_before: float) -> int:
        """Delete the jobs older than the newest `keep` that ended, or whose heartbeat is older than
        `stale_before` (their instance went away); a job still running is kept. Returns how many."""
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
        dead letters back in place; a consent decision only as `save_mappings` would, and resources kept
        as it keeps them. With `dry_run`, only count. Atomic per call."""
        ...

    # -- rule sets --------------------------------------------------------------

    async def rule_head(self, origin: str | None = None, digest: str | None = None) -> RuleVersion | None:
        """The published rule set (the highest version), or with `origin` and/or `digest` the newest
        version that has them; without its files. None when there is none. Cheap: every instance polls it."""
        ...

    async def rule_version(self, version: int) -> RuleVersion | None:
        """One version with its files."""
        ...

    async def rule_history(self, limit: int, offset: int = 0) -> Page[RuleVersion]:
        """Versions newest first, without their files."""
        ...

    async def publish_rules(self, version: RuleVersion) -> bool:
        """Store `version` as published. It must be the head's number + 1 (1 for the first):
        False, and nothing stored, when another publish took that number first."""
        ...

    async def save_rule_draft(self, draft_id: int | None, files: dict[str, str], base_version: int | None,
                              author: str, now: float) -> RuleDraft | None:
        """A new draft (no id), or the draft's files replaced; None when that draft does not exist."""
        ...

    async def rule_draft(self, draft_id: int) -> RuleDraft | None:
        """One draft with its files."""
        ...

    async def rule_drafts(self, limit: int, offset: int = 0) -> Page[RuleDraft]:
        """Drafts, most recently changed first, without their files."""
        ...

    async def delete_rule_draft(self, draft_id: int) -> bool:
        ...

    async def record_rule_action(self, entry: RuleAction) -> None:
        """Append one entry to the rules' audit log."""
        ...

    async def rule_actions(self, limit: int, offset: int = 0) -> Page[RuleAction]:
        """The rules' audit log, newest first."""
        ...

    async def latest_events(self, source: str, topics: Sequence[str], limit: int) -> list[Event]:
        """The newest `limit` events of `source` with one of `topics` whose body is kept and valid JSON,
        newest first (what a preview of a rule change runs on)."""
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

    async def prune_resources(self, before: float, limit: int) -> int:
        """Forget up to `limit` resources whose latest event was received before `before`."""
        ...

    async def prune_sent_prints(self, before: float, limit: int) -> int:
        """Delete up to `limit` sent prints written before `before`."""
        ...

    async def prune_preview(self, cutoffs: PruneCutoffs) -> PruneResult:
        """What a whole prune with these cutoffs would remove (a dry run)."""
        ...


__all__ = [
    "AREAS",
    "EVENT_STATUSES",
    "MESSAGE_STATES",
    "OPEN_STATES",
    "RULE_ORIGINS",
    "ActivityBucket",
    "AttemptEntry",
    "AuditEntry",
    "AuditFilter",
    "ConsentRecord",
    "ConsoleAction",
    "ConsoleJob",
    "DeadFilter",
    "DeadLetter",
    "Decision",
    "DestinationState",
    "DestinationStats",
    "EventDetail",
    "EventFilter",
    "EventSummary",
    "IngestResult",
    "Mapped",
    "MessageDetail",
    "MigrationStatus",
    "Page",
    "PruneCutoffs",
    "PruneResult",
    "ReplaySummary",
    "RuleAction",
    "RuleDraft",
    "RuleVersion",
    "SentPrint",
    "Store",
    "Unmapped",
]
