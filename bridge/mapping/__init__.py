"""Mapping: YAML rules edited by marketers turn a stored event into outgoing messages."""

from __future__ import annotations

from bridge.mapping.loader import load_rules
from bridge.mapping.reload import RulesHolder
from bridge.mapping.result import MapResult, RuleSet

__all__ = ["MapResult", "RuleSet", "RulesHolder", "load_rules"]
