"""What Omneo sends back after the bridge enrols a shop customer: its `profile.created` / `profile.updated`
webhooks, as the shipped enrolment would make Omneo write them.

Until the Omneo destination and its fake exist, the loop's tests post these bodies themselves (signed, to
the real app). Once the fake Omneo emits its own webhooks, a test swaps `omneo_sends_back(...)` for what
the fake emitted: the bodies have the same shape (apis.md 3.3, 3.6: the profile context at the root,
`attributes.comms` holding the consent flags and, when a person decided, `*_consent_updated_at`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from bridge.sign import omneo_headers

from .harness import OMNEO_SECRET, ROOT

PROFILE = json.loads((ROOT / "tests" / "payloads" / "omneo" / "profile_created.json").read_text())


def omneo_time(value: str | datetime) -> str:
    """Omneo's timestamps: `YYYY-MM-DD HH:MM:SS`, UTC, no zone."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def default_comms() -> dict[str, Any]:
    """A new profile's comms when nobody said anything: every promo flag off, no decision time."""
    return {"email_promo": False, "email_optout": False, "email_bounced": False, "sms_promo": False,
            "sms_optout": False, "push_promo": False}


def profile_of(customer: dict[str, Any], comms: dict[str, Any], *, profile_id: str, updated_at: datetime,
               created_at: datetime) -> dict[str, Any]:
    """An Omneo profile context for a Shopify customer the bridge enrolled (matched by e-mail, the Shopify id
    as an identity)."""
    profile = {key: value for key, value in PROFILE.items() if key not in ("attributes", "external_id")}
    profile.update(
        id=profile_id, external_id=None, email=customer["email"].lower(), first_name=customer["first_name"],
        last_name=customer["last_name"], full_name=f"{customer['first_name']} {customer['last_name']}",
        mobile_phone=customer.get("phone"), mobile_phone_e164=customer.get("phone"), mobile_phone_country="AU",
        identities=[{"handle": "shopify_id", "identifier": str(customer["id"]), "is_active": True}],
        point_balance=0, reward_balance=0.0, joined_at=omneo_time(created_at),
        created_at=omneo_time(created_at), updated_at=omneo_time(updated_at),
        attributes={"comms": comms})
    return profile


def omneo_sends_back(customer: dict[str, Any], *, consent_to_omneo: bool, profile_id: str | None = None,
                     at: datetime | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The webhooks Omneo fires after the bridge wrote `customer` (a Shopify customer) to it: one
    `profile.created`, as (topic, body).

    With `consent_to_omneo` (consent allowed for Omneo), the bridge sent the shop's e-mail consent as
    `comms_attributes` with `email_consent_updated_at` set to the time the customer decided, and Omneo
    keeps both; without it, the profile has Omneo's default comms and no decision time."""
    now = at or datetime.now(UTC)
    comms = default_comms()
    consent = customer.get("email_marketing_consent") or {}
    if consent_to_omneo and consent.get("consent_updated_at") and consent.get("state") in ("subscribed",
                                                                                            "unsubscribed"):
        subscribed = consent["state"] == "subscribed"
        comms.update(email_promo=subscribed, email_optout=not subscribed,
                     email_consent_updated_at=omneo_time(consent["consent_updated_at"]))
    profile = profile_of(customer, comms, profile_id=profile_id or str(uuid.uuid4()), updated_at=now,
                         created_at=now)
    return [("profile.created", profile)]


def preference_centre(profile: dict[str, Any], *, email_promo: bool, at: datetime) -> tuple[str, dict[str, Any]]:
    """The `profile.updated` Omneo fires when the member changes their e-mail choice in its preference centre:
    the flag changes and Omneo records when the person acted."""
    comms = {**profile["attributes"]["comms"], "email_promo": email_promo, "email_optout": not email_promo,
             "email_consent_updated_at": omneo_time(at)}
    return "profile.updated", {**profile, "attributes": {"comms": comms}, "updated_at": omneo_time(at)}


def signed(topic: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An Omneo webhook's bytes and headers, signed as Omneo signs them."""
    raw = json.dumps(body).encode()
    return raw, omneo_headers(raw, OMNEO_SECRET, topic)
