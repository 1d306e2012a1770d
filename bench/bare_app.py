"""The baseline: a bare Starlette route that reads the body and answers 200, on the bridge's uvicorn settings."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "accepted"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/webhooks/{source}", receive, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
])

if __name__ == "__main__":
    # The same settings as bridge.cli.cmd_serve (one worker, no access log), on the HTTP stack
    # BENCH_STACK names (bench/stack.py): uvloop + httptools as `bridge serve`, or asyncio + h11.
    from stack import uvicorn_options

    uvicorn.run(app, log_level="warning", **uvicorn_options())
