"""The two uvicorn HTTP stacks the ingest benchmark compares, and the bridge's app run on either.

`uvloop` (uvloop + httptools, `uvicorn[standard]`) is what `bridge serve` uses; `asyncio`
(asyncio + h11) is uvicorn's default. The bare app (bench/bare_app.py) reads BENCH_STACK too,
so each comparison runs both servers on the same settings.

    BENCH_STACK=asyncio python bench/stack.py      # the bridge, as `bridge serve --no-worker`
"""

from __future__ import annotations

import os
from typing import Any

from bridge.config import settings_from_env

STACKS = {"uvloop": {"loop": "uvloop", "http": "httptools"}, "asyncio": {"loop": "asyncio", "http": "h11"}}


def uvicorn_options() -> dict[str, Any]:
    """The settings of bridge.cli.cmd_serve, on the stack BENCH_STACK names."""
    return dict(STACKS[os.environ.get("BENCH_STACK", "uvloop")], host="127.0.0.1", port=int(os.environ["PORT"]),
                lifespan="on", access_log=False, proxy_headers=True)


def main() -> None:
    import uvicorn

    from bridge.app import create_app
    from bridge.log import configure

    settings = settings_from_env()
    configure(settings.log_format, settings.log_level)
    uvicorn.run(create_app(settings, run_worker=False), log_config=None, **uvicorn_options())


if __name__ == "__main__":
    main()
