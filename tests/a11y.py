"""A small accessibility checker for server-rendered pages (WCAG 2.1 A rules that need no layout):
a language, one h1, a label for every control, text on every button and link, captions on
tables, names on charts, no repeated ids. The browser test runs axe-core on top of this."""

from __future__ import annotations

import html.parser
from dataclasses import dataclass, field

CONTROLS = ("input", "select", "textarea")
UNLABELLED_INPUT_TYPES = ("hidden", "submit", "button", "reset", "image")


@dataclass
class _Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children_text: list[str] = field(default_factory=list)


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self.open: list[_Element] = []
        self.h1 = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag == "h1":
            self.h1 += 1
        if tag not in ("input", "meta", "link", "br", "img", "line", "rect", "path"):
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(_Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for n in range(len(self.open) - 1, -1, -1):
            if self.open[n].tag == tag:
                del self.open[n:]
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data


def problems(page: str) -> list[str]:
    """Every rule the page breaks, each named with the element that breaks it."""
    parsed = _Page()
    parsed.feed(page)
    found: list[str] = []
    ids = [e.attrs["id"] for e in parsed.elements if e.attrs.get("id")]
    labelled = {e.attrs.get("for") for e in parsed.elements if e.tag == "label"}
    html_tag = next((e for e in parsed.elements if e.tag == "html"), None)
    if html_tag is None or not html_tag.attrs.get("lang"):
        found.append("the page has no language (html lang)")
    if parsed.h1 != 1:
        found.append(f"the page has {parsed.h1} h1 headings, not one")
    if page.count("<table") != page.count("<caption"):
        found.append("a table has no caption")
    found += [f"id {i!r} is used more than once" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for e in parsed.elements:
        control = e.tag in CONTROLS and e.attrs.get("type", "text") not in UNLABELLED_INPUT_TYPES
        named = e.attrs.get("id") in labelled or e.attrs.get("aria-label") or e.attrs.get("aria-labelledby")
        if control and not named:
            found.append(f"<{e.tag} name={e.attrs.get('name')!r}> has no label")
        if e.tag == "button" and not e.text.strip() and not e.attrs.get("aria-label"):
            found.append("a button has no text")
        if e.tag == "a" and not e.text.strip() and not e.attrs.get("aria-label"):
            found.append(f"the link to {e.attrs.get('href')!r} has no text")
        if e.tag == "img" and "alt" not in e.attrs:
            found.append("an image has no alt text")
        if e.tag == "svg" and e.attrs.get("role") == "img":
            names = e.attrs.get("aria-labelledby", "").split()
            if not names or any(n not in ids for n in names):
                found.append("a chart has no accessible name")
    return found
