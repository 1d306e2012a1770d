"""The shop → Omneo → bridge loop never turns a default into an unsubscribe (issue 29).

A signed Shopify customer webhook reaches the real app; then Omneo's profile webhooks that the round trip
produces (tests/e2e/omneo_echo.py: what Omneo sends back) are posted, signed, to the same app; the
assertions read what the fake Omnisend and Ometria accepted. Consent is allowed for both (`bridge_env`).
Each test runs on SQLite and on PostgreSQL (skipped with the reason when no server can be started)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.consent import contact_fingerprint
from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .omneo_echo import omneo_sends_back, preference_centre, signed
from .received import ometria_records, omnisend_contacts


class LoopBridge(BridgeProcess):
    """`bridge serve` on SQLite, or on PostgreSQL when `database_url` is set; `query` reads either."""

    database_url: str = ""

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if not self.database_url:
            return super().query(sql, *params)
        with psycopg.connect(self.database_url) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params or None).fetchall()]


@pytest.fixture(params=["sqlite", "postgres"])
def bridge(request: pytest.FixtureRequest, tmp_path: Path, fakes: Fakes) -> Iterator[LoopBridge]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    process = LoopBridge(tmp_path, bridge_env(fakes, **({"BRIDGE_DATABASE_URL": url} if url else {})))
    process.database_url = url
    process.start()
    yield process
    process.stop()


CUSTOMER = json.loads((ROOT / "tests" / "payloads" / "shopify" / "customers_create.json").read_text())
EMAIL = CUSTOMER["email"].lower()


def email_status(fakes: Fakes, email: str = EMAIL) -> str | None:
    contact = fakes.omnisend.contacts.get(email)
    for identifier in (contact or {}).get("identifiers", []):
        if identifier["id"] == email:
            return str(identifier["channels"]["email"]["status"])
    return None


def optins(fakes: Fakes) -> list[str]:
    """Every `marketing_optin` Ometria accepted, in order."""
    return [r["marketing_optin"] for r in ometria_records(fakes, "contact") if "marketing_optin" in r]


def settled(bridge: BridgeProcess) -> bool:
    """Every event mapped and every message delivered."""
    waiting = bridge.query("SELECT count(*) FROM events WHERE status = 'received'")[0][0]
    open_ = bridge.query("SELECT count(*) FROM messages WHERE state NOT IN ('delivered', 'dead')")[0][0]
    return waiting == 0 and open_ == 0


def post_omneo(bridge: BridgeProcess, topic: str, body: dict[str, Any]) -> None:
    raw, headers = signed(topic, body)
    assert bridge.post("omneo", raw, headers).status_code == 200
    wait_until(lambda: settled(bridge))


def subscribe_at_the_shop(bridge: BridgeProcess, fakes: Fakes) -> None:
    raw = json.dumps(CUSTOMER).encode()
    assert bridge.post("shopify", raw, shopify_headers(raw, SHOPIFY_SECRET, "customers/create")).status_code == 200
    wait_until(lambda: email_status(fakes) == "subscribed" and optins(fakes) == ["EXPLICITLY_OPTEDIN"])
    wait_until(lambda: settled(bridge))


def omneo_consent_messages(bridge: BridgeProcess) -> int:
    """Consent messages the bridge queued from Omneo's webhooks."""
    return int(bridge.query("SELECT count(*) FROM messages JOIN events ON events.id = messages.event_id"
                            " WHERE events.source = 'omneo' AND messages.areas LIKE '%consent%'")[0][0])


def test_a_subscribed_customer_enrolled_without_consent_for_omneo_stays_subscribed(
        bridge: BridgeProcess, fakes: Fakes) -> None:
    subscribe_at_the_shop(bridge, fakes)
    [(topic, profile)] = omneo_sends_back(CUSTOMER, consent_to_omneo=False)
    assert profile["attributes"]["comms"]["email_promo"] is False  # Omneo's default, which nobody chose
    post_omneo(bridge, topic, profile)
    # later Omneo updates about the same member (points, tier) carry the same default
    post_omneo(bridge, "profile.updated", {**profile, "point_balance": 120,
                                           "updated_at": (datetime.now(UTC) + timedelta(minutes=5))
                                           .strftime("%Y-%m-%d %H:%M:%S")})
    assert email_status(fakes) == "subscribed"
    assert optins(fakes) == ["EXPLICITLY_OPTEDIN"]
    assert omneo_consent_messages(bridge) == 0
    assert all(c["identifiers"][0]["channels"]["email"]["status"] == "subscribed" for c in omnisend_contacts(fakes)
               if c["identifiers"][0]["type"] == "email")
    omneo_details = [r for r in ometria_records(fakes, "contact") if r["id"] == f"omneo-{profile['id']}"]
    assert omneo_details and all("marketing_optin" not in r for r in omneo_details)  # the details still flow
    assert "consent.not_sent" in bridge.logs() and EMAIL not in bridge.logs()


def test_a_subscribed_customer_enrolled_with_consent_for_omneo_stays_subscribed_everywhere(
        bridge: BridgeProcess, fakes: Fakes) -> None:
    subscribe_at_the_shop(bridge, fakes)
    [(topic, profile)] = omneo_sends_back(CUSTOMER, consent_to_omneo=True)
    comms = profile["attributes"]["comms"]
    assert comms["email_promo"] is True and comms["email_consent_updated_at"] == "2025-03-01 22:14:21"
    post_omneo(bridge, topic, profile)
    assert email_status(fakes) == "subscribed"
    assert set(optins(fakes)) == {"EXPLICITLY_OPTEDIN"}
    assert omneo_consent_messages(bridge) == 0  # the bridge's own decision coming back is no change


def test_an_unsubscribe_in_omneos_preference_centre_reaches_both(bridge: BridgeProcess, fakes: Fakes) -> None:
    subscribe_at_the_shop(bridge, fakes)
    [(topic, profile)] = omneo_sends_back(CUSTOMER, consent_to_omneo=False)
    post_omneo(bridge, topic, profile)
    assert email_status(fakes) == "subscribed"
    post_omneo(bridge, *preference_centre(profile, email_promo=False, at=datetime.now(UTC) + timedelta(minutes=1)))
    assert email_status(fakes) == "unsubscribed"
    assert optins(fakes)[-1] == "EXPLICITLY_OPTEDOUT"
    [decided] = [r for r in wait_until(lambda: _records(bridge)) if r[:2] == ("email", "omneo")]
    assert decided[2] == 0  # no longer subscribed, the newer decision kept
    # the same Shopify webhook delivered again (an older decision) changes nothing
    again = dict(CUSTOMER, updated_at="2026-11-19T18:30:00+11:00")
    raw = json.dumps(again).encode()
    assert bridge.post("shopify", raw, shopify_headers(raw, SHOPIFY_SECRET, "customers/update")).status_code == 200
    wait_until(lambda: settled(bridge) and bridge.query("SELECT count(*) FROM events")[0][0] == 4)
    assert email_status(fakes) == "unsubscribed" and optins(fakes)[-1] == "EXPLICITLY_OPTEDOUT"


def test_a_profile_created_in_omneo_with_default_comms_sends_no_consent_anywhere(
        bridge: BridgeProcess, fakes: Fakes) -> None:
    member = dict(CUSTOMER, email="new.member@example.org", email_marketing_consent=None)
    [(topic, profile)] = omneo_sends_back(member, consent_to_omneo=False)
    post_omneo(bridge, topic, profile)
    wait_until(lambda: "new.member@example.org" in fakes.omnisend.contacts)
    assert email_status(fakes, "new.member@example.org") == "nonSubscribed"  # created by the details, no status
    assert fakes.omnisend.accepted("/v3/contacts") == []  # the consent route was never called
    assert optins(fakes) == []
    assert all("marketing_optin" not in r and "channels" not in r for r in ometria_records(fakes, "contact"))
    assert omneo_consent_messages(bridge) == 0


def _records(bridge: BridgeProcess) -> list[tuple[Any, ...]]:
    return bridge.query("SELECT channel, source, subscribed, decided_at FROM consent WHERE contact = ?",
                        contact_fingerprint(EMAIL))
