"""Run the gateway until SIGTERM: drain in-flight requests, stop the workers, close the store.

The stop follows R-OP-04: /readyz turns 503, the main listener stops accepting, requests in
flight get `shutdown_grace_seconds` to finish, then the ops listener and the store close and the
process exits 0. A SIGINT during the drain (an operator's second Ctrl-C), or a stop that overruns
the grace by CLOSE_SECONDS, exits 1 at once; the next start recovers what was interrupted
(R-BU-05). A repeated SIGTERM is ignored: supervisors and process-group kills often deliver the
same stop twice, and a clean drain should not turn into a hard exit because of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from gateway.cli.args import settings_of
from gateway.cli.startup import one_server_per_folder, require_free_ports, start_line
from gateway.http.app import create_app, create_ops_app
from gateway.http.server import GatewayRunner
from gateway.logsetup import setup_logging
from gateway.runtime.open import open_runtime
from gateway.runtime.parts import Runtime
from gateway.settings import Settings

log = logging.getLogger("gateway")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
CLOSE_SECONDS = 10.0  # closing the ops listener, the workers and the store after the drain


async def serve(settings: Settings, *, demo: bool = False) -> int:
    # The store's writer thread hands the GIL back after every SQLite statement; with Python's
    # default 5 ms switch interval a busy event loop made each group commit wait ~2.5 ms for it.
    # 0.5 ms measured +19% cached answers per second (bench/ledger_bench.py).
    sys.setswitchinterval(0.0005)
    if demo:
        from gateway.cli.demo import prepare_demo_state

        await asyncio.to_thread(prepare_demo_state, settings)
    runtime = await asyncio.to_thread(open_runtime, settings)
    if demo:
        from gateway.cli.demo import ensure_demo_county

        base_url = f"http://{settings.host}:{settings.port}"
        credentials = await asyncio.to_thread(ensure_demo_county, runtime.store, settings.state_path, base_url)
        await runtime.refresh()
        from gateway.console.demo_users import announcement

        print(announcement(base_url, credentials), file=sys.stderr, flush=True)
    ops = await _start_ops_listener(settings, runtime)
    runner = GatewayRunner(create_app(settings, runtime), access_log=None,
                           shutdown_timeout=settings.shutdown_grace_seconds, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port, reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    log.info(json.dumps({"msg": "serving", "host": settings.host, "port": settings.port,
                         "metrics_port": settings.metrics_port or None, "replica": runtime.replica}))
    print(start_line(settings, runner.addresses, demo=demo), flush=True)
    await stop.wait()
    await _drain(runner, runtime, settings)
    if ops is not None:
        await ops.cleanup()
    await asyncio.to_thread(runtime.close)
    log.info(json.dumps({"msg": "stopped", "replica": runtime.replica}))
    return 0


async def _start_ops_listener(settings: Settings, runtime: Runtime) -> web.AppRunner | None:
    """/metrics, /healthz and /readyz on metrics_host:metrics_port, when metrics_port is not 0."""
    if settings.metrics_port == 0:
        return None
    runner = GatewayRunner(create_ops_app(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, settings.metrics_port, reuse_address=True).start()
    return runner


async def _drain(runner: web.AppRunner, runtime: Runtime, settings: Settings) -> None:
    """Not ready first, then stop accepting and let in-flight requests finish (R-OP-04)."""
    runtime.draining = True
    runtime.metrics.set_ready(False)
    log.info(json.dumps({"msg": "draining", "grace_seconds": settings.shutdown_grace_seconds}))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, _repeated_stop)
    loop.add_signal_handler(signal.SIGINT, _hard_exit, "a second interrupt")
    # A thread, not the loop: it fires even if something blocks the event loop.
    watchdog = threading.Timer(settings.shutdown_grace_seconds + CLOSE_SECONDS, _hard_exit,
                               ("the stop overran its grace period",))
    watchdog.daemon = True
    watchdog.start()
    # aiohttp closes the listening socket, closes idle keep-alive connections, waits up to the
    # grace for handlers in flight, and lets each finish writing its response before closing.
    await runner.cleanup()


def _repeated_stop() -> None:
    log.info(json.dumps({"msg": "already draining; SIGTERM ignored"}))


def _hard_exit(reason: str) -> None:
    log.error(json.dumps({"msg": "hard exit", "reason": reason}))
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args, host=args.host, port=args.port, state_dir=args.state_dir)
    setup_logging(settings.log_level)
    # Before anything is read, recovered or generated: one server per SQLite state folder
    # (R-OP-08), and a port that is free, each refused in one line.
    with one_server_per_folder(settings):
        require_free_ports(settings)
        return _run_loop(serve(settings, demo=args.demo))


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where installed (a faster event loop, same semantics); asyncio's own otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", help="TOML settings file")
    serve.add_argument("--demo", action="store_true", help="serve the demo county")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--state-dir")
    serve.set_defaults(func=cmd_serve)
