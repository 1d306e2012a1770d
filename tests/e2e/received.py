"""What the fake APIs accepted, as records: events and contacts whether sent alone or in a batch.

Only records the fake took count: a batch item it refused (its item result is an error) and a
record Ometria's later validation rejected (counted `rejected` in a 2xx answer) are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.fakes.ometria import record_problems
from bridge.fakes.omnisend.contacts import contact_errors
from bridge.fakes.omnisend.events import event_problems

from .conftest import Fakes


def _omnisend_records(fakes: Fakes, path: str, batches: str, endpoint: str,
                      refused: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """The records the fake Omnisend accepted at `path`, and inside batches (at `batches`) for `endpoint`."""
    records: list[dict[str, Any]] = []
    for request in fakes.omnisend.accepted():
        if request.path == path:
            records.append(request.body)
        elif request.path == batches and request.body.get("endpoint") == endpoint:
            records.extend(item for item in request.body["items"] if not refused(item))
    return records


def omnisend_events(fakes: Fakes) -> list[dict[str, Any]]:
    """Every event the fake Omnisend accepted, whether sent alone or in a batch."""
    return _omnisend_records(fakes, "/api/events", "/api/batches", "events", event_problems)


def omnisend_contacts(fakes: Fakes) -> list[dict[str, Any]]:
    """Every contact the fake Omnisend accepted, alone or inside a v3 batch."""
    return _omnisend_records(fakes, "/v3/contacts", "/v3/batches", "contacts", contact_errors)


def ometria_records(fakes: Fakes, record_type: str) -> list[dict[str, Any]]:
    return [r for req in fakes.ometria.accepted("/v2/push") for r in req.body
            if r["@type"] == record_type and not record_problems(r)]
