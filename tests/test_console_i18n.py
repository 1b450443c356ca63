"""The console's languages: every message translated, none hard-coded in a template, and the
county's ways of writing money, time and language choice."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.console import i18n, messages

TEMPLATES = Path(messages.PACKAGE) / "templates"
# Text a template may hold outside {{ }}: symbols, and a few literal names that are not words
# of any language (URL paths, the version prefix "v").
ALLOWED_BARE = {"v", "/healthz", "/readyz", "#"}
TRANSLATED_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt", "label")


def test_every_message_has_a_chinese_translation() -> None:
    assert messages.untranslated("zh-CN") == []


def test_the_catalog_holds_no_message_the_sources_dropped() -> None:
    used = {m.id if isinstance(m.id, str) else m.id[0] for m in messages.extract() if m.id}
    kept = {m.id if isinstance(m.id, str) else m.id[0] for m in messages.load("zh-CN") if m.id}
    assert kept - used == set()


def _bare_text(template: str) -> list[str]:
    without = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", template, flags=re.S)
    found = []
    for attr in TRANSLATED_ATTRIBUTES:
        for value in re.findall(rf'(?<![\w-]){attr}="([^"]*)"', without):
            if re.search(r"[A-Za-z\u4e00-\u9fff]", value):
                found.append(f'{attr}="{value}"')
    text = re.sub(r"<[^>]*>", " ", without)
    for word in text.split():
        if re.search(r"[A-Za-z\u4e00-\u9fff]", word) and word not in ALLOWED_BARE and not word.startswith("&"):
            found.append(word)
    return found


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_hold_no_text_outside_the_catalog(template: str) -> None:
    assert _bare_text((TEMPLATES / template).read_text(encoding="utf-8")) == []


def test_the_checker_sees_bare_words_and_untranslated_labels() -> None:
    assert _bare_text('<p>Hello {{ _("x") }}</p><nav aria-label="Menu"></nav>') == ['aria-label="Menu"', "Hello"]
    assert _bare_text('<p>{{ _("Hello") }} <a title="{{ _(\'x\') }}">v{{ n }}</a></p>') == []


def test_money_is_yuan_with_two_decimals_in_both_languages() -> None:
    for locale in i18n.LOCALES:
        i18n.use(locale)
        assert i18n.money(123456) == "¥1,234.56"
        assert i18n.money(5) == "¥0.05"
        assert i18n.money(-250) == "-¥2.50"
    i18n.use(i18n.DEFAULT)


def test_times_show_in_the_county_zone() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    i18n.use("zh-CN")
    assert i18n.when("2026-11-30T16:30:00.000000Z", zone) == "2026-12-01 00:30 (北京时间)"
    i18n.use("en")
    assert i18n.when("2026-11-30T16:30:00.000000Z", zone) == "1 Dec 2026, 00:30 (Beijing time)"
    i18n.use(i18n.DEFAULT)


@pytest.mark.parametrize(("header", "expected"), [
    (None, "zh-CN"), ("", "zh-CN"), ("en-US,en;q=0.9", "en"), ("zh-TW,en;q=0.5", "zh-CN"),
    ("fr-FR, en;q=0.3", "en"), ("fr-FR", "zh-CN"), ("en;q=0.2, zh;q=0.8", "zh-CN"), ("en;q=0", "zh-CN"),
])
def test_the_language_follows_accept_language_and_defaults_to_chinese(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected
