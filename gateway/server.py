"""Run the gateway until SIGTERM: drain in-flight requests, stop the workers, close the store."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from gateway.http.app import create_app
from gateway.runtime import open_runtime
from gateway.settings import Settings

log = logging.getLogger("gateway")


async def serve(settings: Settings, *, demo: bool = False) -> int:
    if demo:
        from gateway.demo_county import prepare_demo_state

        await asyncio.to_thread(prepare_demo_state, settings)
    runtime = await asyncio.to_thread(open_runtime, settings)
    if demo:
        from gateway.demo_county import ensure_demo_county

        base_url = f"http://{settings.host}:{settings.port}"
        await asyncio.to_thread(ensure_demo_county, runtime.store, settings.state_path, base_url)
        await runtime.refresh()
    app = create_app(settings, runtime)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_grace_seconds,
                           handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info('{"msg": "serving", "host": "%s", "port": %d}', settings.host, settings.port)
    await stop.wait()
    # Not ready first, so load balancers stop sending; then drain and close (R-OP-04).
    runtime.draining = True
    runtime.metrics.set_ready(False)
    await runner.cleanup()
    await asyncio.to_thread(runtime.close)
    log.info('{"msg": "stopped"}')
    return 0
