"""The route table: every endpoint of the main listener, in the order the OpenAPI document lists them."""

from __future__ import annotations

from gateway.http import (
    admin,
    agreements,
    applications,
    basics,
    billing,
    docs,
    openapi,
    pricing,
    products,
    queries,
    registration,
    supply,
)
from gateway.http.routing import Route


def all_routes() -> tuple[Route, ...]:
    return (basics.ROUTES + queries.ROUTES + supply.ROUTES + admin.ROUTES + applications.ROUTES + agreements.ROUTES
            + products.ROUTES + registration.ROUTES + billing.ROUTES + pricing.ROUTES + openapi.ROUTES + docs.ROUTES)
