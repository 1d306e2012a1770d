"""Values that vary by shop: phones, order numbers and statuses, read the way each destination means them."""

from __future__ import annotations

from bridge.fakes.ometria import record_problems
from bridge.mapping.filters import e164
from tests.mapping.test_erasure import RULES, event, stored


def test_e164_reads_a_local_number_in_its_region_and_refuses_a_wrong_region() -> None:
    assert e164("(514) 555-0199", "CA") == "+15145550199"
    assert e164("(514) 555-0199", "AU") is None  # "+615145550199" is not a number in Australia
    assert e164("+44 20 7946 0958", "AU") == "+442079460958"  # a + number keeps its own country
    assert e164("0412 345 678") is None  # a local number with no region cannot be read


def test_shopify_order_phone_takes_the_country_of_the_order() -> None:
    payload = stored("shopify/orders_create.json")
    payload["phone"] = "(514) 555-0199"
    payload["billing_address"]["country_code"] = "CA"
    placed = next(m for m in RULES.map(event(payload, "shopify", "orders/create")).messages
                  if m.destination == "omnisend")
    assert placed.record["contact"]["phone"] == "+15145550199"


def test_omneo_sms_consent_without_a_phone_sends_the_email_identifier_alone() -> None:
    payload = stored("omneo/profile_updated.json")
    payload.update(mobile_phone=None, mobile_phone_e164=None)
    result = RULES.map(event(payload, "omneo", "profile.updated"))
    assert result.errors == []
    contacts = [m for m in result.messages if (m.destination, m.kind) == ("omnisend", "contact")]
    assert [[i["type"] for i in m.record["identifiers"]] for m in contacts] == [["email"], ["email"]]


def test_omneo_local_phone_is_read_in_the_profiles_country() -> None:
    payload = stored("omneo/profile_updated.json")
    payload.update(mobile_phone="0412 345 678", mobile_phone_e164=None, mobile_phone_country="AU")
    sms = next(m for m in RULES.map(event(payload, "omneo", "profile.updated")).messages
               if m.decision is not None and m.decision.channel == "sms")
    assert sms.record["identifiers"] == [{"type": "phone", "id": "+61412345678", "channels": {
        "sms": {"status": "unsubscribed", "statusDate": "2026-11-21T08:05:33Z"}}}]


def test_e164_keeps_an_international_test_number() -> None:
    assert e164("+1 555 123 4567", "AU") == "+15551234567"  # possible, though not a real line


def test_woocommerce_order_number_that_is_not_a_number_is_left_out() -> None:
    payload = stored("woocommerce/order_created.json")
    payload["number"] = "WC-727"
    result = RULES.map(event(payload, "woocommerce", "order.created"))
    assert result.errors == []
    placed = next(m for m in result.messages if m.destination == "omnisend")
    assert "orderNumber" not in placed.record["properties"] and placed.record["properties"]["orderID"]


def test_a_test_or_voided_shopify_order_is_no_revenue_at_ometria() -> None:
    def ometria(**changes: object) -> dict:
        payload = {**stored("shopify/orders_create.json"), **changes}
        return next(m for m in RULES.map(event(payload, "shopify", "orders/create")).messages
                    if m.destination == "ometria").record

    assert ometria()["is_valid"] is True
    assert ometria(test=True)["is_valid"] is False
    assert ometria(financial_status="voided")["is_valid"] is False


def test_woocommerce_status_reads_the_same_on_create_and_update() -> None:
    payload = stored("woocommerce/order_created.json")
    payload["status"] = "processing"
    created = [m for m in RULES.map(event(payload, "woocommerce", "order.created")).messages if m.destination == "ometria"]
    updated = [m for m in RULES.map(event(payload, "woocommerce", "order.updated")).messages if m.destination == "ometria"]
    assert created[0].record["status"] == updated[0].record["status"] == "pending"
    assert created[0].record["is_valid"] is True


def test_e164_leaves_out_a_number_longer_than_e164_allows() -> None:
    # phonenumbers takes German numbers of up to 15 national digits as valid; E.164 allows 15 digits in all
    assert e164("030 123456789012", "DE") is None
    assert e164("+49 30 123456789012") is None
    assert e164("+49 30 12345678901") == "+493012345678901"  # 15 digits: still E.164


def test_a_shopify_customer_with_an_over_long_phone_still_reaches_ometria() -> None:
    payload = stored("shopify/customers_create.json")
    payload["phone"] = "+49 30 123456789012"
    contact = next(m for m in RULES.map(event(payload, "shopify", "customers/create")).messages
                   if (m.destination, m.kind) == ("ometria", "contact"))
    assert "phone_number" not in contact.record
    assert record_problems({**contact.record, "@type": "contact"}) == []  # what the fake Ometria would refuse
