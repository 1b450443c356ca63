"""aiohttp's server with our last word: what its HTTP parser refuses leaves as problem+json.

A request the parser cannot read never reaches the app, its middlewares or its
`on_response_prepare` hooks: aiohttp answers it itself in plain text with its own `Server`
header and logs a traceback that quotes the offending header line (a bearer token included).
`GatewayRunner` serves the app with a request handler whose error answer is our problem shape
and whose log line names the failure without quoting the request (R-IN-09).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway import errors
from gateway.http.problems import SERVER, problem_response
from gateway.ids import new_id

log = logging.getLogger("gateway.http")

_BY_STATUS: dict[int, type[errors.GatewayError]] = {
    400: errors.InvalidRequest, 413: errors.PayloadTooLarge, 503: errors.Unavailable,
}


def parser_problem(status: int) -> errors.GatewayError:
    """The error of a request aiohttp answered before the app saw it."""
    cls = _BY_STATUS.get(status)
    if status == 400 or (400 <= status < 500 and cls is None):
        return errors.InvalidRequest("The request is not well-formed HTTP.")
    if cls is not None:
        return cls()
    return errors.GatewayError("The server could not handle the request.")


class _ProblemRequestHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        request_id = new_id()
        # The exception's text quotes the raw request line or header: only its kind is logged.
        log.warning(json.dumps({"msg": "request refused by the HTTP parser", "status": status,
                                "error": type(exc).__name__ if exc is not None else None,
                                "request_id": request_id}))
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is dropped")
        response = problem_response(parser_problem(status), request_id)
        response.headers["Server"] = SERVER
        response.headers["X-Request-ID"] = request_id
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own failures, without a traceback (its frames hold request bytes)."""
        exc_info = kw.get("exc_info")
        kind = type(exc_info).__name__ if isinstance(exc_info, BaseException) else None
        log.error(json.dumps({"msg": "http server error", "error": kind}))


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections answer parser errors in our shape."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _ProblemServer(made.request_handler, request_factory=made.request_factory,
                              handler_cancellation=made.handler_cancellation, loop=made._loop, **made._kwargs)
