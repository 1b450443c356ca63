"""Typed application and request keys: no string keys, no module globals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.runtime.parts import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
# The OpenAPI document of the app's own route table, built once when the app is created.
OPENAPI = web.AppKey("openapi", dict[str, Any])
DOCS_PAGE = web.AppKey("docs_page", str)  # /docs, rendered from OPENAPI
# Per-request facts the access log reads after the handler ran.
REQUEST_ID = web.RequestKey("request_id", str)
ERROR_CODE = web.RequestKey("error_code", str)
DATASET = web.RequestKey("dataset", str)
# On a DP answer's response: outcome, epsilon, dataset and policy version, for the access log.
RELEASE_LOG = web.ResponseKey("release_log", dict[str, Any])
