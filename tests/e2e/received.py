"""What the fake APIs accepted, as records: events and contacts whether sent alone or in a batch."""

from __future__ import annotations

from typing import Any

from .conftest import Fakes


def omnisend_events(fakes: Fakes) -> list[dict[str, Any]]:
    """Every event the fake Omnisend accepted, whether sent alone or in a batch."""
    events: list[dict[str, Any]] = []
    for request in fakes.omnisend.accepted():
        if request.path == "/api/events":
            events.append(request.body)
        elif request.path == "/api/batches" and request.body.get("endpoint") == "events":
            events.extend(request.body["items"])
    return events


def omnisend_contacts(fakes: Fakes) -> list[dict[str, Any]]:
    """Every contact the fake Omnisend accepted, alone or inside a v3 batch."""
    contacts: list[dict[str, Any]] = []
    for request in fakes.omnisend.accepted():
        if request.path == "/v3/contacts":
            contacts.append(request.body)
        elif request.path == "/v3/batches" and request.body.get("endpoint") == "contacts":
            contacts.extend(request.body["items"])
    return contacts


def ometria_records(fakes: Fakes, record_type: str) -> list[dict[str, Any]]:
    return [r for req in fakes.ometria.accepted("/v2/push") for r in req.body if r["@type"] == record_type]
