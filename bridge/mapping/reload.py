"""Hot reload: a broken save never stops the bridge; the last good rules keep running,
across restarts too when a folder for their copy is given (bridge.mapping.saved).

Whatever a load raises (a RulesError, or a RecursionError or MemoryError from a hostile
file that got past the checks) is a failed load, and the watcher lives on after anything.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from bridge.errors import RulesError
from bridge.mapping import saved
from bridge.mapping.areas import Allowed
from bridge.mapping.loader import LoadedRules, load_rules
from bridge.mapping.rulefile import rule_files
from bridge.when import iso

log = structlog.get_logger("bridge.mapping")

if TYPE_CHECKING:
    from bridge.mapping.result import RuleSet

Snapshot = tuple[tuple[str, int, int], ...]


class RunningRules(Protocol):
    """What the web app, the worker and the operator tools ask of the rules a process runs: a
    RulesHolder (a folder, reloaded when it changes), or FixedRules (a set given whole)."""

    @property
    def current(self) -> RuleSet | None:
        """The rules running now; None until a set loads."""

    @property
    def error(self) -> str | None:
        """Why the last load failed (the running set, if any, stays)."""

    @property
    def loaded_at(self) -> float | None: ...

    @property
    def running_saved(self) -> saved.SavedCopy | None:
        """The last good copy, when a start found the rules broken and runs it."""

    @property
    def hash(self) -> str | None:
        """Names the rules running: instances that show different hashes run different rules."""

    @property
    def blocked(self) -> list[str]:
        """Messages the deployment's areas refuse, each with the setting that would allow it."""

    async def watch(self, interval: float = 2.0) -> None:
        """Reload when the rules change, until cancelled."""

    def reload_soon(self) -> None:
        """Reload now (SIGHUP), without holding up the event loop."""


class FixedRules:
    """A rule set given whole (or none): never reloaded, never broken."""

    def __init__(self, current: RuleSet | None = None, loaded_at: float | None = None) -> None:
        self.current = current
        self.loaded_at = loaded_at if loaded_at is not None or current is None else time.time()
        self.error: str | None = None
        self.running_saved: saved.SavedCopy | None = None

    @property
    def hash(self) -> str | None:
        return None

    @property
    def blocked(self) -> list[str]:
        return []

    async def watch(self, interval: float = 2.0) -> None:
        return None

    def reload_soon(self) -> None:
        return None


def failed_load(directory: Path, exc: BaseException) -> list[str]:
    """The problems of a load that raised: a RulesError's list, or one line for anything else."""
    if isinstance(exc, RulesError):
        return exc.problems
    return [f"{directory}: the rules could not be loaded ({type(exc).__name__}); a file in this folder is "
            "too large or too deeply nested to read: run `bridge mappings check` to find it"]


class RulesHolder:
    """Holds the current rule set for a directory and swaps it when the files change.

    A failed load keeps `.current` (None if nothing ever loaded) and puts the
    problems in `.error` for /healthz, /readyz and the log. With no rules the
    bridge still takes and stores webhooks: the worker maps nothing until a
    good set loads, so events wait instead of being lost or refused (a
    refused webhook makes WooCommerce disable it after 5 failures).

    `allowed_areas` is the deployment's policy (`areas.allowed_from_settings`);
    messages it forbids are blocked, not errors: `.blocked` lists them for /healthz.

    With `saved_dir`, every set that loads is copied there, and a first load that
    fails runs that copy instead of nothing: `.running_saved` is then the copy,
    and `.error` says so, until the directory loads again.
    """

    def __init__(self, directory: Path, allowed_areas: Allowed | None = None,
                 saved_dir: Path | None = None) -> None:
        self.directory = Path(directory)
        self.allowed_areas = allowed_areas
        self.saved_dir = saved_dir
        self.current: LoadedRules | None = None
        self.loaded_at: float | None = None
        self.error: str | None = None
        self.running_saved: saved.SavedCopy | None = None
        self._loading = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()
        self.reload()

    def _scan(self) -> Snapshot:
        try:
            files = rule_files(self.directory)
        except OSError:
            return ()
        entries = []
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def changed(self) -> bool:
        return self._scan() != self._snapshot

    def switch(self, directory: Path) -> bool:
        """Run the rules of another folder (a published version's, made by bridge.rules.sync): True when
        they loaded. When they do not, the rules running keep running, as after a broken save."""
        self.directory = Path(directory)
        return self.reload()

    def adopt(self, directory: Path) -> bool:
        """Run the current rules from another folder that holds the very same files, without loading them
        again (a published version equal to the folder that just loaded): True when it does."""
        current = self.current
        if current is None or saved.files_digests(directory) != current.digests:
            return False
        self.directory = Path(directory)
        self._snapshot = self._scan()
        current.directory = self.directory
        self.error = None
        self.running_saved = None
        return True

    async def aswitch(self, directory: Path) -> bool:
        """`switch` in a thread, one load at a time (as `areload`)."""
        async with self._loading:
            if self.adopt(directory):
                return True
            return await asyncio.to_thread(self.switch, directory)

    def reload(self) -> bool:
        """Load the directory again; True when the new rules are now current."""
        self._snapshot = self._scan()
        try:
            rules = load_rules(self.directory, self.allowed_areas)
        except Exception as exc:
            problems = failed_load(self.directory, exc)
            self.error = "\n".join(problems)
            if self.current is None:
                self._run_saved_copy()
            if self.running_saved is not None:
                self.error += "\n" + self._running_saved_note()
            log.error("rules.reload_failed", directory=str(self.directory), problems=problems,
                      kept_loaded_at=self.loaded_at, running=self.current is not None,
                      saved_copy=str(self.running_saved.path) if self.running_saved else None)
            return False
        self.current = rules
        self.loaded_at = time.time()
        self.error = None
        self.running_saved = None
        log.info("rules.reloaded", directory=str(self.directory), rules=len(rules), files=len(rules.files),
                 hash=self.hash)
        self._save_copy(rules)
        if rules.notes:  # what `bridge mappings check` prints as notes: an unknown topic, a clear, a replace
            log.warning("rules.notes", directory=str(self.directory), notes=rules.notes)
        if rules.blocked:
            log.warning("rules.blocked", directory=str(self.directory), blocked=rules.blocked)
        return True

    def _save_copy(self, rules: LoadedRules) -> None:
        if self.saved_dir is None:
            return
        try:
            copy = saved.save(self.saved_dir, self.directory, rules.digests)
        except OSError as exc:  # a read-only or full disk: the rules run, only the copy is missing
            log.warning("rules.copy_not_saved", directory=str(self.saved_dir), reason=str(exc))
            return
        if copy is not None:
            log.info("rules.copy_saved", directory=str(copy.path))

    def _run_saved_copy(self) -> None:
        """At start, with a directory that does not load: run the last good copy, if there is one."""
        copy = saved.latest(self.saved_dir) if self.saved_dir is not None else None
        if copy is None:
            return
        try:
            rules = load_rules(copy.path, self.allowed_areas)
        except Exception as exc:  # a copy from an older version, whose checks it no longer passes
            log.error("rules.copy_failed", directory=str(copy.path), problems=failed_load(copy.path, exc))
            return
        self.current, self.loaded_at, self.running_saved = rules, copy.saved_at, copy
        log.warning("rules.running_saved_copy", directory=str(copy.path), saved_at=iso(copy.saved_at),
                    rules=len(rules), hash=self.hash, hint=f"fix the files in {self.directory}: they load as soon as they pass")

    def _running_saved_note(self) -> str:
        assert self.running_saved is not None
        return (f"running the last good rules instead, as they loaded at {iso(self.running_saved.saved_at)} "
                f"(a copy in {self.running_saved.path}), until these problems are fixed")

    @property
    def hash(self) -> str | None:
        """Names the rules running: the files' texts and the areas allowed. Instances that show
        different hashes run different rules."""
        return self.current.fingerprint[:16] if self.current is not None else None

    @property
    def blocked(self) -> list[str]:
        """Policy refusals of the current set (file:line:col: ... to allow it set X_AREAS=...)."""
        return list(self.current.blocked) if self.current is not None else []

    async def watch(self, interval: float = 2.0) -> None:
        """Poll file times and sizes; reload when anything changed. Runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.changed():
                    await self.areload()
            except Exception:  # reload catches what a load raises; this is for anything else
                log.exception("rules.watch_failed", directory=str(self.directory))

    def reload_soon(self) -> None:
        """SIGHUP: `areload` as a task, so the event loop goes on answering webhooks meanwhile."""
        task = asyncio.ensure_future(self.areload())
        self._reloads.add(task)  # a task nobody holds may be collected before it ran
        task.add_done_callback(self._reloads.discard)

    async def areload(self) -> bool:
        """`reload` in a thread: loading a large rule folder takes seconds, and the event loop
        meanwhile answers webhooks (Shopify gives up after 5 s). One load at a time."""
        async with self._loading:
            return await asyncio.to_thread(self.reload)
