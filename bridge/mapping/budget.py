"""The budget of one event's mapping: how long it may take and how many loop steps it may run.

The engine starts a budget per event (`start`) and says which rule it is in (`enter`); loops
(`for each:` and `{% for %}`) spend steps (`spend`), and every step also looks at the clock. So a
rule that would loop for ever, or for minutes, ends that event's mapping with `OverBudget`, named
with the rule, whichever way mapping runs (a thread or the mapping process). The mapping process
adds what a thread cannot: an alarm that interrupts any Python code, and a parent that kills it
when it stops answering or grows over its memory limit (bridge.mapping.process).

`OverBudget` is a BaseException, so that the engine's per-field `except Exception` cannot turn
it into one field's error and carry on with the next field of the same runaway rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_SECONDS = 5.0
MAX_LOOP_STEPS = 100_000  # items walked by all the loops of one event's rules
MAX_TEXT = 16_000_000  # characters of text all the fields of one event's messages may come to
COUNTED_TEXT = 1_000  # shorter texts are not counted: a rule file's fields cannot add up to much with them


class OverBudget(BaseException):
    """The event's mapping ran over its time or its loop steps."""


@dataclass
class Budget:
    seconds: float = DEFAULT_SECONDS
    deadline: float = float("inf")
    steps: int = MAX_LOOP_STEPS
    text: int = MAX_TEXT
    rule: int = -1  # the position of the rule being run in the rule set's list


_local = threading.local()

# Set in the mapping process: called with (event id, rule position) as an event or a rule starts,
# so that its parent can tell which rule a child it had to stop was running.
progress: Callable[[int, int], None] | None = None


def current() -> Budget:
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is None:
        budget = _local.budget = Budget()
    return budget


def configure(seconds: float) -> float:
    """The time one event may take in this thread, from now on; what it was."""
    budget = current()
    previous, budget.seconds = budget.seconds, seconds
    return previous


def start(event_id: int) -> Budget:
    budget = current()
    budget.deadline = time.monotonic() + budget.seconds
    budget.steps = MAX_LOOP_STEPS
    budget.text = MAX_TEXT
    budget.rule = -1
    if progress is not None:
        progress(event_id, -1)
    return budget


def enter(rule: int, event_id: int) -> None:
    current().rule = rule
    if progress is not None:
        progress(event_id, rule)


def spend(steps: int = 1) -> None:
    budget = current()
    budget.steps -= steps
    if budget.steps < 0:
        raise OverBudget(f"its loops went over {MAX_LOOP_STEPS:,} steps")
    if time.monotonic() > budget.deadline:
        raise OverBudget(f"it took over {budget.seconds:g} s")


def spend_text(characters: int) -> None:
    """A field made text of this length: thousands of fields each copying a long payload text would
    otherwise fill memory before any one record is found too big."""
    budget = current()
    budget.text -= characters
    if budget.text < 0:
        raise OverBudget(f"its fields made over {MAX_TEXT:,} characters of text")


def bounded(values: Any) -> Any:
    """Iterate `values`, spending a step per item (the `{% for %}` of a field's template)."""
    for value in values:
        spend()
        yield value
