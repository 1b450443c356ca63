"""Snapshot upload and history: `PUT` and `GET /v1/datasets/{dataset}/snapshots`.

An upload is far larger than the JSON body limit (`max_body_bytes`), so it is never read with
`request.read()` (which `client_max_size` caps): it is streamed from `request.content` to a
file, cut off past `max_upload_bytes` (413), and only then checked and swapped in. The
dataset's upload slot (`service.uploads`) is taken before the first byte is read.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.data.snapshots import Format, incoming_file
from gateway.data.streams import stream_to_file
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.routing import Route, principal, route
from gateway.service.supply import check_supplier, snapshot_page, supply_of
from gateway.service.uploads import upload_slots

SUPPLIERS = frozenset({"source", "bureau"})
MEDIA_TYPES: dict[str, Format] = {
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "application/octet-stream": "parquet", "text/csv": "csv",
}


@route("PUT", "/v1/datasets/{dataset}/snapshots", SUPPLIERS, body="SnapshotUpload", body_types=tuple(MEDIA_TYPES),
       answer="Snapshot", status=201, problems=(409, 410, 413, 415, 422))
async def upload_snapshot(request: web.Request, dataset: str) -> web.Response:
    """Upload a new snapshot of a dataset (Parquet or CSV); checked, then swapped in atomically.

    201 with the new snapshot; 200 when the same content is already the current snapshot.
    """
    runtime = request.app[RUNTIME]
    who = principal(request)
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


@route("GET", "/v1/datasets/{dataset}/snapshots", SUPPLIERS, answer="SnapshotList", paginated=True)
async def list_snapshots(request: web.Request, dataset: str, page: PageRequest) -> web.Response:
    """A dataset's snapshots, newest first, and which one is current (its supplier, or the bureau).

    `items` is the page; `snapshots` repeats it, as answered before pagination.
    """
    runtime = request.app[RUNTIME]
    check_supplier(principal(request), runtime.registry.get(dataset))
    current, records = await snapshot_page(runtime, dataset, page)
    views = records.map(lambda r: r.view(current=r.snapshot_id == current, with_rows=True))
    return paged(request, views, dataset=dataset, current=current, snapshots=views.items)


ROUTES: tuple[Route, ...] = (upload_snapshot, list_snapshots)
