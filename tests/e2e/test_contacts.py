"""Contacts without consent, through the real app and the fake APIs, on a fresh install's areas."""

from __future__ import annotations

import json

import httpx

from bridge.sign import omneo_headers, shopify_headers, woocommerce_headers

from .conftest import Fakes
from .harness import OMNEO_SECRET, ROOT, SHOPIFY_SECRET, WOO_SECRET, BridgeProcess, wait_until
from .received import ometria_records, omnisend_events

PAYLOADS = ROOT / "tests" / "payloads"




def statuses(fakes: Fakes, email: str) -> dict[str, str]:
    contact = fakes.omnisend.contacts[email]
    return {i["id"]: channel["status"] for i in contact["identifiers"] for channel in i["channels"].values()}


def test_a_subscribed_contact_gets_its_details_and_keeps_its_status(fresh: BridgeProcess, fakes: Fakes) -> None:
    """Omnisend already holds the customer as subscribed; a Shopify update with consent fields, consent not
    allowed: the details arrive by PATCH, the status stays, nothing is sent on the v3 (status) route."""
    email = "jane.citizen@example.com"
    httpx.post(f"{fakes.omnisend_url}/v3/contacts", headers={"X-API-KEY": fakes.omnisend.api_key}, json={
        "identifiers": [{"type": "email", "id": email, "channels": {"email": {"status": "subscribed"}}}]})
    body = (PAYLOADS / "shopify/customers_create.json").read_bytes()
    assert fresh.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, "customers/update")).status_code == 200
    wait_until(lambda: fakes.omnisend.contacts[email].get("firstName") == "Jane")
    contact = fakes.omnisend.contacts[email]
    assert contact["tags"] == ["vip", "newsletter"] and contact["customProperties"]["shopifyCustomerID"]
    assert statuses(fakes, email) == {email: "subscribed"}
    assert [r.method for r in fakes.omnisend.accepted("/api/contacts")] == ["PATCH"]
    assert len(fakes.omnisend.accepted("/v3/contacts")) == 1  # the seed above: no status was sent
    [record] = wait_until(lambda: ometria_records(fakes, "contact"))
    assert record["firstname"] == "Jane" and "marketing_optin" not in record
    [(status, errors)] = wait_until(lambda: fresh.query("SELECT status, errors FROM events WHERE status != 'received'"))
    assert (status, errors) == ("mapped", None)


def test_a_woocommerce_customer_update_creates_an_unknown_contact_never_subscribed(fresh: BridgeProcess,
                                                                                    fakes: Fakes) -> None:
    customer = json.loads((PAYLOADS / "woocommerce/customer_created.json").read_bytes())
    body = json.dumps(customer).encode()
    response = fresh.post("woocommerce", body, woocommerce_headers(body, WOO_SECRET, "customer.updated"))
    assert response.status_code == 200
    email = customer["email"]
    wait_until(lambda: email in fakes.omnisend.contacts)
    assert set(statuses(fakes, email).values()) == {"nonSubscribed"}
    assert fakes.omnisend.contacts[email]["firstName"] == "Sam"
    patch, post = fakes.omnisend.recorded(path="/api/contacts")
    assert (patch.method, patch.status, post.method, post.status) == ("PATCH", 404, "POST", 201)
    wait_until(lambda: ometria_records(fakes, "contact"))


def test_a_new_omneo_member_is_a_contact_and_a_joined_event_in_both(fresh: BridgeProcess, fakes: Fakes) -> None:
    body = (PAYLOADS / "omneo/profile_created.json").read_bytes()
    profile = json.loads(body)
    assert fresh.post("omneo", body, omneo_headers(body, OMNEO_SECRET, "profile.created")).status_code == 200
    [joined] = wait_until(lambda: ometria_records(fakes, "custom_event"))
    assert joined["event_type"] == "omneo_joined" and joined["identity_account_id"] == profile["external_id"]
    [event] = wait_until(lambda: omnisend_events(fakes))
    assert event["eventName"] == "joined loyalty program" and event["contact"] == {"email": profile["email"].lower()}
    assert "eventVersion" not in event and event["properties"]["tier"] == profile["tier"]["name"]
    wait_until(lambda: profile["email"].lower() in fakes.omnisend.contacts)
    assert set(statuses(fakes, profile["email"].lower()).values()) == {"nonSubscribed"}
    wait_until(lambda: fresh.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(4,)])
