"""A rule change previewed against real traffic: the newest stored events of the topics the change
touches, each mapped by the running rules and by the draft in the mapping process
(bridge.mapping.process: each event within its budget, the whole within BRIDGE_RULES_PREVIEW_SECONDS,
never on the web event loop), and the HTTP requests each set would send, side by side with their diff.

Requests are shown one per message, as the destination sends a message on its own (a batch would
carry the same record among others). Personal data is masked unless the caller may reveal it.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.destinations import Destination
from bridge.mapping.loader import LoadedRules
from bridge.mapping.process import Compared, MappingProcess
from bridge.model import Event, Mapped, Message
from bridge.ops.masking import mask_text, mask_value
from bridge.store.base import Store

MAX_EVENTS = 500
DEFAULT_EVENTS = 100


def touched_topics(running: LoadedRules | None, draft: LoadedRules) -> dict[str, list[str]]:
    """source -> topics of the rules in the files the draft changes (in either set); all of the draft's
    topics when no file changed."""
    changed = set(draft.digests.items()) ^ set(running.digests.items()) if running is not None else set()
    names = {name for name, _ in changed}
    rules = [*draft.rules, *(running.rules if running is not None else [])]
    chosen = [rule for rule in rules if Path(rule.file).name in names] or list(draft.rules)
    topics: dict[str, set[str]] = {}
    for rule in chosen:
        topics.setdefault(rule.source, set()).update(rule.topics)
    return {source: sorted(names) for source, names in sorted(topics.items())}


async def events_for(store: Store, topics: Mapping[str, Sequence[str]], limit: int) -> list[Event]:
    """The newest `limit` stored events of these topics, oldest first (the order they arrived in)."""
    found: list[Event] = []
    for source, names in topics.items():
        found.extend(await store.latest_events(source, names, limit))
    found.sort(key=lambda event: event.id, reverse=True)
    return found[:limit][::-1]


async def compare(process: MappingProcess, running: Path, draft: Path, allowed: Any, events: Sequence[Event],
                  total_seconds: float, destinations: Mapping[str, Destination], reveal: bool) -> dict[str, Any]:
    """Map in the child, then render and diff in a thread; the preview's answer."""
    compared = await process.compare(running, draft, allowed, events, total_seconds)
    return await asyncio.to_thread(report, events, compared, destinations, reveal, (running, draft))


def report(events: Sequence[Event], compared: Sequence[Compared], destinations: Mapping[str, Destination],
           reveal: bool, folders: Sequence[Path] = ()) -> dict[str, Any]:
    by_id = {event.id: event for event in events}
    items = []
    counts = {"changed": 0, "unchanged": 0, "new_errors": 0}
    for pair in compared:
        event = by_id[pair.event_id]
        before, after = _requests(event, pair.before, destinations), _requests(event, pair.after, destinations)
        errors_before = [_local(e, folders) for e in pair.before.errors]
        errors_after = [_local(e, folders) for e in pair.after.errors]
        changed = before != after or errors_before != errors_after
        new_error = bool(errors_after) and not errors_before
        counts["changed" if changed else "unchanged"] += 1
        counts["new_errors"] += new_error
        if not reveal:
            before, after = mask_value(before), mask_value(after)
            errors_before = [mask_text(e) for e in errors_before]
            errors_after = [mask_text(e) for e in errors_after]
        items.append({
            "event_id": event.id, "source": event.source, "topic": event.topic,
            "changed": changed, "becomes_error": new_error,
            "before": {"status": pair.before.status, "rules": pair.before.rules, "errors": errors_before,
                       "requests": before},
            "after": {"status": pair.after.status, "rules": pair.after.rules, "errors": errors_after,
                      "requests": after},
            "diff": _diff(before, after, errors_before, errors_after) if changed else "",
        })
    summary = {"events": len(events), "previewed": len(compared), **counts,
               "not_previewed": len(events) - len(compared)}
    return {"summary": summary, "events": items}


def _local(error: str, folders: Sequence[Path]) -> str:
    """A mapping error names its file by name only: where a version is kept on this machine is nobody's concern."""
    for folder in folders:
        error = error.replace(f"{folder}/", "")
    return error


def _requests(event: Event, mapped: Mapped, destinations: Mapping[str, Destination]) -> list[dict[str, Any]]:
    """The request each message would be sent in, or the message itself when its destination is unknown here."""
    requests = []
    for number, (out, key) in enumerate(mapped.messages, start=1):
        message = Message(id=number, event_id=event.id, destination=out.destination, kind=out.kind, action=out.action,
                          record=out.record, rule=out.rule, key=out.key, idempotency_key=key, attempts=0,
                          created_at=event.received_at)
        destination = destinations.get(out.destination)
        prepared = destination.prepare([message]) if destination is not None else []
        if not prepared:
            requests.append({"destination": out.destination, "rule": out.rule, "kind": out.kind, "action": out.action,
                             "record": out.record})
        for request in prepared:
            requests.append({"destination": request.destination, "rule": out.rule, "method": request.method,
                             "path": request.path, "body": request.body})
    return requests


def _diff(before: Any, after: Any, errors_before: list[str], errors_after: list[str]) -> str:
    def lines(requests: Any, errors: list[str]) -> list[str]:
        text = json.dumps({"requests": requests, "errors": errors}, indent=2, ensure_ascii=False, sort_keys=True)
        return text.splitlines(keepends=True)

    return "".join(difflib.unified_diff(lines(before, errors_before), lines(after, errors_after),
                                        "running rules", "draft"))
