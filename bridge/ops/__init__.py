"""Operations: the operator's commands, the admin API, metrics, readiness and retention.

`register` adds the commands to `bridge` (bridge/cli.py calls it when this
package is present). The admin routes (`bridge.ops.admin`), metrics
(`bridge.ops.metrics`) and readiness (`bridge.ops.health`) are mounted by
bridge/app.py.
"""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    from bridge.ops.cli import register as add_commands

    add_commands(commands)


__all__ = ["register"]
