"""An idle bridge stays idle: after traffic it waits for work instead of polling the database in a loop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from e2e.conftest import Fakes

from .process import Bridge, reliability_env
from .traffic import Sender, order

IDLE_SECONDS = 3.0
# The worker polls every 0.5 s when idle; a few percent of a core is plenty.
MAX_CPU_SHARE = 0.10


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_idle_after_traffic_uses_little_cpu(workdir: Path, fakes: Fakes) -> None:
    bridge = Bridge(workdir, reliability_env(fakes)).start()
    try:
        Sender(bridge.url, [order(n) for n in range(5)]).run()
        time.sleep(2.0)  # let delivery finish
        assert bridge.proc is not None
        before = cpu_seconds(bridge.proc.pid)
        time.sleep(IDLE_SECONDS)
        share = (cpu_seconds(bridge.proc.pid) - before) / IDLE_SECONDS
        print(f"\nidle CPU after traffic: {share:.0%} of a core")
        assert share < MAX_CPU_SHARE
    finally:
        bridge.stop()
