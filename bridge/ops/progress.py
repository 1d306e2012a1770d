"""A progress bar on stderr for long operator commands, with no dependency.

On a terminal it redraws one line; elsewhere (a log file, CI) it writes a line
every tenth of the way, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, min_total: int = 100) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.min_total = min_total  # short runs finish before a bar helps
        self.started = time.monotonic()
        self._last_tenth = -1
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        fraction = done / total if total else 1.0
        if self.stream.isatty():
            filled = int(WIDTH * fraction)
            self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (WIDTH - filled)}] {done}/{total}")
            self._shown = True
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(f"{self.label}: {done}/{total} ({fraction:.0%})\n")
        self.stream.flush()

    def close(self) -> None:
        if self._shown:
            self.stream.write(f" {time.monotonic() - self.started:.1f}s\n")
            self.stream.flush()
            self._shown = False
