"""Prices under the public-data rules: purpose classes, price models, fee caps and trial prices.

A call made under a public purpose class (public governance, public interest) is priced 0
whatever the price list says, and is budgeted, metered and audited like any other. Every
dataset's ad-hoc price and every product's price has a model:

    per_call    the price per call (a cached answer costs its own, lower price)
    per_month   a subscription: the first call of a month by an organisation carries the fee
    per_cell    volume: the price per cell the query can release (groups x released values),
                known from the plan before it runs, so a preview quotes it exactly and the
                price says nothing about the data

A trial price may run until a stated day (inclusive, on the county's calendar). The bureau sets
a fee cap per dataset or product as an act of its own; a price (or trial price) above its cap,
or in another model than the cap's, is refused at publication and at every price change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.errors import InvalidRequest

PURPOSE_CLASSES = ("public_governance", "public_interest", "industry")
PUBLIC_CLASSES = frozenset({"public_governance", "public_interest"})
INDUSTRY = "industry"
MODELS = ("per_call", "per_month", "per_cell")
MAX_PRICE = 10**12  # minor units; far above any real fee, far below int64


@dataclass(frozen=True)
class PricePlan:
    """What a dataset's ad-hoc queries or a product cost, as the price list says."""

    model: str
    price_minor: int
    cached_price_minor: int
    currency: str
    trial_price_minor: int | None = None
    trial_until: str | None = None  # the trial's last day, YYYY-MM-DD
    free_calls: int = 0  # per requester and month, for per_call datasets

    def in_trial(self, day: str) -> bool:
        return self.trial_price_minor is not None and self.trial_until is not None and day <= self.trial_until

    def price_on(self, day: str) -> int:
        """The price in force on a day: the trial price while the trial runs."""
        if self.in_trial(day):
            assert self.trial_price_minor is not None
            return self.trial_price_minor
        return self.price_minor

    def cached_price_on(self, day: str) -> int:
        """A cached answer keeps its own price, never above the fresh one."""
        return min(self.cached_price_minor, self.price_on(day))

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "price_minor": self.price_minor, "cached_price_minor": self.cached_price_minor,
                "currency": self.currency, "trial_price_minor": self.trial_price_minor,
                "trial_until": self.trial_until}


@dataclass(frozen=True)
class Cap:
    """The bureau's fee cap on one dataset's ad-hoc price or one product's price."""

    model: str
    cap_minor: int
    currency: str
    registration_code: str | None = None
    scenario: str | None = None


# ---------------------------------------------------------------- price plans


def plan_of_policy(pricing: Mapping[str, Any]) -> PricePlan:
    """A dataset policy's `pricing` block; `per_call_minor` is the older name of `price_minor`."""
    price = int(pricing.get("price_minor", pricing.get("per_call_minor", 0)))
    return PricePlan(pricing.get("model", "per_call"), price, int(pricing.get("cached_call_minor", price)),
                     pricing.get("currency", "CNY"), pricing.get("trial_price_minor"), pricing.get("trial_until"),
                     int(pricing.get("free_calls_per_period", 0)))


def plan_of_product(definition: Mapping[str, Any]) -> PricePlan:
    """A product version's price; products made before price models were per call, cached alike."""
    price = int(definition["price_minor"])
    return PricePlan(definition.get("price_model", "per_call"), price,
                     int(definition.get("cached_price_minor", price)), definition["currency"],
                     definition.get("trial_price_minor"), definition.get("trial_until"))


def policy_pricing_problems(pricing: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """What the policy lint adds to the schema's checks of `pricing` (path, message)."""
    out: list[tuple[tuple[str, ...], str]] = []
    if ("price_minor" in pricing) == ("per_call_minor" in pricing):
        out.append((("pricing",), "pricing needs exactly one of price_minor and per_call_minor"))
        return out
    plan = plan_of_policy(pricing)
    out += [(("pricing", field), message) for field, message in
            _price_problems(plan.price_minor, plan.cached_price_minor, plan.trial_price_minor, plan.trial_until)]
    if plan.free_calls and plan.model != "per_call":
        out.append((("pricing", "free_calls_per_period"), "free calls exist only under the per_call model"))
    return out


def _price_problems(price_minor: int, cached_price_minor: int, trial_price_minor: int | None,
                    trial_until: str | None) -> list[tuple[str, str]]:
    """How a price's fields disagree with each other (the currency plays no part: a product draft
    is checked before it has one)."""
    out = []
    if cached_price_minor > price_minor:
        out.append(("cached_call_minor", "a cached answer cannot cost more than a fresh one"))
    if (trial_price_minor is None) != (trial_until is None):
        out.append(("trial_until", "a trial needs both trial_price_minor and trial_until"))
    elif trial_price_minor is not None:
        if trial_price_minor > price_minor:
            out.append(("trial_price_minor", "a trial price cannot exceed the regular price"))
        if not is_day(trial_until):
            out.append(("trial_until", "trial_until is a day, YYYY-MM-DD"))
    return out


def product_pricing(body: Mapping[str, Any], price_minor: int) -> dict[str, Any]:
    """The price fields of a product draft beside `price_minor` (checked; 400 when wrong)."""
    model = body.get("price_model", "per_call")
    if model not in MODELS:
        raise InvalidRequest(f"price_model must be one of {', '.join(MODELS)}")
    out: dict[str, Any] = {"price_model": model}
    for name in ("cached_price_minor", "trial_price_minor"):
        if body.get(name) is not None:
            out[name] = money(body[name], name)
    if body.get("trial_until") is not None:
        out["trial_until"] = body["trial_until"]
    problems = _price_problems(price_minor, out.get("cached_price_minor", price_minor), out.get("trial_price_minor"),
                               out.get("trial_until"))
    if problems:
        named = {"cached_call_minor": "cached_price_minor"}  # the policy's name of the field, the product's
        raise InvalidRequest("; ".join(f"{named.get(f, f)}: {message}" for f, message in problems))
    return out


def money(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRICE:
        raise InvalidRequest(f"{name} must be a whole number of minor units, 0 or more")
    return value


def is_day(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- the price of one call


def call_class(classes: Iterable[str]) -> str:
    """The purpose class a call runs under, from the classes of the grants that allow it.

    Industry as soon as any such grant is industry: a requester cannot make priced use free
    by also holding a public-interest grant. Among public classes, governance before interest.
    """
    found = set(classes)
    if not found or INDUSTRY in found:
        return INDUSTRY
    return min(found)


def billable_cells(groups: int | None, max_cells: int, limit: int | None, values: int) -> int:
    """The cells a query can release: its groups (the policy's cell limit when the keys are
    private, so not known before the run), cut by LIMIT, times the released values."""
    rows = groups if groups is not None else max_cells
    if limit is not None:
        rows = min(rows, limit)
    return max(rows, 1) * max(values, 1)


def call_price(plan: PricePlan, *, purpose_class: str, day: str, cached: bool, cells: int,
               opens_month: bool, free: bool) -> int:
    """The price of one call: 0 under a public class; per the model otherwise.

    `opens_month`: the call is the organisation's first on this subject this month (per_month);
    `free`: the call falls within the dataset's free calls of the month (per_call).
    """
    if purpose_class in PUBLIC_CLASSES:
        return 0
    if plan.model == "per_month":
        return plan.price_on(day) if opens_month else 0
    unit = plan.cached_price_on(day) if cached else plan.price_on(day)
    if plan.model == "per_cell":
        return unit * cells
    return 0 if free else unit


# ---------------------------------------------------------------- caps


def over_cap(plan: PricePlan, cap: Cap | None) -> list[str]:
    """Why a price breaks its cap; empty when it keeps to it (or no cap is set)."""
    if cap is None:
        return []
    if plan.model != cap.model:
        return [f"the price model {plan.model} differs from the cap's model {cap.model}"]
    if plan.currency != cap.currency:
        return [f"the price is in {plan.currency}, the cap in {cap.currency}"]
    reasons = []
    if plan.price_minor > cap.cap_minor:
        reasons.append(f"the price of {plan.price_minor} exceeds the cap of {cap.cap_minor} set by the bureau")
    if plan.trial_price_minor is not None and plan.trial_price_minor > cap.cap_minor:
        reasons.append(f"the trial price of {plan.trial_price_minor} exceeds the cap of {cap.cap_minor}")
    return reasons


def board_item(subject: tuple[str, str], title: str, plan: PricePlan, cap: Cap | None, day: str) -> dict[str, Any]:
    """One line of the public price board: the price in force today, its cap and registration."""
    kind, ident = subject
    return {("product_id" if kind == "product" else "dataset"): ident, "title": title, "model": plan.model,
            "price_minor": plan.price_on(day), "cap_minor": cap.cap_minor if cap else None,
            "trial_until": plan.trial_until if plan.in_trial(day) else None,
            "registration_code": cap.registration_code if cap else None}


BOARD_COLUMNS = ("product_id", "dataset", "title", "model", "price_minor", "cap_minor", "trial_until",
                 "registration_code")


def subject_key(dataset: str, product_id: str | None) -> str:
    """How caps, subscriptions and scenario tags name what a call was priced by."""
    return f"product:{product_id}" if product_id else f"dataset:{dataset}"
