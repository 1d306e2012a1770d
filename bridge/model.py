"""Records that cross layers: source -> store -> mapping -> outbox -> destination."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from bridge import jsoncodec
from bridge.consent import ConsentDecision

# Namespace for idempotency keys (UUIDv5): stable across processes and replays.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c4a8e-3b0e-5a57-9c2d-0b7a1e5c2f10")


@dataclass(frozen=True)
class Webhook:
    """A verified inbound delivery, ready to be committed.

    `dedupe_key` is stable across the provider's resends of the same event;
    `payload_ok` is False when the body is not valid JSON (stored for
    inspection and answered 400).
    """

    source: str
    topic: str
    dedupe_key: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    payload_ok: bool = True
    secret_index: int | None = None  # which configured secret matched (logged; never the secret)


@dataclass(frozen=True)
class Ping:
    """A provider's unsigned liveness check (WooCommerce): answered 200, never stored."""

    source: str


@dataclass(frozen=True)
class Event:
    """An inbound event as stored."""

    id: int
    source: str
    topic: str
    dedupe_key: str
    received_at: float
    headers: Mapping[str, str]
    body: bytes
    status: str = "received"
    # What the rules read besides the payload (bridge/mapping/lookups.py): name -> the body of the
    # resource this event names (a refund's `order`), or None when it was looked for and not found.
    lookups: Mapping[str, bytes | None] = field(default_factory=dict)

    def payload(self) -> Any:
        return jsoncodec.loads(self.body)  # json.loads's value, at orjson's speed where they agree


@dataclass(frozen=True)
class Outgoing:
    """One message a rule produced for one destination.

    `kind` is the destination's record type (omnisend: event, contact, order,
    cart; ometria: order, contact, custom_event, product); `action` says how
    it is written (upsert, create, replace, update); `key` orders messages
    about the same entity ("order:123"), empty for unordered ones; `index`
    is the message's position among its rule's messages for this event.
    """

    destination: str
    kind: str
    record: dict[str, Any]
    rule: str
    action: str = "upsert"
    key: str = ""
    index: int = 0
    areas: tuple[str, ...] = ()  # what it writes: events, contacts, consent, orders, carts, products, deletions
    decision: ConsentDecision | None = None  # the consent decision it carries: the store sends only a newer one

    def idempotency_key(self, source: str, dedupe_key: str) -> str:
        name = f"{source}\x1f{dedupe_key}\x1f{self.rule}\x1f{self.index}"
        return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))


@dataclass(frozen=True)
class Message:
    """An outbox row claimed for delivery."""

    id: int
    event_id: int
    destination: str
    kind: str
    action: str
    record: dict[str, Any]
    rule: str
    key: str
    idempotency_key: str
    attempts: int
    created_at: float
    claim: str = ""  # the claim's token: only its holder may complete or release it
    submitted_at: float | None = None  # when the destination accepted its batch, while it awaits the result


OutcomeKind = Literal["delivered", "retry", "dead", "pause", "deferred", "submitted"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one message in one delivery attempt.

    delivered: done. retry: transient (network, timeout, 408, 429, 5xx),
    `retry_after` seconds if the destination said so. dead: permanent (other
    4xx, a record the API can never accept). pause: credentials refused
    (401/403): the whole destination waits, the message keeps its attempts.
    `detail` is a short response excerpt with no personal data.
    """

    kind: OutcomeKind
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    ref: str | None = None


@dataclass(frozen=True)
class PreparedRequest:
    """An HTTP request a destination would send for a group of messages."""

    destination: str
    method: str
    path: str
    body: Any
    message_ids: tuple[int, ...] = ()


class IngestResult(NamedTuple):  # a tuple: the writer makes one per webhook
    event_id: int
    duplicate: bool


class BudgetSlot(NamedTuple):
    """A request's slot on the rate budget every worker shares (Store.take_budget)."""

    wait: float  # seconds from when the store answered until the slot (0: now)
    at: float | None  # the slot on the store's clock (seconds); None: nothing is shared (one worker)
    number: int = 0  # the slots' count so far, this one included


@dataclass(frozen=True)
class OwnCopies:
    """What the bridge itself keeps about a person, to delete with an event's mapping (bridge/erasure.py):
    the consent records of `contacts` (bridge.consent.contact_fingerprint) and the Omneo sent prints
    under `prints` (bridge.echo.keys_of)."""

    contacts: tuple[str, ...] = ()
    prints: tuple[str, ...] = ()
    # The prints an echo used up, as (key, digest, sent_at): deleted only while they are still the ones it
    # matched, so the print of a later write to the same profile, kept meanwhile, stays for its own echo.
    used_prints: tuple[tuple[str, str, float], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.contacts or self.prints or self.used_prints)


@dataclass(frozen=True)
class Mapped:
    """The mapping of one event, ready to be saved."""

    event_id: int
    status: str
    rules: list[str]
    errors: list[str]
    messages: list[tuple[Outgoing, str]]  # (message, idempotency key)
    search_keys: tuple[str, ...] = ()  # fingerprints of the payload's e-mails and order numbers (bridge.search)
    # The resource this event carries whole, (kind, its id at the source): saved with the mapping as
    # the latest state of it, for the events that name it later (bridge/mapping/lookups.py).
    resource: tuple[str, str] | None = None
    # Deleted in the transaction that saves the mapping: the kept resources this event asks to erase,
    # (kind, id) each (the orders a Shopify customer's redaction lists, bridge/mapping/lookups.py) ...
    forget_resources: tuple[tuple[str, str], ...] = ()
    # ... and the consent records and sent prints of a person's erasure (bridge/erasure.py), or the sent
    # prints an echo used up (bridge.echo).
    forget_copies: OwnCopies = OwnCopies()


@dataclass(frozen=True)
class Decision:
    """What to do with a message after an attempt (see bridge.retry)."""

    state: str  # delivered | pending | submitted | dead
    next_at: float = 0.0
    refund_attempt: bool = False  # pause: the attempt does not count
