"""Credit notes held to the usage they correct (issue 19 point 8): pure rules.

A credit note names invoiced usage — records, or one line of a closed invoice — and can credit at
most what those records were billed, net of earlier credits against them. It is split among the
parties as that usage was (the policy version it ran under and its merchant), so every record
it names must share them: one invoice line's worth. The amount is allocated to the records in a
fixed order, each up to what is left of it, so the caps hold per record and the allocation is
the same every time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.core.billing import UsageItem
from gateway.errors import Unprocessable


def _line_key(u: UsageItem) -> tuple[object, ...]:
    return (u.dataset, u.product_id, u.usage_period, u.policy_version, u.merchant_org, u.currency)


def creditable(usage: Sequence[UsageItem], credited: Mapping[str, int]) -> int:
    """What is left to credit on these records: billed less earlier credits."""
    return sum(max(u.price_minor - credited.get(u.usage_id, 0), 0) for u in usage)


def allocate(usage: Sequence[UsageItem], credited: Mapping[str, int], amount: int | None) -> dict[str, int]:
    """usage id -> the part of the credit against it; `amount` None credits all that is left."""
    if not usage:
        raise Unprocessable("name the invoiced usage the credit note corrects")
    if len({_line_key(u) for u in usage}) != 1:
        raise Unprocessable("a credit note corrects usage of one invoice line: one dataset, product, "
                            "month, policy version and currency")
    left = creditable(usage, credited)
    wanted = left if amount is None else amount
    if left <= 0:
        raise Unprocessable("that usage has been credited in full already", extra={"creditable_minor": 0})
    if wanted <= 0 or wanted > left:
        raise Unprocessable(f"a credit of {wanted} is more than the {left} left to credit on that usage",
                            extra={"creditable_minor": left})
    out: dict[str, int] = {}
    for u in sorted(usage, key=lambda item: item.usage_id):
        part = min(wanted, u.price_minor - credited.get(u.usage_id, 0))
        if part > 0:
            out[u.usage_id] = part
            wanted -= part
        if wanted == 0:
            break
    return out
