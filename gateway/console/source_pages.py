"""A source department's pages (the bureau's too): its datasets, their status with a reason
and a confirmation that says what stops, snapshot uploads and their validation reports."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from aiohttp import BodyPartReader, web

from gateway.clock import utc_now, utc_text
from gateway.console.i18n import N_
from gateway.console.web import CsrfRefused, Page, api_roles, form, page, render, runtime_of, see_other, visit
from gateway.data.snapshots import incoming_file
from gateway.errors import InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from gateway.http import admin
from gateway.http import supply as http_supply
from gateway.runtime.parts import Runtime
from gateway.service import applications, circulation, overview, people, status_notes
from gateway.service.supply import check_supplier, snapshot_history, supply_of

MANAGERS = api_roles(admin.suspend_dataset, admin.resume_dataset, admin.withdraw_dataset)
SUPPLIERS = api_roles(http_supply.upload_snapshot)
ACTIONS = {"suspend": N_("Suspend"), "resume": N_("Resume"), "withdraw": N_("Withdraw for good")}


def served_snapshot(runtime: Runtime, dataset: str) -> str | None:
    """The snapshot this replica serves for a dataset, if any."""
    served = supply_of(runtime).served.get(dataset)
    return served.snapshot_id if served is not None else None


def _managed(request: web.Request) -> list[str]:
    """The datasets this caller manages: the service's rule, asked of each dataset."""
    out = []
    for dataset in sorted(runtime_of(request).registry.policies):
        try:
            circulation.may_manage(runtime_of(request), visit(request).who, dataset)
        except NotFound:
            continue
        out.append(dataset)
    return out


@page("GET", "/datasets", MANAGERS, nav=N_("Datasets"))
async def datasets(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    items = []
    for dataset in _managed(request):
        items.append({"dataset": dataset, "title": runtime.registry.policies[dataset].title,
                      "status": runtime.registry.status.get(dataset, "active"),
                      "snapshot": served_snapshot(runtime, dataset),
                      "note": await status_notes.status_note(runtime, dataset)})
    return render(request, "datasets.html", items=items)


@page("GET", "/datasets/{dataset}/status", MANAGERS)
async def confirm_status(request: web.Request) -> web.Response:
    """Before a change: what it stops, in words, and the grants it touches."""
    runtime, dataset = runtime_of(request), request.match_info["dataset"]
    circulation.may_manage(runtime, visit(request).who, dataset)
    action = request.query.get("action", "")
    if action not in ACTIONS:
        raise InvalidRequest("choose suspend, resume or withdraw")
    grants = [g for g in await applications.list_grants(runtime, visit(request).who)
              if g["dataset"] == dataset and g["status"] == "active"]
    return render(request, "confirm.html", dataset=dataset, action=action, action_label=ACTIONS[action],
                  grants=grants, current=runtime.registry.status.get(dataset, "active"))


@page("POST", "/datasets/{dataset}/status", MANAGERS)
async def change_status(request: web.Request) -> web.Response:
    fields = form(request)
    await status_notes.change_status(runtime_of(request), visit(request).who, request.match_info["dataset"],
                                     str(fields.get("action", "")), fields.get("reason"))
    return see_other("/console/datasets?done=status")


@page("GET", "/datasets/{dataset}/snapshots", SUPPLIERS)
async def snapshots(request: web.Request) -> web.Response:
    runtime, dataset = runtime_of(request), request.match_info["dataset"]
    check_supplier(visit(request).who, runtime.registry.get(dataset))
    current, records = await snapshot_history(runtime, dataset, 20)
    refused = await overview.snapshot_refusals(runtime, dataset, utc_text(utc_now() - timedelta(days=90)))
    return render(request, "snapshots.html", dataset=dataset, current=current,
                  records=[r.view(current=r.snapshot_id == current, with_rows=True) for r in records],
                  refused=refused, loaded=None, problems=[])


async def _receive(request: web.Request, dataset: str) -> tuple[Path, str]:
    """The form's CSRF token (first field), then its file streamed to disk under the upload limit."""
    runtime = runtime_of(request)
    reader = await request.multipart()
    part = await reader.next()
    token = ""
    if isinstance(part, BodyPartReader) and part.name == "csrf_token":
        token = (await part.read_chunk(256)).decode(errors="replace")
    if not people.csrf_ok(visit(request), token):
        raise CsrfRefused("The form's CSRF token is missing or wrong.")
    part = await reader.next()
    filename = (part.filename or "").lower() if isinstance(part, BodyPartReader) else ""
    fmt = "csv" if filename.endswith(".csv") else "parquet" if filename.endswith(".parquet") else ""
    if not isinstance(part, BodyPartReader) or not fmt:
        raise UnsupportedMediaType("choose a .parquet or .csv file")
    dest = incoming_file(supply_of(runtime).root, fmt)
    written, limit = 0, runtime.settings.max_upload_bytes
    fh = await asyncio.to_thread(open, dest, "wb")  # the disk off the event loop, as data/streams does
    try:
        while chunk := await part.read_chunk(1 << 16):
            written += len(chunk)
            if written > limit:
                raise PayloadTooLarge("The upload is over the configured limit (max_upload_bytes).")
            await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(fh.close)
        if written == 0:
            raise InvalidRequest("the file is empty")
    except BaseException:
        fh.close()
        dest.unlink(missing_ok=True)
        raise
    return dest, fmt


@page("POST", "/datasets/{dataset}/snapshots", SUPPLIERS, multipart=True)
async def upload(request: web.Request) -> web.Response:
    """The API's upload path: same supplier check, same load, same validation report."""
    from gateway.data.validate import SnapshotRefused

    runtime, who, dataset = runtime_of(request), visit(request).who, request.match_info["dataset"]
    check_supplier(who, runtime.registry.get(dataset))
    supply = supply_of(runtime)
    supply.suppliable(dataset)
    body, fmt = await _receive(request, dataset)
    try:
        loaded = await supply.load_upload(dataset, body, fmt, who.client_id)  # type: ignore[arg-type]
    except SnapshotRefused as exc:
        current, records = await snapshot_history(runtime, dataset, 20)
        return render(request, "snapshots.html", status=422, dataset=dataset, current=current,
                      records=[r.view(current=r.snapshot_id == current, with_rows=True) for r in records],
                      refused=[], loaded=None, problems=[p.as_dict() for p in exc.problems])
    current, records = await snapshot_history(runtime, dataset, 20)
    return render(request, "snapshots.html", dataset=dataset, current=current,
                  records=[r.view(current=r.snapshot_id == current, with_rows=True) for r in records],
                  refused=[], loaded={"id": loaded.record.snapshot_id, "created": loaded.created,
                                      "warnings": [w.as_dict() for w in loaded.warnings]}, problems=[])


PAGES: tuple[Page, ...] = (datasets, confirm_status, change_status, snapshots, upload)
