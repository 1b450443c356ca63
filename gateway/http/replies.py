"""How a DP answer goes out: the same for an ad-hoc query and a product call."""

from __future__ import annotations

from aiohttp import web

from gateway.http.keys import RELEASE_LOG
from gateway.service.answers import QueryReply

# What a query or a product call can be refused with, beyond what its declaration implies.
QUERY_PROBLEMS = (404, 409, 410, 422, 503)


def reply(answer: QueryReply) -> web.Response:
    """The stored answer as bytes (a replay is byte for byte the first), tagged for the access log."""
    response = web.Response(status=answer.status, body=answer.body, headers=answer.headers,
                            content_type="application/json" if answer.status < 400 else "application/problem+json")
    response[RELEASE_LOG] = answer.log
    return response


def wants_csv(request: web.Request) -> bool:
    """`Accept: text/csv`, unless JSON is listed before it."""
    kinds = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    if "text/csv" not in kinds:
        return False
    return "application/json" not in kinds or kinds.index("text/csv") < kinds.index("application/json")
