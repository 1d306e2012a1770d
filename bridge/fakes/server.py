"""Serve an ASGI app on a loopback port from a background thread, for tests and local sandboxes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


class ServerError(RuntimeError):
    """The server did not start (or did not stop) in time."""


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 5.0,
    lifespan: Literal["auto", "on", "off"] = "auto",
    log_level: str = "warning",
) -> Iterator[str]:
    """Run `app` under uvicorn in a daemon thread and yield its base URL (`http://127.0.0.1:PORT`).

    The socket is bound here, before the thread starts, so port 0 gives a free port with no race
    and the URL is known at once; the context waits until uvicorn reports started, and on exit asks
    it to stop and joins the thread (requests still running are cancelled after one second).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_level=log_level,
        timeout_graceful_shutdown=1,
        access_log=False,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn:{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if failure or not thread.is_alive():
                raise ServerError(f"server on port {bound_port} failed to start") from (failure[0] if failure else None)
            if time.monotonic() > deadline:
                raise ServerError(f"server on port {bound_port} not started after {startup_timeout}s")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        sock.close()
        if thread.is_alive():
            server.force_exit = True
            thread.join(shutdown_timeout)
