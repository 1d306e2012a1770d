"""Signed traffic for the reliability tests, and what the fakes received, keyed for comparison."""

from __future__ import annotations

import copy
import itertools
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from e2e.conftest import Fakes
from e2e.harness import ROOT
from e2e.received import ometria_records, omnisend_contacts, omnisend_events

from bridge.sign import omneo_headers, shopify_headers

from .process import OMNEO_SECRET, SHOPIFY_SECRET

PAYLOADS = ROOT / "tests" / "payloads"
ORDER = json.loads((PAYLOADS / "shopify" / "orders_create.json").read_text())
CANCELLED = json.loads((PAYLOADS / "shopify" / "orders_cancelled.json").read_text())
PROFILE = json.loads((PAYLOADS / "omneo" / "profile_created.json").read_text())
ORDER_BASE = 7_100_000_000_000


@dataclass(frozen=True)
class Outbound:
    """One webhook as a provider would send it: resending `body` with `headers` is a provider retry."""

    source: str
    kind: str  # order | cancel | profile
    key: str  # what the destinations will know it by: order id or Omneo profile id
    body: bytes
    headers: dict[str, str]
    email: str


def person(n: int) -> dict[str, str]:
    """Distinctive personal data: easy to search for in logs."""
    return {
        "first": f"Rosalind{n:05d}x",
        "last": f"Quennell{n:05d}y",
        "email": f"rosalind.quennell.{n:05d}@reliability.example.org",
        "phone": f"+614{n:08d}",
    }


def order(n: int, event_id: str | None = None, *, topic: str = "orders/create") -> Outbound:
    p = person(n)
    body = copy.deepcopy(ORDER if topic == "orders/create" else CANCELLED)
    body["id"] = ORDER_BASE + n
    body["order_number"] = 50_000 + n
    body["name"] = f"#{50_000 + n}"
    body["email"] = body["contact_email"] = p["email"]
    body["phone"] = p["phone"]
    for where in ("customer", "billing_address", "shipping_address"):
        if isinstance(body.get(where), dict):
            body[where].update(first_name=p["first"], last_name=p["last"], phone=p["phone"])
    if isinstance(body.get("customer"), dict):
        body["customer"]["email"] = p["email"]
    raw = json.dumps(body).encode()
    kind = "order" if topic == "orders/create" else "cancel"
    headers = shopify_headers(raw, SHOPIFY_SECRET, topic, event_id=event_id or f"rel-{kind}-{n}")
    return Outbound("shopify", kind, str(body["id"]), raw, headers, p["email"])


def profile(n: int) -> Outbound:
    p = person(n)
    body = copy.deepcopy(PROFILE)
    body["id"] = f"rel-profile-{n:05d}"
    body["external_id"] = f"CUST-REL-{n:05d}"
    body.update(first_name=p["first"], last_name=p["last"], full_name=f"{p['first']} {p['last']}", email=p["email"],
                mobile_phone=p["phone"], mobile_phone_e164=p["phone"], updated_at="2026-11-23 01:02:03")
    # the member decided (Omneo keeps when): without that time a new profile's comms would be no decision
    body.setdefault("attributes", {})["comms"] = {"email_promo": n % 2 == 0, "email_optout": n % 2 == 1,
                                                  "email_consent_updated_at": "2026-11-23 01:02:03"}
    raw = json.dumps(body).encode()
    return Outbound("omneo", "profile", body["id"], raw, omneo_headers(raw, OMNEO_SECRET, "profile.created"),
                    p["email"].lower())


def mixed(count: int, rng: random.Random, profile_share: float = 0.1) -> list[Outbound]:
    return [profile(n) if rng.random() < profile_share else order(n) for n in range(count)]


# --- sending ------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0  # distinct webhooks
    posts: int = 0  # HTTP attempts, resends included
    acknowledged: dict[str, Outbound] = field(default_factory=dict)  # by dedupe identity
    answers: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "posts": self.posts, "acknowledged": len(self.acknowledged),
                "answers": dict(self.answers)}


def identity(item: Outbound) -> str:
    return f"{item.source}:{item.headers.get('X-Shopify-Event-Id') or item.key}"


class Sender(threading.Thread):
    """Posts each webhook until it is acknowledged, like a provider, within a bounded number of tries.

    A connection error or a 503 is not an acknowledgement: the webhook is sent again after a short
    pause. Anything other than 200 / 503 / a transport error is recorded as unexpected. The sender
    gives up only when nothing has been acknowledged for `stall_seconds`: how long a run takes
    follows how fast this machine is at the time, not a fixed total. `tries=None` sends each
    webhook until it is acknowledged (a restart on a loaded machine can outlast any fixed count).
    """

    def __init__(self, url: str, items: list[Outbound], *, tries: int | None = 200, pause: float = 0.05,
                 stall_seconds: float = 60.0) -> None:
        super().__init__(name="webhook-sender", daemon=True)
        self.url = url
        self.items = items
        self.tries = tries
        self.pause = pause
        self.stall_seconds = stall_seconds
        self.last_progress = time.monotonic()
        self.stalled = False
        self.tally = Tally()
        self.stop_sending = threading.Event()

    def run(self) -> None:
        self.last_progress = time.monotonic()
        with httpx.Client(timeout=10) as client:
            for item in self.items:
                if self.stop_sending.is_set() or self._stalled():
                    return
                self.tally.sent += 1
                for _ in range(self.tries) if self.tries is not None else itertools.count():
                    if self._stalled():
                        return
                    if self.post(client, item):
                        self.last_progress = time.monotonic()
                        break
                    time.sleep(self.pause)

    def bridge_is_back(self) -> None:
        """The bridge was restarted and answers again: the time it was down is not a stall."""
        self.last_progress = time.monotonic()

    def _stalled(self) -> bool:
        self.stalled = self.stalled or time.monotonic() - self.last_progress > self.stall_seconds
        return self.stalled

    def post(self, client: httpx.Client, item: Outbound) -> bool:
        self.tally.posts += 1
        try:
            response = client.post(f"{self.url}/webhooks/{item.source}", content=item.body, headers=item.headers)
        except httpx.TransportError as exc:
            self.tally.answers[type(exc).__name__] += 1
            return False
        self.tally.answers[str(response.status_code)] += 1
        if response.status_code == 200:
            self.tally.answers[response.json().get("status", "?")] += 1
            self.tally.acknowledged[identity(item)] = item
            return True
        if response.status_code != 503:
            self.tally.unexpected.append(f"{response.status_code} {response.text[:200]}")
        return False


def settle(bridge: Any, stall_seconds: float = 60.0) -> None:
    """Wait until every stored event is mapped and every message delivered or dead, for as long as
    that work keeps shrinking: fail only when it has not shrunk for `stall_seconds`."""
    best, since = None, time.monotonic()
    while True:
        left = bridge.unmapped() + bridge.open_messages()
        if left == 0:
            return
        if best is None or left < best:
            best, since = left, time.monotonic()
        elif time.monotonic() - since > stall_seconds:
            raise AssertionError(f"{left} events or messages still open, none settled for {stall_seconds:g} s")
        time.sleep(0.2)


# --- what the fakes received (tests/e2e/received.py reads the fakes) ----------------------


def order_kind(record: dict[str, Any]) -> str:
    return "cancel" if record.get("status") == "cancelled" else "create"


def contact_record(record: dict[str, Any]) -> str:
    """Consent travels as its own small record for the same contact id: a second message, not a resend."""
    return f'{record["id"]}|{"profile" if record.get("email") else "consent"}'


def contact_email(contact: dict[str, Any]) -> str:
    return next(i["id"] for i in contact["identifiers"] if i["type"] == "email")


@dataclass
class Delivered:
    """Deliveries per entity: for each order or profile, the idempotency keys it arrived with."""

    omnisend_events: dict[tuple[str, str], list[str]]  # (orderID or profile id, eventName) -> eventIDs
    omnisend_contacts: dict[str, int]  # email -> deliveries (contacts upsert by email)
    ometria_orders: dict[tuple[str, str], int]  # (record id, create | cancel) -> deliveries
    ometria_contacts: dict[str, int]

    @classmethod
    def collect(cls, fakes: Fakes) -> Delivered:
        events: dict[tuple[str, str], list[str]] = {}
        for event in omnisend_events(fakes):
            # an order's events by orderID; a new member's "joined loyalty program" by its Omneo profile id
            properties = event["properties"]
            entity = properties.get("orderID") or properties["omneoProfileID"]
            events.setdefault((str(entity), event["eventName"]), []).append(event["eventID"])
        return cls(
            events,
            dict(Counter(contact_email(c) for c in omnisend_contacts(fakes))),
            dict(Counter((str(r["id"]), order_kind(r)) for r in ometria_records(fakes, "order"))),
            dict(Counter(contact_record(r) for r in ometria_records(fakes, "contact"))),
        )

    def missing(self, acknowledged: list[Outbound]) -> list[str]:
        lost = []
        orders = {(order_id, name) for order_id, name in self.omnisend_events}
        records = set(self.ometria_orders)
        for item in acknowledged:
            if item.kind in ("order", "cancel"):
                name, kind = ("placed order", "create") if item.kind == "order" else ("order canceled", "cancel")
                if (item.key, name) not in orders:
                    lost.append(f"{item.kind} {item.key} not at Omnisend")
                if (item.key, kind) not in records:
                    lost.append(f"{item.kind} {item.key} not at Ometria")
            elif item.kind == "profile":
                if item.email not in self.omnisend_contacts:
                    lost.append(f"profile {item.key} not at Omnisend")
                if f"omneo-{item.key}|profile" not in self.ometria_contacts:
                    lost.append(f"profile {item.key} not at Ometria")
        return lost

    def duplicates(self) -> dict[str, int]:
        """Deliveries beyond the first, per destination and record kind."""
        return {
            "omnisend_events": sum(len(keys) - 1 for keys in self.omnisend_events.values()),
            "omnisend_contacts": sum(n - 1 for n in self.omnisend_contacts.values()),
            "ometria_orders": sum(n - 1 for n in self.ometria_orders.values()),
            "ometria_contacts": sum(n - 1 for n in self.ometria_contacts.values()),
        }

    def keys_disagree(self) -> dict[tuple[str, str], list[str]]:
        """Order events delivered more than once to Omnisend under different eventIDs (must be none)."""
        return {order_id: keys for order_id, keys in self.omnisend_events.items() if len(set(keys)) > 1}
