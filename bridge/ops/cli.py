"""The operator commands: events, outbox, dead, audit, replay, consent, destinations, prune.

Every command runs against the configured database (BRIDGE_DATABASE_URL)
through the store's interface, beside a running `bridge serve`: each command
opens the store, runs on it in one asyncio.run, and closes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from bridge.config import settings_from_env
from bridge.consent import contact_fingerprint
from bridge.echo import echo_window
from bridge.errors import BridgeError
from bridge.mapping import RuleSet
from bridge.ops import views
from bridge.ops.backlog import Backlog, read_backlog
from bridge.ops.progress import ProgressBar
from bridge.ops.prune import DEFAULT_DAYS, prune_with_settings
from bridge.ops.replay import load_current_rules, replay
from bridge.ops.table import render
from bridge.settings import Settings
from bridge.store import make_store
from bridge.store.base import (
    AREAS,
    EVENT_STATUSES,
    AuditFilter,
    DeadFilter,
    DestinationStats,
    EventFilter,
    Page,
    Store,
)
from bridge.when import age, iso, parse_when

T = TypeVar("T")


class UsageError(BridgeError):
    """The command cannot run as asked (missing database, no filter, unknown name)."""


# -- plumbing -----------------------------------------------------------------


def when(text: str) -> float:
    try:
        return parse_when(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {minimum} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("days cannot be negative")
    return value


def on_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store (an existing one: a new, empty one is a wrong BRIDGE_DATABASE_URL), run
    `work` on it, close it."""

    async def run() -> T:
        store = make_store(settings, process=False, create=False)  # a command's few writes need no writer process
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def emit_rows(rows: list[dict[str, Any]], as_json: bool, empty: str, headers: list[str],
              cells: Callable[[dict[str, Any]], list[Any]]) -> int:
    """A listing: the rows as JSON (`--json`), a line saying there are none, or a table."""
    if as_json:
        emit_json(rows)
    elif not rows:
        print(empty)
    else:
        print(render(headers, [cells(r) for r in rows]))
    return 0


def page_footer(page: Page[Any], as_json: bool) -> None:
    """Under a table that does not show every match: which rows these are, of how many."""
    if as_json or not page.items or (page.offset == 0 and len(page.items) == page.total):
        return
    first, last = page.offset + 1, page.offset + len(page.items)
    more = f"; --offset {last} for the next" if last < page.total else ""
    print(f"rows {first}-{last} of {page.total}{more}")


# -- events -------------------------------------------------------------------


def cmd_events_list(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    where = EventFilter(args.source, args.topic, args.status, args.since, args.until)
    page = on_store(settings, lambda store: store.list_events(where, args.limit, args.offset))
    rows = [views.event_summary(r, args.reveal) for r in page.items]
    emit_rows(
        rows, args.json, "no events match",
        ["ID", "RECEIVED", "SOURCE", "TOPIC", "STATUS", "RULES", "MESSAGES", "ERRORS", "DEDUPE KEY"],
        lambda r: [r["id"], r["received_at"], r["source"], r["topic"], r["status"], r["rules"], r["messages"],
                   len(r["errors"]) or None, r["dedupe_key"]],
    )
    page_footer(page, args.json)
    return 0


def cmd_events_show(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    detail = on_store(settings, lambda store: store.event_detail(args.id))
    if detail is None:
        raise UsageError(f"no event with id {args.id}")
    view = views.event_detail(detail, args.reveal)
    if args.json:
        emit_json(view)
        return 0
    print(f"event {view['id']}  {view['source']} {view['topic']}  status {view['status']}")
    print(f"  received   {view['received_at']}   mapped {view['mapped_at'] or '-'}   duplicates {view['duplicates']}")
    print(f"  dedupe key {view['dedupe_key']}")
    print(f"  rules      {', '.join(view['rules']) or '-'}")
    for error in view["errors"]:
        print(f"  error      {error}")
    print("  payload    " + ("(pruned)" if view["body_pruned"] else json.dumps(view["payload"], ensure_ascii=False)))
    if not view["messages"]:
        print("  no messages")
    for m in view["messages"]:
        print(f"\n  message {m['id']} -> {m['destination']} {m['kind']} ({m['action']})  rule {m['rule']}"
              f"  writes {', '.join(m['areas']) or '-'}")
        print(f"    state {m['state']}  attempts {m['attempts']}  last status {m['last_status'] or '-'}"
              + (f"  next {m['next_at']}" if m["next_at"] else "")
              + (f"  batch {m['batch']}" if m["batch"] else ""))
        if m["last_detail"]:
            print(f"    last answer {m['last_detail']}")
        for a in m["trail"]:
            print(f"    {a['at']}  {a['outcome']:<9} {a['status'] or '-':<4} {a['detail'] or ''}")
    if not args.reveal:
        print("\n(personal data masked; --reveal shows it)")
    return 0


# -- outbox -------------------------------------------------------------------


def cmd_outbox_stats(args: argparse.Namespace) -> int:
    settings = settings_from_env()

    async def read(store: Store) -> tuple[dict[str, DestinationStats], Backlog]:
        from bridge.app import ceilings
        from bridge.destinations.registry import build_destinations

        destinations = build_destinations(settings)
        try:
            limits = ceilings(destinations)
        finally:
            for destination in destinations.values():
                await destination.aclose()
        now = time.time()
        return await store.outbox_stats(now, list(settings.destinations)), await read_backlog(store, limits, now)

    stats, backlog = on_store(settings, read)
    view = views.outbox_stats(stats) | {"backlog": backlog.as_dict()}
    if args.json:
        emit_json(view)
        return 0
    print(render(
        ["DESTINATION", "PENDING", "INFLIGHT", "SUBMITTED", "DELIVERED", "DEAD", "OLDEST PENDING", "PAUSED"],
        [[name, s["counts"]["pending"], s["counts"]["inflight"], s["counts"]["submitted"], s["counts"]["delivered"],
          s["counts"]["dead"],
          age(s["oldest_pending_age_seconds"]),
          f"yes since {s['paused_at']}: {s['pause_reason']}" if s["paused"] else "no"]
         for name, s in view["destinations"].items()],
    ))
    print(backlog_lines(backlog))
    return 0


def backlog_lines(backlog: Backlog) -> str:
    """The backlog under the table: events still to map, and when each destination will have delivered."""
    lines = [f"events waiting to be mapped: {backlog.events_waiting}"
             + (f", the oldest {age(backlog.oldest_event_age_seconds)} old" if backlog.oldest_event_age_seconds else "")]
    for name, d in backlog.destinations.items():
        if d.drain_seconds is None:
            lines.append(f"{name}: {d.messages} waiting; not delivering (paused or not configured)")
        else:
            lines.append(f"{name}: {d.messages} waiting; drained in about {age(d.drain_seconds)} at its limit "
                         f"of {d.ceiling_per_second:,.0f} records a second")
    return "\n".join(lines)


# -- dead letters -------------------------------------------------------------


def cmd_dead_list(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    where = DeadFilter(destination=args.destination, since=args.since)
    page = on_store(settings, lambda store: store.list_dead(where, args.limit, args.offset))
    rows = [views.dead_letter(r, args.reveal) for r in page.items]
    emit_rows(
        rows, args.json, "no dead letters",
        ["ID", "EVENT", "DESTINATION", "KIND", "RULE", "ATTEMPTS", "DIED", "STATUS", "LAST ANSWER"],
        lambda r: [r["id"], r["event_id"], r["destination"], r["kind"], r["rule"], r["attempts"], r["died_at"],
                   r["last_status"], r["last_detail"]],
    )
    page_footer(page, args.json)
    return 0


def cmd_dead_retry(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    where = DeadFilter(tuple(args.id or ()), args.destination, args.since)
    if where.empty and not args.all:
        raise UsageError("dead retry needs --id, --destination or --since; --all retries every dead letter")
    now = time.time()
    count = on_store(settings, lambda store: store.retry_dead(where, now))
    print(f"{count} dead letter{'s' if count != 1 else ''} back to pending")
    return 0


# -- replay -------------------------------------------------------------------


def running_rules(settings: Settings) -> RuleSet:
    """The rules the instances run: the published version (BRIDGE_RULES_SOURCE=store), else the folder's."""
    if settings.rules_source == "store":
        from bridge.mapping.areas import allowed_from_settings
        from bridge.rules.sync import published_rules

        published = on_store(settings, lambda store: published_rules(store, allowed_from_settings(settings)))
        if published is not None:
            return published
    return load_current_rules(settings)


def cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    rules = running_rules(settings)
    where = EventFilter(args.source, args.topic, args.status, args.since, args.until)
    bar = ProgressBar("replay")
    try:
        summary = on_store(settings, lambda store: replay(store, rules, where, time.time(), force=args.force,
                                                          dry_run=args.dry_run, progress=bar))
    finally:
        bar.close()
    if args.json:
        emit_json(summary.as_dict())
        return 0
    prefix = "dry run: would have queued" if args.dry_run else "queued"
    print(f"{summary.events} events replayed; {prefix} {summary.queued} messages"
          f" ({summary.requeued_dead} of them dead letters brought back);"
          f" skipped {summary.skipped_delivered} already delivered, {summary.skipped_open} still waiting;"
          f" {summary.events_with_errors} events with mapping errors")
    if (summary.skipped_delivered or summary.skipped_open) and not args.force:
        print("(--force queues them again, with the same idempotency keys)")
    return 0


# -- destinations -------------------------------------------------------------


def _set_paused(args: argparse.Namespace, paused: bool) -> int:
    settings = settings_from_env()
    if args.name not in settings.destinations:
        raise UsageError(f"no destination named {args.name!r}; known: {', '.join(sorted(settings.destinations))}")
    reason = (args.reason or "paused by an operator") if paused else "resumed by an operator"
    # No key fingerprint: an operator's pause holds until resumed.
    on_store(settings, lambda store: store.set_paused(args.name, paused, reason, None, time.time()))
    print(f"{args.name} {'paused' if paused else 'resumed'}; a running worker picks this up within a few seconds")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    return _set_paused(args, True)


def cmd_resume(args: argparse.Namespace) -> int:
    return _set_paused(args, False)


# -- prune --------------------------------------------------------------------


def cmd_prune(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    result = on_store(settings, lambda store: prune_with_settings(
        store, settings, time.time(), delivered_days=args.delivered_days, bodies_days=args.bodies_days,
        dry_run=args.dry_run))
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {result.messages} delivered messages ({result.attempts} attempts), {result.bodies} event bodies,"
          f" {result.dedupe_keys} dedupe keys older than {settings.dedupe_days:g} days, {result.resources} orders kept"
          f" for refunds older than {settings.lookup_days:g} days,"
          f" {result.sent_prints} Omneo sent prints older than the echo window ({echo_window(settings):g} s)")
    return 0


# -- consent ------------------------------------------------------------------


def cmd_consent_show(args: argparse.Namespace) -> int:
    """What the bridge knows of one e-mail's consent: per channel and source, the last flag and decision."""
    settings = settings_from_env()
    contact = contact_fingerprint(args.email)
    records = on_store(settings, lambda store: store.consent_records(contact))
    rows = []
    for r in records:
        newest = max((o.decided_at for o in records if o.channel == r.channel and o.decided_at is not None),
                     default=None)
        says = "subscribed" if r.subscribed else "not subscribed"
        rows.append({"channel": r.channel, "source": r.source, "says": says,
                     "said_by_event": r.said_event, "decided_at": iso(r.decided_at) if r.decided_at else None,
                     "decided_by_event": r.decided_event,
                     "current": r.decided_at is not None and r.decided_at == newest})
    emit_rows(rows, args.json, "no consent decision known for that e-mail",
              ["CHANNEL", "SOURCE", "LAST SAID", "BY EVENT", "DECIDED AT", "BY EVENT", "CURRENT"],
              lambda r: [r["channel"], r["source"], r["says"], r["said_by_event"], r["decided_at"] or "-",
                         r["decided_by_event"] or "-", "yes" if r["current"] else ""])
    return 0


# -- the parser ---------------------------------------------------------------


def _command(parent: Any, name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    parser.set_defaults(func=fn)
    return parser


def _group(commands: Any, name: str, help: str) -> Any:
    parser = commands.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def cmd_audit(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    where = AuditFilter(args.destination, args.area, args.since)
    page = on_store(settings, lambda store: store.audit(where, args.limit, args.offset))
    rows = [views.audit_row(r, args.reveal) for r in page.items]
    emit_rows(
        rows, args.json, "nothing written",
        ["AT", "DESTINATION", "AREAS", "KIND", "ACTION", "OUTCOME", "STATUS", "EVENT", "RULE", "WROTE"],
        lambda r: [r["at"], r["destination"], ",".join(r["areas"]), r["kind"], r["action"], r["outcome"], r["status"],
                   f"{r['event_id']} {r['source']} {r['topic']}", r["rule"],
                   json.dumps(r["record"], ensure_ascii=False)[:100]],
    )
    page_footer(page, args.json)
    return 0


def register(commands: Any) -> None:
    """Add the operator commands to the `bridge` parser's subcommands."""
    events = _group(commands, "events", "inspect inbound events")
    p = _command(events, "list", cmd_events_list, "list inbound events, newest first")
    p.add_argument("--source")
    p.add_argument("--topic")
    p.add_argument("--status", choices=EVENT_STATUSES)
    p.add_argument("--since", type=when, metavar="WHEN", help="ISO 8601 or relative (2h, 3d)")
    p.add_argument("--until", type=when, metavar="WHEN")
    p.add_argument("--limit", type=positive_int, default=50)
    p.add_argument("--offset", type=non_negative_int, default=0, help="skip this many matching rows")
    p.add_argument("--reveal", action="store_true", help="show personal data")
    p.add_argument("--json", action="store_true")
    p = _command(events, "show", cmd_events_show, "one event with its messages and every delivery attempt")
    p.add_argument("id", type=int)
    p.add_argument("--reveal", action="store_true", help="show personal data")
    p.add_argument("--json", action="store_true")

    outbox = _group(commands, "outbox", "the outbox")
    p = _command(outbox, "stats", cmd_outbox_stats, "messages per destination and state, oldest pending, pauses")
    p.add_argument("--json", action="store_true")

    dead = _group(commands, "dead", "dead letters: messages that will not be retried")
    p = _command(dead, "list", cmd_dead_list, "dead letters with their last answer, most recent first")
    p.add_argument("--destination")
    p.add_argument("--since", type=when, metavar="WHEN", help="died since; ISO 8601 or relative (2h, 3d)")
    p.add_argument("--limit", type=positive_int, default=100)
    p.add_argument("--offset", type=non_negative_int, default=0, help="skip this many matching rows")
    p.add_argument("--reveal", action="store_true", help="show personal data")
    p.add_argument("--json", action="store_true")
    p = _command(dead, "retry", cmd_dead_retry, "put dead letters back in the outbox, due now, with fresh attempts")
    p.add_argument("--id", type=int, action="append", help="a message id (repeat for several)")
    p.add_argument("--destination")
    p.add_argument("--since", type=when, metavar="WHEN")
    p.add_argument("--all", action="store_true", help="every dead letter (needed when no filter is given)")

    p = _command(commands, "audit", cmd_audit, "what the bridge wrote to the destinations, by area, newest first")
    p.add_argument("--destination")
    p.add_argument("--area", choices=AREAS)
    p.add_argument("--since", type=when, metavar="WHEN", help="ISO 8601 or relative (2h, 3d)")
    p.add_argument("--limit", type=positive_int, default=500)
    p.add_argument("--offset", type=non_negative_int, default=0, help="skip this many matching rows")
    p.add_argument("--reveal", action="store_true", help="show personal data")
    p.add_argument("--json", action="store_true")

    p = _command(commands, "replay", cmd_replay, "run stored events again through the current rules")
    p.add_argument("--since", type=when, metavar="WHEN", required=True)
    p.add_argument("--until", type=when, metavar="WHEN")
    p.add_argument("--source")
    p.add_argument("--topic")
    p.add_argument("--status", choices=EVENT_STATUSES,
                   help="only events in this status (mapping_error: those a rule failed on, once it is fixed)")
    p.add_argument("--dry-run", action="store_true", help="count what would be queued; change nothing")
    p.add_argument("--force", action="store_true",
                   help="queue messages again even when delivered or waiting (a forced Omnisend event arrives twice)")
    p.add_argument("--json", action="store_true")

    consent = _group(commands, "consent", "the marketing consent decisions the bridge knows")
    p = _command(consent, "show", cmd_consent_show, "one e-mail's consent per channel and source: the newest "
                 "decision is the one sent; an older one, or a flag nobody decided, is not")
    p.add_argument("email", help="the contact's e-mail (the store keeps only its fingerprint)")
    p.add_argument("--json", action="store_true")

    destinations = _group(commands, "destinations", "pause or resume delivery to a destination")
    p = _command(destinations, "pause", cmd_pause, "stop delivering to a destination (messages wait)")
    p.add_argument("name")
    p.add_argument("--reason")
    p = _command(destinations, "resume", cmd_resume, "deliver to a paused destination again")
    p.add_argument("name")

    p = _command(commands, "prune", cmd_prune, "retention: delete old delivered messages, bodies, dedupe keys and Omneo sent prints")
    p.add_argument("--delivered-days", type=days, default=DEFAULT_DAYS)
    p.add_argument("--bodies-days", type=days, default=DEFAULT_DAYS)
    p.add_argument("--dry-run", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - `bridge` is the entry point
    from bridge.cli import main as bridge_main

    return bridge_main(argv if argv is not None else sys.argv[1:])


__all__ = ["iso", "register"]
