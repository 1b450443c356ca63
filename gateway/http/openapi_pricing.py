"""JSON Schemas of the pricing bodies: price board, fee caps, allowed revenue, vouchers, disclosure."""

from __future__ import annotations

from gateway.http.openapi_schemas import ANY_OBJ, INT, MONEY, NULL_S, PERIOD, TIME, S, Schema, items, obj, ref

_MODEL: Schema = {"enum": ["per_call", "per_month", "per_cell"]}
_DAY: Schema = {"type": "string", "format": "date"}
_NULL_MONEY: Schema = {"type": ["integer", "null"]}
_SCOPE = obj((), False, datasets={"type": "array", "items": S}, products={"type": "array", "items": S},
             scenario=NULL_S)

PRICING_SCHEMAS: dict[str, Schema] = {
    "PriceBoardItem": obj(("title", "model", "price_minor", "cap_minor", "trial_until", "registration_code"), False,
                          product_id=S, dataset=S, title=S, model=_MODEL, price_minor=MONEY, cap_minor=_NULL_MONEY,
                          trial_until={"type": ["string", "null"], "format": "date"}, registration_code=NULL_S),
    "PriceBoard": obj(("currency", "items"), currency=S, items={"type": "array", "items": ref("PriceBoardItem")}),
    "PriceCapIn": obj(("model", "cap_minor", "reason"), False, dataset=S, product_id=S, model=_MODEL,
                      cap_minor=MONEY, currency=S, registration_code=S, scenario=S, reason=S),
    "PriceCap": obj(("cap_id", "model", "cap_minor", "set_at"), cap_id=S, dataset=S, product_id=S, model=_MODEL,
                    cap_minor=MONEY, currency=S, registration_code=NULL_S, scenario=NULL_S, reason=S, set_by=S,
                    set_at=TIME),
    "PriceCapList": items("PriceCap"),
    "AllowedRevenueIn": obj(("allowed_minor", "reason"), False, allowed_minor=MONEY, reason=S),
    "AllowedRevenue": obj(("year", "allowed_minor", "net_minor", "excess_minor", "carried_minor"), year=S,
                          currency=S, allowed_minor=_NULL_MONEY, billed_minor=MONEY, vouchers_minor=MONEY,
                          net_minor=MONEY, excess_minor=MONEY, carried_minor=MONEY, pending_minor=MONEY,
                          retained_minor=MONEY, headroom_minor=_NULL_MONEY,
                          periods={"type": "array", "items": obj(
                              period=PERIOD, status=S, invoices=INT, billed_minor=MONEY, vouchers_minor=MONEY,
                              net_minor=MONEY, carried_in_minor=MONEY, carried_out_minor=MONEY)}),
    "VoucherIn": obj(("org_id", "amount_minor", "valid_from", "valid_until"), False, org_id=S, amount_minor=MONEY,
                     valid_from=_DAY, valid_until=_DAY, scope=_SCOPE, fund=S, note=S),
    "Voucher": obj(("voucher_id", "org_id", "amount_minor", "balance_minor", "valid_from", "valid_until"),
                   voucher_id=S, org_id=S, amount_minor=MONEY, balance_minor=MONEY, currency=S, valid_from=_DAY,
                   valid_until=_DAY, scope=_SCOPE, fund=S, note=S, created_by=S, created_at=TIME,
                   redemptions={"type": "array", "items": obj(period=PERIOD, amount_minor=MONEY, at=TIME)}),
    "VoucherList": obj(("items",), items={"type": "array", "items": ref("Voucher")}, next=NULL_S),
    "AnnualReport": obj(("year", "currency", "status", "invoices", "products", "allowed_revenue", "privacy"),
                        year=S, currency=S, status={"enum": ["final", "provisional"]}, periods={"type": "array"},
                        invoices=ANY_OBJ, products={"type": "array"},
                        requester_classes={"type": "array"}, free_public_use=ANY_OBJ,
                        revenue_shares={"type": "array"}, vouchers=ANY_OBJ, allowed_revenue=ref("AllowedRevenue"),
                        privacy=ANY_OBJ, dataset_events={"type": "array"}),
}
