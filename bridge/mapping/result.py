"""What the rules make of one event (MapResult), and what a rule set offers its callers (RuleSet)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bridge.model import Event, Outgoing

if TYPE_CHECKING:
    from bridge.mapping.rule import Rule


@dataclass(frozen=True)
class MapResult:
    """What the rules made of one event.

    `rules` names every rule that matched; `errors` are mapping errors
    ("rule X: required field contact.email is empty"), recorded against the
    event; a message whose required fields are missing is not in `messages`.
    `withheld` are notices, not errors: messages this deployment's areas keep
    from being sent (consent, products, deletions not allowed), each with the
    setting that would allow it. They leave the status as it is.
    """

    messages: list[Outgoing] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    ignored: bool = False
    over_budget: bool = False  # the rules ran over the mapping budget: `errors` names the rule
    withheld: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.errors:
            return "partial" if self.messages else "mapping_error"
        if self.messages:
            return "mapped"
        return "ignored" if self.ignored or self.rules else "no_rule"


class RuleSet(Protocol):
    """A set of rules: what the worker and a replay map events with, and the console lists."""

    @property
    def rules(self) -> Sequence[Rule]:
        """The rules, in the order their files and lines give them."""

    def map(self, event: Event) -> MapResult: ...
