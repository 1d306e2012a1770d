"""`bridge rules list|history|export|import|publish|rollback`: the rule sets kept in the store, from a terminal.

A team that keeps its rules in git exports the running set (`bridge rules export mappings/`), commits it,
and publishes a reviewed change with `bridge rules import mappings/` (or by deploying it: the folder is
imported when it brings new files). Each command opens the configured store (BRIDGE_DATABASE_URL) and
is audited as the operating-system user who ran it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from bridge.config import settings_from_env
from bridge.mapping.areas import allowed_from_settings
from bridge.ops.cli import on_store
from bridge.rules import files as ruleset
from bridge.rules.check import check_files
from bridge.rules.service import Missing, Refused, RulesService, diff_sets
from bridge.rules.sync import action, publish
from bridge.store.base import Store
from bridge.when import iso


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("rules", help="the rule sets kept in the store: list, history, export, import, "
                                                 "publish, rollback")
    commands = group.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="the published version's files and rules")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    history = commands.add_parser("history", help="published versions, newest first")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--diff", type=int, metavar="VERSION", help="print this version's diff from the one before")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)
    export = commands.add_parser("export", help="write the published version's files to DIR (its other .yaml files "
                                                "are removed; a README stays)")
    export.add_argument("dir", type=Path)
    export.add_argument("--version", type=int, default=None, help="another version than the published one")
    export.set_defaults(func=cmd_export)
    for name, helptext in (("import", "publish the rule files of DIR as a new version, when they pass the check"),
                           ("publish", "the same as import: publish DIR's files")):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("dir", type=Path)
        command.add_argument("-m", "--message", default="", help="what changed and why (kept in the history)")
        command.set_defaults(func=cmd_import, origin="import" if name == "import" else "publish")
    rollback = commands.add_parser("rollback", help="publish an earlier version's files again, as a new version")
    rollback.add_argument("version", type=int)
    rollback.add_argument("-m", "--message", default="")
    rollback.set_defaults(func=cmd_rollback)


def _who() -> str:
    try:
        return f"cli ({getpass.getuser()})"
    except Exception:  # no user name in a container: still said to be the command line
        return "cli"


def cmd_list(args: argparse.Namespace) -> int:
    head = on_store(settings_from_env(), lambda store: RulesService(store, None).published())
    if head is None:
        print("no rules are published yet: the folder is imported when an instance starts", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"version": head.version, "author": head.author, "created_at": iso(head.created_at),
                          "files": sorted(head.files)}, indent=2))
        return 0
    print(f"version {head.version}, published {iso(head.created_at)} by {head.author}: {head.message}")
    for name in sorted(head.files):
        print(f"  {name}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    if args.diff is not None:
        try:
            _, diff = on_store(settings, lambda store: RulesService(store, None).version(args.diff))
        except Missing as exc:
            print(exc, file=sys.stderr)
            return 1
        print(diff, end="")
        return 0
    page = on_store(settings, lambda store: store.rule_history(max(1, min(args.limit, 1000))))
    if args.json:
        print(json.dumps([{"version": v.version, "created_at": iso(v.created_at), "author": v.author,
                           "origin": v.origin, "message": v.message} for v in page.items], indent=2))
        return 0
    for v in page.items:
        print(f"{v.version:>5}  {iso(v.created_at)}  {v.origin:<8}  {v.author}: {v.message}")
    print(f"{len(page.items)} of {page.total} versions")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    async def read(store: Store) -> Any:
        if args.version is not None:
            return await store.rule_version(args.version)
        head = await store.rule_head()
        return await store.rule_version(head.version) if head else None

    settings = settings_from_env()
    version = on_store(settings, read)
    if version is None:
        print("no such version" if args.version else "no rules are published yet", file=sys.stderr)
        return 1
    removed = ruleset.export(version.files, args.dir)
    on_store(settings, lambda store: store.record_rule_action(
        action(_now(), _who(), "export", version.version, detail=f"to {args.dir}")))
    print(f"wrote version {version.version} ({len(version.files)} files) to {args.dir}"
          + (f"; removed {', '.join(removed)}" if removed else ""))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    try:
        files = ruleset.read_folder(args.dir)
    except (OSError, ValueError) as exc:
        print(f"{args.dir}: {exc}", file=sys.stderr)
        return 1
    result, _ = check_files(files, allowed_from_settings(settings))
    if not result.ok:
        for p in result.problems:
            print(f"{p.file}:{p.line}:{p.column}: {p.message}" + (f"; {p.fix}" if p.fix else ""), file=sys.stderr)
        print(f"{len(result.problems)} problem(s); nothing was published", file=sys.stderr)
        return 1

    async def run(store: Store) -> Any:
        head = await store.rule_head()
        if head is not None and head.digest == ruleset.digest(files):
            return None
        version = await publish(store, files, author=_who(), origin=args.origin, now=_now(),
                                message=args.message.strip() or f"{args.origin} from {args.dir}")
        assert version is not None
        await store.record_rule_action(action(_now(), _who(), args.origin, version.version, detail=args.message))
        before = await store.rule_version(head.version) if head else None
        return version, diff_sets(before.files if before else {}, files)

    published = on_store(settings, run)
    if published is None:
        print("these files are the published version already: nothing to publish")
        return 0
    version, diff = published
    print(diff, end="")
    print(f"published version {version.version}; every instance runs it within BRIDGE_RULES_POLL_SECONDS")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    settings = settings_from_env()

    async def run(store: Store) -> Any:
        old = await store.rule_version(args.version)
        if old is None:
            raise Missing(f"no rules version {args.version}")
        message = args.message.strip() or f"rolled back to version {args.version}"
        version = await publish(store, old.files, author=_who(), origin="rollback", now=_now(), message=message,
                                based_on=args.version)
        assert version is not None
        await store.record_rule_action(action(_now(), _who(), "rollback", version.version, detail=message))
        return version

    try:
        version = on_store(settings, run)
    except (Missing, Refused) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"published version {version.version} with the files of version {args.version}")
    return 0


def _now() -> float:
    import time

    return time.time()
