"""What an Omneo batch profile must be before it is sent, and how profiles share batches (apis.md 3.7).

Omneo queues a batch and answers before it looks at the profiles, and whether one invalid profile
fails the whole batch is not documented: so every profile is checked here, and one that cannot be
valid is refused on its own (a dead letter naming the field) instead of risking the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from bridge.destinations.catalog import (
    OMNEO_CONTROL_FIELDS,
    OMNEO_GENDERS,
    OMNEO_MAX_PROFILES,
    OMNEO_PHONE_EXISTS,
    OMNEO_READ_ONLY,
)

EMAIL_MATCH = "email"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_HANDLE = re.compile(r"[A-Za-z0-9_.:-]{1,100}", re.ASCII)
COMMS_FLAGS = ("email_promo", "sms_promo", "email_bounced", "email_benefits")
COMMS_TIMES = ("email_consent_updated_at", "sms_consent_updated_at")
CUSTOM_ATTRIBUTE_TYPES = ("string", "integer", "float", "boolean", "json", "array")
BIRTH_RANGES = {"birth_day": (1, 31), "birth_month": (1, 12), "birth_year": (1900, 2100)}
MAX_TEXT = 255


@dataclass(frozen=True)
class Profile:
    """One message's profile as sent, with the bridge's own settings taken out of it."""

    message_id: int
    body: dict[str, Any]
    match_criteria: str
    phone_exists: str  # secondary_phone | dead

    @property
    def email(self) -> str | None:
        value = self.body.get("email")
        return value.strip().lower() if isinstance(value, str) and value.strip() else None

    @property
    def mobile(self) -> str | None:
        value = self.body.get("mobile_phone")
        return value if isinstance(value, str) and value else None

    def with_secondary_phone(self) -> Profile:
        """The same profile with its mobile number as `secondary_phone` (Omneo's way round a number another
        profile holds, apis.md 3.7)."""
        body = {name: value for name, value in self.body.items() if name != "mobile_phone"}
        body["secondary_phone"] = self.body.get("mobile_phone")
        return Profile(self.message_id, body, self.match_criteria, "dead")


def profile_of(message_id: int, record: Mapping[str, Any]) -> Profile:
    body = {name: value for name, value in record.items() if name not in OMNEO_CONTROL_FIELDS and value is not None}
    match = record.get("match_criteria")
    phone_exists = record.get("phone_exists")
    return Profile(message_id, body, match.strip() if isinstance(match, str) and match.strip() else EMAIL_MATCH,
                   phone_exists if isinstance(phone_exists, str) else "dead")


def problems(profile: Profile, phone_exists: Any = None) -> list[str]:
    """What makes the profile invalid, each as `field: what is wrong`; empty when it can be sent."""
    body = profile.body
    found: list[str] = []

    def add(name: str, what: str) -> None:
        found.append(f"{name}: {what}")

    if profile.match_criteria != EMAIL_MATCH and not _HANDLE.fullmatch(profile.match_criteria):
        add("match_criteria", "must be `email` or an identity handle (letters, digits, _ . : -)")
    if phone_exists is not None and phone_exists not in OMNEO_PHONE_EXISTS:
        add("phone_exists", f"must be one of {', '.join(OMNEO_PHONE_EXISTS)}")
    for name in OMNEO_READ_ONLY:
        if name in body:
            add(name, "is read-only in Omneo (it computes or owns it); leave it out")
    email = body.get("email")
    if not isinstance(email, str) or not email.strip():
        add("email", "is required (Omneo keys profiles by email)")
    elif not _EMAIL.fullmatch(email.strip()) or len(email) > MAX_TEXT:
        add("email", "is not an email address")
    for name in ("mobile_phone", "secondary_phone"):
        value = body.get(name)
        if value not in (None, "") and not (isinstance(value, str) and _E164.fullmatch(value)):
            add(name, "must be in E.164, like +61412345678 (use `| e164(country)` in the rule)")
    gender = body.get("gender")
    if gender not in (None, "") and gender not in OMNEO_GENDERS:
        add("gender", f"must be one of {', '.join(OMNEO_GENDERS)}")
    for name, (low, high) in BIRTH_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            add(name, "must be a whole number (use `| int` in the rule)")
        elif not low <= value <= high:
            add(name, f"must be between {low} and {high}")
    if not any(p.startswith("birth_") for p in found) and all(
            isinstance(body.get(n), int) for n in BIRTH_RANGES):
        try:
            date(body["birth_year"], body["birth_month"], body["birth_day"])
        except ValueError:
            add("birth_day", "the birth day, month and year are not a real date")
    for name in ("first_name", "last_name", "title", "company"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            add(name, f"must be text of at most {MAX_TEXT} characters")
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) and t for t in tags)):
        add("tags", "must be a list of names")
    _identities(profile, add)
    _comms(body.get("comms_attributes"), add)
    _custom_attributes(body.get("custom_attributes"), add)
    for name in ("address", "addresses"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict if name == "address" else list):
            add(name, "must be an object" if name == "address" else "must be a list of addresses")
    return found


def _identities(profile: Profile, add: Any) -> None:
    identities = profile.body.get("identities")
    if identities is None:
        if profile.match_criteria != EMAIL_MATCH:
            add("identities", f"matching on `{profile.match_criteria}` needs an identity with that handle")
        return
    if not isinstance(identities, list):
        add("identities", "must be a list of {handle, identifier}")
        return
    handles = []
    for n, identity in enumerate(identities):
        if not (isinstance(identity, dict) and isinstance(identity.get("handle"), str) and identity["handle"]
                and identity.get("identifier") not in (None, "")):
            add(f"identities.{n}", "needs a `handle` and an `identifier`")
            continue
        handles.append(identity["handle"])
    if len(set(handles)) != len(handles):
        add("identities", "two identities share a handle")
    if profile.match_criteria != EMAIL_MATCH and profile.match_criteria not in handles:
        add("identities", f"matching on `{profile.match_criteria}` needs an identity with that handle")


def _comms(comms: Any, add: Any) -> None:
    if comms is None:
        return
    if not isinstance(comms, dict):
        add("comms_attributes", "must be an object of flags")
        return
    for name, value in comms.items():
        if name in COMMS_TIMES:
            if not isinstance(value, str) or not value:
                add(f"comms_attributes.{name}", "must be the date and time the person decided")
        elif not isinstance(value, bool):
            add(f"comms_attributes.{name}", "must be true or false")
    for channel in ("email", "sms"):
        if f"{channel}_promo" in comms and f"{channel}_consent_updated_at" not in comms:
            add(f"comms_attributes.{channel}_consent_updated_at",
                f"is required with {channel}_promo when the person decided (Omneo's consent rules)")


def _custom_attributes(attributes: Any, add: Any) -> None:
    if attributes is None:
        return
    if not isinstance(attributes, list):
        add("custom_attributes", "must be a list")
        return
    for n, attribute in enumerate(attributes):
        if not (isinstance(attribute, dict) and all(attribute.get(k) not in (None, "") for k in ("namespace", "handle"))
                and attribute.get("type") in CUSTOM_ATTRIBUTE_TYPES and "value" in attribute):
            add(f"custom_attributes.{n}", "needs namespace, handle, value and a type "
                                          f"({', '.join(CUSTOM_ATTRIBUTE_TYPES)})")


def batches(profiles: Sequence[Profile], limit: int = OMNEO_MAX_PROFILES) -> list[list[Profile]]:
    """Profiles in batches: one `match_criteria` each, at most `limit`, no e-mail or mobile twice in one.

    A profile whose e-mail or mobile is already in a batch goes into a later one, in order, so that two
    writes of one person are applied in the order they came."""
    out: list[list[Profile]] = []
    seen: list[tuple[str, set[str], set[str]]] = []  # per batch: its match criteria, e-mails, mobiles
    for profile in profiles:
        email, mobile = profile.email, profile.mobile
        last = -1  # a profile never goes before a batch holding the same person
        for n, (_match, emails, mobiles) in enumerate(seen):
            if (email and email in emails) or (mobile and mobile in mobiles):
                last = n
        for n in range(last + 1, len(out)):
            match, emails, mobiles = seen[n]
            if match == profile.match_criteria and len(out[n]) < limit:
                break
        else:
            out.append([])
            seen.append((profile.match_criteria, set(), set()))
            n = len(out) - 1
        out[n].append(profile)
        if email:
            seen[n][1].add(email)
        if mobile:
            seen[n][2].add(mobile)
    return out
