"""A person's erasure forgets what the bridge itself keeps about them.

A Shopify `customers/redact` (Shopify's privacy webhook) or an Omneo `profile.deleted` asks that a person
be forgotten. The shipped rules (mappings/erasure.yaml) pass the request on to the destinations when the
operator allows `deletions`; whatever they allow, the bridge deletes its own copies about that person with
the event's mapping, in the same transaction:

- the consent records of the e-mail (bridge/consent.py);
- the fingerprints of what the bridge wrote to that Omneo profile (bridge/echo.py), kept under the
  e-mail and under each identity: for Shopify the customer's id as the `shopify_id` identity the
  enrolment rules write, for Omneo every identity the profile lists.

What else the bridge holds (the webhook bodies, the messages sent) goes by retention (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from bridge.consent import contact_fingerprint
from bridge.echo import keys_of
from bridge.model import Event, OwnCopies

SHOPIFY_IDENTITY = "shopify_id"  # the identity handle mappings/omneo-enrolment.yaml gives a Shopify customer


def _payload(event: Event) -> Any:
    try:
        return orjson.loads(event.body)
    except orjson.JSONDecodeError:
        return None


def _person(event: Event) -> dict[str, Any] | None:
    """The profile-like part of an erasure request: its e-mail and identities; None for other events."""
    if (event.source, event.topic) == ("shopify", "customers/redact"):
        payload = _payload(event)
        customer = payload.get("customer") if isinstance(payload, dict) else None
        if not isinstance(customer, dict):
            return None
        identities = [{"handle": SHOPIFY_IDENTITY, "identifier": str(customer["id"])}] \
            if isinstance(customer.get("id"), (int, str)) and not isinstance(customer.get("id"), bool) else []
        return {"email": customer.get("email"), "identities": identities}
    if (event.source, event.topic) == ("omneo", "profile.deleted"):
        payload = _payload(event)
        return payload if isinstance(payload, dict) else None
    return None


def copies_of(event: Event) -> OwnCopies:
    """What the bridge keeps about the person this event erases (nothing for any other event)."""
    person = _person(event)
    if person is None:
        return OwnCopies()
    email = person.get("email")
    contacts = (contact_fingerprint(email),) if isinstance(email, str) and email.strip() else ()
    return OwnCopies(contacts=contacts, prints=tuple(keys_of(person)))
