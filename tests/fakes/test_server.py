"""serve_in_thread: free port, ready on entry, clean shutdown, even when the block raises."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge.fakes import serve_in_thread


def hello_app() -> Starlette:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    return Starlette(routes=[Route("/", hello)])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_two_servers_side_by_side_then_port_is_released() -> None:
    threads_before = threading.active_count()
    with serve_in_thread(hello_app()) as first, serve_in_thread(hello_app()) as second:
        assert first != second
        assert httpx.get(first).text == "hi" and httpx.get(second).text == "hi"
    assert threading.active_count() == threads_before
    with socket.socket() as probe:
        probe.settimeout(0.5)
        assert probe.connect_ex(("127.0.0.1", port_of(first))) != 0


def test_shuts_down_when_the_block_raises() -> None:
    threads_before = threading.active_count()
    with pytest.raises(RuntimeError), serve_in_thread(hello_app()) as url:
        assert httpx.get(url).status_code == 200
        raise RuntimeError("boom")
    assert threading.active_count() == threads_before
