"""Hot reload: a broken save never stops the bridge; the last good rules keep running."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog

from bridge.errors import RulesError
from bridge.mapping.loader import LoadedRules, load_rules, rule_files

log = structlog.get_logger("bridge.mapping")

Snapshot = tuple[tuple[str, int, int], ...]


class RulesHolder:
    """Holds the current rule set for a directory and swaps it when the files change.

    The first load must succeed (raises `RulesError`): starting without rules
    would silently drop every event. Later failures keep `.current` and put
    the problems in `.error` for /healthz and the log.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._snapshot = self._scan()
        self.current: LoadedRules = load_rules(self.directory)
        self.loaded_at: float = time.time()
        self.error: str | None = None

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
            rules = load_rules(self.directory)
        except RulesError as exc:
            self.error = "\n".join(exc.problems)
            log.error("rules.reload_failed", directory=str(self.directory), problems=exc.problems,
                      kept_loaded_at=self.loaded_at)
            return False
        self.current = rules
        self.loaded_at = time.time()
        self.error = None
        log.info("rules.reloaded", directory=str(self.directory), rules=len(rules), files=len(rules.files))
        return True

    async def watch(self, interval: float = 2.0) -> None:
        """Poll file times and sizes; reload when anything changed. Runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                self.reload()
