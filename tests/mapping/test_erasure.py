"""Erasure only on purpose: a missing, null or empty source value is left out, never sent as null or ""."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.destinations.catalog import AREAS
from bridge.mapping import load_rules
from bridge.model import Event

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "mappings", {"omnisend": AREAS, "ometria": AREAS})  # everything that could be sent


def stored(name: str) -> Any:
    return json.loads((ROOT / "tests" / "payloads" / name).read_text(encoding="utf-8"))


def event(payload: Any, source: str, topic: str) -> Event:
    return Event(1, source, topic, "k1", 1_790_000_000.0, {}, json.dumps(payload).encode())


def blanks(value: Any, path: str = "") -> Iterator[str]:
    """Every place, at any depth, holding None, "" or an empty container."""
    if value is None or value == "" or value in ({}, []):
        yield path or "(record)"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from blanks(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from blanks(item, f"{path}[{number}]")


CASES = [
    ("omneo/profile_updated_no_last_name.json", "omneo", "profile.updated"),
    ("shopify/customers_update_no_phone.json", "shopify", "customers/update"),
    ("woocommerce/order_created_empty_billing.json", "woocommerce", "order.created"),
]


@pytest.mark.parametrize("name, source, topic", CASES)
def test_no_null_and_no_empty_string_at_any_depth(name: str, source: str, topic: str) -> None:
    result = RULES.map(event(stored(name), source, topic))
    assert result.errors == [] and result.messages
    for message in result.messages:
        assert list(blanks(message.record)) == [], (message.destination, message.kind)
        assert "deletions" not in message.areas


def test_omneo_profile_without_last_name() -> None:
    messages = RULES.map(event(stored("omneo/profile_updated_no_last_name.json"), "omneo", "profile.updated")).messages
    _status, contact, ometria, _sms, consent = messages
    assert contact.action == "update"
    assert "lastName" not in contact.record and "lastname" not in ometria.record
    assert "prefix" not in ometria.record  # null in the payload
    # birth_date is null, its parts are not: the date is made from them
    assert ometria.record["date_of_birth"] == contact.record["birthdate"] == "1991-06-14"
    assert "phone_number" in ometria.record  # mobile_phone_e164 is "", the fallback mobile_phone is used
    assert "tier" not in ometria.record["properties"] and "tags" not in contact.record
    assert ometria.record["@merge"] is True and consent.record["@merge"] is True


def test_shopify_customer_without_a_phone() -> None:
    messages = RULES.map(event(stored("shopify/customers_update_no_phone.json"), "shopify", "customers/update")).messages
    enrolment = next(m for m in messages if m.destination == "omneo")
    assert "mobile_phone" not in enrolment.record
    messages = [m for m in messages if m.destination != "omneo"]
    _status, contact, ometria, _consent = messages
    assert contact.action == "update"
    assert "phone_number" not in ometria.record and "lastname" not in ometria.record
    assert "lastName" not in contact.record and "postalCode" not in contact.record
    assert [identifier["type"] for identifier in contact.record["identifiers"]] == ["email"]


def test_woocommerce_order_with_empty_billing_fields() -> None:
    payload = stored("woocommerce/order_created_empty_billing.json")
    placed, v3_order, order = RULES.map(event(payload, "woocommerce", "order.created")).messages
    assert v3_order.record["email"] == "sam.nguyen@example.net" and "contactNote" not in v3_order.record
    assert placed.record["contact"] == {"email": "sam.nguyen@example.net"}
    assert order.record["customer"] == {"id": "311", "email": "sam.nguyen@example.net"}
    assert "ip_address" not in order.record and order.record["@merge"] is True


def test_woocommerce_order_without_any_billing_sends_the_order_only() -> None:
    payload = stored("woocommerce/order_created_empty_billing.json")
    payload["billing"]["email"] = ""
    payload["customer_id"] = 0
    result = RULES.map(event(payload, "woocommerce", "order.created"))
    (order,) = result.messages
    assert (order.destination, order.kind) == ("ometria", "order") and "customer" not in order.record
    assert list(blanks(order.record)) == []


def test_only_clear_sends_null(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("""\
rules:
  - name: C
    on: omneo profile.updated
    send:
      - to: ometria contact
        clear: [lastname]
        fields: {id: "{{ id }}", email: "{{ email }}", firstname: "{{ first_name }}"}
""", encoding="utf-8")
    rules = load_rules(tmp_path)
    (message,) = rules.map(event({"id": "p", "email": "a@b.c", "first_name": None}, "omneo", "profile.updated")).messages
    assert message.record == {"id": "p", "email": "a@b.c", "lastname": None, "@merge": True}
    assert message.areas == ("contacts", "deletions")
    assert any("clears lastname" in note and "deletions area" in note for note in rules.notes)
