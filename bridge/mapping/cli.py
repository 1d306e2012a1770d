"""`bridge mappings check|test|try`: what a marketer runs before saving a rule file."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.config import settings_from_env
from bridge.errors import ConfigError
from bridge.mapping.areas import Allowed, allowed_from_settings, setting_name
from bridge.mapping.check import ConsentUse
from bridge.mapping.examples import first_sight, run_examples
from bridge.mapping.loader import LoadedRules, load_rules
from bridge.mapping.lookups import reads
from bridge.mapping.reload import failed_load
from bridge.mapping.rule import MessageSpec, Rule
from bridge.model import Event, Message, Outgoing


def _default_dir() -> Path:
    try:

        return settings_from_env().mappings_dir
    except Exception:  # settings may be incomplete on a marketer's laptop; rules still live in mappings/
        return Path("mappings")


def _allowed_areas() -> Allowed:
    """The deployment's areas ({destination: areas}) from `settings_from_env()`; ConfigError on bad names."""
    from bridge.settings import destinations_from_env

    try:
        return allowed_from_settings(settings_from_env())
    except ConfigError as exc:
        if "_AREAS" in str(exc):
            raise
    # Other settings may be incomplete on a marketer's laptop; the areas are read all the same.
    return {name: tuple(d.options["areas"]) for name, d in destinations_from_env(os.environ).items()}


def register(subparsers: Any) -> None:
    """Add the `mappings` command group to the main CLI's subparsers."""
    group = subparsers.add_parser("mappings", help="check, test and try the rule files in mappings/")
    commands = group.add_subparsers(dest="mappings_command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="check every rule file; exit 1 on any problem")
    check.add_argument("dir", nargs="?", type=Path, default=None, help="rules directory (default mappings/)")
    check.add_argument("--explain", action="store_true",
                       help="list the areas each message writes, and for consent which payload field it comes from")
    check.set_defaults(func=cmd_check)

    test = commands.add_parser("test", help="run every file's examples; exit 1 when one does not match")
    test.add_argument("dir", nargs="?", type=Path, default=None, help="rules directory (default mappings/)")
    test.set_defaults(func=cmd_test)

    try_ = commands.add_parser("try", help="show the requests a payload would cause, without sending anything")
    try_.add_argument("payload", type=Path, help="a JSON file with the webhook body")
    try_.add_argument("--source", required=True, help="source name, e.g. shopify")
    try_.add_argument("--topic", required=True, help="topic, e.g. orders/create")
    try_.add_argument("--dir", type=Path, default=None, help="rules directory (default mappings/)")
    try_.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="a webhook header (repeatable)")
    try_.add_argument("--messages", action="store_true", help="print the mapped messages instead of HTTP requests")
    try_.add_argument("--order", type=Path, default=None, metavar="ORDER.json",
                      help="for a refund: the order's webhook body, which its rules read as `order`")
    try_.set_defaults(func=cmd_try)


def _load(directory: Path | None, allowed_areas: Allowed | None = None) -> LoadedRules | None:
    folder = directory or _default_dir()
    try:
        return load_rules(folder, allowed_areas)
    except Exception as exc:  # a RulesError lists the problems; anything else is still one located line
        problems = failed_load(folder, exc)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} problem(s); nothing was changed", file=sys.stderr)
        return None


def _load_deployed(directory: Path | None) -> tuple[LoadedRules, Allowed] | None:
    """The rules under this deployment's areas of access (from the environment), or None after printing why not."""
    try:
        allowed = _allowed_areas()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    rules = _load(directory, allowed)
    return None if rules is None else (rules, allowed)


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load_deployed(args.dir)
    if loaded is None:
        return 1
    rules, allowed = loaded
    for note in rules.notes:
        print(note)
    if rules.example_problems:
        for problem in rules.example_problems:
            print(problem, file=sys.stderr)
        print(f"{len(rules.example_problems)} problem(s) found against the examples; "
              "a running bridge still loads these rules", file=sys.stderr)
        return 1
    if args.explain:
        explain(rules, allowed)
    for refusal in rules.blocked:
        print(refusal)
    if rules.blocked:
        print(f"{len(rules.blocked)} message(s) not sent under this deployment's areas (the setting above "
              "each would allow it); the rest of every rule runs")
    print(f"ok: {len(rules)} rules in {len(rules.files)} files")
    return 0


def explain(rules: LoadedRules, allowed: Allowed) -> None:
    """Per rule and message: the areas it writes; for consent, the payload fields it comes from."""
    print("allowed: " + "  ".join(f"{setting_name(name)}={','.join(areas) or 'none'}" for name, areas in allowed.items()))
    for rule in rules.rules:
        if rule.ignore:
            continue
        print(f"{rule.file}:{rule.line} rule '{rule.name}' ({rule.source} {', '.join(rule.topics)})")
        for message in rule.messages:
            permitted = set(allowed.get(message.destination, message.areas))
            marks = [area if area in permitted else f"{area} (NOT ALLOWED)" for area in message.areas]
            print(f"  → {message.label} {message.action} (line {message.line}): {', '.join(marks)}")
            decided = _decided(message)
            for use in _consent_of(rules, rule, message):
                print(f"      consent {use.path} from {', '.join(f'`{p}`' for p in use.paths or use.reads)}, "
                      f"{decided}")
            if message.decision is not None:
                print(f"      its {message.decision.channel} decision, for {message.decision.sources['contact']}, is sent "
                      "only when newer than any the bridge knows for that e-mail")
            for area in ("deletions",):
                if area in message.writes:
                    print(f"      {area}: {', '.join(message.writes[area])}")


def _decided(message: MessageSpec) -> str:
    """Which time a consent message's decision is taken from (`decision:` in the rule)."""
    decision = message.decision
    if decision is None:
        return "no decision: never sent"
    text = f"decided at {decision.sources['at']}"
    if "changed" in decision.sources:
        text += f" (without it: when the flag changes, at {decision.sources['changed']})"
    return text


def _consent_of(rules: LoadedRules, rule: Rule, message: MessageSpec) -> list[ConsentUse]:
    later = [m.line for m in rule.messages if m.line > message.line]
    end = min(later) if later else float("inf")
    return [use for use in rules.consent if use.file == rule.file and use.rule == rule.name
            and (use.destination, use.kind) == (message.destination, message.kind) and message.line <= use.line < end]


def cmd_test(args: argparse.Namespace) -> int:
    rules = _load(args.dir)
    if rules is None:
        return 1
    for problem in rules.example_problems:
        print(problem, file=sys.stderr)
    outcomes = run_examples(rules)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    for outcome in outcomes:
        print(f"{'ok  ' if outcome.ok else 'FAIL'} {outcome.title}")
    for outcome in failed:
        print(f"\n{outcome.title}:\n{outcome.report}", end="")
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} examples pass")
    return 1 if failed or rules.example_problems else 0


def cmd_try(args: argparse.Namespace) -> int:
    loaded = _load_deployed(args.dir)
    if loaded is None:
        return 1
    rules, _ = loaded
    try:
        body = args.payload.read_bytes()
        json.loads(body)
    except (OSError, ValueError) as exc:
        print(f"{args.payload}: cannot read a JSON payload: {exc}", file=sys.stderr)
        return 1
    headers = dict(header.split(":", 1) for header in args.header if ":" in header)
    attached: dict[str, bytes | None] = {}
    lookup = reads(args.source, args.topic)
    if args.order is not None:
        if lookup is None or lookup.name != "order":
            print(f"--order: {args.source} {args.topic} does not read an order", file=sys.stderr)
            return 1
        try:
            attached["order"] = args.order.read_bytes()
            json.loads(attached["order"] or b"")
        except (OSError, ValueError) as exc:
            print(f"{args.order}: cannot read a JSON order: {exc}", file=sys.stderr)
            return 1
    elif lookup is not None:
        print(f"# note: {args.source} {args.topic} reads `{lookup.name}`; give it with --{lookup.name} FILE.json")
    event = Event(id=0, source=args.source, topic=args.topic, dedupe_key=f"try:{args.payload.name}",
                  received_at=time.time(), headers={k.strip(): v.strip() for k, v in headers.items()}, body=body,
                  lookups=attached)
    result = rules.map(event)
    print(f"# {result.status}: rules {', '.join(result.rules) or '(none)'}")
    for error in result.errors:
        print(f"# error: {error}")
    for notice in result.withheld:
        print(f"# not sent: {notice}")
    messages = first_sight(result.messages)
    kept = {id(message) for message in messages}
    for message in result.messages:
        if id(message) not in kept:
            print(f"# not sent: rule '{message.rule}' #{message.index} → {message.destination} {message.kind}: consent "
                  "with no time of a decision, for a contact the bridge knows nothing of (a change of the flag "
                  "would be one)")
    if not messages:
        return 1 if result.errors else 0
    if args.messages or not _print_requests(event, messages):
        for message in messages:
            print(f"{message.destination} {message.kind} {message.action} key={message.key!r} "
                  f"areas={','.join(message.areas)} (rule '{message.rule}' #{message.index})")
            print(json.dumps(message.record, indent=2, ensure_ascii=False))
    return 1 if result.errors else 0


def _print_requests(event: Event, messages: Sequence[Outgoing]) -> bool:
    """Print what the destination adapters would send; False when they are not available."""
    if importlib.util.find_spec("bridge.destinations.registry") is None:
        return False
    try:
        from bridge.destinations.registry import build_destinations

        destinations = build_destinations(settings_from_env())
    except Exception as exc:  # unconfigured settings: show the mapped messages instead
        print(f"# (cannot build destinations: {exc}; showing messages)")
        return False
    rows: dict[str, list[Message]] = {}
    for number, out in enumerate(messages, start=1):
        rows.setdefault(out.destination, []).append(Message(
            id=number, event_id=event.id, destination=out.destination, kind=out.kind, action=out.action,
            record=out.record, rule=out.rule, key=out.key,
            idempotency_key=out.idempotency_key(event.source, event.dedupe_key), attempts=0, created_at=event.received_at,
        ))
    for name, batch in rows.items():
        destination = destinations.get(name)
        if destination is None:
            print(f"# no destination `{name}` is configured")
            continue
        for request in destination.prepare(batch):
            print(f"{request.method} {request.destination} {request.path}")
            print(json.dumps(request.body, indent=2, ensure_ascii=False))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
