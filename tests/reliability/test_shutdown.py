"""SIGTERM during a burst: exit 0 within a bound, nothing left `inflight`, everything acknowledged delivered after restart."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from e2e.conftest import Fakes

from .process import Bridge, reliability_env, wait_until
from .traffic import Delivered, Outbound, Sender, mixed, profile

# BRIDGE_SHUTDOWN_SECONDS' default: Heroku sends SIGKILL 30 s after SIGTERM.
EXIT_WITHIN = 25.0


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


def test_bridge_worker_mid_delivery_to_a_hanging_destination_exits_in_time_and_gives_back(workdir: Path,
                                                                                        fakes: Fakes) -> None:
    """`bridge worker` beside `bridge serve --no-worker`, SIGTERM while every Omnisend request hangs: the
    worker exits within the bound, and the messages it held are due again at once, not after their lease.

    A bound of 8 s, under the destination's 10 s read timeout, so the deliveries are still hanging when
    it runs out (with the default 25 s they end by their timeout first, and finish instead)."""
    bound = 8.0
    env = reliability_env(fakes, BRIDGE_LEASE_SECONDS="300", BRIDGE_SHUTDOWN_SECONDS=str(bound))
    web = Bridge(workdir, env).start("--no-worker")
    worker: subprocess.Popen[bytes] | None = None
    log = workdir / "worker.log"

    def start_worker() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "bridge", "worker"], cwd=workdir,
                                    env=web.child_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        sender = Sender(web.url, [profile(n) for n in range(20)], tries=5, stall_seconds=60)
        sender.start()
        sender.join(60)
        assert len(sender.tally.acknowledged) == 20
        fakes.omnisend.fail("timeout", seconds=300, delay=120)  # past the worker's 10 s read timeout, every time
        worker = start_worker()
        wait_until(lambda: fakes.omnisend.recorded(), timeout=30)  # a delivery is hanging
        time.sleep(0.5)
        began = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(EXIT_WITHIN + 10)
        took = time.monotonic() - began
        print(f"\nbridge worker: exit {code} after {took:.1f} s (bound {bound:g} s)")
        assert code == 0 and took < bound + 2  # what Python's own exit takes on a loaded machine
        released = [json.loads(line) for line in log.read_text().splitlines() if '"worker.released"' in line]
        assert released and released[0]["messages"] > 0
        assert web.scalar("SELECT count(*) FROM messages WHERE state = 'inflight'") == 0

        with fakes.omnisend.lock:
            fakes.omnisend.failures.clear()
        worker = start_worker()  # a lease of 300 s: only given-back messages are delivered within the minute
        wait_until(web.settled, timeout=60, interval=0.2)
        assert Delivered.collect(fakes).missing(list(sender.tally.acknowledged.values())) == []
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        web.stop()
