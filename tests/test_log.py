"""Log redaction: personal values hashed, secrets hidden, e-mails and phones masked inside text."""

from __future__ import annotations

import asyncio

import pytest

from bridge.log import LineWriter, fingerprint, mask_text, redact


def test_personal_and_secret_keys_are_replaced() -> None:
    out = redact(None, "info", {"event": "x", "email": "Jane@Example.com", "api_key": "k-123", "topic": "orders/create",
                                "nested": {"first_name": "Jane", "phone": "+61412345678"}})
    assert out["email"] == fingerprint("Jane@Example.com") and out["api_key"] == "**********"
    assert out["nested"] == {"first_name": fingerprint("Jane"), "phone": fingerprint("+61412345678")}
    assert out["topic"] == "orders/create"


def test_values_are_judged_by_their_key_and_their_content_whatever_their_type() -> None:
    out = redact(None, "info", {"event": "webhook.rejected", "Phone": 61412345678, "secret_index": 0, "count": 3,
                                "reason": "bad signature from jane@example.com", "customer_id": None,
                                "ids": [1, "x@y.io"], "level": "info", "timestamp": "2026-11-23T10:00:00.000000Z"})
    assert out["Phone"] == fingerprint(61412345678)
    assert out["secret_index"] == 0 and out["count"] == 3 and out["customer_id"] is None
    assert out["reason"] == f"bad signature from {fingerprint('jane@example.com')}"
    assert out["ids"] == [1, fingerprint("x@y.io")]
    assert out["event"] == "webhook.rejected" and out["level"] == "info"


@pytest.mark.parametrize("text", ["contact jane.doe@example.com failed", "sms +61 412 345 678", "call 0412345678",
                                  "ring (02) 9999-1111 now", 'detail: {"email": "a.b@c.io"}'])
def test_personal_data_inside_text_is_masked(text: str) -> None:
    masked = mask_text(text)
    assert "@example.com" not in masked and "412" not in masked and "9999" not in masked and "a.b@c.io" not in masked


@pytest.mark.parametrize("text", ["order 5324830114101 total 199.00", "at 2026-11-20T10:00:00Z", "status 503"])
def test_ids_and_dates_stay_readable(text: str) -> None:
    assert mask_text(text) == text


def test_line_writer_sends_a_loop_iteration_in_one_write_and_keeps_order() -> None:
    class Stream:
        def __init__(self) -> None:
            self.writes: list[str] = []

        def write(self, text: str) -> None:
            self.writes.append(text)

        def flush(self) -> None:
            pass

    stream = Stream()
    writer = LineWriter(stream)  # type: ignore[arg-type]

    async def main() -> None:
        for n in range(3):
            writer.msg(f"loop {n}")
        assert stream.writes == []  # waiting for the end of the iteration
        await asyncio.sleep(0)
        assert stream.writes == ["loop 0\nloop 1\nloop 2\n"]
        writer.msg("loop 3")
        await asyncio.to_thread(writer.msg, "thread")  # no loop in that thread: written at once, after what waits
        assert stream.writes[1:] == ["loop 3\nthread\n"]

    asyncio.run(main())
    writer.msg("no loop")
    assert stream.writes[-1] == "no loop\n"
