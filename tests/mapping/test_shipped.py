"""Every shipped rule file loads, passes its check and produces its own examples, which the destinations take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.destinations.catalog import AREAS
from bridge.destinations.ometria import Ometria
from bridge.destinations.omneo import Omneo
from bridge.destinations.omnisend import Omnisend
from bridge.fakes.ometria import record_problems
from bridge.fakes.omneo import FakeOmneo
from bridge.fakes.omnisend.catalogue import category_problems, product_problems
from bridge.fakes.omnisend.contacts import contact_errors, contact_request_problems
from bridge.fakes.omnisend.events import event_problems
from bridge.fakes.omnisend.orders import ORDER_PATCH_FIELDS, cart_errors, order_errors, status_errors
from bridge.mapping.engine import CompiledRuleSet
from bridge.mapping.examples import example_event, run_examples
from bridge.mapping.loader import load_rules
from bridge.mapping.rulefile import rule_files
from bridge.model import Message, PreparedRequest
from bridge.settings import DestinationSettings, Secret

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
RULES = load_rules(MAPPINGS)
OUTCOMES = run_examples(RULES)


def test_every_file_points_to_the_schema() -> None:
    for path in rule_files(MAPPINGS):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../bridge/mapping/rules.schema.json", path


def test_every_file_has_examples() -> None:
    with_examples = {Path(example.file).name for example in RULES.examples}
    assert with_examples == {path.name for path in rule_files(MAPPINGS)}


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda outcome: outcome.title)
def test_example(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.ok, outcome.report


def _example_requests() -> list[tuple[str, PreparedRequest]]:
    """What the adapters would send for every shipped example, every area allowed, one request a message."""
    rules = load_rules(MAPPINGS, {"omnisend": AREAS, "ometria": AREAS, "omneo": AREAS})
    destinations = {
        "omnisend": Omnisend(DestinationSettings("omnisend", "http://omnisend.invalid", Secret("k"),
                                                 {"batch_events": False, "batch_v3": False})),
        "ometria": Ometria(DestinationSettings("ometria", "http://ometria.invalid", Secret("k"), {})),
        "omneo": Omneo(DestinationSettings("omneo", "http://omneo.invalid/api", Secret("k"), {})),
    }
    ruleset = CompiledRuleSet(rules.rules)
    requests = []
    for example in rules.examples:
        event = example_event(example)
        for n, out in enumerate(ruleset.map(event).messages, start=1):
            message = Message(id=n, event_id=0, destination=out.destination, kind=out.kind, action=out.action,
                              record=out.record, rule=out.rule, key=out.key, attempts=0, created_at=0.0,
                              idempotency_key=out.idempotency_key(event.source, event.dedupe_key))
            title = f"{example.file}:{example.line} '{example.name}' {out.destination} {out.kind}"
            requests += [(title, request) for request in destinations[out.destination].prepare([message])]
    return requests


def _fake_refuses(request: PreparedRequest) -> Any:
    """What the fake destinations (bridge/fakes) would refuse in `request`: their documented checks."""
    if request.method == "DELETE":
        assert request.body is None and request.path.startswith("/v3/carts/"), request.path
        return []
    if request.path == "/api/events":
        return event_problems(request.body)
    if request.path == "/v3/contacts":
        return contact_errors(request.body)
    if request.path.startswith("/api/contacts?email="):
        return contact_request_problems(request.body, creating=False)
    if request.path.startswith("/api/products/"):
        return product_problems(request.body)
    if request.path.startswith("/api/product-categories/"):
        return category_problems(request.body, creating=False)
    if request.path.startswith("/v3/orders/") and request.method == "PATCH":  # a status update
        return {**{k: ["not allowed"] for k in set(request.body) - ORDER_PATCH_FIELDS}, **status_errors(request.body)}
    if request.path.startswith("/v3/orders"):
        return order_errors(request.body)[1]
    if request.path.startswith("/v3/carts"):
        return cart_errors(request.body)[1]
    if request.path == "/v3/profiles/batch":
        return FakeOmneo("omneo", "k", 1, 60.0).problems(request.body)
    if request.path == "/v2/data-deletion-requests":
        return [] if "@" in str(request.body.get("email")) else ["email"]
    assert request.path == "/v2/push", request.path
    return [problem for record in request.body for problem in record_problems(record)]


EXAMPLE_REQUESTS = _example_requests()


def test_examples_cover_every_destination() -> None:
    assert {request.destination for _, request in EXAMPLE_REQUESTS} == {"omnisend", "ometria", "omneo"}


@pytest.mark.parametrize(("title", "request_"), EXAMPLE_REQUESTS, ids=[title for title, _ in EXAMPLE_REQUESTS])
def test_example_requests_meet_the_destination_contracts(title: str, request_: PreparedRequest) -> None:
    """The examples' output as sent: times, phones, enums and versions the fakes (and the real APIs) take."""
    assert _fake_refuses(request_) in ([], {}), title


def test_every_record_kind_and_every_rule_comes_from_a_shipped_example() -> None:
    """Issue 25: each record type the destination code supports is made by a shipped rule from a real
    payload (v3 orders and erasures behind their areas), and no shipped rule goes without an example."""
    from bridge.destinations.catalog import KINDS

    rules = load_rules(MAPPINGS, {"omnisend": AREAS, "ometria": AREAS})
    ruleset = CompiledRuleSet(rules.rules)
    made: set[tuple[str, str]] = set()
    matched: set[str] = set()
    for example in rules.examples:
        result = ruleset.map(example_event(example))
        made |= {(m.destination, m.kind) for m in result.messages}
        matched |= set(result.rules)
    assert set(KINDS) <= made, sorted(set(KINDS) - made)
    assert {rule.name for rule in rules.rules} <= matched, sorted({rule.name for rule in rules.rules} - matched)
