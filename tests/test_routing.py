"""The route declaration and its wrapper's parts, without a server: signatures checked at import,
parameters decoded and refused with their names, cursors opaque and checked, parsed SQL kept once
(refusals too, each raised as a fresh object)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.core.pages import Page, PageRequest, page_of
from gateway.errors import InvalidQuery, InvalidRequest, PolicyViolation, ReleaseFailed
from gateway.http.paging import decode_cursor, encode_cursor, next_link, page_request
from gateway.http.params import DRY_RUN, IDEMPOTENCY_KEY, LIMIT, PERIOD
from gateway.http.routes import all_routes
from gateway.http.routing import Route, route
from gateway.runtime.open import open_runtime
from gateway.runtime.parts import Runtime
from gateway.service.plans import PlanState, plan_from_body
from gateway.settings import load_settings


async def _answer(request: web.Request, **_: Any) -> web.Response:
    return web.json_response({})


def test_a_handler_must_take_what_its_route_gives() -> None:
    async def fine(request: web.Request, org_id: str, body: dict[str, Any]) -> web.Response:
        """Documented."""
        return web.json_response({})

    made = route("POST", "/v1/x/{org_id}", {"bureau"}, body="Reason")(fine)
    assert isinstance(made, Route) and made.arguments() == ("org_id", "body")
    assert made.summary == made.description == "Documented."

    async def forgot_the_body(request: web.Request, org_id: str) -> web.Response:
        """Documented."""
        return web.json_response({})

    with pytest.raises(TypeError, match="forgot_the_body"):
        route("POST", "/v1/x/{org_id}", {"bureau"}, body="Reason")(forgot_the_body)

    async def undocumented(request: web.Request) -> web.Response:
        return web.json_response({})

    with pytest.raises(TypeError, match="docstring"):
        route("GET", "/v1/y", {"bureau"})(undocumented)


def test_every_declared_route_documents_itself() -> None:
    for spec in all_routes():
        assert spec.summary and spec.description, spec.name
        assert spec.answer is not None, spec.name


def _request(path: str, headers: dict[str, str] | None = None) -> web.Request:
    return make_mocked_request("GET", path, headers=headers or {})


def test_parameters_are_decoded_and_refused_by_name() -> None:
    assert LIMIT.read(_request("/x")) == 100
    assert LIMIT.read(_request("/x?limit=7")) == 7
    assert PERIOD.read(_request("/x")) is None and PERIOD.read(_request("/x?period=2026-02")) == "2026-02"
    assert DRY_RUN.read(_request("/x?dry_run=TRUE")) is True and DRY_RUN.read(_request("/x")) is False
    assert IDEMPOTENCY_KEY.read(_request("/x", {"Idempotency-Key": "k-1"})) == "k-1"
    for bad, param, words in [("/x?limit=0", LIMIT, "limit must be"), ("/x?limit=1001", LIMIT, "limit must be"),
                              ("/x?limit=ten", LIMIT, "limit must be"), ("/x?period=2026-13", PERIOD, "YYYY-MM"),
                              ("/x?dry_run=maybe", DRY_RUN, "dry_run must be true or false")]:
        with pytest.raises(InvalidRequest, match=words) as refused:
            param.read(_request(bad))
        assert refused.value.extra["errors"][0]["parameter"] == param.name
    with pytest.raises(InvalidRequest, match="Idempotency-Key"):
        IDEMPOTENCY_KEY.read(_request("/x", {"Idempotency-Key": "has space"}))


def test_cursors_round_trip_and_refuse_what_no_page_made() -> None:
    key = ("2026-11-03T10:00:00.000001Z", "u-17")
    assert decode_cursor(encode_cursor(key)) == key
    assert decode_cursor(encode_cursor((42,))) == (42,)
    for bad in ("not base64!", encode_cursor(()), "e30", "WzEuNV0", "W3RydWVd"):  # {}, [1.5], [true]
        with pytest.raises(InvalidRequest, match="cursor"):
            decode_cursor(bad)
    with pytest.raises(InvalidRequest, match="cursor"):
        PageRequest(10, ("a",)).key_of_width(2)


def test_a_page_links_to_the_next_with_the_filters_kept() -> None:
    rows = [("a", 1), ("b", 2), ("c", 3)]
    page = page_of(rows, PageRequest(2), key=lambda r: (r[0],))
    assert page.items == rows[:2] and page.next_after == ("b",)
    assert page_of(rows, PageRequest(3), key=lambda r: (r[0],)).next_after is None
    request = _request("/v1/usage?period=2026-11&limit=2")
    link = next_link(request, page)
    assert link is not None and link.startswith("/v1/usage?") and "period=2026-11" in link and "limit=2" in link
    assert page_request(_request(link)) == PageRequest(2, ("b",))
    assert next_link(request, Page(rows)) is None


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    state = tmp_path_factory.mktemp("routing")
    rt = open_runtime(load_settings(values={"state_dir": str(state)}))
    yield rt
    rt.close()


def test_parsed_sql_is_kept_and_so_are_refusals(runtime: Runtime) -> None:
    good = {"dataset": "residents", "sql": "SELECT COUNT(*) AS n FROM residents", "epsilon": 0.5}
    first, again = plan_from_body(runtime, good), plan_from_body(runtime, dict(good))
    assert first is again and first.epsilon == Decimal("0.5")
    bad = {"dataset": "residents", "sql": "SELECT COUNT(*) AS n FROM residents; DROP TABLE x", "epsilon": 0.5}
    raised = []
    for _ in range(2):
        with pytest.raises(InvalidQuery) as refused:
            plan_from_body(runtime, bad)
        raised.append(refused.value)
    assert raised[0] is not raised[1] and raised[0].problem() == raised[1].problem()
    key = (bad["sql"], Decimal("0.5"), Decimal(0), runtime.settings.max_sql_chars, "residents")
    assert isinstance(runtime.owned(PlanState).parsed_sql.get(key), InvalidQuery)
    with pytest.raises(InvalidRequest, match="exactly one"):
        plan_from_body(runtime, {"dataset": "residents", "epsilon": 1})


def test_a_fresh_error_is_equal_in_content_and_separate_in_state() -> None:
    for error in (InvalidQuery("bad", line=1, column=2), PolicyViolation(["a", "b"]), ReleaseFailed(),
                  InvalidRequest("x", extra={"errors": [{"pointer": "/a"}]})):
        twin = error.fresh()
        assert type(twin) is type(error) and twin is not error
        assert twin.problem() == error.problem() and twin.headers == error.headers
        twin.extra["mutated"] = True
        assert "mutated" not in error.extra
    assert PolicyViolation(["a", "b"]).fresh().reasons == ("a", "b")
