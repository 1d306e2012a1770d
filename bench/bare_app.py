"""The baseline: a bare Starlette route that reads the body and answers 200, on the bridge's uvicorn settings."""

from __future__ import annotations

import os

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
    # The same settings as bridge.cli.cmd_serve: one worker, uvloop + httptools, no access log.
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), loop="uvloop", http="httptools",
                lifespan="on", access_log=False, proxy_headers=True, log_level="warning")
