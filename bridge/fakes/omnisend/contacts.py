"""Contacts as the fake Omnisend checks them: an event's `contact`, a v3 contact, and a 2026
`ContactRequest` (apis.md 1.2, 1.6)."""

from __future__ import annotations

from typing import Any

from bridge.fakes import formats
from bridge.fakes.omnisend.errors import Problems

CHANNEL_STATUSES = {"subscribed", "unsubscribed", "nonSubscribed"}
IDENTIFIER_CHANNELS = {"email": "email", "phone": "sms"}  # identifier type -> its key under `channels`
# contactDto.Contact maxLength (apis.md 1.2), written out here: the fake does not take the bridge's word.
CONTACT_MAX_LENGTHS = {"phone": 15, "firstName": 50, "lastName": 50, "address": 500, "city": 100, "state": 100,
                       "country": 100, "countryCode": 3, "postalCode": 20}
# contact optIns / optOuts / consents: at most this many entries, and the text limits of each entry.
CONTACT_LISTS = {"optIns": (10, {"source": 100}), "optOuts": (10, {"reason": 100, "source": 100}),
                 "consents": (100, {"source": 100, "userAgent": 200})}


def profile_problems(contact: dict[str, Any]) -> Problems:
    """What an event's `contact` and a 2026 `ContactRequest` share: `birthdate` YYYY-MM-DD, `gender` m|f,
    at most 100 `tags` (text), `customProperties` an object."""
    errors: Problems = []
    if contact.get("birthdate") is not None and not formats.ymd(contact["birthdate"]):
        errors.append({"field": "birthdate", "code": "invalid_format", "message": "birthdate must be YYYY-MM-DD"})
    if contact.get("gender") not in (None, "m", "f"):
        errors.append({"field": "gender", "code": "invalid_value", "message": "gender must be m or f"})
    tags = contact.get("tags")
    if tags is not None and (not isinstance(tags, list) or len(tags) > 100
                             or not all(isinstance(tag, str) for tag in tags)):
        errors.append({"field": "tags", "code": "invalid_value", "message": "tags must be at most 100 strings"})
    if contact.get("customProperties") is not None and not isinstance(contact["customProperties"], dict):
        errors.append({"field": "customProperties", "code": "invalid_type",
                       "message": "customProperties must be an object"})
    return errors


def contact_problems(contact: dict[str, Any]) -> Problems:
    """An event's `contact` against contactDto.Contact (apis.md 1.2)."""
    errors: Problems = []

    def wrong(name: str, code: str, message: str) -> None:
        errors.append({"field": f"contact.{name}", "code": code, "message": message})

    for name, limit in CONTACT_MAX_LENGTHS.items():
        if isinstance(contact.get(name), str) and len(contact[name]) > limit:
            wrong(name, "too_long", f"{name} is at most {limit} characters")
    if contact.get("phone") is not None and not formats.e164(contact["phone"]):
        wrong("phone", "invalid_format", "phone must be E.164, like +1234567890")
    errors += [{**problem, "field": f"contact.{problem['field']}"} for problem in profile_problems(contact)]
    for name, (most, limits) in CONTACT_LISTS.items():
        entries = contact.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or len(entries) > most:
            wrong(name, "invalid_value", f"{name} must be a list of at most {most} entries")
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                wrong(f"{name}.{i}", "invalid_type", "must be an object")
                continue
            for key, limit in limits.items():
                if isinstance(entry.get(key), str) and len(entry[key]) > limit:
                    wrong(f"{name}.{i}.{key}", "too_long", f"{key} is at most {limit} characters")
            # The channel values are listed for optIns only (email | sms); consents' createdAt is RFC 3339.
            if name == "optIns" and entry.get("channel") not in ("email", "sms"):
                wrong(f"{name}.{i}.channel", "invalid_value", "channel must be email or sms")
            if name == "consents" and entry.get("createdAt") is not None and not formats.rfc3339(entry["createdAt"]):
                wrong(f"{name}.{i}.createdAt", "invalid_format", "createdAt must be RFC 3339")
    return errors


def country_code(record: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    code = record.get("countryCode")
    if code is None or (isinstance(code, str) and len(code) == 2):
        return {}
    return {f"{prefix}countryCode": ["must be 2 characters"]}


def contact_errors(record: dict[str, Any]) -> dict[str, list[str]]:
    """A v3 contact (`POST /v3/contacts`, a v3 batch item): field -> what is wrong."""
    identifiers = record.get("identifiers")
    if not isinstance(identifiers, list) or not identifiers:
        return {"identifiers": ["field required"]}
    fields: dict[str, list[str]] = {}
    for i, ident in enumerate(identifiers):
        if not isinstance(ident, dict):
            fields[f"identifiers.{i}"] = ["must be an object"]
            continue
        for name in ("type", "id", "channels"):
            if ident.get(name) in (None, "", {}):
                fields[f"identifiers.{i}.{name}"] = ["field required"]
        if ident.get("type") not in (None, "email", "phone"):
            fields[f"identifiers.{i}.type"] = ["must be email or phone"]
        fields.update(channels(ident, f"identifiers.{i}.channels"))
    if record.get("gender") not in (None, "m", "f"):
        fields["gender"] = ["must be m or f"]
    if record.get("birthdate") is not None and not formats.ymd(record["birthdate"]):
        fields["birthdate"] = ["must be YYYY-MM-DD"]
    if record.get("sendWelcomeEmail") is not None and not formats.boolean(record["sendWelcomeEmail"]):
        fields["sendWelcomeEmail"] = ["must be true or false"]
    fields.update(country_code(record))
    return fields


def channels(identifier: dict[str, Any], where: str) -> dict[str, list[str]]:
    """`channels` of a v3 contact identifier: `email` for an email, `sms` for a phone (apis.md 1.6), each
    with a `status` of subscribed, unsubscribed or nonSubscribed. The phone's form is not documented
    for v3 identifiers (only for event contacts), so it is not checked here."""
    channels = identifier.get("channels")
    if not isinstance(channels, dict) or not channels:
        return {}  # missing: reported as required above
    fields: dict[str, list[str]] = {}
    expected = IDENTIFIER_CHANNELS.get(identifier.get("type"))  # type: ignore[arg-type]
    if expected is not None and set(channels) != {expected}:
        fields[where] = [f"a {identifier['type']} identifier takes the `{expected}` channel"]
    for name, channel in channels.items():
        status = channel.get("status") if isinstance(channel, dict) else None
        if not isinstance(channel, dict) or status not in (None, *CHANNEL_STATUSES):
            fields[f"{where}.{name}.status"] = ["must be one of " + ", ".join(sorted(CHANNEL_STATUSES))]
    return fields


CONTACT_REQUEST_TEXT = ("firstName", "lastName", "address", "city", "state", "country", "postalCode", "createdAt")


def contact_request_problems(record: Any, *, creating: bool) -> Problems:
    """`ContactRequest` of the 2026 line (`POST /api/contacts`, `PATCH /api/contacts?email=`): identifiers
    need `id` and `type`; `channels` are optional, but a channel given needs its `status`; a phone
    identifier is E.164; `countryCode` ISO alpha-2, `birthdate` YYYY-MM-DD, `gender` m|f, `tags` at most
    100, `customProperties` an object. A creation needs an email identifier (Omnisend upserts by email)."""
    if not isinstance(record, dict):
        return [{"field": "", "code": "invalid_type", "message": "body must be an object"}]
    errors: Problems = []

    def wrong(name: str, code: str, message: str) -> None:
        errors.append({"field": name, "code": code, "message": message})

    identifiers = record.get("identifiers")
    if identifiers is not None and not isinstance(identifiers, list):
        wrong("identifiers", "invalid_type", "identifiers must be a list")
        identifiers = []
    for i, ident in enumerate(identifiers or []):
        where = f"identifiers.{i}"
        if not isinstance(ident, dict):
            wrong(where, "invalid_type", "must be an object")
            continue
        for name in ("id", "type"):
            if not formats.text(ident.get(name)):
                wrong(f"{where}.{name}", "required", f"{name} is required")
        if ident.get("type") not in (None, "email", "phone"):
            wrong(f"{where}.type", "invalid_value", "type must be email or phone")
        if ident.get("type") == "phone" and not formats.e164(ident.get("id")):
            wrong(f"{where}.id", "invalid_format", "a phone must be E.164, like +1234567890")
        channels = ident.get("channels")
        if channels is not None:
            for name, channel in (channels.items() if isinstance(channels, dict) else [("", None)]):
                if not isinstance(channel, dict) or channel.get("status") not in CHANNEL_STATUSES:
                    wrong(f"{where}.channels.{name}.status", "required",
                          "status is required: " + ", ".join(sorted(CHANNEL_STATUSES)))
    if creating and not any(isinstance(i, dict) and i.get("type") == "email" for i in identifiers or []):
        wrong("identifiers", "required", "an email identifier is required to create a contact")
    for name in CONTACT_REQUEST_TEXT:
        if name in record and not isinstance(record[name], str):
            wrong(name, "invalid_type", f"{name} must be a string")
    if record.get("countryCode") is not None and not (isinstance(record["countryCode"], str)
                                                      and len(record["countryCode"]) == 2):
        wrong("countryCode", "invalid_format", "countryCode must be ISO 3166-1 alpha-2")
    return errors + profile_problems(record)
