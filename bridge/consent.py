"""Marketing consent as decisions: it travels only when a person decided it, and the newer decision wins.

A rule's consent message carries the decision it stands for (`decision:` in the rule, see
mappings/README.md): whose (a fingerprint of the e-mail, never the address), which channel, subscribed
or not, and when the person decided. A source states that time where it has one (Shopify's
`email_marketing_consent.consent_updated_at`, Omneo's `*_consent_updated_at`); without it, a flag that
changed against what the same source said before is a decision at the time the rule gives as
`changed:` (Omneo's profile `updated_at`), and anything else (a platform's default, a flag said again)
is no decision and is not sent.

The store keeps, per contact and channel, one record per source: what that source said last, and its
latest decision that was sent. A decision is sent only when it is newer than every decision known for
that contact and channel, from any source; so when two sources disagree the newer wins, and the bridge's
own write coming back (an echo, with the timestamp it was written with) is never a change. The store
judges inside the transaction that queues the messages (`judge`, then `remember`), so two workers
cannot both send opposite decisions, and the messages keep the order of the decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

CHANNELS = ("email", "sms")
_NAMESPACE = "bridge-consent\x1f"


def contact_fingerprint(email: str) -> str:
    """Who a decision is about, without the address: the SHA-256 of the trimmed, lower-cased e-mail."""
    return hashlib.sha256((_NAMESPACE + email.strip().lower()).encode()).hexdigest()


def lock_key(contact: str, channel: str) -> int:
    """A signed 64-bit number naming (contact, channel), for a database lock held while judging."""
    digest = hashlib.sha256(f"{contact}\x1f{channel}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def moment(value: object) -> float | None:
    """An RFC 3339 / ISO 8601 time (as the `rfc3339` filter writes it) to Unix seconds; no zone is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class ConsentDecision:
    """What one consent message says: `contact` (a fingerprint) is `subscribed` on `channel` or not,
    by `source`, decided at `decided_at`; without it, a change of the flag counts at `changed_at`."""

    contact: str
    channel: str
    subscribed: bool
    source: str
    decided_at: float | None
    changed_at: float | None = None


@dataclass(frozen=True)
class ConsentRecord:
    """The store's record of one source about one contact's channel."""

    contact: str
    channel: str
    source: str
    subscribed: bool  # what the source said last (a decision or not)
    said_event: int  # the event that said it
    decided_at: float | None  # the source's latest decision that was sent
    decided_event: int | None  # the event that made that decision
    updated_at: float


@dataclass(frozen=True)
class Verdict:
    send: bool
    decided_at: float | None  # the decision's time when it is sent
    reason: str  # why not, for the log ("" when sent)


def judge(said: ConsentDecision, records: Sequence[ConsentRecord], event_id: int) -> Verdict:
    """Whether a consent message of event `event_id` is sent, given what the store knows of its contact's
    channel (`records`, one per source)."""
    own = next((r for r in records if r.source == said.source), None)
    others = [r.decided_at for r in records if r.decided_at is not None and r is not own]
    newest_other = max(others, default=None)
    if own is not None and own.decided_event == event_id:
        # The same event again (a second message of it, a replay, a mapper that lost the race): its
        # decision stands while no other source has decided since.
        if own.decided_at is not None and (newest_other is None or own.decided_at > newest_other) \
                and own.subscribed == said.subscribed:
            return Verdict(True, own.decided_at, "")
        return Verdict(False, None, "a newer decision is known")
    at = said.decided_at
    if at is None:
        if said.changed_at is None:
            return Verdict(False, None, "no decision: the source gives no time of one")
        if own is None:
            return Verdict(False, None, "no decision: the first flag seen from this source, with no time of a "
                                        "decision, may be its default")
        if own.subscribed == said.subscribed or event_id < own.said_event:
            return Verdict(False, None, "no decision: the flag is what this source said before")
        at = said.changed_at
    newest = max([t for t in (newest_other, own.decided_at if own else None) if t is not None], default=None)
    if newest is not None and at <= newest:
        return Verdict(False, None, "an older decision than one known (or the same one again)")
    return Verdict(True, at, "")


def remember(said: ConsentDecision, verdict: Verdict, own: ConsentRecord | None, event_id: int,
             now: float) -> ConsentRecord:
    """The source's record after the verdict: what it said (unless an older event of it is replayed), and
    its decision when sent."""
    if own is not None and event_id < own.said_event:
        subscribed, said_event = own.subscribed, own.said_event
    else:
        subscribed, said_event = said.subscribed, event_id
    decided_at: float | None = None
    decided_event: int | None = None
    if verdict.send:
        decided_at, decided_event = verdict.decided_at, event_id
    elif own is not None:
        decided_at, decided_event = own.decided_at, own.decided_event
    return ConsentRecord(said.contact, said.channel, said.source, subscribed, said_event, decided_at,
                         decided_event, now)
