"""Hot reload: a broken save never stops the bridge; the last good rules keep running."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog

from bridge.errors import RulesError
from bridge.mapping.areas import Allowed
from bridge.mapping.loader import LoadedRules, load_rules, rule_files

log = structlog.get_logger("bridge.mapping")

Snapshot = tuple[tuple[str, int, int], ...]


class RulesHolder:
    """Holds the current rule set for a directory and swaps it when the files change.

    A failed load keeps `.current` (None if nothing ever loaded) and puts the
    problems in `.error` for /healthz, /readyz and the log. With no rules the
    bridge still takes and stores webhooks: the worker maps nothing until a
    good set loads, so events wait instead of being lost or refused (a
    refused webhook makes WooCommerce disable it after 5 failures).

    `allowed_areas` is the deployment's policy (`areas.allowed_from_settings`);
    messages it forbids are blocked, not errors: `.blocked` lists them for /healthz.
    """

    def __init__(self, directory: Path, allowed_areas: Allowed | None = None) -> None:
        self.directory = Path(directory)
        self.allowed_areas = allowed_areas
        self.current: LoadedRules | None = None
        self.loaded_at: float | None = None
        self.error: str | None = None
        self._loading = asyncio.Lock()
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

    def reload(self) -> bool:
        """Load the directory again; True when the new rules are now current."""
        self._snapshot = self._scan()
        try:
            rules = load_rules(self.directory, self.allowed_areas)
        except RulesError as exc:
            self.error = "\n".join(exc.problems)
            log.error("rules.reload_failed", directory=str(self.directory), problems=exc.problems,
                      kept_loaded_at=self.loaded_at, running=self.current is not None)
            return False
        self.current = rules
        self.loaded_at = time.time()
        self.error = None
        log.info("rules.reloaded", directory=str(self.directory), rules=len(rules), files=len(rules.files))
        if rules.notes:  # what `bridge mappings check` prints as notes: an unknown topic, a clear, a replace
            log.warning("rules.notes", directory=str(self.directory), notes=rules.notes)
        if rules.blocked:
            log.warning("rules.blocked", directory=str(self.directory), blocked=rules.blocked)
        return True

    @property
    def blocked(self) -> list[str]:
        """Policy refusals of the current set (file:line:col: ... to allow it set X_AREAS=...)."""
        return list(self.current.blocked) if self.current is not None else []

    async def watch(self, interval: float = 2.0) -> None:
        """Poll file times and sizes; reload when anything changed. Runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                await self.areload()

    async def areload(self) -> bool:
        """`reload` in a thread: loading a large rule folder takes seconds, and the event loop
        meanwhile answers webhooks (Shopify gives up after 5 s). One load at a time."""
        async with self._loading:
            return await asyncio.to_thread(self.reload)
