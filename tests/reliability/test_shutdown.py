"""SIGTERM during a burst: exit 0 within a bound, nothing left `inflight`, everything acknowledged delivered after restart."""

from __future__ import annotations

import random
import time
from pathlib import Path


from e2e.conftest import Fakes

from .process import Bridge, reliability_env, wait_until
from .traffic import Delivered, Outbound, Sender, mixed, profile

# uvicorn's graceful shutdown is 20 s and the worker's 10 s; SIGTERM must not take longer than both.
EXIT_WITHIN = 32.0


def sigterm_mid_burst(workdir: Path, fakes: Fakes, items: list[Outbound], *, after: float,
                      slow: str | None = None) -> None:
    # A long lease: what is left `inflight` after the stop must be what the stop left, not a lease run out.
    bridge = Bridge(workdir, reliability_env(fakes, BRIDGE_LEASE_SECONDS="120")).start()
    sender = Sender(bridge.url, items, tries=1, stall_seconds=60)
    slow_fake = {"omnisend": fakes.omnisend, "ometria": fakes.ometria}.get(slow or "")
    try:
        if slow_fake is not None:
            slow_fake.fail("timeout", seconds=120, delay=30)  # every request hangs past the 10 s read timeout
        sender.start()
        if slow_fake is not None:
            wait_until(lambda: slow_fake.recorded(), timeout=20)  # a delivery is hanging
        time.sleep(after)
        code, took = bridge.terminate(EXIT_WITHIN)
        sender.stop_sending.set()
        sender.join(30)
        inflight = bridge.scalar("SELECT count(*) FROM messages WHERE state = 'inflight'")
        print(f"\nSIGTERM mid-burst (slow={slow}): exit {code} after {took:.1f} s, {inflight} left inflight,"
              f" {sender.tally.summary()}")
        assert code == 0, f"exit code {code} after {took:.1f} s"
        assert took < EXIT_WITHIN
        assert bridge.logs().count('"bridge.stopped"') == 1  # the lifespan shutdown ran to its end
        assert inflight == 0

        if slow_fake is not None:
            with slow_fake.lock:
                slow_fake.failures.clear()
        bridge.start()
        wait_until(bridge.settled, timeout=60, interval=0.2)
        acknowledged = list(sender.tally.acknowledged.values())
        assert acknowledged
        assert Delivered.collect(fakes).missing(acknowledged) == []
    finally:
        sender.stop_sending.set()
        sender.join(15)
        bridge.stop()


def test_sigterm_during_burst(workdir: Path, fakes: Fakes) -> None:
    sigterm_mid_burst(workdir, fakes, mixed(3000, random.Random(7)), after=1.5)


def test_sigterm_while_a_destination_hangs(workdir: Path, fakes: Fakes) -> None:
    """Omnisend contacts go one request each; a claim of several, each hanging, outlives the stop's 10 s."""
    sigterm_mid_burst(workdir, fakes, [profile(n) for n in range(40)], after=0.5, slow="omnisend")


def test_sigterm_exit_status_is_zero(workdir: Path, fakes: Fakes) -> None:
    bridge = Bridge(workdir, reliability_env(fakes)).start()
    try:
        code, _ = bridge.terminate(EXIT_WITHIN)
        assert '"bridge.stopped"' in bridge.logs()
        assert code == 0
    finally:
        bridge.stop()
