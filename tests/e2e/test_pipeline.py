"""One event's whole path: signed webhook in, durable outbox, real HTTP to the fake APIs."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bridge.sign import omneo_headers, shopify_headers, standard_headers, standard_key_pair

from .conftest import Fakes, bridge_env
from .harness import OMETRIA_KEY, OMNEO_SECRET, OMNISEND_KEY, ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import ometria_records, omnisend_events

PAYLOADS = ROOT / "tests" / "payloads"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def send_order(bridge: BridgeProcess, event_id: str = "evt-order-1", body: bytes | None = None) -> Any:
    body = body or payload("shopify/orders_create.json")
    return bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "orders/create", event_id=event_id))


def test_shopify_order_reaches_omnisend_and_ometria(bridge: BridgeProcess, fakes: Fakes) -> None:
    order = json.loads(payload("shopify/orders_create.json"))
    response = send_order(bridge)
    assert response.status_code == 200 and response.json()["status"] == "accepted"

    [event] = wait_until(lambda: omnisend_events(fakes))
    assert event["eventName"] == "placed order" and event["eventVersion"] == "v2"
    assert event["origin"] and event["contact"]["email"] == order["email"].lower()
    props = event["properties"]
    assert props["orderID"] == str(order["id"])
    assert props["totalPrice"] == float(order["total_price"]) and isinstance(props["totalPrice"], (int, float))
    assert len(props["lineItems"]) == len(order["line_items"])
    assert props["lineItems"][0]["productPrice"] == float(order["line_items"][0]["price"])
    assert event["eventID"]  # the idempotency key travels as Omnisend's eventID

    [record] = wait_until(lambda: ometria_records(fakes, "order"))
    assert record["id"] == str(order["id"]) and record["currency"] == order["currency"]
    assert float(record["grand_total"]) == float(order["total_price"])
    push = fakes.ometria.accepted("/v2/push")[0]
    assert push.headers["x-ometria-auth"] == OMETRIA_KEY and isinstance(push.body, list)
    assert all(r["@type"] == "order" for r in push.body)
    sent = next(r for r in fakes.omnisend.accepted() if r.path.startswith("/api/"))
    assert sent.headers["authorization"] == f"Omnisend-API-Key {OMNISEND_KEY}"
    assert sent.headers["omnisend-version"] == "2026-03-15"

    wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(2,)])


def test_omneo_profile_becomes_contacts_with_consent_from_the_payload(bridge: BridgeProcess, fakes: Fakes) -> None:
    body = payload("omneo/profile_updated.json")
    profile = json.loads(body)
    response = bridge.post("omneo", body, omneo_headers(body, OMNEO_SECRET, "profile.updated"))
    assert response.status_code == 200

    [contact] = wait_until(lambda: [r.body for r in fakes.omnisend.accepted("/v3/contacts")])
    [identifier] = [i for i in contact["identifiers"] if i["type"] == "email"]
    assert identifier["id"] == profile["email"].lower()
    promo = profile["attributes"]["comms"]["email_promo"]
    assert identifier["channels"]["email"]["status"] == ("subscribed" if promo else "unsubscribed")

    # the contact's details and its consent travel as two records, so details flow even where consent may not
    wait_until(lambda: len(ometria_records(fakes, "contact")) == 2)
    records = ometria_records(fakes, "contact")
    [details] = [r for r in records if "email" in r]
    [consent] = [r for r in records if "marketing_optin" in r]
    assert details["email"] == profile["email"].lower() and "marketing_optin" not in details
    assert consent["id"] == details["id"] and consent["@merge"] is True
    assert consent["marketing_optin"] == ("EXPLICITLY_OPTEDIN" if promo else "EXPLICITLY_OPTEDOUT")


def test_consent_is_not_written_unless_the_operator_allows_it(tmp_path: Path, fakes: Fakes) -> None:
    """Default areas: the Omneo profile's details reach Ometria, its consent reaches nobody, and the event says why."""
    env = bridge_env(fakes)
    del env["OMNISEND_AREAS"], env["OMETRIA_AREAS"]
    bridge = BridgeProcess(tmp_path, env).start()
    try:
        body = payload("omneo/profile_updated.json")
        assert bridge.post("omneo", body, omneo_headers(body, OMNEO_SECRET, "profile.updated")).status_code == 200
        [details] = wait_until(lambda: ometria_records(fakes, "contact"))
        assert "marketing_optin" not in details
        [(status, errors)] = wait_until(lambda: bridge.query("SELECT status, errors FROM events WHERE status != 'received'"))
        # held back by the operator's choice: a notice in /healthz, not a mapping error on the event
        assert status == "mapped" and errors is None
        # the details reach Omnisend as an update without any status: the contact is created, never subscribed
        wait_until(lambda: "olivia.brooks@example.org" in fakes.omnisend.contacts)
        contact = fakes.omnisend.contacts["olivia.brooks@example.org"]
        assert {s for i in contact["identifiers"] for c in i["channels"].values() for s in [c["status"]]} == {
            "nonSubscribed"}
        assert fakes.omnisend.accepted("/v3/contacts") == []
        health = httpx.get(bridge.url + "/healthz").json()
        assert any("consent" in line for line in health["rules"]["blocked"])
    finally:
        bridge.stop()


def test_omneo_profile_without_comms_invents_no_consent(bridge: BridgeProcess, fakes: Fakes) -> None:
    """Omnisend would read an identifier without a status as subscribed: no consent known, no Omnisend contact."""
    profile = json.loads(payload("omneo/profile_created.json"))
    assert "comms" not in profile["attributes"]
    body = json.dumps(profile).encode()
    assert bridge.post("omneo", body, omneo_headers(body, OMNEO_SECRET, "profile.created")).status_code == 200
    [record] = wait_until(lambda: ometria_records(fakes, "contact"))
    assert record["email"] == profile["email"].lower() and "marketing_optin" not in record
    assert None not in record.values() and "" not in record.values()
    wait_until(lambda: bridge.query("SELECT status FROM events") == [("mapped",)])
    # the details still reach Omnisend, by the update that carries no status: created nonSubscribed
    wait_until(lambda: profile["email"].lower() in fakes.omnisend.contacts)
    assert fakes.omnisend.accepted("/v3/contacts") == []
    identifiers = fakes.omnisend.contacts[profile["email"].lower()]["identifiers"]
    assert [i["channels"] for i in identifiers] == [{"email": {"status": "nonSubscribed"}},
                                                    {"sms": {"status": "nonSubscribed"}}]


def test_resend_is_acknowledged_and_sends_nothing_more(bridge: BridgeProcess, fakes: Fakes) -> None:
    assert send_order(bridge, "evt-dup").json()["status"] == "accepted"
    wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(2,)])
    before = len(fakes.omnisend.accepted()) + len(fakes.ometria.accepted())
    again = send_order(bridge, "evt-dup")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    body = payload("omneo/profile_updated.json")
    for _ in range(2):
        bridge.post("omneo", body, omneo_headers(body, OMNEO_SECRET, "profile.updated"))
    wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(6,)])
    after = len(fakes.omnisend.accepted()) + len(fakes.ometria.accepted())
    # the Omneo profile once (consent and details to Omnisend, details and consent to Ometria), the order resend nothing
    assert after - before == 4
    assert bridge.query("SELECT count(*) FROM events") == [(2,)]


def test_forgery_is_401_and_stored_nowhere(bridge: BridgeProcess, fakes: Fakes) -> None:
    body = payload("shopify/orders_create.json")
    response = bridge.post("shopify", body, shopify_headers(body, "guessed", "orders/create"))
    assert response.status_code == 401
    assert bridge.query("SELECT count(*) FROM events") == [(0,)]
    assert fakes.omnisend.recorded() == [] and fakes.ometria.recorded() == []


def test_outage_is_retried_and_a_permanent_error_kept_as_dead_letter(bridge: BridgeProcess, fakes: Fakes) -> None:
    fakes.omnisend.fail("status", status=503, count=3)
    fakes.ometria.fail("status", status=400, count=1)
    send_order(bridge, "evt-outage")
    wait_until(lambda: omnisend_events(fakes), timeout=20)
    wait_until(lambda: bridge.query("SELECT destination, state FROM messages ORDER BY destination")
               == [("ometria", "dead"), ("omnisend", "delivered")], timeout=20)
    trail = bridge.query("SELECT a.outcome, a.status FROM attempts a JOIN messages m ON m.id = a.message_id"
                         " WHERE m.destination = 'omnisend' ORDER BY a.id")
    assert trail[:3] == [("retry", 503)] * 3 and trail[-1][0] == "delivered"
    [(status, detail)] = bridge.query("SELECT last_status, last_detail FROM messages WHERE state = 'dead'")
    assert status == 400 and "injected 400" in detail


def test_killed_mid_delivery_is_delivered_after_restart(tmp_path: Path, fakes: Fakes) -> None:
    bridge = BridgeProcess(tmp_path, bridge_env(fakes)).start()
    try:
        fakes.omnisend.fail("timeout", count=1, delay=30)
        send_order(bridge, "evt-crash")
        wait_until(lambda: fakes.omnisend.recorded())  # the request is in flight, unanswered
        bridge.kill()
        assert bridge.query("SELECT count(*) FROM messages WHERE destination = 'omnisend' AND state = 'inflight'") == [(1,)]
        bridge.start()
        [event] = wait_until(lambda: omnisend_events(fakes), timeout=20)  # after the lease ran out
        first_try = fakes.omnisend.recorded()[0].body
        sent = first_try["items"][0] if "items" in first_try else first_try
        assert sent["eventID"] == event["eventID"]  # a resend carries the same idempotency key
    finally:
        bridge.stop()


def test_logs_carry_no_personal_data_or_keys(bridge: BridgeProcess, fakes: Fakes) -> None:
    order = json.loads(payload("shopify/orders_create.json"))
    send_order(bridge, "evt-logs")
    profile = payload("omneo/profile_updated.json")
    bridge.post("omneo", profile, omneo_headers(profile, OMNEO_SECRET, "profile.updated"))
    wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(6,)])
    bridge.stop()  # uvicorn re-raises SIGTERM after its graceful shutdown: the code is -15 by design
    logs = bridge.logs()
    assert "webhook.accepted" in logs and "delivery.sent" in logs and "bridge.stopped" in logs
    person = json.loads(profile)
    secrets = [OMNISEND_KEY, OMETRIA_KEY, SHOPIFY_SECRET, OMNEO_SECRET]
    personal = [order["email"], order["customer"]["first_name"], order["customer"]["last_name"], person["email"],
                person["first_name"], person["last_name"], person.get("mobile_phone") or "+61400000000"]
    for value in secrets + personal:
        assert value and value not in logs, f"{value!r} appears in the logs"
    for line in logs.splitlines():
        json.loads(line)  # one JSON object per line


def test_a_burst_goes_to_omnisend_in_batches_whose_results_are_read_back(bridge: BridgeProcess, fakes: Fakes) -> None:
    order = json.loads(payload("shopify/orders_create.json"))
    bodies = []
    for n in range(12):
        order["id"] = 7000000000000 + n
        bodies.append(json.dumps(order).encode())
    # A burst arrives together: one by one, on a slow machine, each order would be mapped and
    # sent alone before the next one came, which is right for a trickle but not what this tests.
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda n: send_order(bridge, f"evt-burst-{n}", bodies[n]), range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE destination = 'omnisend' AND state = 'delivered'")
               == [(12,)], timeout=30)
    batches = fakes.omnisend.accepted("/api/batches")
    assert batches and all(len(b.body["items"]) <= 100 for b in batches)
    assert len(omnisend_events(fakes)) == 12  # each event sent once, in a batch or alone
    assert {e["properties"]["orderID"] for e in omnisend_events(fakes)} == {str(7000000000000 + n) for n in range(12)}
    assert any(r.path.endswith("/items") for r in fakes.omnisend.accepted())  # the batch result was read back


def test_web_and_worker_as_separate_processes(tmp_path: Path, fakes: Fakes) -> None:
    """The README's split deployment: `bridge serve --no-worker` takes webhooks, `bridge worker` delivers."""
    import signal
    import subprocess
    import sys

    web = BridgeProcess(tmp_path, bridge_env(fakes)).start("--no-worker")
    worker = None
    try:
        assert send_order(web, "evt-split").status_code == 200
        time.sleep(0.5)
        assert fakes.omnisend.recorded() == [] and fakes.ometria.recorded() == []  # the web process sends nothing
        with (tmp_path / "worker.log").open("ab") as log:
            worker = subprocess.Popen([sys.executable, "-m", "bridge", "worker"], cwd=tmp_path, env=web.child_env(),
                                      stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: web.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(2,)])
        assert len(omnisend_events(fakes)) == 1 and len(ometria_records(fakes, "order")) == 1
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        web.stop()


def test_a_standard_webhooks_sender_signing_with_ed25519(tmp_path: Path, fakes: Fakes) -> None:
    """v1a end to end: a sources file with the sender's whpk_ key; its signature is stored, a forgery refused."""
    private, public = standard_key_pair()
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  partner:\n    scheme: standard\n    secret: {public}\n")
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, BRIDGE_SOURCES_FILE=str(sources))).start("--no-worker")
    try:
        body = b'{"type": "contact.created", "timestamp": "2026-11-23T10:00:00Z", "data": {"id": "c-1"}}'
        signed = standard_headers(body, private, msg_id="msg_e2e_v1a")
        assert bridge.post("partner", body, signed).status_code == 200
        forged = standard_headers(body, standard_key_pair()[0], msg_id="msg_e2e_forged")
        assert bridge.post("partner", body, forged).status_code == 401
        assert bridge.query("SELECT source, topic, dedupe_key FROM events") == [("partner", "contact.created", "msg_e2e_v1a")]
        assert public.removeprefix("whpk_") not in bridge.logs()
    finally:
        bridge.stop()
