"""Recognising Omneo's echo of the bridge's own writes (issue 26, apis.md 3.7 "Loops").

When the bridge writes a profile to Omneo, Omneo answers with a `profile.updated` webhook carrying the
profile as it now is. Unless the webhook's namespace stops it (docs/sources.md), that webhook comes back to
the bridge, and the Omneo rules would send the shop's own change on to Omnisend and Ometria a second time.

So for every profile it sends, the Omneo adapter keeps a fingerprint in the store: under a hash of the
profile's e-mail (and of each identity), the names of the compared fields it sent and a hash of their
values. A `profile.updated` whose compared fields, read from the webhook, hash to the same value within
the echo window (OMNEO_ECHO_WINDOW_SECONDS) is that echo: the worker records the event as `echo`, maps
nothing, and deletes the prints it matched in the same transaction (only while they are still those: a
later write's print under the same key stays for its own echo), so each write is echoed once and a
later change Omneo alone makes (points, tier) goes on as usual. A person's change in the window differs in some compared field and goes on as usual. No personal
data is stored: keys and values are SHA-256 hashes.

Compared: names, e-mail, mobile, gender, birth day/month/year, the e-mail/SMS promo flags and their
`*_consent_updated_at`. Not compared: what only Omneo changes (tier, points, balances), which a write of
the bridge never carries.

A person's consent decision is never taken for an echo. When the bridge wrote no consent time for a
channel (consent is not allowed for Omneo, or the write carried details only), a webhook whose
`*_consent_updated_at` for it is later than the write, less CLOCK_SLACK for two clocks, is a decision made
after the write (in Omneo's preference centre) and goes on to be mapped; the consent rules judge it
(bridge/consent.py). A decision time from before the write is the profile's history and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from bridge.consent import moment
from bridge.metrics import METRICS
from bridge.model import Event
from bridge.settings import Settings
from bridge.store.base import SentPrint

log = structlog.get_logger("bridge.echo")

ECHO_TOPIC = "profile.updated"
ECHO_TOPICS = frozenset({ECHO_TOPIC, "profile.created"})  # what a write of the bridge makes Omneo fire
DEFAULT_WINDOW = 3600.0
CLOCK_SLACK = 300.0  # seconds by which Omneo's clock may run behind the bridge's
CONSENT_TIMES = ("email_consent_updated_at", "sms_consent_updated_at")


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _number(value: Any) -> Any:
    """Omneo's examples show birth fields as text ("14") where the bridge sends 14."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _instant(value: Any) -> Any:
    """A consent time as Unix seconds, whatever its form (the bridge sends RFC 3339, Omneo answers
    `YYYY-MM-DD HH:MM:SS` in UTC); a value that is no time stays as it is."""
    try:
        return moment(value)
    except (TypeError, ValueError):
        return value


def _get(*path: str) -> Callable[[Mapping[str, Any]], Any]:
    def read(profile: Mapping[str, Any]) -> Any:
        node: Any = profile
        for step in path:
            node = node.get(step) if isinstance(node, Mapping) else None
        return node
    return read


def _mobile(profile: Mapping[str, Any]) -> Any:
    return profile.get("mobile_phone_e164") or profile.get("mobile_phone")


# field -> (how to read it from the profile the bridge sent, from the webhook's profile, normalise)
COMPARED: dict[str, tuple[Callable[[Mapping[str, Any]], Any], Callable[[Mapping[str, Any]], Any],
                          Callable[[Any], Any]]] = {
    "first_name": (_get("first_name"), _get("first_name"), _text),
    "last_name": (_get("last_name"), _get("last_name"), _text),
    "email": (_get("email"), _get("email"), _lower),
    "mobile_phone": (_get("mobile_phone"), _mobile, _text),
    "gender": (_get("gender"), _get("gender"), _lower),
    "birth_day": (_get("birth_day"), _get("birth_day"), _number),
    "birth_month": (_get("birth_month"), _get("birth_month"), _number),
    "birth_year": (_get("birth_year"), _get("birth_year"), _number),
    "email_promo": (_get("comms_attributes", "email_promo"), _get("attributes", "comms", "email_promo"), _text),
    "sms_promo": (_get("comms_attributes", "sms_promo"), _get("attributes", "comms", "sms_promo"), _text),
    **{name: (_get("comms_attributes", name), _get("attributes", "comms", name), _instant) for name in CONSENT_TIMES},
}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(values: Mapping[str, Any]) -> str:
    return _hash(json.dumps(values, sort_keys=True, ensure_ascii=False, default=str))


def keys_of(profile: Mapping[str, Any]) -> list[str]:
    """Where a profile's fingerprint is kept: its e-mail, then each identity, hashed."""
    keys = []
    email = _lower(profile.get("email"))
    if isinstance(email, str) and email:
        keys.append("email:" + _hash(email))
    identities = profile.get("identities")
    for identity in identities if isinstance(identities, list) else ():
        if isinstance(identity, Mapping) and identity.get("handle") and identity.get("identifier") not in (None, ""):
            keys.append("identity:" + _hash(f"{identity['handle']}\x1f{identity['identifier']}"))
    return keys


def sent_prints(profile: Mapping[str, Any], now: float) -> list[SentPrint]:
    """The fingerprints of a profile the bridge sent: the compared fields it carried, and their hash."""
    values = {name: normalise(sent(profile)) for name, (sent, _, normalise) in COMPARED.items()
              if sent(profile) is not None}
    if not values:
        return []
    fields, digest = ",".join(sorted(values)), _digest(values)
    return [SentPrint(key, fields, digest, now) for key in keys_of(profile)]


def is_echo(payload: Any, remembered: Mapping[str, SentPrint], now: float, window: float) -> bool:
    """Whether a `profile.updated` payload carries exactly what the bridge wrote to that profile within
    `window` seconds (its fingerprint, under any of the profile's keys)."""
    return bool(echoed_keys(payload, remembered, now, window))


def echoed_keys(payload: Any, remembered: Mapping[str, SentPrint], now: float, window: float) -> tuple[str, ...]:
    """The profile's keys whose fingerprint (kept within `window` seconds) the payload carries exactly."""
    if not isinstance(payload, Mapping):
        return ()
    found = []
    for key in keys_of(payload):
        sent = remembered.get(key)
        if sent is None or now - sent.sent_at > window:
            continue
        names = [name for name in sent.fields.split(",") if name in COMPARED]
        values = {name: COMPARED[name][2](COMPARED[name][1](payload)) for name in names}
        if _digest(values) == sent.digest and not _decided_since(payload, names, sent.sent_at):
            found.append(key)
    return tuple(found)


def _decided_since(payload: Mapping[str, Any], written: Sequence[str], sent_at: float) -> bool:
    """Whether the webhook carries a consent time the bridge did not write, from after its write."""
    for name in CONSENT_TIMES:
        if name in written:
            continue  # compared in the digest: the time the bridge wrote, or a change
        at = _instant(COMPARED[name][1](payload))
        if isinstance(at, float) and at >= sent_at - CLOCK_SLACK:
            return True
    return False


def lookup_keys(payloads: Sequence[Any]) -> list[str]:
    """Every key the given webhook payloads could have been remembered under."""
    found: dict[str, None] = {}
    for payload in payloads:
        if isinstance(payload, Mapping):
            found.update(dict.fromkeys(keys_of(payload)))
    return list(found)


def echo_window(settings: Settings) -> float:
    """How long a sent print recognises an echo (OMNEO_ECHO_WINDOW_SECONDS), in seconds."""
    config = settings.destinations.get("omneo")
    return float(config.options.get("echo_window_seconds", DEFAULT_WINDOW)) if config else DEFAULT_WINDOW


class SentPrints(Protocol):
    """Where the fingerprints are kept (bridge.store.base.Store)."""

    async def sent_prints(self, keys: Sequence[str]) -> dict[str, SentPrint]: ...


class EchoGuard:
    """Which of a batch of stored events are Omneo's echo of the bridge's own writes: the worker records
    those with the status `echo` and maps the rest."""

    def __init__(self, settings: Settings, store: SentPrints, clock: Callable[[], float]) -> None:
        self.sources = frozenset(name for name, source in settings.sources.items() if source.scheme == "omneo")
        self.window = echo_window(settings)
        self.store = store
        self.clock = clock

    async def echoes(self, events: Sequence[Event]) -> dict[int, tuple[tuple[str, str, float], ...]]:
        """Every event among `events` that carries what the bridge wrote, with the keys of the prints it
        uses up (one write is echoed once, so a later change Omneo alone makes, points or tier, within
        the window is mapped). A `profile.updated` of them is an echo: recorded as such, not mapped. A
        `profile.created` (the bridge's write made the member) is mapped as usual: it is the loop's news."""
        payloads: dict[int, Any] = {}
        updates: set[int] = set()
        for event in events:
            if event.topic not in ECHO_TOPICS or event.source not in self.sources:
                continue
            try:
                payloads[event.id] = event.payload()
            except ValueError:  # not JSON: the mapping says so
                continue
            if event.topic == ECHO_TOPIC:
                updates.add(event.id)
        if not payloads:
            return {}
        remembered = await self.store.sent_prints(lookup_keys(list(payloads.values())))
        if not remembered:
            return {}
        now = self.clock()
        found = {event_id: tuple((key, remembered[key].digest, remembered[key].sent_at) for key in keys)
                 for event_id, payload in payloads.items()
                 if (keys := echoed_keys(payload, remembered, now, self.window))}
        echoes = sorted(set(found) & updates)
        for event_id in echoes:
            log.info("event.echo", event_id=event_id,
                     reason="carries only what the bridge wrote to this Omneo profile; not sent on")
        if echoes:
            METRICS.echo(len(echoes))
        return found
