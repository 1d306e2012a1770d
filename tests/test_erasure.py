"""Which of the bridge's own copies an erasure request names (bridge/erasure.py)."""

from __future__ import annotations

import json

from bridge import echo
from bridge.consent import contact_fingerprint
from bridge.erasure import copies_of
from bridge.model import Event, OwnCopies
from tests.e2e.harness import ROOT

PAYLOADS = ROOT / "tests" / "payloads"


def event(source: str, topic: str, body: bytes) -> Event:
    return Event(1, source, topic, "k", 0.0, {}, body)


def test_a_shopify_redaction_names_the_customers_consent_and_prints() -> None:
    body = (PAYLOADS / "shopify" / "customers_redact.json").read_bytes()
    copies = copies_of(event("shopify", "customers/redact", body))
    assert copies.contacts == (contact_fingerprint("jane.citizen@example.com"),)
    # the prints of what the enrolment wrote: under the e-mail and the Shopify id as an identity
    written = {"email": "jane.citizen@example.com",
               "identities": [{"handle": "shopify_id", "identifier": "7103958204497261331"}]}
    assert copies.prints == tuple(echo.keys_of(written))


def test_an_omneo_deletion_names_every_identity_of_the_profile() -> None:
    body = (PAYLOADS / "omneo" / "profile_deleted.json").read_bytes()
    profile = json.loads(body)
    copies = copies_of(event("omneo", "profile.deleted", body))
    assert copies.contacts == (contact_fingerprint(profile["email"]),)
    assert copies.prints == tuple(echo.keys_of(profile)) and len(copies.prints) >= 1


def test_anything_else_names_nothing() -> None:
    assert not copies_of(event("shopify", "customers/update", b'{"email": "a@b.co"}'))
    assert copies_of(event("shopify", "customers/redact", b"not json")) == OwnCopies()
    assert copies_of(event("shopify", "customers/redact", b'{"customer": null}')) == OwnCopies()
    no_email = copies_of(event("shopify", "customers/redact", b'{"customer": {"id": 5}}'))
    assert no_email.contacts == () and len(no_email.prints) == 1
