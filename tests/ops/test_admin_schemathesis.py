"""Schemathesis drives the admin API from its own OpenAPI document: no 5xx, answers and status codes as documented.

schemathesis' `from_fixture` breaks on pytest 9 (it reads `Function._nodeid`), so each operation is a
parametrized test that loads the schema from the app and runs Hypothesis on that operation's strategy.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from bridge.ops.openapi import document

from .support import FixedRules, Outbox, idem
from .test_admin import TOKEN, filled, make_client  # noqa: F401 (filled: the pytest fixture admin_schema uses)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
OPERATIONS = [(path, method) for path, item in document()["paths"].items() for method in item]


@pytest.fixture
def admin_schema(filled: Outbox) -> Any:  # noqa: F811 (the fixture imported above)
    """The admin routes over a real store: test_admin's delivered message and dead letter, and a pending one."""
    c = filled.ingest("c", topic="customers/create")
    filled.map(c, [("ometria", idem("c"))])
    client = make_client(filled, rules=FixedRules({"orders/create": [("omnisend", "orders")]}))
    return schemathesis.openapi.from_asgi("/admin/openapi.json", client.app, headers=AUTH)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_operation_matches_the_document(admin_schema: Any, path: str, method: str) -> None:
    operation = admin_schema[path][method.upper()]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    run()
