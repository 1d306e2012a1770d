"""What every benchmark part shares: paths, the signed payload, processes on loopback, machine facts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/bridge-bench"))  # databases and logs: never in git
PYTHON = sys.executable

SHOPIFY_SECRET = "shpss_bench_secret_0123456789"
OMNISEND_KEY = "omnisend-bench-key"
OMETRIA_KEY = "ometria-bench-key"
PAYLOAD = ROOT / "tests" / "payloads" / "shopify" / "orders_create.json"
MIN_BODY_BYTES = 5_000



@lru_cache(maxsize=1)
def _template() -> str:
    return PAYLOAD.read_text()


def order_body(order_id: int | None = None, email: str | None = None) -> bytes:
    """The shipped orders/create payload as Shopify sends it (compact JSON), padded to at least 5 KB."""
    payload = json.loads(_template())
    if order_id is not None:
        payload["id"] = order_id
        payload["name"] = f"#{order_id % 10_000_000}"
        payload["order_number"] = order_id % 10_000_000
    if email is not None:
        payload["email"] = email
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) < MIN_BODY_BYTES:
        payload["note_attributes"] = payload.get("note_attributes", []) + [
            {"name": "padding", "value": "x" * (MIN_BODY_BYTES - len(body))}
        ]
        body = json.dumps(payload, separators=(",", ":")).encode()
    return body


class VariedOrders:
    """The shipped order with a new id in a fixed-width slot for every request, and its signature.

    The bridge's Shopify dedupe key covers the shop, the topic and a hash of the body (a captured
    body resent under a new event id is a duplicate), so each request of a load run must be a new
    body, signed. The id is 19 digits wide, so every body has the same length; the HMAC state after
    the part before the id is computed once, so a signature costs the rest of the body only.
    """

    WIDTH = 19
    _MARK = 9_123_456_789_012_345_678

    def __init__(self, secret: str = SHOPIFY_SECRET) -> None:
        body = order_body(order_id=self._MARK)
        self.head, self.tail = body.split(str(self._MARK).encode())  # exactly one occurrence: the order's id
        self._state = hmac.new(secret.encode(), self.head, hashlib.sha256)
        self._next = secrets.randbelow(8 * 10**18 - 10**12) + 10**18  # ids of this run: 19 digits, unseen

    def take(self, count: int) -> list[tuple[bytes, str]]:
        """`count` new (id, signature) pairs: the body is head + id + tail."""
        out = []
        for order_id in range(self._next, self._next + count):
            digits = str(order_id).encode()
            mac = self._state.copy()
            mac.update(digits + self.tail)
            out.append((digits, base64.b64encode(mac.digest()).decode()))
        self._next += count
        return out

    def body(self, digits: bytes) -> bytes:
        return self.head + digits + self.tail


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Server:
    """A server child process on a loopback port (the bridge or the bare app)."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/healthz") -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OMNISEND_", "OMETRIA_", "SHOPIFY_"))}
        env.update(self.env, PORT=str(self.port), HOST="127.0.0.1")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_http(self.url + ready_path, proc=self.proc)
        return self

    def peak_rss_kb(self) -> int:
        """VmHWM, the peak resident set so far, of the process and its children (the store's writer)."""
        assert self.proc is not None
        pids = [self.proc.pid]
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return total

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def bridge_server(db: Path | str, log: Path, *, worker: bool, env: dict[str, str] | None = None,
                  stack: str = "uvloop") -> Server:
    """`bridge serve` on `db` (a SQLite file, or a database URL): the command the Procfile runs (on
    another HTTP stack: bench/stack.py)."""
    argv = [PYTHON, "-m", "bridge", "serve"] + ([] if worker else ["--no-worker"])
    if stack != "uvloop":
        assert not worker, "bench/stack.py runs the web process only"
        argv = [PYTHON, "-m", "bench.stack"]
    base = {
        "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
        "BRIDGE_DATABASE_URL": db if isinstance(db, str) else f"sqlite:///{db}",
        "BRIDGE_MAPPINGS_DIR": str(ROOT / "mappings"),
        "BRIDGE_LOG_FORMAT": "json",
    }
    base.update(env or {}, BENCH_STACK=stack)
    return Server(argv, base, log)


def bare_server(log: Path, stack: str = "uvloop") -> Server:
    return Server([PYTHON, str(BENCH / "bare_app.py")], {"BENCH_STACK": stack}, log)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def bench_db(label: str, source: Path | None, in_place: bool) -> Path:
    """The database a benchmark part runs on: `source` itself (in place), a fresh copy of it, or a new file."""
    if source is not None and in_place:
        return source
    db = WORK / f"{label}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if source is not None:
        shutil.copyfile(source, db)
    return db


def cpu_seconds(roots: list[int], database: str | None = None) -> dict[str, float]:
    """CPU time (user + system) used so far by these processes and their children, and by the PostgreSQL
    backends connected to `database`: what a figure cost, whatever else shares the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, str]] = {}  # pid -> (parent, cpu seconds, command line)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmdline)
    ours = set(roots)
    grew = True
    while grew:
        more = {pid for pid, (parent, _, _) in stats.items() if parent in ours} - ours
        ours |= more
        grew = bool(more)
    bridge = sum(stats[pid][1] for pid in ours if pid in stats)
    postgres = sum(cpu for cpu_pid, (_, cpu, cmd) in stats.items()
                   if database and cmd.startswith("postgres: ") and f" {database} " in cmd)
    return {"bridge": round(bridge, 2), "postgres": round(postgres, 2)}
