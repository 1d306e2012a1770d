"""The store's writer in a process of its own: `python -m bridge.store DB FD`.

Why a process: in the web process the writer thread shares the GIL with the
event loop. It needs the GIL a few times a group (to wake up, around each
statement, to hand the results back) and each time waits for a busy loop to
let go of it, so the two take turns instead of overlapping. Here the writer
runs the same group commit (`commit_group`) with its own interpreter, and the
event loop reads the results from a socket like any other I/O. The ingest
benchmark compares both writers (docs/benchmarks.md).

The wire: both ways, frames of a 4-byte big-endian length and a pickle.

    parent -> child   [(fn, args, ingest row or None), ...]   one frame per hand-over
    child -> parent   [(ok, value or exception), ...]         one frame per frame, in order

The child takes every frame that is waiting, commits them as one group and
answers each in order; a frame it cannot read is answered with one exception,
which fails every job of that frame. It ignores SIGINT and SIGTERM (a PaaS sends
them to the whole process group) and stops when the parent closes the socket,
or dies: the end of the socket is the only signal it needs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import pickle
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import structlog

from bridge.errors import StoreUnavailable
from bridge.store.sqlite.lock import WriteLock
from bridge.store.sqlite.writer import MAX_JOBS_PER_COMMIT, _Job, commit_group, open_writer

log = structlog.get_logger("bridge.store")

HEADER = 4
RESTART_WAIT_SECONDS = 10.0


def frame(payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(HEADER, "big") + data


def take_frames(buffer: bytearray) -> list[bytes]:
    """The complete frames at the start of `buffer`, removed from it."""
    frames, start = [], 0
    while len(buffer) - start >= HEADER:
        size = int.from_bytes(buffer[start : start + HEADER], "big")
        if len(buffer) - start - HEADER < size:
            break
        frames.append(bytes(buffer[start + HEADER : start + HEADER + size]))
        start += HEADER + size
    del buffer[:start]
    return frames


# -- the parent's end ----------------------------------------------------------------------------


class WriterProcess(asyncio.Protocol):
    """Starts the writer process and talks to it from the event loop it was started on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop: asyncio.AbstractEventLoop | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self._connected: asyncio.Future[Any] | None = None
        self._socket: socket.socket | None = None  # a duplicate, to end the stream from close()
        self._pending: collections.deque[list[Any]] = collections.deque()  # the jobs of each frame sent
        self._buffer = bytearray()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._connected = asyncio.ensure_future(self._connect(self._spawn()), loop=loop)

    def _spawn(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge.store", str(self.path), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        if self._socket is not None:  # the last writer's
            self._socket.close()
        self._socket = ours.dup()
        self._buffer.clear()
        return ours

    async def _connect(self, ours: socket.socket) -> None:
        assert self.loop is not None
        await self.loop.create_unix_connection(lambda: self, sock=ours)

    async def _restart(self) -> None:
        await asyncio.to_thread(self._reap)
        log.warning("store.writer_restarted")
        await self._connect(self._spawn())

    async def ready(self) -> None:
        """Wait for the connection to the writer; start a new writer if the last one stopped."""
        if self.transport is not None and not self.transport.is_closing():
            return
        assert self._connected is not None, "start() first"
        if self._connected.done() and self.transport is None:  # one restart, however many callers wait
            self._connected = asyncio.ensure_future(self._restart())
        try:
            await asyncio.shield(self._connected)
        except Exception as exc:
            raise StoreUnavailable(f"cannot reach the store's writer process: {exc}") from exc
        if self.transport is None:
            raise StoreUnavailable("the store's writer process stopped")

    @property
    def idle(self) -> bool:
        """Whether the writer has answered everything it was sent."""
        return not self._pending

    def send(self, jobs: list[Any]) -> None:
        """Send the jobs of one hand-over; their futures resolve when the answer comes back."""
        if self.transport is None or self.transport.is_closing():
            _fail(jobs, StoreUnavailable("the store's writer process stopped"))
            return
        try:
            data = frame([(job.fn, job.args, job.ingest) for job in jobs])
        except Exception:  # a lambda, say: the writer process could not call it. Send the others.
            picklable = []
            for job in jobs:
                if (error := _pickle_error((job.fn, job.args, job.ingest))) is not None:
                    _fail([job], TypeError(f"a write job must be a module-level function with picklable arguments: {error}"))
                else:
                    picklable.append(job)
            if not picklable:
                return
            jobs = picklable
            data = frame([(job.fn, job.args, job.ingest) for job in jobs])
        self.transport.write(data)
        self._pending.append(jobs)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for raw in take_frames(self._buffer):
            jobs = self._pending.popleft()
            answer = pickle.loads(raw)
            if isinstance(answer, BaseException):
                _fail(jobs, answer)
                continue
            for job, (ok, value) in zip(jobs, answer):
                future = job.future
                if future.done():  # the request that waited went away
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        code = self.proc.poll() if self.proc is not None else None
        if self._pending:
            log.error("store.writer_stopped", exit_code=code, waiting=sum(len(jobs) for jobs in self._pending))
        while self._pending:
            _fail(self._pending.popleft(), StoreUnavailable("the store's writer process stopped before it answered"))

    # life cycle

    def close(self) -> None:
        """End the stream, wait for the writer to finish what it has and exit."""
        for jobs in self._pending:
            _fail(jobs, StoreUnavailable("store closed"))
        self._pending.clear()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_WR)
            self._socket.close()
            self._socket = None
        self._reap()
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def _reap(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=RESTART_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _fail(jobs: list[Any], exc: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(exc)


# -- the child -----------------------------------------------------------------------------------


def serve(conn: Any, sock: socket.socket) -> None:
    """Answer frames of jobs until the parent closes the stream."""
    lock = WriteLock(conn)
    buffer = bytearray()
    open_ = True
    while open_:
        frames: list[bytes] = []
        # Block for the first frame, then take whatever else is waiting: one group, one commit.
        while open_ and (not frames or _readable(sock)) and len(frames) < MAX_JOBS_PER_COMMIT:
            data = sock.recv(1 << 20)
            if not data:
                open_ = False
            buffer += data
            frames += take_frames(buffer)
        groups: list[list[_Job] | BaseException] = []
        for raw in frames:
            try:
                groups.append([_Job(fn, args, None, ingest) for fn, args, ingest in pickle.loads(raw)])
            except Exception as exc:
                groups.append(StoreUnavailable(f"the store's writer could not read a job: {exc!r}"))
        jobs = [job for group in groups if isinstance(group, list) for job in group]
        results = iter(commit_group(lock, jobs))
        replies = []
        for group in groups:
            if isinstance(group, BaseException):
                replies.append(_frame_answer(group))
            else:
                replies.append(_frame_answer([(ok, value) for _, ok, value in (next(results) for _ in group)]))
        with contextlib.suppress(OSError):  # the parent went away: what was committed stays committed
            sock.sendall(b"".join(replies))


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _frame_answer(answer: Any) -> bytes:
    try:
        return frame(answer)
    except Exception:  # a value or exception that does not pickle: say what it was instead
        return frame([(ok, value) if _pickle_error(value) is None else
                      (False, StoreUnavailable(f"the write's result cannot be sent back: {value!r}"))
                      for ok, value in answer])


def _pickle_error(value: Any) -> Exception | None:
    """Why `value` cannot be pickled, or None."""
    try:
        pickle.dumps(value)
    except Exception as exc:
        return exc
    return None


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, fd = argv
    sock = socket.socket(fileno=int(fd))
    conn = open_writer(Path(path))
    try:
        serve(conn, sock)
    finally:
        conn.close()
        sock.close()
    return 0
