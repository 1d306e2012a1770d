"""Response and exception classification, Retry-After parsing and PII-safe excerpts."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from bridge.destinations.http import classify_exception, classify_response, excerpt, parse_retry_after, retry_after_in_body
from bridge.log import fingerprint


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, "delivered"), (201, "delivered"), (202, "delivered"), (204, "delivered"),
     (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
     (401, "pause"), (403, "pause"),
     (400, "dead"), (404, "dead"), (409, "dead"), (413, "dead"), (422, "dead")],
)
def test_status_classes(status: int, kind: str) -> None:
    outcome = classify_response(httpx.Response(status, text="{}"))
    assert (outcome.kind, outcome.status) == (kind, status)


def test_retry_after_seconds_and_date() -> None:
    assert classify_response(httpx.Response(503, headers={"Retry-After": "7"})).retry_after == 7.0
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("-5") == 0.0


def test_a_429_problem_body_s_retry_after() -> None:
    problem = {"type": "https://problems.omnisend.com/rate-limit-exceeded", "status": 429, "retryAfter": 45}
    assert classify_response(httpx.Response(429, json=problem)).retry_after == 45.0
    assert retry_after_in_body(httpx.Response(429, json=problem)) == 45.0
    assert classify_response(httpx.Response(429, json=problem, headers={"Retry-After": "3"})).retry_after == 3.0
    assert retry_after_in_body(httpx.Response(503, json=problem)) is None  # only a 429's
    for odd in ({"retryAfter": "45"}, {"retryAfter": True}, {"retryAfter": -4}, ["retryAfter"]):
        assert retry_after_in_body(httpx.Response(429, json=odd)) in (None, 0.0)
    assert retry_after_in_body(httpx.Response(429, text="{not json", headers={"content-type": "application/json"})) is None


def test_omnisend_reset_header_on_429_only() -> None:
    assert classify_response(httpx.Response(429, headers={"X-Rate-Limit-Reset": "12"})).retry_after == 12.0
    assert classify_response(httpx.Response(503, headers={"X-Rate-Limit-Reset": "12"})).retry_after is None
    both = httpx.Response(429, headers={"X-Rate-Limit-Reset": "12", "Retry-After": "3"})
    assert classify_response(both).retry_after == 3.0


def test_dead_detail_is_short_masked_summary() -> None:
    body = ('{"error": "Invalid order for jo.doe@example.com phone +1 (555) 123-4567", '
            '"fields": {"orderSum": ["must be an integer amount in cents"]}, "pad": "' + "x" * 2000 + '"}')
    outcome = classify_response(httpx.Response(400, text=body))
    assert outcome.kind == "dead"
    assert len(outcome.detail) <= 300
    assert "jo.doe" not in outcome.detail and "555" not in outcome.detail
    assert "orderSum: must be an integer amount in cents" in outcome.detail


def test_an_excerpt_is_masked_strictly_and_keeps_dates_and_short_numbers() -> None:
    text = "at 2026-11-23T10:00:00Z order 12345 by A@b.io tel 0044 20 7946 0958, id 61423456789."
    assert excerpt(text) == f"at 2026-11-23T10:00:00Z order 12345 by {fingerprint('a@b.io')} tel <phone>, id <phone>."
    assert len(excerpt("y" * 1000)) == 300


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof"), TimeoutError()],
)
def test_transport_errors_retry(exc: BaseException) -> None:
    outcome = classify_exception(exc)
    assert outcome.kind == "retry" and outcome.status is None


def test_transport_failures_say_whether_the_request_can_have_arrived() -> None:
    never_sent = classify_exception(httpx.ConnectError("refused"))
    cut_off = classify_exception(httpx.ReadTimeout("slow"))
    reset = classify_exception(httpx.RemoteProtocolError("closed"))
    assert {never_sent.kind, cut_off.kind, reset.kind} == {"retry"}
    assert never_sent.detail.startswith("not sent") and "may have arrived" not in never_sent.detail
    assert "may have arrived" in cut_off.detail and "may have arrived" in reset.detail
