"""What may be done with the rules, for the admin API and the CLI: drafts, check, examples, preview,
publish, rollback, history, import. Every change is written to the rules' audit log (who, what, when).

A publish is refused when the set fails the check, and when another version was published since the
draft started (its author reviews that change first, or publishes with `force`). A rollback publishes
an earlier version's files again as a new version, so the history only grows.
"""

from __future__ import annotations

import asyncio
import difflib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.destinations import Destination
from bridge.mapping.areas import Allowed
from bridge.mapping.loader import LoadedRules
from bridge.mapping.process import MappingProcess, PreviewStopped
from bridge.rules import files as ruleset
from bridge.rules import preview as previews
from bridge.rules.check import CheckResult, check_files, examples
from bridge.rules.sync import RulesSync, action, publish
from bridge.store.base import Page, RuleAction, RuleDraft, RuleVersion, Store
from bridge.when import iso


class Refused(Exception):
    """The action cannot be done as asked; `status` is the HTTP answer, `details` what to show."""

    def __init__(self, message: str, status: int = 409, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}


class Missing(Exception):
    pass


def diff_sets(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """A unified diff of two sets, file by file (a/ before, b/ after)."""
    out: list[str] = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        before = old[name].splitlines(keepends=True) if name in old else []
        after = new[name].splitlines(keepends=True) if name in new else []
        out.extend(difflib.unified_diff(before, after, f"a/{name}" if name in old else "/dev/null",
                                        f"b/{name}" if name in new else "/dev/null"))
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    return "".join(out)


class RulesService:
    def __init__(self, store: Store, allowed: Allowed | None, *, sync: RulesSync | None = None,
                 destinations: Mapping[str, Destination] | None = None, process: MappingProcess | None = None,
                 preview_seconds: float = 30.0, payload_roots: Sequence[Path] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.allowed = allowed
        self.sync = sync
        self.destinations = destinations or {}
        self.process = process
        self.preview_seconds = preview_seconds
        self.payload_roots = tuple(payload_roots)  # where the examples' payload files are (the rules folder, the project)
        self.clock = clock
        self._previewing = asyncio.Lock()  # one preview at a time: each takes the mapping process for seconds

    async def _audit(self, actor: str, what: str, version: int | None = None, draft: int | None = None,
                     detail: str = "") -> None:
        await self.store.record_rule_action(action(self.clock(), actor, what, version, draft, detail))

    # -- reading ------------------------------------------------------------------------------------

    async def published(self) -> RuleVersion | None:
        head = await self.store.rule_head()
        return None if head is None else await self.store.rule_version(head.version)

    async def version(self, number: int) -> tuple[RuleVersion, str]:
        """A version with its files and its diff from the version before it."""
        found = await self.store.rule_version(number)
        if found is None:
            raise Missing(f"no rules version {number}")
        before = await self.store.rule_version(number - 1) if number > 1 else None
        return found, diff_sets(before.files if before else {}, found.files)

    async def history(self, limit: int, offset: int = 0) -> Page[RuleVersion]:
        return await self.store.rule_history(limit, offset)

    async def actions(self, limit: int, offset: int = 0) -> Page[RuleAction]:
        return await self.store.rule_actions(limit, offset)

    async def drafts(self, limit: int, offset: int = 0) -> Page[RuleDraft]:
        return await self.store.rule_drafts(limit, offset)

    async def draft(self, draft_id: int) -> RuleDraft:
        found = await self.store.rule_draft(draft_id)
        if found is None:
            raise Missing(f"no draft {draft_id}")
        return found

    # -- drafts -------------------------------------------------------------------------------------

    async def create_draft(self, actor: str, files: dict[str, str] | None = None) -> RuleDraft:
        """A draft of the published set (or of `files`)."""
        head = await self.published()
        chosen = dict(head.files if head else {}) if files is None else files
        _savable(chosen)
        draft = await self.store.save_rule_draft(None, chosen, head.version if head else None, actor, self.clock())
        assert draft is not None
        await self._audit(actor, "draft.create", draft.base_version, draft.id, f"{len(chosen)} files")
        return draft

    async def save_draft(self, actor: str, draft_id: int, files: dict[str, str]) -> RuleDraft:
        current = await self.draft(draft_id)
        _savable(files)
        saved = await self.store.save_rule_draft(draft_id, files, current.base_version, actor, self.clock())
        if saved is None:
            raise Missing(f"no draft {draft_id}")
        changed = sorted(n for n in set(files) | set(current.files) if files.get(n) != current.files.get(n))
        await self._audit(actor, "draft.save", saved.base_version, draft_id, "changed: " + (", ".join(changed) or "nothing"))
        return saved

    async def save_file(self, actor: str, draft_id: int, name: str, text: str | None) -> RuleDraft:
        """Put one file in a draft (None: take it out)."""
        files = dict((await self.draft(draft_id)).files)
        if text is None:
            if files.pop(name, None) is None:
                raise Missing(f"draft {draft_id} has no file {name}")
        else:
            files[name] = text
        return await self.save_draft(actor, draft_id, files)

    async def delete_draft(self, actor: str, draft_id: int) -> None:
        if not await self.store.delete_rule_draft(draft_id):
            raise Missing(f"no draft {draft_id}")
        await self._audit(actor, "draft.delete", draft=draft_id)

    async def check(self, files: Mapping[str, str]) -> CheckResult:
        result, _ = await asyncio.to_thread(check_files, files, self.allowed, self.payload_roots)
        return result

    async def examples(self, files: Mapping[str, str], file: str | None) -> dict[str, Any]:
        return await asyncio.to_thread(examples, files, self.allowed, file, self.payload_roots)

    # -- preview ------------------------------------------------------------------------------------

    async def preview(self, actor: str, draft_id: int, limit: int, reveal: bool = False) -> dict[str, Any]:
        draft = await self.draft(draft_id)
        result, loaded = await asyncio.to_thread(check_files, draft.files, self.allowed, self.payload_roots)
        if loaded is None:
            raise Refused("the draft fails the check: fix its problems before a preview", 422, result.as_dict())
        head = await self.published()
        running_files = head.files if head else {}
        running_loaded = await self._running_loaded(running_files) if head else None
        topics = previews.touched_topics(running_loaded, loaded)
        events = await previews.events_for(self.store, topics, limit)
        if self.process is None:
            raise Refused("previews need the mapping process, which this instance does not run", 503)
        # The running set's folder is the one every instance runs it from; a draft's lasts for the preview.
        running_dir = await asyncio.to_thread(ruleset.materialize, running_files or draft.files, ruleset.runtime_base())
        drafts = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="bridge-preview-"))
        try:
            draft_dir = await asyncio.to_thread(ruleset.materialize, draft.files, drafts)
            async with self._previewing:
                answer = await previews.compare(self.process, running_dir, draft_dir, self.allowed, events,
                                                self.preview_seconds, self.destinations, reveal)
        except PreviewStopped as exc:
            raise Refused(f"the preview was stopped: {exc}. A rule of the draft runs over the mapping "
                          "budget: see the rule that event matches", 422) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, drafts, True)
        answer["topics"] = topics
        answer["running_version"] = head.version if head else None
        summary = answer["summary"]
        await self._audit(actor, "preview", head.version if head else None, draft_id,
                          f"{summary['previewed']} events: {summary['changed']} change, {summary['unchanged']} "
                          f"unchanged, {summary['new_errors']} become errors")
        return answer

    async def _running_loaded(self, files: Mapping[str, str]) -> LoadedRules | None:
        """The published set as loaded: the rules this instance runs when they are those, else loaded now."""
        current = self.sync.holder.current if self.sync is not None else None
        if current is not None and current.digests == ruleset.digests(files):
            return current
        return (await asyncio.to_thread(check_files, files, self.allowed, self.payload_roots))[1]

    # -- publishing ---------------------------------------------------------------------------------

    async def publish_draft(self, actor: str, draft_id: int, message: str, force: bool = False) -> RuleVersion:
        draft = await self.draft(draft_id)
        head = await self.store.rule_head()
        if head is not None and draft.base_version != head.version and not force:
            raise Refused(f"version {head.version} was published since this draft started from version "
                          f"{draft.base_version}: look at its changes (GET /admin/rules/versions/{head.version}), "
                          "then publish with force to replace them", 409)
        version = await self._publish(actor, draft.files, message, "publish", draft.base_version, draft_id)
        await self.store.delete_rule_draft(draft_id)
        return version

    async def rollback(self, actor: str, to_version: int, message: str = "") -> RuleVersion:
        old = await self.store.rule_version(to_version)
        if old is None:
            raise Missing(f"no rules version {to_version}")
        return await self._publish(actor, old.files, message or f"rolled back to version {to_version}", "rollback",
                                   to_version, None)

    async def _publish(self, actor: str, files: dict[str, str], message: str, origin: str, based_on: int | None,
                       draft_id: int | None) -> RuleVersion:
        if self.sync is None:
            raise Refused("the rules come from the folder here (BRIDGE_RULES_SOURCE=folder): change the files "
                          "and deploy them", 409)
        result = await self.check(files)
        if not result.ok:
            raise Refused("the rules fail the check, so they are not published; fix each problem", 422,
                          result.as_dict())
        version = await publish(self.store, files, author=actor, origin=origin, now=self.clock(),
                                message=message.strip() or f"{origin} by {actor}", based_on=based_on)
        assert version is not None
        await self._audit(actor, origin, version.version, draft_id, message.strip())
        await self.sync.apply_head()  # this instance at once; the others within their poll
        return version


def _savable(files: Mapping[str, str]) -> None:
    problems = ruleset.problems(files)
    if problems:
        raise Refused("; ".join(problems), 400)


def version_view(version: RuleVersion, with_files: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {"version": version.version, "created_at": iso(version.created_at), "author": version.author,
                            "message": version.message, "origin": version.origin, "based_on": version.based_on,
                            "digest": version.digest}
    if with_files:
        view["files"] = dict(version.files)
    return view


def draft_view(draft: RuleDraft, with_files: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {"id": draft.id, "created_at": iso(draft.created_at), "updated_at": iso(draft.updated_at),
                            "author": draft.author, "base_version": draft.base_version}
    if with_files:
        view["files"] = dict(draft.files)
    return view


def action_view(entry: RuleAction) -> dict[str, Any]:
    return {**entry, "at": iso(entry["at"])}


__all__ = ["Missing", "Refused", "RulesService", "action_view", "diff_sets", "draft_view", "version_view"]
