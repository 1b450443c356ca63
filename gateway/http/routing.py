"""The route declaration: one `Route` per endpoint carries its roles, its request and answer schemas,
its parameters and its documentation; the app's route table is the tuple of them (http/routes.py).

Declared with `@route(...)` above a handler, whose docstring is the operation's documentation (first
line: summary; the rest: description). The handler receives what the declaration promises, already
checked (http/guard.py): each path parameter by name, `body` (a JSON body validated against the
declared schema), each declared query or header parameter by its Python name, and `page` for a
paginated list. A handler whose signature does not match its declaration fails at import.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.auth.tokens import Principal
from gateway.http.params import Param

PUBLIC: frozenset[str] = frozenset()
ANY_ROLE = frozenset({"requester", "bureau", "source", "merchant", "ops"})
PRINCIPAL = web.RequestKey("principal", Principal)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

Handler = Callable[..., Awaitable[web.StreamResponse]]
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def path_params(path: str) -> tuple[str, ...]:
    """`/v1/x/{a}/y/{b:\\d+}` -> ("a", "b")."""
    return tuple(_PATH_PARAM.findall(path))


@dataclass(frozen=True)
class Route:
    """One endpoint: who may call it, what it takes, what it answers, and what it says about itself."""

    method: str
    path: str
    handler: Handler
    roles: frozenset[str]
    name: str
    summary: str
    description: str
    body: str | None = None  # schema name of the request body (components.schemas)
    body_types: tuple[str, ...] = (JSON,)  # JSON bodies are parsed and validated before the handler
    body_optional: bool = False  # an absent body reads as {}
    answer: str | None = None  # schema name of the success answer
    status: int = 200
    answer_types: tuple[str, ...] = (JSON,)  # the first is the default; others by Accept
    answer_schemas: tuple[tuple[str, str], ...] = ()  # (media type, schema) where one differs from `answer`
    params: tuple[Param, ...] = ()  # query and header parameters
    paginated: bool = False  # takes `limit` and `cursor`; answers {"items", "next"} and a Link header
    problems: tuple[int, ...] = ()  # error statuses beyond those the declaration implies
    headers: tuple[str, ...] = ()  # response headers beyond the ones every answer carries

    @property
    def validates_body(self) -> bool:
        return self.body is not None and self.body_types[0] == JSON

    def answer_schema(self, media_type: str) -> str | None:
        return dict(self.answer_schemas).get(media_type, self.answer)

    def arguments(self) -> tuple[str, ...]:
        """The keyword arguments the handler takes besides the request."""
        names = [*path_params(self.path), *(p.arg for p in self.params)]
        if self.validates_body:
            names.append("body")
        if self.paginated:
            names.append("page")
        return tuple(names)


def route(method: str, path: str, roles: frozenset[str] | set[str], *, name: str = "",
          **declared: Any) -> Callable[[Handler], Route]:
    """Declare a handler's route; see `Route` for the fields."""
    def wrap(handler: Handler) -> Route:
        summary, _, rest = inspect.cleandoc(handler.__doc__ or "").partition("\n")
        if not summary:
            raise TypeError(f"{handler.__name__}: a route's handler needs a docstring (its documentation)")
        spec = Route(method, path, handler, frozenset(roles), name or handler.__name__, summary.strip(),
                     rest.strip() or summary.strip(), **declared)
        _check_signature(spec)
        return spec
    return wrap


def _check_signature(spec: Route) -> None:
    taken = list(inspect.signature(spec.handler).parameters)
    if taken[:1] != ["request"] or sorted(taken[1:]) != sorted(spec.arguments()):
        raise TypeError(f"{spec.name} takes {taken}; its route gives request and {list(spec.arguments())}")


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
