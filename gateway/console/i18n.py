"""Languages of the console: zh-CN by default and English, from gettext catalogs (Babel).

Messages are written in English in the code and templates and translated by
`locale/<lang>/LC_MESSAGES/messages.po`, compiled in memory when first used (no binary `.mo`
files in the repository). The language of a request is the user's choice, else the browser's
`Accept-Language`, else zh-CN. Times show in the county's zone; money as ¥ with two decimals.
"""

from __future__ import annotations

import contextvars
import functools
import gettext as _gettext
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = ("zh-CN", "en")
DEFAULT = "zh-CN"
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}  # each in its own language: never translated
CATALOGS = Path(__file__).resolve().parent / "locale"
_BABEL = {"zh-CN": "zh_CN", "en": "en"}
_current: contextvars.ContextVar[str] = contextvars.ContextVar("console_locale", default=DEFAULT)


@functools.lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> _gettext.NullTranslations:
    """The compiled catalog of a locale; English is the source language and needs none."""
    po = CATALOGS / _BABEL[locale] / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return _gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=_BABEL[locale])
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def use(locale: str) -> None:
    """The language of the rest of this request (a context variable: one per request task)."""
    _current.set(locale if locale in LOCALES else DEFAULT)


def current() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where shown."""
    return message


def negotiate(accept_language: str | None) -> str:
    """The best of our locales for an Accept-Language header; zh-CN when nothing matches."""
    offers: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            offers.append((-quality, n, tag.strip().lower()))
    for neg_q, _n, tag in sorted(offers):
        if neg_q >= 0:
            break
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


# ---------------------------------------------------------------- formatting


def money(minor: int | None, currency: str = "CNY") -> str:
    """¥1,234.56 in both languages: integer minor units, never a float."""
    if minor is None:
        return "—"
    amount = Decimal(int(minor)) / 100
    sign = "-" if amount < 0 else ""
    symbol = "¥" if currency == "CNY" else currency + " "
    return f"{sign}{symbol}{abs(amount):,.2f}"


def when(utc: str | None, zone: ZoneInfo) -> str:
    """A stored UTC time in the county's zone, written the reader's way."""
    if not utc:
        return "—"
    moment = datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(zone)
    pattern = "yyyy-MM-dd HH:mm" if _current.get() == "zh-CN" else "d MMM yyyy, HH:mm"
    return format_datetime(moment, pattern, locale=_BABEL[_current.get()]) + " " + _zone_label(zone)


def _zone_label(zone: ZoneInfo) -> str:
    return gettext("(Beijing time)") if str(zone) == "Asia/Shanghai" else f"({zone})"


def number(value: float | int | None, places: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:,.{places}f}"
