"""The `bridge` command: serve, worker, and the operator and marketer tools."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

import structlog

from bridge import __version__
from bridge.config import settings_from_env
from bridge.errors import BridgeError
from bridge.log import configure
from bridge.settings import Settings

NO_MIGRATE = "do not apply pending migrations at start (as BRIDGE_MIGRATE=false): refuse to start until `bridge migrate` ran"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app
    from bridge.connections import Limits, default_max_connections, guarded_protocol
    from bridge.server import BridgeServer

    settings = settings_from_env()
    if args.port is not None:
        settings = replace(settings, port=args.port)
    if args.no_worker:
        settings = replace(settings, run_worker=False)
    if args.no_migrate:
        settings = replace(settings, migrate=False)
    configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    if settings.database_url:  # a server that may refuse (SQLite's start is unchanged)
        asyncio.run(_check_database(settings))
    limits = Limits(settings.max_header_bytes, settings.read_timeout_seconds,
                    settings.max_connections or default_max_connections())
    structlog.get_logger("bridge").info("serve.limits", max_header_bytes=limits.max_header_bytes,
                                        read_timeout_seconds=limits.read_timeout,
                                        max_connections=limits.max_connections)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",  # uvicorn[standard]: asyncio + h11 stalls on this kind of machine (docs/benchmarks.md)
        http=guarded_protocol(limits),  # httptools, with limits on header bytes, time and connections
        lifespan="on",
        access_log=False,  # webhook.* lines say more, and access logs would carry query strings
        proxy_headers=True,
        # Open requests get what the stop leaves before closing; the worker stops meanwhile.
        timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds - settings.closing_seconds)),
        log_config=None,
    )
    # uvicorn re-raises the stop signal after its graceful shutdown, which
    # would end the process as killed by SIGTERM. A clean stop is a success:
    # the handlers it restores afterwards swallow the re-raised signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    BridgeServer(config, app.state.bridge).run()
    return 0


async def _check_database(settings: Settings) -> None:
    """Open the store once before the server starts, so that a PostgreSQL that refuses (a wrong
    password, a server that does not answer) ends the start with its one-line reason, not a
    traceback from inside the server's start-up."""
    from bridge.store import make_store

    store = make_store(settings, process=False)
    await store.open()
    await store.close()


def lower_priority(increment: int) -> None:
    """Run this process (and the processes it starts from now on) at a lower OS priority: on a machine it
    shares with `bridge serve --no-worker`, the acknowledgements take the CPU first during a burst."""
    if increment > 0:
        try:
            os.nice(increment)
        except OSError as exc:  # not allowed here (a container without the capability): run as is
            structlog.get_logger("bridge").warning("worker.priority_unchanged", reason=str(exc))


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    if args.no_migrate:
        settings = replace(settings, migrate=False)
    configure(settings.log_format, settings.log_level)
    return asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> int:
    from bridge.app import Bridge
    from bridge.pressure import Arrivals
    from bridge.worker import Worker

    bridge = Bridge.build(settings)
    await bridge.store.open()
    # After the store's writer process started (it keeps the web side's priority: a writer holding
    # the database's lock at a low priority would hold up the web side's commits).
    lower_priority(settings.worker_nice)
    rules_watch = await bridge.start_rules()
    # Webhooks arrive at other processes: seen by the store, the worker's rounds wait while they do
    # and it is behind (bridge.pressure.Arrivals); BRIDGE_YIELD_LAG_MS=0 turns waiting off, as in serve.
    arrivals = Arrivals() if settings.yield_lag_ms > 0 else None
    bridge.worker = Worker(settings, bridge.store, bridge.rules, bridge.destinations, pressure=arrivals)
    watch_arrivals = asyncio.create_task(arrivals.watch_store(bridge.store)) if arrivals is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, bridge.reload_rules_soon)  # one load at a time, with the watch's
    watch = asyncio.create_task(bridge.rules.watch())
    await bridge.worker.start()
    structlog.get_logger("bridge").info("worker.started")
    await stop.wait()
    await bridge.stop_worker()
    watch.cancel()
    if watch_arrivals is not None:
        watch_arrivals.cancel()
    if rules_watch is not None:
        rules_watch.cancel()
    for destination in bridge.destinations.values():
        await destination.aclose()
    await bridge.store.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from bridge.store import make_store

    settings = settings_from_env()
    status = asyncio.run(make_store(settings, process=False, migrate=False).migrate())
    applied = ", ".join(status.applied) if status.applied else "nothing to apply"
    print(f"migrations: {applied}; the database is at {status.current or 'no version'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description="Webhook event bridge: Shopify, WooCommerce, Omneo in; Omnisend, Ometria out.")
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web app with the delivery worker in the same process")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default $PORT or 8000)")
    serve.add_argument("--no-worker", action="store_true", help="only take webhooks; run `bridge worker` elsewhere")
    serve.add_argument("--no-migrate", action="store_true", help=NO_MIGRATE)
    serve.set_defaults(func=cmd_serve)

    worker = commands.add_parser("worker", help="run mapping and delivery only (no web app)")
    worker.add_argument("--no-migrate", action="store_true", help=NO_MIGRATE)
    worker.set_defaults(func=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply the database's pending schema migrations, then exit")
    migrate.set_defaults(func=cmd_migrate)

    from bridge import ops
    from bridge.mapping import cli as mappings
    from bridge.rules import cli as rules

    mappings.register(commands)
    rules.register(commands)
    ops.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BridgeError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
