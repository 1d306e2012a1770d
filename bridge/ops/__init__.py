"""Operations: the operator's commands, the admin API, readiness and retention.

`register` adds the commands to `bridge` (bridge/cli.py calls it). The admin
routes (`bridge.ops.admin`) and readiness (`bridge.ops.health`) are mounted by
bridge/app.py, beside the metrics (`bridge.metrics`), which the core records
and so sit below it.
"""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    from bridge.ops.cli import register as add_commands

    add_commands(commands)


__all__ = ["register"]
