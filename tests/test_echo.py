"""Omneo's echo of the bridge's own write is recognised before mapping, and nothing else is."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bridge import echo
from bridge.model import Webhook
from bridge.settings import Settings
from bridge.store import SQLiteStore
from bridge.worker import Worker
from tests.test_worker import Holder, OneRule, ScriptedDestination

SENT = {"email": "Jane.Citizen@Example.com", "first_name": "Jane", "last_name": "Citizen",
        "mobile_phone": "+61412345678", "birth_day": 14, "birth_month": 6, "birth_year": 1991,
        "identities": [{"handle": "shopify_id", "identifier": "42"}]}
# The profile context Omneo sends back: every field of the profile, text where the bridge sent numbers.
ECHOED = {"id": "9a5f", "email": "jane.citizen@example.com", "first_name": "Jane", "last_name": "Citizen",
          "mobile_phone": "+61412345678", "mobile_phone_e164": "+61412345678", "birth_day": "14", "birth_month": "6",
          "birth_year": "1991", "gender": "female", "tier": {"name": "Bronze"}, "point_balance": 100,
          "identities": [{"handle": "shopify_id", "identifier": "42"}], "updated_at": "2026-11-20 10:00:00"}


def remembered(profile: dict[str, Any], now: float) -> dict[str, Any]:
    return {p.key: p for p in echo.sent_prints(profile, now)}


def test_the_echo_of_what_was_sent_is_recognised() -> None:
    prints = remembered(SENT, 1000.0)
    assert len(prints) == 2 and all(len(key) > 60 for key in prints)  # e-mail and identity, hashed
    assert "jane" not in json.dumps([p.__dict__ for p in prints.values()]).lower()  # no personal data kept
    assert echo.is_echo(ECHOED, prints, 1010.0, 3600)


def test_a_change_a_person_made_is_not_an_echo() -> None:
    prints = remembered(SENT, 1000.0)
    assert not echo.is_echo({**ECHOED, "last_name": "Smith"}, prints, 1010.0, 3600)
    assert not echo.is_echo({**ECHOED, "mobile_phone": None, "mobile_phone_e164": None}, prints, 1010.0, 3600)


def test_a_consent_decision_made_after_the_write_is_never_an_echo() -> None:
    from datetime import UTC, datetime

    def at(seconds: float) -> str:  # as Omneo writes its times
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")

    written = 1_790_000_000.0
    prints = remembered(SENT, written)  # details only: no consent written
    history = {"email_promo": True, "email_optout": False, "email_consent_updated_at": at(written - 86400)}
    assert echo.is_echo({**ECHOED, "attributes": {"comms": history}}, prints, written + 5, 3600)
    # the member unsubscribed in the preference centre after the write: a decision, mapped as one
    chosen = {"email_promo": False, "email_optout": True, "email_consent_updated_at": at(written + 2)}
    assert not echo.is_echo({**ECHOED, "attributes": {"comms": chosen}}, prints, written + 5, 3600)
    # Omneo's clock a little behind the bridge's still counts as after
    chosen_early = {**chosen, "email_consent_updated_at": at(written - 60)}
    assert not echo.is_echo({**ECHOED, "attributes": {"comms": chosen_early}}, prints, written + 5, 3600)
    assert not echo.is_echo({**ECHOED, "attributes": {"comms": {"sms_consent_updated_at": at(written)}}}, prints,
                            written + 5, 3600)


def test_the_consent_the_bridge_wrote_coming_back_is_an_echo_in_omneos_form() -> None:
    sent = {"email": "jane.citizen@example.com",
            "comms_attributes": {"email_promo": True, "email_consent_updated_at": "2025-03-02T09:14:21+11:00"}}
    prints = remembered(sent, 1000.0)
    comms = {"email_promo": True, "email_optout": False, "email_consent_updated_at": "2025-03-01 22:14:21"}
    assert echo.is_echo({**ECHOED, "attributes": {"comms": comms}}, prints, 1010.0, 3600)
    later = {**comms, "email_consent_updated_at": "2025-03-01 22:14:22"}  # another decision, the same flag
    assert not echo.is_echo({**ECHOED, "attributes": {"comms": later}}, prints, 1010.0, 3600)


def test_after_the_window_nothing_is_an_echo() -> None:
    assert not echo.is_echo(ECHOED, remembered(SENT, 1000.0), 1000.0 + 3601, 3600)


def test_an_identity_finds_the_profile_when_the_email_changed_elsewhere() -> None:
    sent = {**SENT, "email": "old@example.com"}
    prints = {k: v for k, v in remembered(sent, 1000.0).items() if k.startswith("identity:")}
    assert not echo.is_echo(ECHOED, prints, 1010.0, 3600)  # the e-mail was compared, and it differs
    assert echo.is_echo({**ECHOED, "email": "OLD@example.com"}, prints, 1010.0, 3600)


def test_the_worker_records_an_echo_and_maps_nothing(tmp_path: Any) -> None:
    async def go() -> None:
        store = SQLiteStore(tmp_path / "bridge.db")
        await store.open()
        try:
            settings = Settings()
            worker = Worker(settings, store, Holder(OneRule()), {"omnisend": ScriptedDestination("omnisend")},
                            clock=lambda: 1010.0)
            await store.remember_sent(echo.sent_prints(SENT, 1000.0))
            for n, (topic, body) in enumerate([("profile.updated", ECHOED), ("profile.created", ECHOED),
                                               ("profile.updated", {**ECHOED, "first_name": "Janet"})]):
                payload = json.dumps({**body, "id": n}).encode()
                await store.ingest(Webhook("omneo", topic, f"k{n}", payload))
            assert await worker.map_once() == 3
            rows = store.reader().execute("SELECT topic, status FROM events ORDER BY id").fetchall()
            assert [tuple(r) for r in rows] == [("profile.updated", "echo"), ("profile.created", "mapped"),
                                                ("profile.updated", "mapped")]
            counts = store.reader().execute("SELECT event_id, count(*) FROM messages GROUP BY event_id").fetchall()
            assert [tuple(r) for r in counts] == [(2, 1), (3, 1)]
        finally:
            await store.close()

    asyncio.run(go())
