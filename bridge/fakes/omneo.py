"""A fake Omneo Batch Profiles API (`POST /api/v3/profiles/batch`, alias `.json`), from docs/reference/apis.md 3.7.

Served under `/api`, as a tenant's API root is: point OMNEO_BASE_URL at `<fake url>/api`.

Enforced: `Authorization: Bearer <token>` (else 401 `{"message": "Unauthenticated."}`); a JSON object with
`match_criteria` and 1..500 `profiles`; per profile: an `email` of e-mail form, no e-mail or mobile twice in
one batch, `mobile_phone` / `secondary_phone` in E.164, `gender` in male|female|withheld|other,
`birth_day` / `birth_month` / `birth_year` integers, and for a `match_criteria` other than `email` an
identity with that handle. A mobile number another profile holds is `"The phone number exists"`. Problems
answer 422 in Laravel's shape, `{"message", "errors": {"profiles.<n>.<field>": ["..."]}}`, and nothing of the
batch is applied. Otherwise 202 `{"data": {"message": "Profiles queued for batch import.", "batch_id"}}`,
and each profile is matched (by e-mail, or by the identity named by `match_criteria`), created or updated.

Like Omneo, the fake then fires `profile.created` / `profile.updated` webhooks (`emit_to(url, secret)`):
the profile context itself as the body, `X-Omneo-Event` and `X-Omneo-Hmac-SHA256` (lowercase hex HMAC-SHA256
of the body). A new member gets the default tier, `welcome_points` and Omneo's default comms (every promo
flag off, no `*_consent_updated_at`: nobody decided). A `*_consent_updated_at` the API writes is kept in
Omneo's own form (`YYYY-MM-DD HH:MM:SS`, UTC). With `namespace_blocks`, events the API token caused are not
sent back, as a webhook namespace matching the token does (apis.md 3.2).

What happens in Omneo itself, outside the API, is driven through control routes, each answered once its
webhook was fired (every one of them fires, whatever `namespace_blocks` says: no API token caused it):
- `POST /_fake/omneo/members` `{"email", "first_name"?, "last_name"?}`: a member joins in Omneo (in store),
  with default comms; fires `profile.created`. Answers the profile.
- `POST /_fake/omneo/profiles/{id}/comms` `{"email_promo": bool, "at"?: ISO time}`: the member changes their
  e-mail choice in the preference centre: `email_promo`, `email_optout` (its opposite) and
  `email_consent_updated_at` (the time they acted, now by default); fires `profile.updated`.
- `POST /_fake/omneo/profiles/{id}/points` `{"points": int}`: points earned (a system change, no consent
  time); fires `profile.updated`.
- `DELETE /_fake/omneo/profiles/{id}`: the profile is deleted (a member's erasure); fires `profile.deleted`
  with the profile as it was, `profile_type` `deleted`.
Failures as for every fake (`/_fake/fail`: 401, 422, 429 with `Retry-After`, 5xx, a hang).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.fakes import formats
from bridge.fakes.control import FakeApi

MAX_PROFILES = 500
GENDERS = ("male", "female", "withheld", "other")
BIRTH_FIELDS = ("birth_day", "birth_month", "birth_year")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
DEFAULT_TIER = {"id": 1, "name": "Bronze", "handle": "bronze", "rank": 0, "is_default": True}
# A new profile's comms when nobody said anything: every promo flag off, and no `*_consent_updated_at`.
DEFAULT_COMMS = {"email_promo": False, "email_optout": False, "email_bounced": False, "sms_promo": False,
                 "sms_optout": False, "push_promo": False}
CONSENT_TIMES = ("email_consent_updated_at", "sms_consent_updated_at")


def omneo_time(value: str | datetime | None = None) -> str:
    """A time as Omneo writes it: `YYYY-MM-DD HH:MM:SS`, UTC, no zone (now when None; a time without a zone
    is taken as UTC)."""
    moment = datetime.now(UTC) if value is None else (
        datetime.fromisoformat(value) if isinstance(value, str) else value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class FakeOmneo(FakeApi):
    success_status: int = 202  # 200 or 202 is not documented (apis.md 3.7)
    retry_after: int | None = 1  # sent with a 429 of the fake's own rate limit
    welcome_points: int = 100
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> profile context
    batches: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # batch id -> (event, profile id)
    webhook_url: str | None = None
    webhook_secret: str = ""
    namespace_blocks: bool = False
    emitted: list[tuple[str, dict[str, Any], int | None]] = field(default_factory=list)  # (event, body, status)

    def reset_data(self) -> None:
        with self.lock:
            self.profiles.clear()
            self.batches.clear()
            self.emitted.clear()

    def emit_to(self, url: str | None, secret: str = "", *, namespace_blocks: bool = False) -> None:
        """Fire the profile webhooks at `url` (None: fire none), signed with `secret`."""
        with self.lock:
            self.webhook_url, self.webhook_secret, self.namespace_blocks = url, secret, namespace_blocks

    def too_many(self, reset: float) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return JSONResponse({"message": "Too Many Attempts."}, status_code=429, headers=headers)

    def by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            return next((p for p in self.profiles.values() if p["email"].lower() == email.lower()), None)

    # --- validation --------------------------------------------------------------------------

    def problems(self, body: Any) -> dict[str, list[str]]:
        """Laravel's `errors`: field -> messages; empty when the batch is valid."""
        if not isinstance(body, dict):
            return {"profiles": ["The request body must be a JSON object."]}
        errors: dict[str, list[str]] = {}
        match = body.get("match_criteria")
        if not isinstance(match, str) or not match:
            errors["match_criteria"] = ["The match criteria field is required."]
        profiles = body.get("profiles")
        if not isinstance(profiles, list) or not 1 <= len(profiles) <= MAX_PROFILES:
            errors["profiles"] = [f"The profiles must be a list of 1 to {MAX_PROFILES} items."]
            return errors
        emails: dict[str, int] = {}
        mobiles: dict[str, int] = {}
        for n, profile in enumerate(profiles):
            def add(name: str, message: str, n: int = n) -> None:
                errors.setdefault(f"profiles.{n}.{name}", []).append(message)

            if not isinstance(profile, dict):
                add("profile", "Each profile must be an object.")
                continue
            email = profile.get("email")
            if not isinstance(email, str) or not EMAIL.fullmatch(email):
                add("email", "The email must be a valid email address.")
            elif email.lower() in emails:
                add("email", "The email has a duplicate value in this batch.")
            else:
                emails[email.lower()] = n
            for name in ("mobile_phone", "secondary_phone"):
                value = profile.get(name)
                if value is not None and not formats.e164(value):
                    add(name, "The phone number must be in E.164 format.")
            mobile = profile.get("mobile_phone")
            if isinstance(mobile, str) and formats.e164(mobile):
                if mobile in mobiles:
                    add("mobile_phone", "The mobile phone has a duplicate value in this batch.")
                mobiles[mobile] = n
                holder = self._holder(mobile)
                if holder is not None and holder is not self._match(match, profile):
                    add("mobile_phone", "The phone number exists")
            gender = profile.get("gender")
            if gender is not None and gender not in GENDERS:
                add("gender", f"The selected gender is invalid (one of {', '.join(GENDERS)}).")
            for name in BIRTH_FIELDS:
                if name in profile and profile[name] is not None and not formats.integer(profile[name]):
                    add(name, f"The {name.replace('_', ' ')} must be an integer.")
            comms = profile.get("comms_attributes")
            comms = comms if isinstance(comms, dict) else {}
            for name in CONSENT_TIMES:
                if comms.get(name) not in (None, "") and not _is_time(comms[name]):
                    add(f"comms_attributes.{name}", f"The {name.replace('_', ' ')} is not a valid date.")
            if isinstance(match, str) and match != "email" and self._identity(profile, match) is None:
                add("identities", f"An identity with the handle {match} is required to match on it.")
        return errors

    def _holder(self, mobile: str) -> dict[str, Any] | None:
        with self.lock:
            return next((p for p in self.profiles.values() if p.get("mobile_phone") == mobile), None)

    @staticmethod
    def _identity(profile: dict[str, Any], handle: str) -> str | None:
        for identity in profile.get("identities") or []:
            if isinstance(identity, dict) and identity.get("handle") == handle and identity.get("identifier"):
                return str(identity["identifier"])
        return None

    def _match(self, match: Any, profile: dict[str, Any]) -> dict[str, Any] | None:
        if match == "email":
            return self.by_email(str(profile.get("email", "")))
        identifier = self._identity(profile, str(match))
        with self.lock:
            return next((p for p in self.profiles.values() if identifier is not None
                         and self._identity(p, str(match)) == identifier), None)

    # --- applying ---------------------------------------------------------------------------

    def _new_member(self, now: str) -> dict[str, Any]:
        """A profile as Omneo makes it (the caller holds the lock)."""
        member: dict[str, Any] = {"id": str(uuid.uuid4()), "first_name": "Unknown", "last_name": "Unknown",
                  "tier": dict(DEFAULT_TIER), "tier_handle": DEFAULT_TIER["handle"],
                  "point_balance": self.welcome_points, "reward_balance": 0.0, "identities": [],
                  "tags": [], "attributes": {"comms": dict(DEFAULT_COMMS)}, "created_at": now, "joined_at": now,
                  "profile_type": "active"}
        self.profiles[member["id"]] = member
        return member

    def apply(self, match: str, profiles: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """Create or update each profile; the webhooks that follow, as (event, profile context)."""
        fired = []
        now = omneo_time()
        for given in profiles:
            found = self._match(match, given)
            with self.lock:
                if found is None:
                    found = self._new_member(now)
                    event = "profile.created"
                else:
                    event = "profile.updated"
                _merge(found, given)
                found["updated_at"] = now
                fired.append((event, json.loads(json.dumps(found))))
        return fired

    # --- what happens in Omneo itself ------------------------------------------------------

    def join(self, email: str, first_name: str = "Unknown", last_name: str = "Unknown") -> tuple[str, dict[str, Any]]:
        """A member joins in Omneo (in store), with default comms: the `profile.created` to fire."""
        now = omneo_time()
        with self.lock:
            member = self._new_member(now)
            _merge(member, {"email": email, "first_name": first_name, "last_name": last_name})
            member["updated_at"] = now
            return "profile.created", json.loads(json.dumps(member))

    def choose_email(self, profile_id: str, email_promo: bool, at: str | None = None) -> tuple[str, dict[str, Any]]:
        """The member's e-mail choice in the preference centre, made at `at` (now by default): the
        `profile.updated` to fire. KeyError for an unknown profile."""
        with self.lock:
            member = self.profiles[profile_id]
            member["attributes"].setdefault("comms", {}).update(
                email_promo=email_promo, email_optout=not email_promo, email_consent_updated_at=omneo_time(at))
            member["updated_at"] = omneo_time()
            return "profile.updated", json.loads(json.dumps(member))

    def earn(self, profile_id: str, points: int) -> tuple[str, dict[str, Any]]:
        """Points earned (a system change: no consent time): the `profile.updated` to fire."""
        with self.lock:
            member = self.profiles[profile_id]
            member["point_balance"] = int(member.get("point_balance", 0)) + points
            member["updated_at"] = omneo_time()
            return "profile.updated", json.loads(json.dumps(member))

    def delete(self, profile_id: str) -> tuple[str, dict[str, Any]]:
        """The profile deleted: the `profile.deleted` to fire. KeyError for an unknown profile."""
        with self.lock:
            member = self.profiles.pop(profile_id)
            member.update(profile_type="deleted", updated_at=omneo_time())
            return "profile.deleted", json.loads(json.dumps(member))

    async def emit(self, fired: list[tuple[str, dict[str, Any]]], *, by_api: bool = True) -> None:
        """Fire the webhooks, in order; events the API token caused (`by_api`) are held back by a
        namespace that blocks them."""
        with self.lock:
            url, secret, blocked = self.webhook_url, self.webhook_secret, self.namespace_blocks and by_api
        if url is None or blocked:
            return
        async with httpx.AsyncClient(timeout=10) as client:
            for event, context in fired:
                body = json.dumps(context).encode()
                signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                try:
                    response = await client.post(url, content=body, headers={
                        "Content-Type": "application/json", "X-Omneo-Event": event,
                        "X-Omneo-Hmac-SHA256": signature})
                    status: int | None = response.status_code
                except httpx.HTTPError:
                    status = None
                with self.lock:
                    self.emitted.append((event, context, status))


def _is_time(value: Any) -> bool:
    try:
        omneo_time(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return isinstance(value, str)


def _merge(stored: dict[str, Any], given: dict[str, Any]) -> None:
    """A profile of the batch written into the stored one, as Omneo keeps it."""
    for name, value in given.items():
        if name == "comms_attributes" and isinstance(value, dict):
            comms = {key: omneo_time(v) if key in CONSENT_TIMES and isinstance(v, str) and v else v
                     for key, v in value.items()}
            stored.setdefault("attributes", {}).setdefault("comms", {}).update(comms)
        elif name == "identities" and isinstance(value, list):
            known = {(i.get("handle"), str(i.get("identifier"))) for i in stored.get("identities", [])}
            stored["identities"] = stored.get("identities", []) + [
                i for i in value if (i.get("handle"), str(i.get("identifier"))) not in known]
        elif name == "tags" and isinstance(value, list):
            stored["tags"] = [{"handle": t, "name": t} for t in value]
            stored["flattened_tags"] = list(value)
        else:
            stored[name] = value
    if stored.get("mobile_phone"):
        stored["mobile_phone_e164"] = stored["mobile_phone"]
    stored["full_name"] = f"{stored.get('first_name', '')} {stored.get('last_name', '')}".strip()


def create_omneo_app(
    api_token: str = "omneo-test-token",
    *,
    requests_per_minute: int = 600,
    retry_after: int | None = 1,
    success_status: int = 202,
    emit_delay: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    fake = FakeOmneo("omneo", api_token, requests_per_minute, 60.0, clock, retry_after=retry_after,
                     success_status=success_status)
    tasks: set[asyncio.Task[None]] = set()  # the webhooks under way (held, so they are not collected)

    async def batch(request: Request) -> Response:
        async def checked(request: Request, body: Any) -> Response:
            if request.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return JSONResponse({"message": "Unauthenticated."}, status_code=401)
            errors = fake.problems(body)
            if errors:
                return JSONResponse({"message": "The given data was invalid.", "errors": errors}, status_code=422)
            fired = fake.apply(body["match_criteria"], body["profiles"])
            batch_id = str(uuid.uuid4())
            with fake.lock:
                fake.batches[batch_id] = [(event, context["id"]) for event, context in fired]

            async def later() -> None:
                await asyncio.sleep(emit_delay)  # queued: the webhooks follow the answer
                await fake.emit(fired)

            task = asyncio.get_running_loop().create_task(later())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            return JSONResponse({"data": {"message": "Profiles queued for batch import.", "batch_id": batch_id}},
                                status_code=fake.success_status)

        return await fake.handle(request, checked)

    async def in_omneo(request: Request, change: Callable[[Any], tuple[str, dict[str, Any]]]) -> Response:
        """A change made in Omneo itself: applied, its webhook fired, then the profile answered."""
        try:
            body = await request.json() if request.method == "POST" else {}
            fired = change(body if isinstance(body, dict) else {})
        except KeyError:
            return JSONResponse({"message": "No such profile or field."}, status_code=404)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": f"Bad request: {exc}"}, status_code=400)
        await fake.emit([fired], by_api=False)
        return JSONResponse(fired[1])

    async def join(request: Request) -> Response:
        return await in_omneo(request, lambda b: fake.join(str(b["email"]), str(b.get("first_name", "Unknown")),
                                                           str(b.get("last_name", "Unknown"))))

    async def comms(request: Request) -> Response:
        profile_id = request.path_params["profile_id"]
        return await in_omneo(request, lambda b: fake.choose_email(profile_id, bool(b["email_promo"]), b.get("at")))

    async def points(request: Request) -> Response:
        profile_id = request.path_params["profile_id"]
        return await in_omneo(request, lambda b: fake.earn(profile_id, int(b["points"])))

    async def delete(request: Request) -> Response:
        profile_id = request.path_params["profile_id"]
        return await in_omneo(request, lambda _: fake.delete(profile_id))

    app = Starlette(routes=[
        Route("/api/v3/profiles/batch", batch, methods=["POST"]),
        Route("/api/v3/profiles/batch.json", batch, methods=["POST"]),
        Route("/_fake/omneo/members", join, methods=["POST"]),
        Route("/_fake/omneo/profiles/{profile_id}/comms", comms, methods=["POST"]),
        Route("/_fake/omneo/profiles/{profile_id}/points", points, methods=["POST"]),
        Route("/_fake/omneo/profiles/{profile_id}", delete, methods=["DELETE"]),
        *fake.routes(),
    ])
    app.state.fake = fake
    return app
