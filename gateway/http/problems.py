"""One place that turns every error into an RFC 9457 problem+json response."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import cast

from aiohttp import web

from gateway import errors
from gateway.http.keys import ERROR_CODE, REQUEST_ID

log = logging.getLogger("gateway.http")
PROBLEM_TYPE = "application/problem+json"
SERVER = "county-gateway"  # the Server header: no library or Python versions

_AIOHTTP_STATUS = {
    400: errors.InvalidRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
    404: errors.NotFound, 405: errors.MethodNotAllowed, 413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType, 429: errors.RateLimited,
}


def problem_response(error: errors.GatewayError, request_id: str = "") -> web.Response:
    body = error.problem()
    if request_id:
        body["instance"] = f"urn:request:{request_id}"
    return web.Response(status=error.status, body=json.dumps(body).encode(),
                        content_type=PROBLEM_TYPE, headers=error.headers)


def allow_header(methods: Iterable[str]) -> str:
    """The methods a resource answers: HEAD wherever GET is, OPTIONS everywhere."""
    allowed = set(methods) | {"OPTIONS"}
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def from_http_exception(exc: web.HTTPException) -> errors.GatewayError:
    """aiohttp's own 404/405/413... in our shape, with our generic wording."""
    cls = _AIOHTTP_STATUS.get(exc.status)
    if cls is errors.Unauthorized:
        return errors.Unauthorized()
    if cls is None:
        return errors.GatewayError("The server could not handle the request.")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allow = allow_header(exc.allowed_methods)
        return errors.MethodNotAllowed(f"{exc.method} is not allowed here; this resource answers {allow}.",
                                       headers={"Allow": allow})
    detail = {404: "No such resource.", 413: "The request body is over the configured limit."}.get(
        exc.status, exc.reason)
    return cast(errors.GatewayError, cls(detail))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: nothing escapes as HTML, a traceback or a path."""
    request_id = request.get(REQUEST_ID, "")
    try:
        return await handler(request)
    except errors.GatewayError as exc:
        request[ERROR_CODE] = exc.code
        return problem_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        mapped = from_http_exception(exc)
        request[ERROR_CODE] = mapped.code
        return problem_response(mapped, request_id)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id})
        request[ERROR_CODE] = "internal_error"
        return problem_response(errors.GatewayError("The server could not handle the request."), request_id)
