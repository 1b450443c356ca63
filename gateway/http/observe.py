"""Request ids, one JSON log line per request, and request metrics (R-OP-05)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from aiohttp import web

from gateway.http.keys import RUNTIME
from gateway.http.problems import Handler

access_log = logging.getLogger("gateway.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside the problem middleware, so it sees the final status of every response."""
    offered = request.headers.get("X-Request-ID", "")
    request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
    request["request_id"] = request_id
    runtime = request.app[RUNTIME]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        seconds = time.perf_counter() - started
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else None
        runtime.metrics.observe_request(template, request.method, status, seconds)
        access_log.info(json.dumps({
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "info", "msg": "request",
            "request_id": request_id, "replica": runtime.replica, "method": request.method,
            "route": template or "_unmatched", "status": status, "duration_ms": round(seconds * 1000, 1),
            "client_id": request.get("client_id"), "dataset": request.get("dataset"),
            "epsilon": request.get("epsilon_charged"), "outcome": request.get("error_code", "ok"),
        }, separators=(",", ":")))
