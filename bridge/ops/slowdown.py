"""Failed admin tries, per client, so that each failure past the first few is answered later than the last.

A token is guessed one request at a time; waiting before each 401 (0.5 s, then 1, 2, ... up to 10 s
for a client that keeps failing) makes guessing slow without locking the operator out. Memory is
bounded: only the MAX_CLIENTS clients that failed most recently are remembered, and a client's
count starts again after FORGET_AFTER seconds without a failure. Only the admin API waits; the
webhook path never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FREE_TRIES = 3
FIRST_WAIT = 0.5
LONGEST_WAIT = 10.0
FORGET_AFTER = 300.0
MAX_CLIENTS = 4096


class FailedTries:
    def __init__(self, max_clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_clients = max_clients
        self.clock = clock
        self._tries: dict[str, tuple[int, float]] = {}  # client -> (failures, last failure): oldest first

    def __len__(self) -> int:
        return len(self._tries)

    def failed(self, client: str) -> float:
        """Count a failure of `client`; the seconds to wait before answering it."""
        now = self.clock()
        count, last = self._tries.pop(client, (0, now))
        count = 1 if now - last > FORGET_AFTER else count + 1
        self._tries[client] = (count, now)
        if len(self._tries) > self.max_clients:
            del self._tries[next(iter(self._tries))]
        if count <= FREE_TRIES:
            return 0.0
        return min(LONGEST_WAIT, FIRST_WAIT * 2.0 ** (count - FREE_TRIES - 1))
