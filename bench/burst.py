"""Bursts: acknowledgements under a paced burst while mapping and delivery run, then the drain.

For each layout (`bridge serve` with its worker on SQLite; web and worker as separate processes on
SQLite; the same on PostgreSQL) and each burst (1,000/s for 60 s, 2,000/s for 30 s):

1. a fresh database; the fakes at their default limits (Omnisend 400 requests/min, Ometria 8/s, 100
   records a request) in this process's threads; the bridge in its own processes;
2. the open-loop paced sender (bench/paced.py, a process of its own: latency from each request's due
   time) sends signed 7 KB Shopify orders, a new body each;
3. the backlog drains into the fakes; the drain rate is measured from the end of the burst to the
   last record, against each destination's ceiling;
4. every order must reach each fake exactly once (nothing lost, nothing duplicated), every 2xx must
   be a stored event.

CPU seconds of every bridge process (and its children: the writer, the mapping child) are read from
/proc during the burst, so the report says where the time went.

    python -m bench.burst [--layouts serve,split,split-pg] [--bursts 1000x60,2000x30] [--deadline 240]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    OMETRIA_KEY,
    OMNISEND_KEY,
    PYTHON,
    ROOT,
    WORK,
    Server,
    bridge_server,
    machine,
    save,
)
from bench.delivery import (
    OMETRIA_PER_S,
    OMNISEND_PER_MIN,
    RECORDS_PER_REQUEST,
    ometria_records,
    omnisend_records,
)

# layout -> (backend, web and worker apart, a worker at all): "web" and "web-pg" measure acknowledgements
# alone (nothing is delivered), for comparison.
LAYOUTS = {"serve": ("sqlite", False, True), "split": ("sqlite", True, True), "serve-pg": ("postgres", False, True),
           "split-pg": ("postgres", True, True), "web": ("sqlite", True, False), "web-pg": ("postgres", True, False)}
CEILING = {"omnisend": OMNISEND_PER_MIN / 60 * RECORDS_PER_REQUEST, "ometria": OMETRIA_PER_S * RECORDS_PER_REQUEST}


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of `pid` and each of its descendants, by command."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")

    def walk(p: int) -> None:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        fields = stat.rsplit(")", 1)[1].split()
        name = " ".join(a.decode() for a in cmd[1:4] if a)
        if "spawn_main" in name or "multiprocessing" in name:
            name = "mapping" if "spawn_main" in name else "resource tracker"
        elif "bridge.store" in name:
            name = "writer"
        elif "bridge serve" in name or "bridge worker" in name:
            name = name.split("-m ", 1)[-1]
        out[f"{p}:{name}"] = (int(fields[11]) + int(fields[12])) / tick
        for task in Path(f"/proc/{p}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    walk(int(child))

    walk(pid)
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores each process used over `seconds`."""
    return {k: round((v - before.get(k, 0.0)) / seconds, 2) for k, v in after.items()}


@contextlib.contextmanager
def database(backend: str, label: str) -> Iterator[str]:
    if backend == "postgres":
        from bench.backends import pg_database

        with pg_database() as url:
            yield url
    else:
        from bench.backends import sqlite_database

        with sqlite_database(label) as url:
            yield url


def backlog(url: str) -> dict[str, Any]:
    """What the bridge reports of its backlog (/healthz), or the error."""
    try:
        return dict(httpx.get(url + "/healthz", timeout=5).json().get("backlog") or {})
    except Exception as exc:
        return {"error": type(exc).__name__}


def stored(url: str) -> int:
    from bench.backends import rows

    return int(rows(url, "SELECT count(*) FROM events")[0][0])


def one(layout: str, rate: int, seconds: int, deadline: float, extra: dict[str, str] | None = None) -> dict[str, Any]:
    from bridge.fakes import create_ometria_app, create_omnisend_app, serve_in_thread

    backend, split, with_worker = LAYOUTS[layout]
    label = f"burst-{layout}-{rate}"
    result: dict[str, Any] = {"layout": layout, "backend": backend, "split": split, "rate": rate, "seconds": seconds}
    omnisend, ometria = create_omnisend_app(OMNISEND_KEY), create_ometria_app(OMETRIA_KEY)
    with database(backend, label) as db, serve_in_thread(omnisend) as omnisend_url, \
            serve_in_thread(ometria) as ometria_url:
        env = {"OMNISEND_API_KEY": OMNISEND_KEY, "OMNISEND_BASE_URL": omnisend_url,
               "OMETRIA_API_KEY": OMETRIA_KEY, "OMETRIA_BASE_URL": ometria_url, **(extra or {})}
        logs = WORK / f"{label}.log"
        logs.unlink(missing_ok=True)
        web = bridge_server(db, logs, worker=not split, env=env).start()
        procs: list[Server] = [web]
        if split and with_worker:
            worker = Server([PYTHON, "-m", "bridge", "worker", "--no-migrate"], dict(web.env), WORK / f"{label}-worker.log")
            worker.log.unlink(missing_ok=True)
            worker.proc = subprocess.Popen(worker.argv, cwd=ROOT, stdout=worker.log.open("ab"),
                                           stderr=subprocess.STDOUT,
                                           env={**{k: v for k, v in os.environ.items()
                                                   if not k.startswith(("BRIDGE_", "OMNISEND_", "OMETRIA_", "SHOPIFY_"))},
                                                **web.env})
            procs.append(worker)
        try:
            time.sleep(2.0)  # the worker and its mapping child start
            cpu0 = {k: v for p in procs for k, v in cpu_seconds(p.proc.pid).items()}  # type: ignore[union-attr]
            t0 = time.monotonic()
            paced = subprocess.run([PYTHON, "-m", "bench.paced", web.url, "--rate", str(rate), "--seconds",
                                    str(seconds), "--connections", "64"], cwd=ROOT, capture_output=True, text=True, check=False,
                                   timeout=seconds + 120)
            burst_end = time.monotonic()
            cpu1 = {k: v for p in procs for k, v in cpu_seconds(p.proc.pid).items()}  # type: ignore[union-attr]
            line = next((ln for ln in paced.stdout.splitlines() if ln.startswith("PACED_JSON ")), None)
            if line is None:
                raise RuntimeError(f"paced sender failed: {paced.stderr[-2000:]}")
            result["paced"] = json.loads(line[len("PACED_JSON "):])
            result["cpu_cores_during_burst"] = cpu_delta(cpu0, cpu1, burst_end - t0)
            result["backlog_at_burst_end"] = backlog(web.url)
            at_end = {"omnisend": len(set(omnisend_records(omnisend.state.fake))),
                      "ometria": len(set(ometria_records(ometria.state.fake)))}
            result["delivered_during_burst"] = at_end
            timeline = []
            end = burst_end + deadline
            accepted = result["paced"]["statuses"].get("200", 0) + result["paced"]["statuses"].get("202", 0)
            while with_worker and time.monotonic() < end:
                a, b = len(set(omnisend_records(omnisend.state.fake))), len(set(ometria_records(ometria.state.fake)))
                timeline.append((round(time.monotonic() - t0, 1), a, b))
                if a >= accepted and b >= accepted:
                    break
                time.sleep(1.0)
            result["drain_timed_out"] = with_worker and time.monotonic() >= end
            result["timeline_s_omnisend_ometria"] = timeline[:: max(1, len(timeline) // 30)]
            result["drain"] = {} if not with_worker else {name: drain(fake.state.fake, records, burst_end, at_end[name], name)
                               for name, fake, records in (("omnisend", omnisend, omnisend_records),
                                                          ("ometria", ometria, ometria_records))}
            result["events_stored"] = stored(db)
            result["accepted"] = accepted
        finally:
            for p in reversed(procs):
                p.stop()
    result["lost_acknowledged"] = max(0, result.get("accepted", 0) - result.get("events_stored", 0))
    return result


def drain(fake: Any, records: Any, burst_end: float, before: int, name: str) -> dict[str, Any]:
    """The rate records reached the fake after the burst, against the destination's ceiling; and duplicates."""
    ids = records(fake)
    with fake.lock:
        times = sorted(q.at for q in fake.requests if not q.path.startswith("/_fake") and q.method != "GET"
                       and q.status and q.status < 300 and q.at > burst_end)
        status_429 = sum(1 for q in fake.requests if q.status == 429)
    distinct = len(set(ids))
    after = distinct - before
    span = (times[-1] - burst_end) if times else 0.0
    # Records are sent 100 a request: the last request ends the drain, the first one after the burst starts it.
    rate = after / span if span > 0 else 0.0
    return {"records": distinct, "duplicates": len(ids) - distinct, "after_burst": after,
            "drain_seconds": round(span, 1), "records_per_second": round(rate, 1),
            "ceiling": CEILING[name], "fraction_of_ceiling": round(rate / CEILING[name], 3), "status_429": status_429}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layouts", default="web,serve,split", help=", ".join(LAYOUTS))
    parser.add_argument("--bursts", default="1000x60,2000x30")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds the drain may take after a burst")
    parser.add_argument("--label", default="burst")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the bridge's processes; "
                        "several --env sets separated by ';' in one value are run in turns (a comparison)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    started_load = " ".join(f"{x:.1f}" for x in os.getloadavg())  # others' work on the machine shows here
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs = []
    for layout in args.layouts.split(","):
        for burst in args.bursts.split(","):
            rate, seconds = (int(x) for x in burst.split("x"))
            print(f"== {layout} {rate}/s x {seconds} s", file=sys.stderr, flush=True)
            for variant in (args.env or [""]):
                extra = dict(kv.split("=", 1) for kv in variant.split(";") if kv)
                r = one(layout, rate, seconds, args.deadline, extra)
                r["env"] = extra
                runs.append(r)
                report(r)
                # after every run: a part cut short keeps what it measured
                save(args.label, {"machine": machine(), "date": date, "load": started_load, "runs": runs})


def report(r: dict[str, Any]) -> None:
    p = r["paced"]
    print(json.dumps({"layout": r["layout"], "env": r["env"], "rate": r["rate"], "p50": p["p50_ms"],
                      "p99": p["p99_ms"], "max": p["max_ms"], "statuses": p["statuses"], "errors": p["errors"],
                      "cpu": r["cpu_cores_during_burst"], "backlog": r["backlog_at_burst_end"],
                      "drain": {k: (v["fraction_of_ceiling"], v["duplicates"], v["records"]) for k, v in r["drain"].items()},
                      "drain_timed_out": r["drain_timed_out"],
                      "lost": r["lost_acknowledged"]}), flush=True)


if __name__ == "__main__":
    main()
