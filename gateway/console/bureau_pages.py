"""The data bureau's pages: dashboard, requesters and their clients, people, audit, billing."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.web import Page, api_roles, form, page, render, runtime_of, see_other, visit
from gateway.http import admin
from gateway.http import billing as http_billing
from gateway.http import queries as http_queries
from gateway.service import billing, ledger_views, overview, people, requesters

BUREAU = api_roles(admin.register_requester)  # {"bureau"}: the API's rule for administration
PEOPLE = people.USER_ADMINS


@page("GET", "/bureau", BUREAU, nav=N_("Dashboard"))
async def dashboard(request: web.Request) -> web.Response:
    figures = await overview.dashboard(runtime_of(request), visit(request).who)
    return render(request, "bureau.html", f=figures)


@page("GET", "/requesters", api_roles(admin.list_requesters), nav=N_("Requesters and clients"))
async def orgs(request: web.Request) -> web.Response:
    return render(request, "orgs.html", orgs=await requesters.list_orgs(runtime_of(request)))


@page("POST", "/requesters", api_roles(admin.register_requester))
async def register(request: web.Request) -> web.Response:
    fields = form(request)
    await requesters.register(runtime_of(request), visit(request).who, fields.get("org_id"), fields.get("name"),
                              fields.get("kind", "requester"))
    return see_other("/console/requesters?done=registered")


@page("POST", "/requesters/{org_id}/status", api_roles(admin.suspend_requester, admin.reinstate_requester))
async def org_status(request: web.Request) -> web.Response:
    fields = form(request)
    status = "suspended" if fields.get("action") == "suspend" else "active"
    await requesters.set_org_status(runtime_of(request), visit(request).who, request.match_info["org_id"], status,
                                    str(fields.get("reason", ""))[:2000])
    return see_other("/console/requesters?done=status")


@page("POST", "/requesters/{org_id}/clients", api_roles(admin.create_client))
async def create_client(request: web.Request) -> web.Response:
    made = await requesters.create_client(runtime_of(request), visit(request).who, request.match_info["org_id"],
                                          form(request).get("client_id"))
    return render(request, "secret.html", made=made)


@page("GET", "/users", PEOPLE, nav=N_("People"))
async def users(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    found = await people.list_users(runtime, visit(request).who)
    return render(request, "users.html", users=found, orgs=await people.organisations(runtime, visit(request).who))


@page("POST", "/users", PEOPLE)
async def add_user(request: web.Request) -> web.Response:
    fields = form(request)
    await people.create_user(runtime_of(request), visit(request).who, fields.get("username"),
                             fields.get("display_name"), fields.get("org_id"), fields.getall("roles", []),
                             fields.get("password"))
    return see_other("/console/users?done=created")


@page("POST", "/users/{username}/status", PEOPLE)
async def user_status(request: web.Request) -> web.Response:
    fields = form(request)
    status = "suspended" if fields.get("action") == "suspend" else "active"
    await people.set_user_status(runtime_of(request), visit(request).who, request.match_info["username"], status,
                                 str(fields.get("reason", ""))[:2000])
    return see_other("/console/users?done=status")


@page("GET", "/audit", api_roles(http_queries.get_audit_verify), nav=N_("Audit log"))
async def audit_log(request: web.Request) -> web.Response:
    runtime, who = runtime_of(request), visit(request).who
    before = request.query.get("before", "")
    kind = request.query.get("kind", "")[:64]
    entries = await overview.audit_page(runtime, who, int(before) if before.isdigit() else None, kind)
    verdict = await ledger_views.verify_audit(runtime) if request.query.get("verify") else None
    return render(request, "audit.html", entries=entries, kind=kind, verdict=verdict, dumps=json.dumps,
                  next_before=entries[-1]["seq"] if len(entries) == 50 else None)


@page("GET", "/billing", api_roles(http_billing.get_revenue) & BUREAU, nav=N_("Invoices and revenue"))
async def billing_page(request: web.Request) -> web.Response:
    runtime, who = runtime_of(request), visit(request).who
    from gateway.console.requester_pages import period_param

    period = period_param(request)
    doc = await billing.statements(runtime, who, period)
    orgs_found = await requesters.list_orgs(runtime)
    invoices = [json.loads(await billing.invoice(runtime, o["org_id"], period))
                for o in orgs_found if o["kind"] == "requester"]
    return render(request, "billing.html", period=period, statements=doc, invoices=invoices)


@page("GET", "/revenue", api_roles(http_billing.get_revenue) - BUREAU, nav=N_("Revenue"))
async def revenue(request: web.Request) -> web.Response:
    from gateway.console.requester_pages import period_param

    period = period_param(request)
    doc = await billing.statements(runtime_of(request), visit(request).who, period)
    return render(request, "billing.html", period=period, statements=doc, invoices=[])


PAGES: tuple[Page, ...] = (dashboard, orgs, register, org_status, create_client, users, add_user, user_status,
                           audit_log, billing_page, revenue)
