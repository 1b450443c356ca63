"""A requester's daily pages: catalog, query workbench, budget, usage and invoices, clients."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from aiohttp import web

from gateway.auth.secrets import new_secret
from gateway.clock import utc_now
from gateway.console import charts, i18n
from gateway.console.i18n import N_
from gateway.console.web import Page, api_roles, form, page, render, runtime_of, visit
from gateway.core.billing import invoice_csv
from gateway.core.budget import period_of
from gateway.core.catalog import catalog_entry
from gateway.errors import DatasetSuspended, DatasetWithdrawn, GatewayError, InvalidRequest
from gateway.http import admin, basics
from gateway.http import billing as http_billing
from gateway.http import queries as http_queries
from gateway.http.ratelimit import enforce_dataset_rate
from gateway.service import billing, ledger_views, registration, requesters, status_notes
from gateway.service.admission import refusals_recorded, request_fingerprint
from gateway.service.plans import plan_from_body
from gateway.service.queries import preview, run_query

WORKBENCH = "/console/workbench"
MAX_CHARTS = 3


async def _catalog(request: web.Request) -> list[dict[str, Any]]:
    runtime = runtime_of(request)
    registry, codes = runtime.registry, await registration.dataset_summaries(runtime)
    return [{**catalog_entry(p, registry.status.get(d, "active")), "registration": codes.of(d)}
            for d, p in sorted(registry.policies.items())]


@page("GET", "/catalog", api_roles(basics.list_datasets), nav=N_("Catalog"))
async def catalog(request: web.Request) -> web.Response:
    return render(request, "catalog.html", datasets=await _catalog(request))


@page("GET", "/catalog/{dataset}", api_roles(basics.get_dataset))
async def dataset(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    name = request.match_info["dataset"]
    policy = runtime.registry.get(name)
    codes = await registration.dataset_summaries(runtime)
    entry = {**catalog_entry(policy, runtime.registry.status.get(name, "active")), "registration": codes.of(name)}
    return render(request, "dataset.html", d=entry)


# ---------------------------------------------------------------- the workbench


def _example_sql(request: web.Request, dataset: str) -> str:
    policy = runtime_of(request).registry.policies.get(dataset)
    if policy is None:
        return ""
    keys = [c.name for c in policy.public_columns if c.group_by][:1]
    select = ", ".join([*keys, "COUNT(*) AS n"])
    return f"SELECT {select} FROM {dataset}" + (f" GROUP BY {keys[0]}" if keys else "")


def _fields(request: web.Request, source: Any) -> dict[str, str]:
    datasets = sorted(runtime_of(request).registry.policies)
    chosen = str(source.get("dataset") or (datasets[0] if datasets else ""))
    return {"dataset": chosen, "sql": str(source.get("sql") or _example_sql(request, chosen)),
            "epsilon": str(source.get("epsilon") or "0.5"), "delta": str(source.get("delta") or "0")}


def _workbench(request: web.Request, fields: dict[str, str], status: int = 200, **extra: Any) -> web.Response:
    registry = runtime_of(request).registry
    policy = registry.policies.get(fields["dataset"])
    columns = catalog_entry(policy, "active")["columns"] if policy else []
    context: dict[str, Any] = {"preview": None, "answer": None, "problem": None, **extra}
    return render(request, "workbench.html", status=status, fields=fields, datasets=sorted(registry.policies),
                  columns=columns, run_key=new_secret(), **context)


@page("GET", "/workbench", api_roles(http_queries.post_query), nav=N_("Query workbench"))
async def workbench(request: web.Request) -> web.Response:
    return _workbench(request, _fields(request, request.query))


def _body(fields: dict[str, str]) -> dict[str, Any]:
    return {"dataset": fields["dataset"], "sql": fields["sql"], "epsilon": fields["epsilon"],
            "delta": fields["delta"] or "0"}


async def _problem(request: web.Request, error: GatewayError, dataset: str) -> dict[str, Any]:
    """What the page says when the service refuses: the error, what it means, and why (a note)."""
    note = None
    if isinstance(error, DatasetSuspended | DatasetWithdrawn) and dataset in runtime_of(request).registry.policies:
        note = await status_notes.status_note(runtime_of(request), dataset)
    from gateway.console.web import ERROR_TITLES, explain

    return {"status": error.status, "code": error.code, "title": i18n.gettext(ERROR_TITLES.get(error.status, "")),
            "explanation": explain(error), "detail": error.detail,
            "reasons": list(error.extra.get("reasons", [])), "note": note}


@page("POST", "/workbench/preview", api_roles(http_queries.post_preview))
async def workbench_preview(request: web.Request) -> web.Response:
    runtime, fields = runtime_of(request), _fields(request, form(request))
    try:
        plan = plan_from_body(runtime, _body(fields))
        figures = await preview(runtime, visit(request).who, plan)
    except GatewayError as exc:
        return _workbench(request, fields, exc.status, problem=await _problem(request, exc, fields["dataset"]))
    return _workbench(request, fields, preview=figures)


async def _run(request: web.Request, fields: dict[str, str], run_key: str) -> dict[str, Any]:
    """The API's path for POST /v1/queries: same parse, rate limit, service call and refusal record."""
    runtime, who = runtime_of(request), visit(request).who
    body = _body(fields)
    async with refusals_recorded(runtime, who, fields["dataset"]):
        plan = plan_from_body(runtime, body)
        await enforce_dataset_rate(request, who, runtime.registry.get(plan.dataset))
        reply = await run_query(runtime, who, plan, idempotency_key=run_key,
                                request_fingerprint=lambda: request_fingerprint(WORKBENCH, body))
    answer: dict[str, Any] = json.loads(reply.body)
    if reply.status != 200:
        raise GatewayError(str(answer.get("detail", "")))
    return answer


def _run_key(value: Any) -> str:
    plain = isinstance(value, str) and value.replace("-", "").replace("_", "").isalnum()
    if not isinstance(value, str) or not plain or not 20 <= len(value) <= 64:
        raise InvalidRequest("the form is missing its run key; reload the page")
    return value


def row_accuracy(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Each released row's interval half-widths: its own where they differ by row (medians,
    quantiles), else the column's."""
    accuracy = answer.get("accuracy", {})
    per_row = accuracy.get("rows")
    if per_row and len(per_row) == len(answer["rows"]):
        return [dict(r) for r in per_row]
    return [dict(accuracy.get("columns", {})) for _ in answer["rows"]]


def answer_charts(answer: dict[str, Any]) -> list[Any]:
    """One bar chart per released aggregate (the first few), each bar's interval drawn on it."""
    columns, rows = answer["columns"], answer["rows"]
    accuracy = answer.get("accuracy", {}).get("columns", {})
    per_row = row_accuracy(answer)
    measured = [c for c in columns if c in accuracy]
    keys = [n for n, c in enumerate(columns) if c not in accuracy]
    labels = [" / ".join(str(row[k]) for k in keys) or i18n.gettext("all") for row in rows]
    out = []
    for column in measured[:MAX_CHARTS]:
        n = columns.index(column)
        values = [row[n] if isinstance(row[n], int | float) else None for row in rows]
        halves = [acc.get(column) for acc in per_row]
        title = i18n.gettext("%(column)s with its 95%% interval") % {"column": column}
        if len(set(halves)) <= 1:
            half = halves[0] if halves else accuracy.get(column)
            desc = i18n.gettext("Bars show the released values; whiskers show plus or minus %(half)s.") % {
                "half": i18n.number(half) if half is not None else "—"}
        else:
            desc = i18n.gettext("Bars show the released values; whiskers show each value's own interval.")
        out.append({"title": title, "svg": charts.bar_chart(title, desc, labels, values, halves)})
    return out


@page("POST", "/workbench/run", api_roles(http_queries.post_query))
async def workbench_run(request: web.Request) -> web.Response:
    fields = _fields(request, form(request))
    run_key = _run_key(form(request).get("run_key"))
    try:
        answer = await _run(request, fields, run_key)
    except GatewayError as exc:
        return _workbench(request, fields, exc.status, problem=await _problem(request, exc, fields["dataset"]))
    return _workbench(request, fields, answer=answer, answer_key=run_key, charts=answer_charts(answer))


@page("POST", "/workbench/csv", api_roles(http_queries.post_query))
async def workbench_csv(request: web.Request) -> web.Response:
    """The answer again as CSV: the same run key replays the stored answer, spending nothing."""
    answer = await _run(request, _fields(request, form(request)), _run_key(form(request).get("run_key")))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    accuracy = answer.get("accuracy", {}).get("columns", {})
    writer.writerow(answer["columns"] + [f"{c}_interval_halfwidth" for c in answer["columns"] if c in accuracy])
    for row, acc in zip(answer["rows"], row_accuracy(answer), strict=True):
        writer.writerow(list(row) + [acc.get(c) for c in answer["columns"] if c in accuracy])
    name = f"{answer['dataset']}-{answer['query_id']}.csv"
    return web.Response(body=out.getvalue().encode("utf-8-sig"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ---------------------------------------------------------------- budget, usage, invoices


def period_param(request: web.Request) -> str:
    period = request.query.get("period") or period_of(utc_now(), runtime_of(request).settings.zone)
    return billing.check_period(period)


@page("GET", "/budget", api_roles(http_queries.get_budget), nav=N_("Budget"))
async def budget(request: web.Request) -> web.Response:
    runtime, who = runtime_of(request), visit(request).who
    period = period_of(utc_now(), runtime.settings.zone)
    lines = await ledger_views.budget(runtime, who.org_id, period)
    records = await ledger_views.usage(runtime, who.org_id, period)
    drawn = []
    for line in lines:
        days, totals = _running_total(records, line["dataset"], runtime.settings.zone)
        title = i18n.gettext("Budget of %(dataset)s spent this month") % {"dataset": line["dataset"]}
        desc = i18n.gettext("Running total of epsilon spent, against the limit of %(limit)s.") % {
            "limit": i18n.number(line["epsilon_limit"])}
        drawn.append(charts.budget_chart(title, desc, days, totals, line["epsilon_limit"]))
    return render(request, "budget.html", period=period, lines=zip(lines, drawn, strict=True))


def _running_total(records: list[dict[str, Any]], dataset: str, zone: Any) -> tuple[list[str], list[float]]:
    from datetime import datetime

    days: list[str] = []
    totals: list[float] = []
    total = 0.0
    for r in records:
        if r["dataset"] != dataset or not r["epsilon"]:
            continue
        day = datetime.fromisoformat(r["committed_at"].replace("Z", "+00:00")).astimezone(zone).strftime("%m-%d")
        total += r["epsilon"]
        if days and days[-1] == day:
            totals[-1] = total
        else:
            days.append(day)
            totals.append(total)
    return days, totals


@page("GET", "/usage", api_roles(http_billing.get_invoice), nav=N_("Usage and invoices"))
async def usage(request: web.Request) -> web.Response:
    runtime, who = runtime_of(request), visit(request).who
    period = period_param(request)
    records = await ledger_views.usage(runtime, who.org_id, period)
    invoice = json.loads(await billing.invoice(runtime, who.org_id, period))
    return render(request, "usage.html", period=period, records=records, invoice=invoice)


@page("GET", "/invoices/{period}.csv", api_roles(http_billing.get_invoice))
async def invoice_download(request: web.Request) -> web.Response:
    runtime, who = runtime_of(request), visit(request).who
    period = billing.check_period(request.match_info["period"])
    body = invoice_csv(json.loads(await billing.invoice(runtime, who.org_id, period)))
    return web.Response(body=body, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="invoice-{who.org_id}-{period}.csv"'})


# ---------------------------------------------------------------- the organisation's clients


# Every organisation lists and rotates its own clients here, as the API lets each (issue 19 point 4).
@page("GET", "/clients", api_roles(admin.rotate_client_secret) - {"bureau"}, nav=N_("API clients"))
async def clients(request: web.Request) -> web.Response:
    org = await requesters.own_org(runtime_of(request), visit(request).who)
    return render(request, "clients.html", org=org, secret=None,
                  can_create=bool(api_roles(admin.create_own_client) & set(visit(request).who.roles)))


@page("POST", "/clients", api_roles(admin.create_own_client))
async def create_client(request: web.Request) -> web.Response:
    who = visit(request).who
    made = await requesters.create_client(runtime_of(request), who, who.org_id, form(request).get("client_id"))
    return render(request, "secret.html", made=made)


@page("POST", "/clients/{client_id}/secret", api_roles(admin.rotate_client_secret))
async def rotate_secret(request: web.Request) -> web.Response:
    made = await requesters.rotate_secret(runtime_of(request), visit(request).who, request.match_info["client_id"])
    return render(request, "secret.html", made=made)


PAGES: tuple[Page, ...] = (catalog, dataset, workbench, workbench_preview, workbench_run, workbench_csv, budget,
                           usage, invoice_download, clients, create_client, rotate_secret)
