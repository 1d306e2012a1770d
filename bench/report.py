"""Write docs/benchmarks.md from bench/results/*.json, with a verdict for every target."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from bench.common import ROOT, load, machine, save

DOC = ROOT / "docs" / "benchmarks.md"

# What limits each figure, in a few lines; bench/NOTES.md has the measurements behind them.
LIMITS = {
    "ingest": [
        "**What limits it:** CPU. The bridge's event loop does about twice a bare request's work per webhook "
        "(verification, the hand-over of a durable commit, the log line) and its writer process as much again, "
        "on two cores shared with wrk: at its best concurrency ~10% of the cores are idle. The ratio falls on "
        "faster machines, where the bare app's C gains more than the bridge's Python. The half-rate p99 follows "
        "the disk's fsync spread.",
    ],
    "delivery": [
        "**What limits it:** the destinations' rate limits, by design. The worker maps in a child process and "
        "encodes each request before the limiter releases it, so mapping and encoding do not eat into the budget.",
    ],
    "mapping": [
        "**What limits it:** the rule engine's per-field expressions (Jinja, compiled once per rule) and the "
        "run-time type check, against hand-written Python that does neither.",
    ],
    "backends": [
        "**What limits it:** ingest: CPU, on the two cores the server shares with PostgreSQL, wrk and (in these "
        "runs) other work. Both stores commit the webhooks that arrive together in one transaction (PostgreSQL: "
        "one multi-row insert a group, bridge/store/postgres/groups.py); a PostgreSQL webhook also costs its "
        "backend's CPU (~0.15 ms) on the same cores, and a second web process adds an event loop, not cores. "
        "Delivery on PostgreSQL: CPU. The shared budget's "
        "schedule allows 0.97 of Ometria's ceiling and 0.996 of Omnisend's (30 ms of slack on Ometria's second, the "
        "limiter's own 0.25 s on Omnisend's minute); the time beyond it is CPU the workers did not get: a process the "
        "machine does not run for a while comes late to its slot, and a request that reached the destination more "
        "than 15 ms late (Ometria) holds back the slot 8 numbers on (see bench/NOTES.md). On the quiet machine "
        "(the load averages above) the two workers delivering mapped events reach 0.96 of Ometria's ceiling with "
        "0.2 s beyond the schedule, and Omnisend's limit never binds in a 10,000-order drain. The delivery path "
        "costs about 1 ms of the bridge's CPU and 0.4 ms of PostgreSQL's an order, mapping about 1.7 ms more: "
        "Ometria's 800 orders a second need more than the two cores when the workers map (0.60 of its ceiling). "
        "Growth figures move with single stalls of the machine (a 2.5 s p99 round on the small store), "
        "so medians of rounds in turns are compared.",
    ],
    "burst": [
        "**What limits it:** the answers: the web process's CPU (alone at 1,000/s it used 0.53 of a core on "
        "SQLite and 0.77 on PostgreSQL, whose backends share the same two cores; at 2,000/s 0.76-0.79, as much "
        "as it gets beside the rest). While a burst arrives the worker's "
        "loops wait (bridge/pressure.py, at most a second a round): in `bridge serve` while its event loop runs "
        "late or the webhooks wait over 20 ms for their commit, in `bridge worker` while the store's newest "
        "event id grows by 200 a second or more and the worker is behind; the mapping process and `bridge "
        "worker` run at a lower OS priority. So the backlog grows durably instead of the answers slowing down. "
        "On PostgreSQL, 2,000 a second is more than one web process answers on this machine (the web process "
        "alone: p99 4.4 s here, 0.8 s in an earlier quiet run). The drain: CPU. Mapping (~1 ms an order), the worker's delivery (~0.8 ms) and the "
        "store's writer (~0.7 ms) share the two cores with the fakes and the sender: 650-750 orders a second, "
        "so Omnisend (667/s) drains at its ceiling and Ometria (800/s) at about 0.8 of it (bench/NOTES.md, "
        "Delivery). The rows were measured one after the other on the machine quiet but for the benchmark "
        "(the load averages above are the benchmark's own).",
    ],
    "growth": [
        "**What limits it:** the disk. Store-bound figures move with single fsync stalls, so each is a median of "
        "rounds taken in turns; memory and rules-only mapping do not depend on the store's size.",
    ],
}


def pct(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+.1f}%"


def verdict(ok: bool, text: str) -> str:
    return f"**{'met' if ok else 'MISSED'}**: {text}"


def comparison(r: dict[str, Any] | None, setting: str, comment: str = "") -> list[str]:
    """The same ingest comparison under another setting, in one line."""
    if not r:
        return []
    return [
        f"- {setting}, {r['rounds']} rounds of {int(r['seconds'])} s: bare {r['bare']['rps']:,.0f}/s "
        f"(-c{r.get('bare_connections') or r['connections']}), bridge {r['bridge']['rps']:,.0f}/s (-c{r['connections']}), ratio {r['ratio']:.2f} (rounds "
        f"{', '.join(f'{v:.2f}' for v in r.get('round_ratios', []))}).{edge_warning(r) if r.get('sweep') else ''}{comment}",
    ]


def ingest_section(r: dict[str, Any] | None, asyncio_stack: dict[str, Any] | None = None,
                   thread_writer: dict[str, Any] | None = None) -> list[str]:
    if not r:
        return ["Not run (`bench/run ingest`)."]
    b, x, h = r["bare"], r["bridge"], r["half_rate"]
    ratio = x["rps"] / b["rps"]
    rounds = r.get("rounds", 1)
    spread = ""
    if r.get("round_ratios"):
        spread = (f" The {rounds} rounds: bare {', '.join(f'{v:,.0f}' for v in r['bare_runs'])}/s; bridge "
                  f"{', '.join(f'{v:,.0f}' for v in r['bridge_runs'])}/s; ratios "
                  f"{', '.join(f'{v:.2f}' for v in r['round_ratios'])}.")
    return [
        f"wrk `-t1 -d{int(r['seconds'])}s` (after a 2 s warm-up), signed `orders/create`, "
        f"{r['body_bytes']:,} byte body (the shipped payload as compact JSON), a new random UUID as `X-Shopify-Event-Id` each request, the shape of Shopify's event ids (each lands on a random leaf of the dedupe index: ~20% slower than a counter would be). "
        f"The two servers run side by side and are loaded in turns, {rounds} times each; the table shows each "
        f"one's median run.{spread} {connections_text(r)}",
        "",
        "| server | connections | requests/s | p50 | p99 | non-2xx |",
        "|---|---|---|---|---|---|",
        f"| bare Starlette (uvloop + httptools, 1 worker) | {r.get('bare_connections') or r['connections']} | {b['rps']:,.0f} | {b['p50_ms']:.1f} ms | {b['p99_ms']:.1f} ms | {b['non_2xx']} |",
        f"| `bridge serve --no-worker` (verify + group commit, synchronous=FULL) | {r['connections']} | {x['rps']:,.0f} | {x['p50_ms']:.1f} ms | {x['p99_ms']:.1f} ms | {x['non_2xx']} |",
        *sweep_table(r),
        "",
        "- " + verdict(ratio >= 0.5, f"ingest ratio {ratio:.2f} of bare (target ≥ 0.5"
                       + ("" if ratio >= 0.5 else f"; short by {(0.5 - ratio) / 0.5 * 100:.0f}%") + ")."),
        f"- Held at half its own peak ({h['target_rate']:,.0f}/s, open loop, {h['connections']} connections, "
        f"{int(h['seconds'])} s; achieved {h['achieved_rate']:,.0f}/s): p50 {h['p50_ms']:.1f} ms, "
        f"p99 {h['p99_ms']:.1f} ms, max {h['max_ms']:.0f} ms. "
        + verdict(h["p99_ms"] < 25, "p99 < 25 ms" + ("" if h["p99_ms"] < 25 else f" (×{h['p99_ms'] / 25:.1f} over)")) + "."
        + half_rate_floor(h, r.get("half_rate_bare")),
        f"- Durability check: paced run {h['statuses'].get('200', 0):,} answers 200, {h['events_committed']:,} events "
        f"committed (difference {h['committed_minus_200']}; unanswered {h['unanswered']}, errors {h['errors']}). "
        f"wrk run: {x['ok']:,} answered 200, {x['events_committed']:,} committed; the difference "
        f"({x['committed_minus_200']}) is at most the {r['connections']} requests wrk abandons in flight at its deadline "
        "(committed, answer never read).",
        f"- Peak RSS of the bridge and its writer process (VmHWM) after all the runs: {r['bridge_peak_rss_kb'] / 1024:.0f} MiB.",
        *comparison(thread_writer, "The same comparison with `BRIDGE_STORE_WRITER=thread` (the writer a thread "
                    "of the web process)"),
        *comparison(asyncio_stack, "For scale, on uvicorn's default stack (asyncio + h11) for both servers",
                    " The bridge's own work per webhook is the same on both stacks; uvloop + httptools makes the "
                    "HTTP part of every request ~3x cheaper, which lifts the bare app far more than the bridge. "
                    "`bridge serve` ships uvloop + httptools because its absolute rate there is the higher one; "
                    "the target is judged on that stack, above."),
    ]


def connections_text(r: dict[str, Any]) -> str:
    if not r.get("sweep"):
        return f"Both servers with `-c{r['connections']}`."
    return ("Each server runs at the connection count of its own peak in a sweep of 2 s runs (the second table): "
            "a ceiling is a server's best rate, and the bare app, which answers at once, peaks with fewer "
            "requests in flight than the bridge, which answers after a group commit. The sweep's last row is "
            "the ratio at the same count, for comparison." + edge_warning(r))


def edge_warning(r: dict[str, Any]) -> str:
    """A pick at the top of the sweep: that server's peak may lie beyond it."""
    top = max(int(c) for c in r["sweep"]["bridge"])
    at_top = [name for name, c in (("bridge", r["connections"]), ("bare app", r.get("bare_connections"))) if c == top]
    return "".join(f" The {name} peaked at the sweep's top count ({top}): its ceiling may lie higher." for name in at_top)


def sweep_table(r: dict[str, Any]) -> list[str]:
    """The concurrency sweep: requests a second of each server at each connection count, 2 s each."""
    sweep = r.get("sweep")
    if not sweep:
        return []
    counts = sorted(sweep["bridge"], key=int)
    rows = ["", "| sweep, 2 s each (requests/s) | " + " | ".join(f"-c{c}" for c in counts) + " |",
            "|---|" + "---|" * len(counts)]
    for name in ("bare", "bridge"):
        if name in sweep:
            rows.append(f"| {name} | " + " | ".join(f"{sweep[name][c]:,.0f}" for c in counts) + " |")
    if "bare" in sweep:
        rows.append("| ratio at the same count | "
                    + " | ".join(f"{sweep['bridge'][c] / sweep['bare'][c]:.2f}" for c in counts) + " |")
    return rows


def half_rate_floor(h: dict[str, Any], bare: dict[str, Any] | None) -> str:
    """What the open-loop generator itself costs: its CPU, and the bare app under the same load."""
    text = ""
    if "generator_cores" in h:
        text += f" The generator (bench/paced.py) used {h['generator_cores']:.2f} of a core."
    if bare:
        text += (f" The bare app under the same load: p50 {bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms "
                 "(requests go out up to ~1 ms after they are due, libuv's timer resolution; that lag is in both).")
    return text


def delivery_section(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return ["Not run (`bench/run delivery`)."]
    out = [
        f"{r['orders']:,} distinct orders preloaded through the real Shopify verifier and `SQLiteStore.ingest` "
        f"({r['preload_seconds']} s), then `bridge serve` with its worker started against the fakes at their "
        "default limits. Rate = distinct records received ÷ (last record − first request at the fake).",
        "",
        "| destination | records | time | records/s | ceiling | fraction | requests (by kind) | records/request | 429s | lost | duplicated |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, limit in (("ometria", "8 req/s × 100"), ("omnisend", "400 req/min × 100 (batches)")):
        d = r[name]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(d["requests_by_kind"].items()))
        out.append(
            f"| {name} | {d['distinct_records']:,} | {d['last_record_s'] - d['first_request_s']:.1f} s | "
            f"{d['records_per_second']:,.0f} | {d['ceiling_records_per_second']:,.0f}/s ({limit}) | "
            f"{d['fraction_of_ceiling']:.2f} | {d['requests']} ({kinds}) | {d['records_per_request']} | "
            f"{d['status_429']} | {d['lost']} | {d['duplicates']} |")
    o, m = r["ometria"], r["omnisend"]
    out += [
        "",
        "- " + verdict(o["fraction_of_ceiling"] >= 0.95,
                       f"Ometria {o['fraction_of_ceiling']:.2f} of its ceiling (target ≥ 0.95).")
        + f" At most {o['max_requests_in_any_window']} requests in any 1 s window; {o['status_429']} answered 429.",
        "- " + verdict(m["sustained_fraction_of_ceiling"] >= 0.95,
                       f"Omnisend: the drain used {m['requests']} requests, within the {m['window_limit']} the "
                       f"sliding minute allows from a fresh start (max {m['max_requests_in_any_window']} in any 60 s), "
                       f"so the limit never bound and its {m['records_per_second']:,.0f} records/s "
                       f"({m['fraction_of_ceiling']:.2f} of 667/s) measures the worker, not the limit. Once the limit "
                       f"binds, the rate is 400/60 requests/s × {m['records_per_request']} records a request: "
                       f"{m['sustained_fraction_of_ceiling']:.2f} of the ceiling (target ≥ 0.95)."),
        f"- Outbox vs fakes: Ometria {o['outbox_states']}, lost {o['lost']}, duplicated {o['duplicates']}; "
        f"Omnisend {m['outbox_states']}, lost {m['lost']}, duplicated {m['duplicates']}. "
        + verdict(o["lost"] == o["duplicates"] == m["lost"] == m["duplicates"] == 0, "zero lost, zero duplicated") + ".",
        f"- Peak RSS of the bridge and its child processes (the store's writer, the mapping process) during the drain: {r['bridge_peak_rss_kb'] / 1024:.0f} MiB. "
        + ("**The run hit its deadline.**" if r.get("timed_out") else ""),
    ]
    return out


def mapping_section(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return ["Not run (`bench/run mapping`)."]
    return [
        f"`load_rules(Path('mappings'), <a fresh install's areas>).map(event)` vs `bench/mapping.py:hand_map` on the same stored event "
        f"({r['body_bytes']:,} byte body), one thread; outputs identical: **{r['outputs_identical']}**.",
        "",
        "| mapper | events/s |",
        "|---|---|",
        f"| shipped rules (mappings/shopify-orders.yaml) | {r['rules_per_second']:,.0f} |",
        f"| hand-written Python | {r['hand_per_second']:,.0f} |",
        f"| worker's mapping step through the store (`Worker.map_once`: read, map, save 2 messages) | {r['store_path']['events_per_second']:,.0f} |",
        "",
        "- " + verdict(r["ratio"] >= 0.3, f"rules run at {r['ratio']:.2f} of hand-written (target ≥ 0.3)."),
    ]


def growth_section(r: dict[str, Any] | None, g: dict[str, Any] | None) -> list[str]:
    if not r:
        return ["Not run (`bench/run growth`)."]
    out = []
    wrk_at = f"wrk with {r['connections']} connections, the bridge's count in section 1" if r.get("connections") else "wrk"
    if g:
        out.append(f"Store generated in {g['seconds']} s: {g['events']:,} events, "
                   f"{g.get('messages_delivered', 0):,} delivered and {g.get('messages_pending', 0):,} waiting "
                   f"messages, {g['bytes'] / 2**30:.1f} GiB, then synced to disk. {r['rounds']} rounds, each: "
                   f"ingest ({wrk_at}, then half rate) on a new empty store, the same on the grown store, mapping on an "
                   "empty store, mapping on the grown store (`bench/growth.py`). Medians compared; every run listed.")
        out.append("")
    out += ["| figure | empty store (median) | grown store (median) | change | within 10% | empty runs | grown runs |",
            "|---|---|---|---|---|---|---|"]
    worst = []
    order = ["ingest requests/s (wrk)", "ingest p99 at peak (ms)", "ingest p99 at half rate (ms)",
             "mapping, rules only (events/s)", "mapping through the store (events/s)", "bridge peak RSS (MiB)"]
    for name, f in sorted(r["figures"].items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
        a, b = f["empty_median"], f["grown_median"]
        worse = (a - b) / a if f["higher_is_better"] else (b - a) / a
        ok = worse <= 0.10
        if not ok and "RSS" not in name:
            worst.append(f"{name} {pct(b, a)}")
        runs_a = ", ".join(f"{v:,.1f}" for v in f["empty"])
        runs_b = ", ".join(f"{v:,.1f}" for v in f["grown"])
        out.append(f"| {name} | {a:,.1f} | {b:,.1f} | {pct(b, a)} | {'yes' if ok else '**no**'} | {runs_a} | {runs_b} |")
    rss = r["figures"].get("bridge peak RSS (MiB)")
    out += ["", "- " + verdict(not worst, "no figure worse by more than 10%" + (f" (worse: {'; '.join(worst)})" if worst else "")) + "."]
    if rss:
        flat = rss["grown_median"] <= rss["empty_median"] * 1.10
        out.append("- " + verdict(flat, f"memory flat: peak RSS {rss['empty_median']:.0f} MiB on the empty store, "
                                        f"{rss['grown_median']:.0f} MiB on the grown one") + ".")
    return out


def backends_section(i: dict[str, Any] | None, d: dict[str, Any] | None, g: dict[str, Any] | None = None,
                     p: dict[str, Any] | None = None) -> list[str]:
    if not i and not d and not g and not p:
        return ["Not run (`bench/run backends`)."]
    out: list[str] = []
    first = i or d or p or g
    assert first is not None
    if "date" in first:
        m = first["machine"]
        out += [f"Measured by `python -m bench.backends` on {first['date']} ({m['cpu']}, {m['cores']} cores); "
                "PostgreSQL 15 from Debian's packages on the same machine, its default settings.", ""]
    if i:
        out += [
            f"`bridge serve --no-worker` on SQLite (a file) and on PostgreSQL (a new database on the local server), "
            f"one and then two processes on one database, each loaded by a wrk of its own at once "
            f"({i['connections']} connections in all, split between them), {int(i['seconds'])} s, the four setups "
            f"in turns, {i['rounds']} rounds; the median round of each.",
            "",
            "| store | web processes | 2xx/s (sum) | per process | worst p99 | committed − 200s | rounds |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in sorted(i["median"], key=lambda n: (n.startswith("postgres"), n)):
            run = i["median"][name]
            store, webs = name.rsplit("-", 1)
            out.append(f"| {store} | {webs} | {run['rps']:,.0f} | {', '.join(f'{v:,.0f}' for v in run['per_process_rps'])} | "
                       f"{run['p99_ms']:.1f} ms | {run['committed_minus_200']} | {', '.join(f'{v:,.0f}' for v in i['runs'][name])} |")
        out += ["", "Committed − 200s is at most the connections wrk abandons at its deadline (committed, answer "
                    "never read); a negative figure would be an acknowledged event not stored.", ""]
        if "load" in i:
            out += [f"Load average (1, 5, 15 min) of the two cores as these runs began: "
                    f"{' '.join(str(x) for x in i['load']['start'])}; as they ended: "
                    f"{' '.join(str(x) for x in i['load']['end'])}.", ""]
    drains = [(r, "during the drain" if not r.get("premapped") else "before the drain") for r in (d, p) if r]
    if drains:
        first_drain = drains[0][0]
        out += [
            f"Delivery on PostgreSQL with {first_drain['workers']} `bridge worker` processes sharing each destination's "
            f"budget: {first_drain['orders']:,} orders preloaded through the store interface, then drained into the "
            "fakes at their default limits (as section 2); the events mapped by the workers during the drain, and "
            "mapped before it (the delivery path and the shared budget alone)"
            + (f"; the workers and their mapping processes at nice {first_drain['worker_nice']} (the bridge's default, "
               "10, leaves the CPU to its web process, idle here, and on this shared machine to everything else)"
               if first_drain.get("worker_nice") is not None else "")
            + ". The schedule is the shared budget's spacing (the limit over the window and its slack); the time "
            "beyond it, from a destination's first request to its last, went to slots held back after late requests "
            "and to slots no worker was ready to take. CPU is what the bridge's processes and the database's backends "
            "used from the first record received to the last, per order (two messages).",
            "",
            "| events mapped | destination | records/s | fraction of ceiling | sustained fraction | 429s | "
            "most requests in a window | limit + 1 requests spanned at least | schedule allows | time beyond the schedule "
            "| lost | duplicated | CPU per order |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r, when in drains:
            cpu = r.get("cpu_ms_per_order")
            cost = f"{cpu['bridge']:.2f} ms bridge, {cpu['postgres']:.2f} ms PostgreSQL" if cpu else "—"
            for name, unit in (("ometria", "1 s"), ("omnisend", "60 s")):
                x = r[name]
                span = x.get("span_of_limit_plus_one_requests")
                spanned = f"{span['min_s']:.3f} s" if span else "fewer requests"
                split = x.get("time_split") or {}
                allows = f"{split['schedule_fraction_of_limit']:.3f}" if split else "—"
                beyond = (f"{split['beyond_schedule_s']:.1f} of {split['span_s']:.1f} s" if split else "—")
                out.append(
                    f"| {when} | {name} | {x['records_per_second']:,.0f} | {x['fraction_of_ceiling']:.2f} | "
                    f"{x['sustained_fraction_of_ceiling']:.2f} | {x['status_429']} | {x['max_requests_in_any_window']} "
                    f"in {unit} (limit {x['window_limit']}) | {spanned} | {allows} | {beyond} | "
                    f"{x['lost']} | {x['duplicates']} | {cost} |")
        loads = [f"{r['load_average_at_end']:.1f} (mapped {when})" for r, when in drains if "load_average_at_end" in r]
        if loads:
            out += ["", "Load average (1 min) of the machine as each drain ended, two cores: " + ", ".join(loads) + "."]
        out.append("")
        for r, when in drains:
            o, m = r["ometria"], r["omnisend"]
            out.append("- Mapped " + when + ": " + verdict(
                o["fraction_of_ceiling"] >= 0.95 and m["sustained_fraction_of_ceiling"] >= 0.95,
                "two workers together reach at least 0.95 of each ceiling (Omnisend: once its limit binds)")
                + ". " + verdict(o["status_429"] + m["status_429"] <= 1, "at most one 429") + ".")
    if g:
        made = g["store"]
        out += [
            "",
            f"Growth on PostgreSQL: a database holding {made.get('messages_delivered', 0):,} delivered messages (with their "
            f"attempts) and {made.get('messages_pending', 0):,} waiting, made with SQL in {made['seconds']} s "
            f"({made['bytes'] / 2**30:.1f} GiB), against one holding only the waiting ones; in turns, {g['rounds']} rounds: "
            f"wrk through one `bridge serve --no-worker` ({g['connections']} connections, {int(g['seconds'])} s), then "
            "the waiting messages claimed 100 at a time and completed through the store interface.",
            "",
            "| figure | waiting only (median) | grown (median) | change | within 10% | runs (waiting only; grown) |",
            "|---|---|---|---|---|---|",
        ]
        worse = []
        for name, f in g["figures"].items():
            a, b = f["empty_median"], f["grown_median"]
            loss = (a - b) / a if f["higher_is_better"] else (b - a) / a
            if loss > 0.10:
                worse.append(f"{name} {pct(b, a)}")
            out.append(f"| {name} | {a:,.1f} | {b:,.1f} | {pct(b, a)} | {'yes' if loss <= 0.10 else '**no**'} | "
                       f"{', '.join(f'{v:,.1f}' for v in f['empty'])}; {', '.join(f'{v:,.1f}' for v in f['grown'])} |")
        out += ["", "- " + verdict(not worse, "every figure within 10% on the grown PostgreSQL store"
                                   + (f" (worse: {'; '.join(worse)})" if worse else "")) + "."]
    return out


BURST_LAYOUTS = {"web": "`bridge serve --no-worker` alone (nothing mapped or sent: the floor), SQLite",
                 "web-pg": "`bridge serve --no-worker` alone (nothing mapped or sent: the floor), PostgreSQL",
                 "serve": "`bridge serve` (web and worker in one process), SQLite",
                 "split": "`bridge serve --no-worker` + `bridge worker`, SQLite",
                 "serve-pg": "`bridge serve` (web and worker in one process), PostgreSQL",
                 "split-pg": "`bridge serve --no-worker` + `bridge worker`, PostgreSQL"}
BURST_TARGET_MS = {1000: 100, 2000: 250}


def burst_section(*parts: dict[str, Any] | None) -> list[str]:
    """The burst runs of one or more `bench.burst` results (SQLite and PostgreSQL may be measured apart)."""
    found = [p for p in parts if p]
    if not found:
        return ["Not run (`bench/run burst`)."]
    m = found[0]["machine"]
    r = {"runs": [run | {"date": p["date"], "load": p.get("load")} for p in found for run in p["runs"]]}
    when = "; ".join(f"{p['date']} ({', '.join(sorted({x['layout'] for x in p['runs']}))}"
                     + (f", load average {p['load']}" if p.get("load") else "") + ")" for p in found)
    out = [
        f"Measured by `python -m bench.burst` on {when}, {m['cpu']}, {m['cores']} cores. A fresh database "
        "for every row; the fakes at their default limits (Omnisend 400 requests/min, Ometria 8/s, 100 records a "
        "request); the open-loop paced sender (`bench/paced.py`, a process of its own, 64 connections) sends signed "
        "7 KB Shopify orders, a new body each, and counts each answer's latency from its due time. Then the "
        "backlog drains: records/s at each fake from the end of the burst to its last record, against its "
        "ceiling (Omnisend 667/s, Ometria 800/s). Every acknowledged order must reach both fakes once.",
        "",
        "| layout | burst | 2xx | p50 | p99 | max | backlog at its end | drain Omnisend | drain Ometria | lost | duplicated | undelivered at the deadline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for run in r["runs"]:
        p, d = run["paced"], run["drain"]
        backlog = run.get("backlog_at_burst_end") or {}
        duplicated = sum(x["duplicates"] for x in d.values())
        missing = sum(max(0, run["accepted"] - x["records"]) for x in d.values())
        layout = burst_layout(run)
        answered = p["statuses"].get("200", 0) + p["statuses"].get("202", 0)
        drains = [f"{d[name]['fraction_of_ceiling']:.2f} ({d[name]['records_per_second']:,.0f}/s)" if name in d else "-"
                  for name in ("omnisend", "ometria")]
        out.append(
            f"| {layout} | {run['rate']:,}/s × {run['seconds']} s | {answered:,} of {p['sent']:,} | "
            f"{p['p50_ms']:,.1f} ms | {p['p99_ms']:,.1f} ms | {p['max_ms']:,.0f} ms | "
            f"{backlog.get('events_waiting', '?'):,} events to map, {backlog.get('drain_seconds', '?')} s to drain | "
            f"{drains[0]} | {drains[1]} | {run['lost_acknowledged']} | {duplicated if d else '-'} | {missing if d else '-'} |")
        target = BURST_TARGET_MS.get(run["rate"])
        if target is not None and d:
            drained = min(x["fraction_of_ceiling"] for x in d.values())
            verdicts.append(
                f"- {layout}, {run['rate']:,}/s: "
                + verdict(p["p99_ms"] < target and answered == p["sent"], f"p99 {p['p99_ms']:,.0f} ms (target < {target} ms)")
                + "; " + verdict(drained >= 0.95, f"drain at {drained:.2f} of the slower ceiling (target ≥ 0.95)")
                + "; " + verdict(run["lost_acknowledged"] + duplicated == 0, "nothing lost or duplicated")
                + (" **The drain hit its deadline.**" if run.get("drain_timed_out") else ""))
    out += ["", *verdicts, "", "CPU during each burst (cores, by process; the writer and the mapping process are "
            "children of the web or worker process):", ""]
    for run in r["runs"]:
        cpu = ", ".join(f"{k.split(':', 1)[1]} {v:.2f}" for k, v in run["cpu_cores_during_burst"].items() if v >= 0.01)
        out.append(f"- {burst_layout(run)}, {run['rate']:,}/s: {cpu}")
    return out


def burst_layout(run: dict[str, Any]) -> str:
    """A run's layout, with the build it measured when the run says (`variant`: a comparison in turns), or
    the settings it ran with."""
    extra = run.get("variant") or run.get("env")
    return BURST_LAYOUTS.get(run["layout"], run["layout"]) + (f" ({extra})" if extra else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--command", default="bench/run")
    parser.add_argument("--seconds", type=int, default=0)
    args = parser.parse_args()
    run = {"command": args.command.strip(), "seconds": args.seconds, "date": datetime.date.today().isoformat(),
           "machine": machine()}
    if run["command"] == "bench/run report":  # only re-rendering: keep the facts of the run that measured,
        run = {**run, **(load("run") or {})}  # its machine among them, not the one rendering
    else:
        save("run", run)
    mach = run["machine"]
    lines = [
        "# Benchmarks: proof under load",
        "",
        f"Measured by `{run['command']}` on {run['date']}"
        + (f" in {run['seconds'] // 60} min {run['seconds'] % 60} s" if run["seconds"] else "") + ". Machine: "
        f"{mach['cpu']}, {mach['cores']} cores, {mach['memory_gib']} GiB memory, Python {mach['python']}, "
        f"Linux {mach['kernel']}. The load generator shares the two cores with the server, as it will "
        "everywhere this runs; all traffic on 127.0.0.1. Raw results: `bench/results/`. Ingest and growth "
        "figures are medians of runs taken in turns (listed with them); the others are one run. Treat "
        "differences under about 10% as noise. What limits each figure, and what was tried and "
        "dropped: [bench/NOTES.md](../bench/NOTES.md).",
        "",
        "Run it: `bench/run` (everything), or one part: `bench/run ingest | delivery | mapping | growth | backends | burst`. "
        "The bridge runs as a process: `python -m bridge serve`, web and worker in one process, as a single instance "
        "runs it (the Procfile splits them for Heroku).",
        "",
        "## 1. Ingest ceiling", "", *ingest_section(load("ingest"), load("ingest-asyncio"), load("ingest-thread")), "",
        *LIMITS["ingest"], "",
        "## 2. Delivery against the rate-limit ceiling", "", *delivery_section(load("delivery")), "",
        *LIMITS["delivery"], "",
        "## 3. Mapping speed", "", *mapping_section(load("mapping")), "",
        *LIMITS["mapping"], "",
        "## 4. Growth: 1,000,000 delivered and 100,000 waiting messages", "",
        *growth_section(load("growth"), load("grow_db")),
        "",
        *LIMITS["growth"], "",
        "## 5. PostgreSQL beside SQLite", "", *backends_section(load("backends-ingest"), load("backends-delivery"), load("backends-growth"),
                                                        load("backends-delivery-premapped")), "",
        *LIMITS["backends"], "",
        "## 6. Bursts: acknowledgements while mapping and delivery run", "", *burst_section(load("burst"), load("burst-floor")), "",
        *LIMITS["burst"], "",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
