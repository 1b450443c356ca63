"""JSON Schemas of the pricing bodies: price board, fee caps, allowed revenue, vouchers, disclosure."""

from __future__ import annotations

from gateway.http.schema_parts import CURRENCY, ID, INT, MONEY, NULL_S, PERIOD, TIME, S, Schema, array, items, obj, ref

_DAY: Schema = {"type": "string", "format": "date"}
_NULL_DAY: Schema = {"type": ["string", "null"], "format": "date"}
_NULL_MONEY: Schema = {"type": ["integer", "null"]}
_FREE: Schema = {"type": "object", "additionalProperties": True}
_ROWS: Schema = array(_FREE)
_SCOPE = obj((), False, datasets=array(S), products=array(S), scenario=NULL_S)
# What the services check that a body's schema can say too: amounts in range, text that is not blank.
_AMOUNT: Schema = {**MONEY, "minimum": 0, "maximum": 10**12}
_POSITIVE: Schema = {**MONEY, "minimum": 1, "maximum": 10**12}


def _said(max_length: int, description: str = "") -> Schema:
    out: Schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S"}
    return {**out, "description": description} if description else out


_NAMES: Schema = {"type": "array", "maxItems": 100, "items": ID}
_SCOPE_IN = obj((), False, datasets=_NAMES, products=_NAMES,
                scenario={"type": ["string", "null"], "minLength": 1, "maxLength": 100})

PRICING_SCHEMAS: dict[str, Schema] = {
    "PriceBoardItem": obj(("title", "model", "price_minor", "cap_minor", "trial_until", "registration_code"), False,
                          product_id=S, dataset=S, title=S, model=ref("PriceModel"), price_minor=MONEY,
                          cap_minor=_NULL_MONEY, trial_until=_NULL_DAY, registration_code=NULL_S),
    "PriceBoard": obj(("currency", "items"), currency=S, items=array(ref("PriceBoardItem"))),
    "PriceCapIn": {**obj(("model", "cap_minor", "reason"), False, dataset=ID, product_id=ID, model=ref("PriceModel"),
                         cap_minor=_AMOUNT, currency=CURRENCY, registration_code=_said(200), scenario=_said(200),
                         reason=_said(200, "Why the cap is set, for the audit log.")),
                   "oneOf": [{"required": ["dataset"]}, {"required": ["product_id"]}]},
    "PriceCap": obj(("cap_id", "model", "cap_minor", "set_at"), cap_id=S, dataset=NULL_S, product_id=NULL_S,
                    model=ref("PriceModel"), cap_minor=MONEY, currency=S, registration_code=NULL_S, scenario=NULL_S,
                    reason=S, set_by=S, set_at=TIME),
    "PriceCapList": items("PriceCap"),
    "AllowedRevenueIn": obj(("allowed_minor", "reason"), False,
                            allowed_minor={**MONEY, "minimum": 0, "maximum": 10**15},
                            reason=_said(500, "Why, for the audit log.")),
    "AllowedRevenuePeriod": obj(("period",), period=PERIOD, status=S, invoices=INT, billed_minor=MONEY,
                                vouchers_minor=MONEY, net_minor=MONEY, carried_in_minor=MONEY,
                                carried_out_minor=MONEY),
    "AllowedRevenue": obj(("year", "allowed_minor", "net_minor", "excess_minor", "carried_minor"), year=S,
                          currency=S, allowed_minor=_NULL_MONEY, billed_minor=MONEY, vouchers_minor=MONEY,
                          net_minor=MONEY, excess_minor=MONEY, carried_minor=MONEY, pending_minor=MONEY,
                          retained_minor=MONEY, headroom_minor=_NULL_MONEY, periods=array(ref("AllowedRevenuePeriod"))),
    "VoucherIn": obj(("org_id", "amount_minor", "valid_from", "valid_until"), False, org_id=ID,
                     amount_minor=_POSITIVE, valid_from=_DAY, valid_until=_DAY, scope=_SCOPE_IN,
                     fund={"type": "string", "maxLength": 500}, note={"type": "string", "maxLength": 500}),
    "Voucher": obj(("voucher_id", "org_id", "amount_minor", "balance_minor", "valid_from", "valid_until"),
                   voucher_id=S, org_id=S, amount_minor=MONEY, balance_minor=MONEY, currency=S, valid_from=_DAY,
                   valid_until=_DAY, scope=_SCOPE, fund=S, note=S, created_by=S, created_at=TIME,
                   redemptions=array(obj(("period", "amount_minor"), period=PERIOD, amount_minor=MONEY, at=TIME))),
    "VoucherList": items("Voucher"),
    "AnnualReport": obj(("year", "currency", "status", "invoices", "products", "allowed_revenue", "privacy"),
                        year=S, currency=S, status=ref("ReportStatus"), periods=_ROWS, invoices=_FREE,
                        products=_ROWS, requester_classes=_ROWS, free_public_use=_FREE, revenue_shares=_ROWS,
                        vouchers=_FREE, allowed_revenue=ref("AllowedRevenue"), privacy=_FREE,
                        dataset_events=_ROWS),
}
