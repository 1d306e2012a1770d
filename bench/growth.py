"""Growth: the ingest and mapping runs on an empty store and on a grown one, in turns.

One run of each on each store is not a measurement here: single runs moved by more than 10%
either way, even for mapping without the store. So the grown store is generated once
(bench/grow_db.py) and written out to disk (sync), then each round runs, in this order:
ingest on a new empty store, ingest on the grown store, mapping on an empty copy, mapping on
the grown store, each after the last one's writes reached the disk. Both ingest runs use the
connection count at which the bridge peaked in the ingest part (bench/results/ingest.json), so
that the two stores are loaded alike and no sweep runs between them. The report compares the
medians and shows every round. Five rounds: on a machine whose rounds swung 2.5x, the medians of
three moved a p99 by 17% between two stores whose runs overlapped (docs/benchmarks.md).

    python -m bench.growth [--rounds 5] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, WORK, load, save

DEFAULT_CONNECTIONS = 64  # where the bridge peaks in the ingest sweeps (docs/benchmarks.md)

FIGURES = {  # name: (where in the part's result, higher is better)
    "ingest requests/s (wrk)": ("ingest", ("bridge", "rps"), True),
    "ingest p99 at peak (ms)": ("ingest", ("bridge", "p99_ms"), False),
    "ingest p99 at half rate (ms)": ("ingest", ("half_rate", "p99_ms"), False),
    "mapping, rules only (events/s)": ("mapping", ("rules_per_second",), True),
    "mapping through the store (events/s)": ("mapping", ("store_path", "events_per_second"), True),
    "bridge peak RSS (MiB)": ("ingest", ("bridge_peak_rss_kb",), False),
}


def part(module: str, label: str, extra: list[str], timeout: float) -> dict[str, Any]:
    """Run one part, then drop the empty store it made and wait for its writes to reach the disk,
    so that the next run does not share the disk with this one's write-back."""
    subprocess.run([PYTHON, "-m", module, "--label", label, *extra], cwd=ROOT, check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{WORK / label}.db{suffix}").unlink(missing_ok=True)
    os.sync()
    result = load(label)
    assert result is not None, f"{module} saved no result under {label}"
    return result


def pick(result: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = result
    for key in path:
        value = value[key]
    return float(value) / (1024 if path == ("bridge_peak_rss_kb",) else 1)


def peak_connections() -> int:
    """The bridge's connection count in the ingest part (its peak, when it swept); 64 if it has not run."""
    ingest = load("ingest")
    return int(ingest["connections"]) if ingest and ingest.get("connections") else DEFAULT_CONNECTIONS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=None,
                        help="wrk connections (default: where the bridge peaked in the ingest part)")
    args = parser.parse_args()
    grown = WORK / "grown.db"
    subprocess.run([PYTHON, "-m", "bench.grow_db", "--out", str(grown)], cwd=ROOT, check=True, timeout=300)
    os.sync()  # the 3 GB just written must not be flushing during the first runs
    connections = args.connections or peak_connections()
    ingest = ["--skip-bare", "--rounds", "1", "--seconds", str(args.seconds), "--connections", str(connections)]
    values: dict[str, dict[str, list[float]]] = {"empty": {}, "grown": {}}
    try:
        for _ in range(args.rounds):
            runs = {
                ("empty", "ingest"): part("bench.ingest", "growth-ingest-empty", ingest, 300),
                ("grown", "ingest"): part("bench.ingest", "growth-ingest-grown",
                                          [*ingest, "--db", str(grown), "--in-place"], 300),
                ("empty", "mapping"): part("bench.mapping", "growth-mapping-empty", [], 120),
                ("grown", "mapping"): part("bench.mapping", "growth-mapping-grown",
                                           ["--db", str(grown), "--in-place"], 120),
            }
            for name, (which, path, _) in FIGURES.items():
                for store in ("empty", "grown"):
                    values[store].setdefault(name, []).append(round(pick(runs[(store, which)], path), 1))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{grown}{suffix}").unlink(missing_ok=True)
    result = {
        "rounds": args.rounds,
        "connections": connections,
        "figures": {
            name: {
                "higher_is_better": higher,
                "empty": values["empty"][name],
                "grown": values["grown"][name],
                "empty_median": statistics.median(values["empty"][name]),
                "grown_median": statistics.median(values["grown"][name]),
            }
            for name, (_, _, higher) in FIGURES.items()
        },
    }
    save("growth", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
