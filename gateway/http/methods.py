"""OPTIONS on any resource: 204 with the methods it answers (RFC 9110 §9.3.7); no token needed,
as the same list is public in /openapi.json. An unknown path stays a 404."""

from __future__ import annotations

from aiohttp import web

from gateway.http.problems import Handler, allow_header


@web.middleware
async def options_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        refused = getattr(request.match_info, "http_exception", None)
        if isinstance(refused, web.HTTPMethodNotAllowed):
            return web.Response(status=204, headers={"Allow": allow_header(refused.allowed_methods)})
    return await handler(request)
