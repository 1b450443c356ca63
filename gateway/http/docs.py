"""`/docs`: the API reference as one HTML page, rendered on the server from the served OpenAPI document.

No script and no third-party asset: the page is plain HTML with a little inline CSS, so it needs
nothing from outside at install or at run time, and it cannot say anything the document does not.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web

from gateway.http.keys import DOCS_PAGE, OPENAPI
from gateway.http.routing import PUBLIC, Route, route

_CODE = re.compile(r"`([^`]+)`")
_STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h2{border-bottom:2px solid #d8dee9;margin-top:2.5rem}h3{margin:1.6rem 0 .3rem;font-size:1.05rem}
.m{display:inline-block;min-width:4rem;font:bold 13px monospace;color:#fff;border-radius:3px;padding:1px 6px;
text-align:center}.get{background:#2f7d32}.post{background:#1565c0}.put{background:#8e5b00}.delete{background:#b71c1c}
code,pre{font:13px monospace;background:#f4f6fa;border-radius:3px}code{padding:0 3px}
pre{padding:.6rem;overflow:auto;max-height:22rem}table{border-collapse:collapse;margin:.4rem 0}
td,th{border:1px solid #d8dee9;padding:2px 8px;text-align:left;vertical-align:top}.roles{color:#57606a}
nav a{margin-right:.8rem}"""


def _text(value: str) -> str:
    """Escaped prose with `code` spans and paragraphs."""
    paragraphs = [_CODE.sub(r"<code>\1</code>", html.escape(p)) for p in value.split("\n\n") if p.strip()]
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def _json(value: Any) -> str:
    return f"<pre>{html.escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _schema_link(schema: dict[str, Any]) -> str:
    name = str(schema.get("$ref", "")).rsplit("/", 1)[-1]
    return f'<a href="#schema-{name}">{name}</a>' if name else f"<code>{html.escape(json.dumps(schema))}</code>"


def _parameters(params: list[dict[str, Any]]) -> str:
    if not params:
        return ""
    rows = "".join(f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                   f"<td>{'yes' if p.get('required') else 'no'}</td>"
                   f"<td><code>{html.escape(json.dumps(p.get('schema', {})))}</code></td>"
                   f"<td>{_text(p.get('description', ''))}</td></tr>" for p in params)
    return ("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>meaning</th></tr>"
            f"{rows}</table>")


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    out = [f'<h3 id="{op["operationId"]}"><span class="m {method}">{method.upper()}</span> '
           f"<code>{html.escape(path)}</code> — {html.escape(op['summary'])}</h3>"]
    roles = op.get("x-roles")
    out.append(f'<div class="roles">{"roles: " + ", ".join(roles) if roles else "no token needed"}</div>')
    out.append(_text(op["description"]))
    out.append(_parameters(op.get("parameters", [])))
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            out.append(f"<p>Body ({html.escape(media)}): {_schema_link(content['schema'])}</p>")
            if "example" in content:
                out.append(_json(content["example"]) if not isinstance(content["example"], str)
                           else f"<pre>{html.escape(content['example'])}</pre>")
    rows = []
    for status, answer in op["responses"].items():
        kinds = ", ".join(f"{html.escape(m)} {_schema_link(c['schema'])}" for m, c in answer.get("content", {}).items())
        rows.append(f"<tr><td>{status}</td><td>{kinds}</td><td>{_text(answer['description'])}</td></tr>")
    out.append(f"<table><tr><th>status</th><th>body</th><th>when</th></tr>{''.join(rows)}</table>")
    success = next(iter(op["responses"].values()))
    for content in success.get("content", {}).values():
        if "example" in content and not isinstance(content["example"], str):
            out.append("<details><summary>Example answer</summary>" + _json(content["example"]) + "</details>")
            break
    return "".join(out)


def render(doc: dict[str, Any]) -> str:
    """The whole page for an OpenAPI document."""
    by_tag: dict[str, list[str]] = {t["name"]: [] for t in doc.get("tags", [])}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation(path, method, op))
    tags = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    sections = "".join(f'<h2 id="tag-{name}">{html.escape(name)}</h2>{_text(tags.get(name, ""))}{"".join(ops)}'
                       for name, ops in by_tag.items() if ops)
    schemas = "".join(f'<h3 id="schema-{name}">{name}</h3>{_json(schema)}'
                      for name, schema in doc["components"]["schemas"].items())
    nav = "".join(f'<a href="#tag-{name}">{html.escape(name)}</a>' for name, ops in by_tag.items() if ops)
    info = doc["info"]
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(info['title'])} API"
            f"</title><meta name=viewport content='width=device-width,initial-scale=1'><style>{_STYLE}</style>"
            f"</head><body><h1>{html.escape(info['title'])} <small>{html.escape(info['version'])}</small></h1>"
            f"{_text(info.get('description', ''))}<p>The machine-readable document: "
            f'<a href="/openapi.json">/openapi.json</a> (OpenAPI {doc["openapi"]}).</p><nav>{nav}'
            f'<a href="#schemas">schemas</a></nav>{sections}<h2 id="schemas">Schemas</h2>{schemas}</body></html>')


def setup_docs(app: web.Application) -> None:
    """Render the page once, from the document the app serves (setup_openapi runs first)."""
    app[DOCS_PAGE] = render(app[OPENAPI])


@route("GET", "/docs", PUBLIC, answer="Html", answer_types=("text/html",))
async def get_docs(request: web.Request) -> web.Response:
    """The API reference, for reading in a browser.

    Rendered on the server from the same OpenAPI document `/openapi.json` serves: every operation
    with its roles, parameters, bodies, answers and examples, and every schema.
    """
    return web.Response(text=request.app[DOCS_PAGE], content_type="text/html")


ROUTES: tuple[Route, ...] = (get_docs,)
