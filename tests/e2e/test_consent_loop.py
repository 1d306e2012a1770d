"""The shop → Omneo → bridge loop never turns a default into an unsubscribe (issue 29), on the real loop.

A signed Shopify customer webhook reaches the real app; the bridge enrols the customer in the fake Omneo
(`POST /api/v3/profiles/batch`); the fake fires its `profile.created` / `profile.updated` back to the app,
signed as Omneo signs them; what members do in Omneo itself (the preference centre, points, joining in
store) goes through the fake's control routes, which fire their webhooks the same way. The assertions read
what the fake Omnisend and Ometria accepted. Consent is allowed for both (`bridge_env`); for Omneo as each
test says. Each test runs on SQLite and on PostgreSQL (skipped with the reason when no server can be
started)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bridge.consent import contact_fingerprint
from bridge.fakes import create_omneo_app, serve_in_thread
from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import OMNEO_SECRET, ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import ometria_records, omnisend_contacts

OMNEO_TOKEN = "omneo-e2e-token-29"
CUSTOMER = json.loads((ROOT / "tests" / "payloads" / "shopify" / "customers_create.json").read_text())
EMAIL = CUSTOMER["email"].lower()


class LoopBridge(BridgeProcess):
    """`bridge serve` on SQLite, or on PostgreSQL when `database_url` is set; `query` reads either."""

    database_url: str = ""

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if not self.database_url:
            return super().query(sql, *params)
        with psycopg.connect(self.database_url) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params or None).fetchall()]


class Loop:
    """The bridge, the fake Omneo it writes to and that writes back, and the other fakes."""

    def __init__(self, bridge: LoopBridge, omneo: Any, omneo_url: str, fakes: Fakes) -> None:
        self.bridge, self.omneo, self.omneo_url, self.fakes = bridge, omneo, omneo_url, fakes

    def in_omneo(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A change made in Omneo itself (POST with a body, DELETE without); answered once its webhook reached
        the bridge. Waits for it to settle."""
        response = httpx.request("POST" if body is not None else "DELETE", f"{self.omneo_url}/_fake/omneo{path}",
                                 json=body, timeout=10)
        assert response.status_code == 200, response.text
        assert self.omneo.emitted[-1][2] == 200  # the bridge took the webhook
        wait_until(lambda: settled(self.bridge))
        return dict(response.json())


@pytest.fixture(params=["sqlite", "postgres"])
def start_loop(request: pytest.FixtureRequest, tmp_path: Path, fakes: Fakes) -> Iterator[Callable[[str], Loop]]:
    """Start the loop with OMNEO_AREAS as given."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    app = create_omneo_app(OMNEO_TOKEN, emit_delay=0.05)
    started: list[LoopBridge] = []
    with serve_in_thread(app) as omneo_url:
        def start(omneo_areas: str) -> Loop:
            env = bridge_env(fakes, OMNEO_API_TOKEN=OMNEO_TOKEN, OMNEO_BASE_URL=f"{omneo_url}/api",
                             OMNEO_BATCH_LINGER_SECONDS="0.05", OMNEO_REQUESTS_PER_MINUTE="600",
                             OMNEO_AREAS=omneo_areas, **({"BRIDGE_DATABASE_URL": url} if url else {}))
            process = LoopBridge(tmp_path, env)
            process.database_url = url
            started.append(process)
            process.start()
            app.state.fake.emit_to(f"{process.url}/webhooks/omneo", OMNEO_SECRET)
            return Loop(process, app.state.fake, omneo_url, fakes)

        try:
            yield start
        finally:
            for process in started:
                process.stop()


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


def omneo_events(bridge: BridgeProcess) -> list[tuple[str, str]]:
    return [(t, s) for t, s in bridge.query("SELECT topic, status FROM events WHERE source = 'omneo' ORDER BY id")]


def subscribe_at_the_shop(loop: Loop, *, omneo_writes: int) -> dict[str, Any]:
    """The subscribed Shopify customer signs up; the bridge enrols them in Omneo (`omneo_writes` batch
    items), and Omneo's webhooks come back and are mapped. Omneo's profile as it now is."""
    raw = json.dumps(CUSTOMER).encode()
    assert loop.bridge.post("shopify", raw, shopify_headers(raw, SHOPIFY_SECRET, "customers/create")).status_code == 200
    wait_until(lambda: email_status(loop.fakes) == "subscribed" and optins(loop.fakes) == ["EXPLICITLY_OPTEDIN"])
    wait_until(lambda: len(loop.omneo.emitted) == omneo_writes and all(s == 200 for _, _, s in loop.omneo.emitted))
    wait_until(lambda: settled(loop.bridge))
    profile = loop.omneo.by_email(EMAIL)
    assert profile is not None
    return dict(profile)


def omneo_consent_messages(bridge: BridgeProcess) -> int:
    """Consent messages the bridge queued from Omneo's webhooks."""
    return int(bridge.query("SELECT count(*) FROM messages JOIN events ON events.id = messages.event_id"
                            " WHERE events.source = 'omneo' AND messages.areas LIKE '%consent%'")[0][0])


def omneo_member(fakes: Fakes, profile_id: str) -> list[dict[str, Any]]:
    return [r for r in ometria_records(fakes, "contact") if r["id"] == f"omneo-{profile_id}"]


def test_a_subscribed_customer_enrolled_without_consent_for_omneo_stays_subscribed(
        start_loop: Callable[[str], Loop]) -> None:
    loop = start_loop("contacts")
    fakes, bridge = loop.fakes, loop.bridge
    profile = subscribe_at_the_shop(loop, omneo_writes=1)
    [(topic, created, _)] = loop.omneo.emitted
    assert topic == "profile.created"
    comms = created["attributes"]["comms"]
    assert comms["email_promo"] is False and "email_consent_updated_at" not in comms  # a default nobody chose
    # later Omneo updates about the same member (points) carry the same default, and are not taken for echoes
    loop.in_omneo(f"/profiles/{profile['id']}/points", {"points": 20})
    wait_until(lambda: any(r["properties"].get("point_balance") == 120 for r in omneo_member(fakes, profile["id"])))
    assert omneo_events(bridge) == [("profile.created", "mapped"), ("profile.updated", "mapped")]
    assert email_status(fakes) == "subscribed"
    assert optins(fakes) == ["EXPLICITLY_OPTEDIN"]
    assert omneo_consent_messages(bridge) == 0
    assert all(c["identifiers"][0]["channels"]["email"]["status"] == "subscribed" for c in omnisend_contacts(fakes)
               if c["identifiers"][0]["type"] == "email")
    assert all("marketing_optin" not in r for r in omneo_member(fakes, profile["id"]))  # the details still flow
    assert "consent.not_sent" in bridge.logs() and EMAIL not in bridge.logs()


def test_a_subscribed_customer_enrolled_with_consent_for_omneo_stays_subscribed_everywhere(
        start_loop: Callable[[str], Loop]) -> None:
    loop = start_loop("contacts,consent")
    fakes, bridge = loop.fakes, loop.bridge
    subscribe_at_the_shop(loop, omneo_writes=2)  # the details, then the customer's decision
    sent = loop.omneo.accepted("/api/v3/profiles/batch")[1].body["profiles"][0]
    assert sent["comms_attributes"] == {"email_promo": True, "email_consent_updated_at": "2025-03-02T09:14:21+11:00"}
    [(_, _, _), (topic, updated, _)] = loop.omneo.emitted
    comms = updated["attributes"]["comms"]
    assert topic == "profile.updated"
    assert comms["email_promo"] is True and comms["email_consent_updated_at"] == "2025-03-01 22:14:21"
    assert email_status(fakes) == "subscribed"
    assert set(optins(fakes)) == {"EXPLICITLY_OPTEDIN"}
    assert omneo_events(bridge) == [("profile.created", "mapped"), ("profile.updated", "echo")]
    assert omneo_consent_messages(bridge) == 0  # the bridge's own decision coming back is no change


@pytest.mark.parametrize("omneo_areas", ["contacts", "contacts,consent"])
def test_an_unsubscribe_in_omneos_preference_centre_reaches_both(start_loop: Callable[[str], Loop],
                                                                 omneo_areas: str) -> None:
    loop = start_loop(omneo_areas)
    fakes, bridge = loop.fakes, loop.bridge
    profile = subscribe_at_the_shop(loop, omneo_writes=2 if "consent" in omneo_areas else 1)
    assert email_status(fakes) == "subscribed"
    # the member unsubscribes in Omneo's preference centre, right after the bridge's write (within the echo
    # window): the flag changes, with the time they acted
    chosen = loop.in_omneo(f"/profiles/{profile['id']}/comms", {"email_promo": False})
    assert chosen["attributes"]["comms"]["email_optout"] is True
    wait_until(lambda: email_status(fakes) == "unsubscribed")
    assert optins(fakes)[-1] == "EXPLICITLY_OPTEDOUT"
    assert omneo_events(bridge)[-1] == ("profile.updated", "mapped")
    [decided] = [r for r in wait_until(lambda: _records(bridge)) if r[:2] == ("email", "omneo")]
    assert decided[2] == 0  # no longer subscribed, the newer decision kept
    # the same Shopify customer webhook delivered again (an older decision) changes nothing
    again = dict(CUSTOMER, updated_at="2026-11-19T18:30:00+11:00")
    raw = json.dumps(again).encode()
    assert bridge.post("shopify", raw, shopify_headers(raw, SHOPIFY_SECRET, "customers/update")).status_code == 200
    wait_until(lambda: bridge.query("SELECT count(*) FROM events WHERE source = 'shopify'")[0][0] == 2)
    wait_until(lambda: settled(bridge) and all(s == 200 for _, _, s in loop.omneo.emitted))
    wait_until(lambda: settled(bridge))
    assert email_status(fakes) == "unsubscribed" and optins(fakes)[-1] == "EXPLICITLY_OPTEDOUT"


def test_a_profile_created_in_omneo_with_default_comms_sends_no_consent_anywhere(
        start_loop: Callable[[str], Loop]) -> None:
    loop = start_loop("contacts")
    fakes, bridge = loop.fakes, loop.bridge
    joined = loop.in_omneo("/members", {"email": "new.member@example.org", "first_name": "Ari", "last_name": "Lee"})
    assert joined["attributes"]["comms"]["email_promo"] is False
    wait_until(lambda: "new.member@example.org" in fakes.omnisend.contacts)
    assert email_status(fakes, "new.member@example.org") == "nonSubscribed"  # created by the details, no status
    assert fakes.omnisend.accepted("/v3/contacts") == []  # the consent route was never called
    assert optins(fakes) == []
    assert all("marketing_optin" not in r and "channels" not in r for r in ometria_records(fakes, "contact"))
    assert omneo_consent_messages(bridge) == 0
    assert omneo_events(bridge) == [("profile.created", "mapped")]


def _records(bridge: BridgeProcess) -> list[tuple[Any, ...]]:
    return bridge.query("SELECT channel, source, subscribed, decided_at FROM consent WHERE contact = ?",
                        contact_fingerprint(EMAIL))


@pytest.mark.parametrize("erasure", ["shopify customers/redact", "omneo profile.deleted"])
def test_an_erasure_forgets_the_persons_consent_and_what_was_written_to_omneo(
        start_loop: Callable[[str], Loop], erasure: str) -> None:
    loop = start_loop("contacts,consent")
    fakes, bridge = loop.fakes, loop.bridge
    loop.omneo.emit_to(f"{bridge.url}/webhooks/omneo", OMNEO_SECRET, namespace_blocks=True)  # no echoes: the prints stay
    raw = json.dumps(CUSTOMER).encode()
    assert bridge.post("shopify", raw, shopify_headers(raw, SHOPIFY_SECRET, "customers/create")).status_code == 200
    wait_until(lambda: email_status(fakes) == "subscribed" and len(loop.omneo.accepted("/api/v3/profiles/batch")) == 2)
    wait_until(lambda: settled(bridge))
    assert _records(bridge) and bridge.query("SELECT count(*) FROM sent_prints")[0][0] == 2  # e-mail, shopify_id
    if erasure == "omneo profile.deleted":
        profile = loop.omneo.by_email(EMAIL)
        assert profile is not None
        loop.in_omneo(f"/profiles/{profile['id']}")
    else:
        body = (ROOT / "tests" / "payloads" / "shopify" / "customers_redact.json").read_bytes()
        assert bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "customers/redact")).status_code == 200
        wait_until(lambda: settled(bridge) and bridge.query(
            "SELECT count(*) FROM events WHERE topic = 'customers/redact' AND status != 'received'") == [(1,)])
    assert _records(bridge) == []
    assert bridge.query("SELECT count(*) FROM sent_prints")[0][0] == 0
    assert EMAIL not in bridge.logs()
