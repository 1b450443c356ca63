"""Snapshot upload and history: `PUT` and `GET /v1/datasets/{dataset}/snapshots`.

An upload is far larger than the JSON body limit (`max_body_bytes`), so it is never read with
`request.read()` (which `client_max_size` caps): it is streamed from `request.content` to a
file, cut off past `max_upload_bytes` (413), and only then checked and swapped in. The
dataset's upload slot (`service.uploads`) is taken before the first byte is read.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.data.snapshots import Format, incoming_file
from gateway.data.streams import stream_to_file
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.http.keys import RUNTIME
from gateway.http.routing import Route, principal, route
from gateway.service.supply import check_supplier, snapshot_history, supply_of
from gateway.service.uploads import upload_slots

SUPPLIERS = frozenset({"source", "bureau"})
MEDIA_TYPES: dict[str, Format] = {
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "application/octet-stream": "parquet", "text/csv": "csv",
}
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


@route("PUT", "/v1/datasets/{dataset}/snapshots", SUPPLIERS)
async def upload_snapshot(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    who = principal(request)
    dataset = request.match_info["dataset"]
    supply = supply_of(runtime)
    check_supplier(who, runtime.registry.get(dataset))
    supply.suppliable(dataset)
    fmt = MEDIA_TYPES.get(request.content_type)
    if fmt is None:
        raise UnsupportedMediaType("send Parquet (application/vnd.apache.parquet) or CSV (text/csv)")
    with upload_slots(runtime).slot(dataset):  # taken before the first byte is read
        body = await receive(request, incoming_file(supply.root, fmt), runtime.settings.max_upload_bytes)
        loaded = await supply.load_upload(dataset, body, fmt, who.client_id)
    payload = {"dataset": dataset, **loaded.record.view(current=True, with_rows=True),
               "warnings": [w.as_dict() for w in loaded.warnings]}
    return web.json_response(payload, status=201 if loaded.created else 200)


async def receive(request: web.Request, dest: Path, limit: int) -> Path:
    """Stream the body to `dest`; 413 past `limit`, 400 when empty."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge("The upload is over the configured limit (max_upload_bytes).")
    written = await stream_to_file(request.content, dest, limit, lambda: PayloadTooLarge(
        "The upload is over the configured limit (max_upload_bytes)."))
    if written == 0:
        dest.unlink(missing_ok=True)
        raise InvalidRequest("the body is empty")
    return dest


@route("GET", "/v1/datasets/{dataset}/snapshots", SUPPLIERS)
async def list_snapshots(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    dataset = request.match_info["dataset"]
    check_supplier(principal(request), runtime.registry.get(dataset))
    current, records = await snapshot_history(runtime, dataset, _limit(request))
    return web.json_response({
        "dataset": dataset, "current": current,
        "snapshots": [r.view(current=r.snapshot_id == current, with_rows=True) for r in records]})


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


ROUTES: tuple[Route, ...] = (upload_snapshot, list_snapshots)
