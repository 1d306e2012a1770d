"""Each instance runs the published rule set, and the rules folder comes in as a new version when it changes.

Which source wins: the store, once it holds a version. The folder (BRIDGE_MAPPINGS_DIR) is imported
as a new version when its files are not those of any stored version: on a fresh install (version 1),
and when a deploy brings changed files. Files the store has held before (a restart, an instance of an
older build starting, a folder exported with `bridge rules export` and deployed) change nothing, so a
version published from the console since stays published; `bridge rules import DIR` publishes a
folder whatever the store held before. A folder that fails the check is not imported: the published
version keeps running and /healthz shows the folder's problems.

Every instance polls the head version (one indexed row) every BRIDGE_RULES_POLL_SECONDS; a new one
is written to a folder of its own under the temporary directory (named by its digest) and loaded
there by the RulesHolder (bridge.mapping.reload), so the last-good-rules copy, /healthz's hash and the
mapping process work as for any folder. A version that does not load on this instance (a file the
deployment's areas or an older build refuse) is not run: the rules running keep running, and the
error says which version failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from bridge.errors import StoreUnavailable
from bridge.mapping.areas import Allowed
from bridge.mapping.loader import LoadedRules, load_rules
from bridge.mapping.reload import RulesHolder, failed_load
from bridge.mapping.rulefile import rule_files
from bridge.rules import files as ruleset
from bridge.rules.check import CheckResult, check_files
from bridge.store.base import RuleAction, RuleVersion, Store
from bridge.when import iso

log = structlog.get_logger("bridge.rules")

FOLDER_AUTHOR = "folder"
PUBLISH_TRIES = 5  # a publish that lost the race to another instance reads the head again this often


class RulesSync:
    def __init__(self, store: Store, holder: RulesHolder, folder: Path, *, poll_seconds: float = 2.0,
                 base: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.holder = holder
        self.folder = Path(folder)
        self.poll_seconds = poll_seconds
        self.base = base or ruleset.runtime_base()
        self.clock = clock
        self.running: RuleVersion | None = None  # the published version this instance runs
        self.failed: int | None = None  # a published version that did not load here
        self.folder_error: str | None = None  # why the folder was not imported
        self._folder_seen: tuple[tuple[str, int, int], ...] | None = None

    async def start(self) -> None:
        """Import the folder if it is new, then run the published version. A store that cannot answer
        leaves the folder's rules running; the watch tries again."""
        try:
            await self.import_folder()
            await self.apply_head()
        except StoreUnavailable as exc:
            log.warning("rules.store_unavailable", reason=str(exc), hint="the folder's rules run until the store answers")

    async def refresh(self) -> None:
        """Import the folder if it is new and run the published version, now (SIGHUP)."""
        try:
            await self.import_folder()
            await self.apply_head()
        except StoreUnavailable as exc:
            log.warning("rules.store_unavailable", reason=str(exc))
        except Exception:
            log.exception("rules.sync_failed")

    async def watch(self) -> None:
        """Poll the folder and the head version; runs until cancelled."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                if self._folder_scan() != self._folder_seen:
                    await self.import_folder()
                await self.apply_head()
                ruleset.keep(self.holder.directory)
            except StoreUnavailable as exc:
                log.warning("rules.store_unavailable", reason=str(exc))
            except Exception:  # the watch lives on after anything
                log.exception("rules.sync_failed")

    def _folder_scan(self) -> tuple[tuple[str, int, int], ...]:
        try:
            return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(self.folder))
        except OSError:
            return ()

    async def import_folder(self) -> RuleVersion | None:
        """Publish the folder's files as a new version when no stored version has them and they pass the
        check; the version, or None."""
        self._folder_seen = self._folder_scan()
        try:
            files = ruleset.read_folder(self.folder)
        except FileNotFoundError:
            self.folder_error = None
            return None
        except OSError as exc:
            self.folder_error = f"{self.folder}: cannot be read ({exc.strerror or type(exc).__name__})"
            return None
        except ValueError:  # a file that is not text: the loader names it among the folder's problems
            self._not_imported(await asyncio.to_thread(folder_problems, self.folder, self.holder.allowed_areas))
            return None
        if not files:
            self.folder_error = None
            return None
        digest = ruleset.digest(files)
        if await self.store.rule_head(digest=digest) is not None:
            self.folder_error = None
            return None
        result = await self._check(files)
        if not result.ok:
            self._not_imported([f"{p.file}:{p.line}:{p.column}: {p.message}" + (f"; {p.fix}" if p.fix else "")
                                for p in result.problems])
            return None
        self.folder_error = None
        version = await publish(self.store, files, author=FOLDER_AUTHOR, origin="folder", now=self.clock(),
                                message=f"imported from the folder {self.folder.name}/",
                                done_if=lambda: self.store.rule_head(digest=digest))
        if version is not None:
            await self.store.record_rule_action(action(self.clock(), FOLDER_AUTHOR, "import", version.version,
                                                       detail=f"{len(files)} files from {self.folder.name}/"))
            log.info("rules.folder_imported", version=version.version, files=len(files), digest=digest)
        return version

    def _not_imported(self, problems: list[str]) -> None:
        self.folder_error = (f"the files in {self.folder} were not imported; the published rules keep "
                             "running:\n" + "\n".join(problems))
        log.error("rules.folder_not_imported", directory=str(self.folder), problems=problems)

    async def _check(self, files: dict[str, str]) -> CheckResult:
        """The check of the folder's files: passed already when the holder runs them from this folder."""
        current = self.holder.current
        if current is not None and self.holder.directory == self.folder and current.digests == ruleset.digests(files):
            return CheckResult(rules=len(current), files=len(files))
        result, _ = await asyncio.to_thread(check_files, files, self.holder.allowed_areas)
        return result

    async def apply_head(self) -> bool:
        """Run the published version if it is not the one running here; True when a new one now runs."""
        head = await self.store.rule_head()
        if head is None or head.version == self.failed:
            return False
        if self.running is not None and head.version == self.running.version:
            return False
        full = await self.store.rule_version(head.version)
        if full is None:
            return False
        directory = await asyncio.to_thread(ruleset.materialize, full.files, self.base)
        if await self.holder.aswitch(directory):
            previous, self.running, self.failed = self.running, head, None
            await asyncio.to_thread(ruleset.prune, self.base, self.clock())
            log.info("rules.version_running", version=head.version, previous=previous.version if previous else None,
                     author=head.author, hash=self.holder.hash)
            return True
        self.failed = head.version
        if self.holder.error is not None:
            kept = f"version {self.running.version}" if self.running else "the rules loaded before"
            self.holder.error = f"published version {head.version} does not load here; {kept} keeps running:\n" \
                                + self.holder.error
        log.error("rules.version_failed", version=head.version, running=self.running.version if self.running else None)
        return False

    def state(self) -> dict[str, Any]:
        """What /healthz shows of the rules' source."""
        return {
            "source": "store",
            "version": self.running.version if self.running else None,
            "published_at_utc": iso(self.running.created_at) if self.running else None,
            "published_by": self.running.author if self.running else None,
            "failed_version": self.failed,
            "folder_error": self.folder_error,
        }


async def publish(store: Store, files: dict[str, str], *, author: str, origin: str, now: float, message: str,
                  based_on: int | None = None, done_if: Callable[[], Any] | None = None) -> RuleVersion | None:
    """Store `files` as the next version. Another instance may take a number first: the head is read again
    (up to PUBLISH_TRIES times); `done_if`, when it finds a version, says another instance did this very
    publish (the same folder imported by two instances starting at once): then None."""
    digest = ruleset.digest(files)
    for _ in range(PUBLISH_TRIES):
        head = await store.rule_head()
        if done_if is not None and head is not None and head.digest == digest:
            return None  # another instance published these very files since this one looked
        version = RuleVersion((head.version if head else 0) + 1, now, author, message, origin, digest,
                              based_on if based_on is not None else (head.version if head else None), dict(files))
        if await store.publish_rules(version):
            return version
        if done_if is not None and await done_if() is not None:
            return None
    raise StoreUnavailable("the rules could not be published: other publishes kept taking the next version")


async def published_rules(store: Store, allowed: Allowed | None) -> LoadedRules | None:
    """The published version loaded as an instance runs it (for one-off commands such as `bridge replay`),
    None when nothing is published yet. Raises RulesError when it does not load here."""
    head = await store.rule_head()
    version = await store.rule_version(head.version) if head is not None else None
    if version is None:
        return None
    directory = await asyncio.to_thread(ruleset.materialize, version.files, ruleset.runtime_base())
    return await asyncio.to_thread(load_rules, directory, allowed)


def folder_problems(folder: Path, allowed: Allowed | None) -> list[str]:
    """What the loader says of a folder it cannot load, as `bridge mappings check` prints it."""
    try:
        load_rules(folder, allowed)
    except Exception as exc:  # a RulesError lists the problems; anything else is one located line
        return failed_load(folder, exc)
    return [f"{folder}: a file is not UTF-8 text; save it as UTF-8"]


def action(at: float, actor: str, what: str, version: int | None = None, draft: int | None = None,
           detail: str = "") -> RuleAction:
    return {"at": at, "actor": actor, "action": what, "version": version, "draft": draft, "detail": detail}
