"""SIGKILL at random moments under load: every acknowledged webhook is delivered, resends keep their key."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from e2e.conftest import Fakes

from .process import Bridge, reliability_env
from .traffic import Delivered, Sender, mixed, settle

SEED = int(os.environ.get("RELIABILITY_SEED", "20261123"))


def run_crash(workdir: Path, fakes: Fakes, *, events: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    bridge = Bridge(workdir, reliability_env(fakes)).start()
    sender = Sender(bridge.url, mixed(events, rng), tries=None)
    try:
        sender.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 1.5))  # a random moment: ingest, mapping or delivery under way
            bridge.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            bridge.start()
            sender.bridge_is_back()
        sender.join()  # as long as webhooks keep being acknowledged (a loaded machine is slower, not stuck)
        assert not sender.stalled, (f"nothing was acknowledged for a minute: {sender.tally.summary()},"
                                    f" unexpected {sender.tally.unexpected[:5]}\n{bridge.logs()[-3000:]}")
        settle(bridge)
        acknowledged = list(sender.tally.acknowledged.values())
        delivered = Delivered.collect(fakes)
        lost = delivered.missing(acknowledged)
        duplicates = delivered.duplicates()
        in_db = bridge.scalar("SELECT count(*) FROM events")
        dead = bridge.query("SELECT destination, last_status, last_detail FROM messages WHERE state = 'dead' LIMIT 5")
        report = {**sender.tally.summary(), "kills": kills, "seed": seed, "events_stored": in_db,
                  "lost": len(lost), "duplicates_by_key": duplicates}
        print(f"\ncrash: {report}")
        assert sender.tally.unexpected == []
        assert sender.tally.sent == events and len(acknowledged) == events  # every webhook got through in the end
        assert lost == [], lost[:10]
        assert dead == []
        assert delivered.keys_disagree() == {}  # a resend carried the same Omnisend eventID
        # The outbox holds one message per event and rule output: resent webhooks and restarts added none.
        assert bridge.query("SELECT idempotency_key FROM messages GROUP BY 1 HAVING count(*) > 1") == []
        assert in_db == events
        assert bridge.query("PRAGMA integrity_check") == [("ok",)]
    finally:
        sender.stop_sending.set()
        sender.join(15)
        bridge.stop()


def test_sigkill_under_load_loses_nothing(workdir: Path, fakes: Fakes) -> None:
    run_crash(workdir, fakes, events=1500, kills=4, seed=SEED)


@pytest.mark.long
def test_sigkill_under_load_loses_nothing_long(workdir: Path, fakes: Fakes) -> None:
    run_crash(workdir, fakes, events=4000, kills=12, seed=SEED + 1)
