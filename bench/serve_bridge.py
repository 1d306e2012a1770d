"""Run `bridge serve` for the benchmarks: bridge.cli.cmd_serve itself, with its uvicorn settings.

Why not the `bridge` console script: while the benchmarks were written, other parts of the
repository were still landing (the CLI's parser imported `bridge.ops.register`, and
`bridge.mapping.reload.RulesHolder`, which the app builds its rules from, did not exist yet).
cmd_serve does not need the parser, so it is called directly; and only when
`bridge.mapping.reload` cannot be imported, a stand-in holder that loads `mappings/` once with
`bridge.mapping.loader.load_rules` is registered under that name. Everything else (app, store,
sources, destinations, worker, uvicorn config) is the product's own code.

    python bench/serve_bridge.py [--no-worker]     (environment as for `bridge serve`)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import types
from pathlib import Path
from typing import Any

SHIM_NOTE = "bench/serve_bridge.py: bridge.mapping.reload missing, using a load-once RulesHolder stand-in"


class LoadOnceRules:
    """Stand-in for bridge.mapping.reload.RulesHolder: loads the rules once, never reloads."""

    def __init__(self, directory: Path) -> None:
        from bridge.mapping.loader import load_rules

        self.current: Any = None
        self.error: str | None = None
        self.loaded_at: float | None = None
        try:
            self.current = load_rules(Path(directory))
            self.loaded_at = time.time()
        except Exception as exc:  # the app reports it in /healthz, as the real holder would
            self.error = str(exc)

    async def watch(self) -> None:
        await asyncio.Event().wait()


def install_shim() -> bool:
    try:
        import bridge.mapping.reload  # noqa: F401
        return False
    except ImportError:
        module = types.ModuleType("bridge.mapping.reload")
        module.RulesHolder = LoadOnceRules  # type: ignore[attr-defined]
        sys.modules["bridge.mapping.reload"] = module
        return True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-worker", action="store_true")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    if install_shim():
        print(SHIM_NOTE, file=sys.stderr, flush=True)
    from bridge.cli import cmd_serve

    return cmd_serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
