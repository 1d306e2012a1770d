"""A destination answers 503, then hangs past the client timeout, then resets connections, then recovers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import Fakes

from .process import Bridge, reliability_env, wait_until
from .traffic import Delivered, Outbound, Sender, omnisend_events, order, order_kind, profile


def traffic(count: int) -> list[Outbound]:
    """Orders, a cancellation right behind every third one, and a profile every fifth."""
    items: list[Outbound] = []
    for n in range(count):
        items.append(order(n))
        if n % 3 == 0:
            items.append(order(n, topic="orders/cancelled"))
        if n % 5 == 0:
            items.append(profile(10_000 + n))
    return items


def arrival_order(fakes: Fakes, destination: str) -> list[tuple[str, str]]:
    """(order id, create | cancel) in the order the destination accepted them."""
    seen: list[tuple[str, str]] = []
    if destination == "ometria":
        for request in fakes.ometria.accepted("/v2/push"):
            for record in request.body:
                if record["@type"] == "order":
                    seen.append((str(record["id"]), order_kind(record)))
    else:
        for event in omnisend_events(fakes):
            if "orderID" not in event["properties"]:
                continue  # a new member's "joined loyalty program": not an order
            kind = "cancel" if event["eventName"] == "order canceled" else "create"
            seen.append((str(event["properties"]["orderID"]), kind))
    return seen


def out_of_order(seen: list[tuple[str, str]]) -> list[str]:
    cancelled: set[str] = set()
    wrong = []
    for order_id, kind in seen:
        if kind == "cancel":
            cancelled.add(order_id)
        elif order_id in cancelled:
            wrong.append(order_id)  # a create arrived after its own cancellation
    return wrong


def fake(fakes: Fakes, name: str) -> Any:
    return fakes.ometria if name == "ometria" else fakes.omnisend


def run_outage(workdir: Path, fakes: Fakes, *, down: str, phase: float, orders: int) -> None:
    up = "omnisend" if down == "ometria" else "ometria"
    bridge = Bridge(workdir, reliability_env(fakes)).start()
    sender = Sender(bridge.url, traffic(orders), stall_seconds=120)
    try:
        began = time.monotonic()
        failing = fake(fakes, down)
        # Plans are served first-added-first while active: 503, then hang, then reset, then nothing.
        failing.fail("status", status=503, seconds=phase)
        failing.fail("timeout", seconds=phase * 1.5, delay=30)  # longer than the bridge's 10 s read timeout
        failing.fail("reset", seconds=phase * 2.5)
        recovered = began + phase * 2.5
        # Pace the traffic so that it spans the outage.
        pace = phase * 2.5 / len(sender.items)
        sender.pause = pace
        sender.start()
        while sender.is_alive() and time.monotonic() < began + 120:
            sender.join(pace)
            time.sleep(pace)
        assert not sender.is_alive()
        wait_until(bridge.settled, timeout=90, interval=0.2)

        acknowledged = list(sender.tally.acknowledged.values())
        assert sender.tally.unexpected == [] and len(acknowledged) == len(sender.items)
        delivered = Delivered.collect(fakes)
        assert delivered.missing(acknowledged) == []
        assert bridge.query("SELECT count(*) FROM messages WHERE state != 'delivered'") == [(0,)]
        for name in ("ometria", "omnisend"):
            assert out_of_order(arrival_order(fakes, name)) == [], f"{name}: a create arrived after its cancel"
        cancelled = [i.key for i in acknowledged if i.kind == "cancel"]
        assert all(fakes.ometria.records[("order", key)]["status"] == "cancelled" for key in cancelled)

        during = [r for r in fake(fakes, up).accepted() if began < r.at < recovered]
        statuses = [r.status for r in failing.recorded() if began < r.at < recovered]
        trail = dict(bridge.query("SELECT coalesce(a.status, 0), count(*) FROM attempts a"
                                  " JOIN messages m ON m.id = a.message_id WHERE m.destination = ?"
                                  " AND a.outcome = 'retry' GROUP BY 1", down))
        print(f"\noutage of {down}: {sender.tally.summary()} retries by status {trail};"
              f" {up} accepted {len(during)} requests during the outage; duplicates {delivered.duplicates()}")
        assert during, f"{up} received nothing while {down} was down"
        assert 503 in statuses and None in statuses  # both the 503 and the dropped/held requests happened
        assert trail.get(503) and trail.get(0)  # retried after 503 and after network failures
    finally:
        sender.stop_sending.set()
        sender.join(15)
        bridge.stop()


def test_ometria_outage_then_recovery(workdir: Path, fakes: Fakes) -> None:
    run_outage(workdir, fakes, down="ometria", phase=2.0, orders=45)


@pytest.mark.long
def test_omnisend_outage_then_recovery_long(workdir: Path, fakes: Fakes) -> None:
    run_outage(workdir, fakes, down="omnisend", phase=6.0, orders=150)
