"""Hostile input against the running process: no 5xx, still alive, and nothing stored (no accepted forgery)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e.conftest import Fakes

from .process import Bridge, reliability_env
from .traffic import order

SOURCES = ["shopify", "omneo", "woocommerce", "standard", "nope", "shopify%00", "..%2f..%2fhealthz", "x" * 300]
SIGNATURE_HEADERS = ["X-Shopify-Hmac-Sha256", "X-Omneo-Hmac-SHA256", "X-WC-Webhook-Signature", "webhook-signature",
                     "X-Shopify-Topic", "X-Omneo-Event", "X-WC-Webhook-Topic", "webhook-id", "webhook-timestamp",
                     "X-Shopify-Event-Id", "Content-Type", "Content-Encoding", "Transfer-Encoding", "Expect"]
header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
header_name = st.one_of(st.sampled_from(SIGNATURE_HEADERS),
                        st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=30))
bodies = st.one_of(st.binary(max_size=4096), st.just(b""), st.just(order(1).body),
                   st.builds(lambda n: b"{" * n, st.integers(0, 5000)),
                   st.text(max_size=500).map(str.encode))


@pytest.fixture
def bridge(workdir: Path, fakes: Fakes) -> Iterator[Bridge]:
    process = Bridge(workdir, reliability_env(fakes, BRIDGE_MAX_BODY_BYTES="65536")).start()
    yield process
    process.stop()


def raw(bridge: Bridge, request: bytes, *, read_for: float = 3.0) -> bytes:
    """Send bytes as they are; return what came back before the server closed or `read_for` passed."""
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=read_for) as sock:
        try:
            sock.sendall(request)
        except OSError:  # the server may close early (413), and that is fine
            pass
        chunks = []
        deadline = time.monotonic() + read_for
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None  # the server closed or said nothing: not a 5xx
    return int(answer[9:12])


def framing_attacks(bridge: Bridge) -> list[tuple[str, bytes]]:
    body = order(2).body
    head = f"POST /webhooks/shopify HTTP/1.1\r\nHost: 127.0.0.1:{bridge.port}\r\nContent-Type: application/json\r\n"
    return [
        ("content-length larger than the body", (head + "Content-Length: 5000\r\n\r\n").encode() + body[:100]),
        ("content-length smaller than the body", (head + "Content-Length: 10\r\n\r\n").encode() + body),
        ("negative content-length", (head + "Content-Length: -1\r\n\r\n").encode() + body),
        ("content-length not a number", (head + "Content-Length: ten\r\n\r\n").encode() + body),
        ("two content-lengths", (head + "Content-Length: 3\r\nContent-Length: 9\r\n\r\n").encode() + body[:9]),
        ("declared huge, sent small", (head + "Content-Length: 99999999999\r\n\r\n").encode() + body[:10]),
        ("chunked", (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
         + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"),
        ("chunked with a lying chunk size", (head + "Transfer-Encoding: chunked\r\n\r\nffff\r\n").encode() + body[:50]
         + b"\r\n0\r\n\r\n"),
        ("chunked and content-length", (head + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n").encode()
         + b"4\r\nabcd\r\n0\r\n\r\n"),
        ("chunked, huge in total", (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
         + b"".join(b"8000\r\n" + b"a" * 0x8000 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"),
        ("empty", (head + "Content-Length: 0\r\n\r\n").encode()),
        ("huge with content-length", (head + "Content-Length: 2000000\r\n\r\n").encode() + b"x" * 2_000_000),
        ("garbage request line", b"POST /webhooks/shopify HTTP/9.9\r\n\r\n"),
        ("header without colon", (head + "this is not a header\r\n\r\n").encode()),
        ("nul in the path", b"POST /webhooks/sho\x00pify HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        ("very long header", (head + "X-Shopify-Hmac-Sha256: " + "A" * 70000 + "\r\nContent-Length: 0\r\n\r\n").encode()),
    ]


def test_framing_attacks_get_no_5xx_and_store_nothing(bridge: Bridge) -> None:
    answers = {}
    for name, request in framing_attacks(bridge):
        status = status_of(raw(bridge, request))
        answers[name] = status
        assert status is None or status < 500, f"{name}: {status}"
        assert bridge.alive(), f"the bridge died on: {name}"
    print(f"\nframing attacks: {answers}")
    assert bridge.get("/healthz").status_code == 200
    assert bridge.scalar("SELECT count(*) FROM events") == 0


def fuzz(bridge: Bridge, examples: int) -> None:
    seen: dict[int, int] = {}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(method=st.sampled_from(["POST"] * 12 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
           source=st.sampled_from(SOURCES[:4] * 4 + SOURCES), headers=st.dictionaries(header_name, header_value, max_size=8),
           body=bodies)
    def one(method: str, source: str, headers: dict[str, str], body: bytes) -> None:
        headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host", "transfer-encoding")}
        try:
            response = httpx.request(method, f"{bridge.url}/webhooks/{source}", content=body, headers=headers, timeout=5)
        except httpx.LocalProtocolError:
            return  # httpx will not send it (e.g. a header value with edge spaces)
        except httpx.RemoteProtocolError:
            return  # the server refused the framing (e.g. a bad Expect): not a 5xx
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, source, headers, body[:200], response.text[:300])

    one()
    print(f"\nfuzzed {examples} requests, statuses {dict(sorted(seen.items()))}")
    assert bridge.alive()
    assert bridge.get("/healthz").status_code == 200
    assert bridge.scalar("SELECT count(*) FROM events") == 0


def test_random_requests_get_no_5xx_and_store_nothing(bridge: Bridge) -> None:
    fuzz(bridge, 300)


@pytest.mark.slow
def test_random_requests_get_no_5xx_and_store_nothing_long(bridge: Bridge) -> None:
    fuzz(bridge, 3000)
