"""The console's messages: extracted from templates and code with Babel, kept in the .po catalogs.

`python -m gateway.console.messages` updates every catalog from the sources (new messages
get an empty translation to fill in; messages no longer used are dropped) and prints what is
still untranslated. The test suite fails while any message lacks a translation.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from gateway.console.i18n import _BABEL, CATALOGS, LOCALES

PACKAGE = Path(__file__).resolve().parent
METHODS = [("templates/**.html", "jinja2"), ("*.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def extract() -> Catalog:
    """Every message the console can show, with where it is used."""
    catalog = Catalog(project="county-gateway-console", charset="utf-8")
    found = extract_from_dir(PACKAGE, METHODS, options_map=OPTIONS, keywords=KEYWORDS, strip_comment_tags=True)
    for filename, lineno, message, _comments, _context in found:
        catalog.add(message, locations=[(filename, lineno)])
    return catalog


def po_path(locale: str) -> Path:
    return CATALOGS / _BABEL[locale] / "LC_MESSAGES" / "messages.po"


def load(locale: str) -> Catalog:
    with po_path(locale).open("rb") as fh:
        return read_po(fh, locale=_BABEL[locale])


def untranslated(locale: str) -> list[str]:
    """Messages of the sources that the locale's catalog does not translate."""
    source = extract()
    catalog = load(locale)
    missing = []
    for message in source:
        if not message.id:
            continue
        have = catalog.get(message.id)
        text = have.string if have is not None else None
        if not text or (isinstance(text, tuple | list) and not all(text)):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def update() -> dict[str, list[str]]:
    source = extract()
    report = {}
    for locale in LOCALES:
        if locale == "en":
            continue  # the source language
        path = po_path(locale)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = load(locale) if path.exists() else Catalog(locale=_BABEL[locale])
        catalog.update(source, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with path.open("wb") as fh:
            write_po(fh, catalog, width=0, omit_header=False, sort_output=False)
        report[locale] = untranslated(locale)
    return report


if __name__ == "__main__":
    for loc, missing in update().items():
        print(f"{loc}: {len(missing)} untranslated")
        for m in missing:
            print("  " + m)
    sys.exit(0)
