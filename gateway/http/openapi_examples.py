"""One example per schema, taken from the demo county: shown with every operation that sends or answers
it (tests/test_openapi.py validates each against its schema, so an example cannot drift)."""

from __future__ import annotations

from typing import Any

from gateway.http.openapi_agreements import AGREEMENT_EXAMPLES

_H1 = "99c597cabef843a64dbb36ba47202b01cf2783062a286a64605a672cdffe8440"
_H2 = "c637c324b9ccffc9fa321901eb5e15e9776f2f4edb6acbe75e398bef93c87634"
_T = "2026-11-07T16:45:33.385805Z"
_SQL = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= 18 GROUP BY township"
_BUDGET = {"dataset": "residents", "period": "2026-11", "epsilon_limit": 10.0, "epsilon_spent": 1.0,
           "epsilon_remaining": 9.0}
_ACCURACY = {"alpha": 0.05, "columns": {"n": 6.43, "mean_income": 1666.9},
             "rows": [{"n": 6.43, "mean_income": 1201.5}, {"n": 6.43, "mean_income": 1666.9}]}
_CLIENT = {"client_id": "harbour-app", "org_id": "harbour-bank", "roles": ["requester"], "status": "active",
           "created_at": _T}
_ORG = {"org_id": "harbour-bank", "name": "Harbour Bank", "kind": "requester", "status": "active", "created_at": _T,
        "clients": [_CLIENT]}
_APPLICATION = {
    "id": "app-da21de8bdd7244bb", "org_id": "county-mutual-insurance", "client_id": "demo-insurer",
    "dataset": "residents", "product_id": None, "purpose": "Pricing household insurance by township",
    "epsilon_per_period": 2.0, "valid_until_requested": None, "status": "pending",
    "approvals": {"bureau": {"by": "policy:auto-approve", "at": _T}, "source": None}, "epsilon_approved": 2.0,
    "valid_until": None, "reason": None, "grant_id": None, "created_at": _T, "updated_at": _T}
_GRANT = {"id": "demo-grant-1", "grant_id": "demo-grant-1", "purpose_class": "industry",
          "org_id": "lingxi-rural-bank", "dataset": "residents",
          "product_id": None,
          "epsilon_per_period": 10.0, "valid_from": _T, "valid_until": None, "status": "active", "created_at": _T,
          "agreement_id": "agr-demo-county"}
_PARAMETERS = [{"name": "min_age", "type": "integer", "description": "Youngest age in the band.", "minimum": 16,
                "maximum": 100, "example": 25},
               {"name": "max_age", "type": "integer", "description": "Oldest age in the band.", "minimum": 16,
                "maximum": 110, "example": 60}]
_PRODUCT = {"id": "income-by-township", "version": 1, "title": "Income by township for an age band",
            "description": "Residents and their mean annual income per township, for ages in a band.",
            "dataset": "residents", "merchant": "datasmith", "parameters": _PARAMETERS,
            "columns": ["township", "residents", "mean_income"], "epsilon_per_call": 0.5,
            "price": {"per_call_minor": 800, "currency": "CNY"}, "dataset_status": "active", "published_at": _T,
            "registration": {"code": "DEMO-DP-2026-0001", "status": "registered"}}
_PRODUCT_SQL = ("SELECT township, COUNT(*) AS residents, AVG(income) AS mean_income FROM residents "
                "WHERE age BETWEEN :min_age AND :max_age GROUP BY township")
_DRAFT = {"id": "income-by-township", "dataset": "residents", "title": "Income by township for an age band",
          "sql": _PRODUCT_SQL, "parameters": _PARAMETERS, "epsilon": "0.5", "price_minor": 800}
_VERSION = {"id": "income-by-township", "version": 1, "status": "published", "dataset": "residents",
            "merchant": "datasmith",
            "definition": {"title": _DRAFT["title"], "description": "", "sql": _PRODUCT_SQL,
                           "parameters": _PARAMETERS, "epsilon": "0.5", "delta": "0", "price_minor": 800,
                           "currency": "CNY"},
            "definition_hash": _H2, "policy_version": _H1, "created_at": _T, "submitted_at": _T,
            "decided_by": "demo-bureau", "decided_at": _T, "reason": None}
_COLUMN = {"name": "age", "type": "integer", "classification": "general", "group_by": False, "aggregate": True,
           "filter": True, "bounds": [0, 110]}
_DATASET = {
    "id": "residents", "title": "Registered residents", "description": "One row per registered person.",
    "source_department": "psb", "classification": "general", "status": "active", "queryable": True,
    "privacy_unit": {"kind": "row"},
    "columns": [{"name": "township", "type": "string", "classification": "general", "group_by": True,
                 "aggregate": False, "filter": True, "categories": ["Chengguan", "Lingxi", "Baishi"]}, _COLUMN],
    "aggregates": ["count", "mean", "median", "quantile", "sum"], "epsilon": {"min": 0.01, "max": 2.0},
    "private_keys": False, "max_cells": 1000,
    "price": {"per_call_minor": 500, "cached_call_minor": 100, "currency": "CNY"}, "policy_version": _H1,
    "registration": {"code": "DEMO-PD-2026-0001", "status": "registered"}}
_USAGE = {"usage_id": "eed9f8240cf9de88c5b76eb32b8cc595", "query_id": "d6e862db885d65b2e60a96b4ab5b64d7",
          "org_id": "lingxi-rural-bank", "client_id": "demo-bank", "dataset": "residents", "product_id": None,
          "period": "2026-11", "cached": False, "epsilon": 1.0, "price_minor": 500, "currency": "CNY",
          "price_version": "policy:" + _H1, "committed_at": _T}
_ROWS = [["Chengguan", 10454, 37505.96], ["Lingxi", 4239, 30456.38]]
_SNAPSHOT = {"id": _H2, "loaded_at": _T, "loaded_by": "demo-source-psb", "origin": "upload", "policy_version": _H1,
             "current": True, "rows": 52000, "bytes": 362241}
_LINE = {"line": 1, "kind": "usage", "dataset": "residents", "product_id": None, "usage_period": "2026-11",
         "cached": False, "price_version": "policy:" + _H1, "policy_version": _H1, "merchant": None, "quantity": 3,
         "unit_price_minor": 500, "amount_minor": 1500, "currency": "CNY", "reference": "",
         "registration_code": "DEMO-PD-2026-0001"}
_STATEMENT = {"party": "psb", "period": "2026-11", "status": "open", "currency": "CNY",
              "lines": [{"dataset": "residents", "product_id": None, "currency": "CNY", "calls": 3,
                         "amount_minor": 900}], "total_minor": 900}


def _page(*found: Any) -> dict[str, Any]:
    return {"items": list(found), "next": "/v1/example?limit=1&cursor=WyIyMDI2LTExLTA3Il0"}


EXAMPLES: dict[str, Any] = {
    "Problem": {"type": "https://gateway.county.example/problems/policy-violation", "status": 422,
                "title": "The policy does not allow this query", "code": "policy_violation",
                "detail": "column 'person_id' may not be aggregated", "reasons": ["column 'person_id' may not be "
                                                                                  "aggregated"],
                "instance": "urn:request:a7b5afa08b56402eb93431769463f93b"},
    "TokenForm": {"grant_type": "client_credentials", "client_id": "demo-bank",
                  "client_secret": "s3cr3t-from-the-bureau"},
    "Token": {"access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6InR1TUhoNTgiLCJ0eXAiOiJKV1QifQ"
                              ".eyJzdWIiOiJkZW1vLWJhbmsifQ.c2ln", "token_type": "Bearer", "expires_in": 900},
    "JWKS": {"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "tuMHh58Go-3ecJBxvJRnio",
                       "x": "nxp5SQKMuohfdbz2t74o8t8922fWEyr2xwxn4XqfcY8"}]},
    "Health": {"status": "ready"},
    "Metrics": "# TYPE gateway_releases_total counter\n"
               "gateway_releases_total{dataset=\"residents\",outcome=\"fresh\"} 3\n",
    "OpenAPI": {"openapi": "3.1.0", "info": {"title": "County data gateway", "version": "1.0.0"}, "paths": {}},
    "Html": "<!doctype html><title>County data gateway API</title>",
    "Dataset": _DATASET,
    "DatasetList": {"datasets": [_DATASET]},
    "QueryIn": {"dataset": "residents", "sql": _SQL, "epsilon": 1.0},
    "QueryAnswer": {"query_id": "d6e862db885d65b2e60a96b4ab5b64d7", "dataset": "residents",
                    "columns": ["township", "n", "mean_income"], "rows": _ROWS, "accuracy": _ACCURACY,
                    "epsilon_spent": 1.0, "cached": False, "budget": _BUDGET,
                    "usage": {"usage_id": "eed9f8240cf9de88c5b76eb32b8cc595", "price_minor": 500, "currency": "CNY"},
                    "policy_version": _H1, "snapshot_id": _H2},
    "Preview": {"dataset": "residents", "epsilon": 1.0, "delta": 0.0, "accuracy": _ACCURACY, "threshold": None,
                "price": {"price_minor": 500, "currency": "CNY"}, "budget": _BUDGET, "would_fit": True},
    "Budget": {"period": "2026-11", "datasets": [_BUDGET]},
    "Usage": {"period": "2026-11", "items": [_USAGE], "next": None},
    "AuditEntryList": _page({"seq": 22, "at": _T, "kind": "query.released", "actor": "demo-bank",
                             "subject": "d6e862db885d65b2e60a96b4ab5b64d7",
                             "payload": {"dataset": "residents", "epsilon_nano": 1000000000}, "hash": _H2}),
    "ReleaseList": _page({"query_id": "d6e862db885d65b2e60a96b4ab5b64d7", "dataset": "residents",
                          "product_id": None, "epsilon_spent": 1.0, "policy_version": _H1, "snapshot_id": _H2,
                          "created_at": _T}),
    "InvoiceList": _page({"period": "2026-10", "invoice_id": "lingxi-rural-bank/2026-10", "status": "closed",
                          "currency": "CNY", "total_minor": 1500, "lines": 1}),
    "AuditVerdict": {"ok": True, "entries": 22, "head": _H2},
    "Receipt": "eyJhbGciOiJFZERTQSIsImtpZCI6InR1TUhoNTgifQ.eyJxdWVyeV9pZCI6ImQ2ZTg2MmRiIn0.c2lnbmF0dXJl",
    "ReceiptDocument": {"receipt": "eyJhbGciOiJFZERTQSIsImtpZCI6InR1TUhoNTgifQ.eyJxdWVyeV9pZCI6ImQ2ZTg2MmRiIn0.c2ln"},
    "Release": {"query_id": "d6e862db885d65b2e60a96b4ab5b64d7", "dataset": "residents",
                "release": {"columns": ["township", "count(*)", "mean(income)"], "rows": _ROWS},
                "accuracy": {"count(*)": 6.43, "mean(income)": 1666.9}, "epsilon_spent": 1.0, "policy_version": _H1,
                "snapshot_id": _H2, "created_at": _T},
    "Snapshot": {**_SNAPSHOT, "dataset": "residents", "warnings": []},
    "SnapshotList": {"dataset": "residents", "current": _H2, "items": [_SNAPSHOT], "next": None,
                     "snapshots": [_SNAPSHOT]},
    "PolicyText": "dataset: residents\ntitle: Registered residents\nowner: psb\n# ... per policy.schema.json\n",
    "OrgIn": {"org_id": "harbour-bank", "name": "Harbour Bank", "kind": "requester"},
    "Org": _ORG,
    "OrgList": _page(_ORG),
    "ClientIn": {"client_id": "harbour-app"},
    "Client": _CLIENT,
    "ClientSecret": {**_CLIENT, "client_secret": "Lr0MpXk2Q5dkYgjs-hRp-lTDG-MmnocX2MIUxjvpiy4"},
    "Reason": {"reason": "Unpaid invoices for two months"},
    "ReasonRequired": {"reason": "The purpose does not match the grant asked for"},
    "DatasetStatusChange": {"dataset": "vehicles", "status": "suspended", "previous_status": "active",
                            "grants_ended": 0, "applications_closed": 0},
    "PolicyCurrent": {"dataset": "residents", "owner": "psb", "version": _H1,
                      "document": {"dataset": "residents", "owner": "psb", "max_cells": 1000},
                      "versions": [{"version": _H1, "created_at": _T, "created_by": "system"}]},
    "PolicyChange": {"dataset": "residents", "previous_version": _H1, "version": _H2, "published": False,
                     "changes": [{"path": "max_cells", "old": 1000, "new": 800, "change": "changed"}]},
    "ApplicationIn": {"dataset": "residents", "purpose": "Pricing household insurance by township",
                      "epsilon_per_period": "2"},
    "Application": _APPLICATION,
    "ApplicationList": _page(_APPLICATION),
    "ApprovalIn": {"epsilon_per_period": "1.5", "valid_until": "2027-06-30T00:00:00Z"},
    "Grant": _GRANT,
    "OdrlAgreement": {
        "@context": ["http://www.w3.org/ns/odrl.jsonld", {"gw": "https://gateway.county.example/ns#"}],
        "@type": "Agreement", "uid": "https://gateway.county.example/v1/grants/demo-grant-1", "gw:state": "active",
        "assigner": [{"@type": "Party", "uid": "https://gateway.county.example/orgs/psb", "gw:orgId": "psb",
                      "gw:role": "source_department"}],
        "assignee": {"@type": "Party", "uid": "https://gateway.county.example/orgs/lingxi-rural-bank",
                     "gw:orgId": "lingxi-rural-bank", "gw:role": "requester"},
        "target": {"@type": "Asset", "uid": "https://gateway.county.example/v1/datasets/residents",
                   "gw:dataset": "residents", "gw:registrationCode": "DEMO-PD-2026-0001"},
        "permission": [{"target": "https://gateway.county.example/v1/datasets/residents",
                        "assigner": ["https://gateway.county.example/orgs/psb"],
                        "assignee": "https://gateway.county.example/orgs/lingxi-rural-bank", "action": "use",
                        "constraint": [{"leftOperand": "gw:epsilonPerPeriod", "operator": "lteq",
                                        "rightOperand": {"@value": "10", "@type": "xsd:decimal"},
                                        "unit": "gw:epsilon"}]}]},
    "GrantList": _page(_GRANT),
    "Product": _PRODUCT,
    "ProductList": _page(_PRODUCT),
    "InvokeIn": {"params": {"min_age": 25, "max_age": 60}},
    "ProductDraftIn": _DRAFT,
    "ProductVersionIn": {k: v for k, v in _DRAFT.items() if k not in ("id", "dataset")},
    "ProductVersion": _VERSION,
    "ProductVersionList": _page(_VERSION),
    "TryIn": {"params": {"min_age": 25, "max_age": 60}},
    "TwinAnswer": {"id": "income-by-township", "version": 1, "params": {"min_age": 25, "max_age": 60},
                   "columns": ["township", "residents", "mean_income"], "rows": [["Chengguan", 31, 942572.3]],
                   "twin": {"synthetic": True, "rows": 2000, "exact": True}, "epsilon_per_call": 0.5},
    "Invoice": {"invoice_id": "lingxi-rural-bank/2026-11", "org_id": "lingxi-rural-bank", "period": "2026-11",
                "status": "open", "currency": "CNY", "lines": [_LINE], "total_minor": 1500},
    "RevenueStatements": {"period": "2026-11", "status": "open", "currency": "CNY", "invoices_total_minor": 1500,
                          "statements": [_STATEMENT]},
    "CreditNoteIn": {"org_id": "county-mutual-insurance", "usage_ids": ["eed9f8240cf9de88c5b76eb32b8cc595"],
                     "reason": "A call billed twice after a network fault"},
    "CreditNote": {"id": "cn-1c89a350accf43a2", "org_id": "county-mutual-insurance", "dataset": "vehicles",
                   "product_id": None, "refers_to_period": "2026-10", "usage_ids": ["eed9f8240cf9de88c5b76eb32b8cc595"],
                   "amount_minor": 400, "currency": "CNY", "reason": "A call billed twice after a network fault",
                   "created_at": _T, "invoice_period": "2026-11", "creditable_minor": 0},
}

_CAP = {"cap_id": "cap-1", "dataset": "residents", "product_id": None, "model": "per_call", "cap_minor": 800,
        "currency": "CNY", "registration_code": None, "scenario": None, "reason": "Price guidance 2026",
        "set_by": "demo-bureau", "set_at": _T}
_ALLOWED = {"year": "2026", "currency": "CNY", "allowed_minor": 50000000, "billed_minor": 1500, "vouchers_minor": 0,
            "net_minor": 1500, "excess_minor": 0, "carried_minor": 0, "pending_minor": 0, "retained_minor": 1500,
            "headroom_minor": 49998500, "periods": [{"period": "2026-11", "status": "open", "invoices": 2,
                                                     "billed_minor": 1500, "vouchers_minor": 0, "net_minor": 1500,
                                                     "carried_in_minor": 0, "carried_out_minor": 0}]}
_VOUCHER = {"voucher_id": "v-2026-0001", "org_id": "lingxi-rural-bank", "amount_minor": 100000,
            "balance_minor": 98500, "currency": "CNY", "valid_from": "2026-01-01", "valid_until": "2026-12-31",
            "scope": {"datasets": ["residents"]}, "fund": "county digital economy fund", "note": "",
            "created_by": "demo-bureau", "created_at": _T,
            "redemptions": [{"period": "2026-10", "amount_minor": 1500, "at": _T}]}
EXAMPLES.update({
    "AuthorizationServerMetadata": {
        "issuer": "https://gateway.county.example", "token_endpoint": "https://gateway.county.example/oauth/token",
        "jwks_uri": "https://gateway.county.example/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["token"]},
    "PriceBoard": {"currency": "CNY", "items": [
        {"dataset": "residents", "title": "Registered residents", "model": "per_call", "price_minor": 500,
         "cap_minor": 800, "trial_until": None, "registration_code": "DEMO-PD-2026-0001"}]},
    "PriceCapIn": {"dataset": "residents", "model": "per_call", "cap_minor": 800, "reason": "Price guidance 2026"},
    "PriceCap": _CAP,
    "PriceCapList": {"items": [_CAP], "next": None},
    "AllowedRevenueIn": {"allowed_minor": 50000000, "reason": "The county's 2026 allowance"},
    "AllowedRevenue": _ALLOWED,
    "VoucherIn": {"org_id": "lingxi-rural-bank", "amount_minor": 100000, "valid_from": "2026-01-01",
                  "valid_until": "2026-12-31"},
    "Voucher": _VOUCHER,
    "VoucherList": {"items": [_VOUCHER], "next": None},
    "RegistrationIn": {"code": "DEMO-PD-2026-0001", "note": "Registered with the provincial platform"},
    "ProductRegistrationIn": {"code": "DEMO-DP-2026-0001", "version": 2,
                              "note": "Re-registered after the price change"},
    "Registration": {"product_id": "income-by-township", "code": "DEMO-DP-2026-0001", "status": "registered",
                     "published_version": 2, "registered_version": 2,
                     "fingerprint": "5d0f2c53b7a64a2c6f3f0e0b7d5c1e6b2a9d8c7f6e5d4c3b2a1908f7e6d5c4b3",
                     "note": "Re-registered after the price change", "recorded_by": "demo-bureau",
                     "recorded_at": _T},
    "AnnualReport": {"year": "2025", "currency": "CNY", "status": "final", "invoices": {"total_minor": 1500},
                     "products": [], "allowed_revenue": _ALLOWED, "privacy": {"releases": 3}},
})

# Alternative media types of an answer, by schema name and type.
EXAMPLES.update(AGREEMENT_EXAMPLES)

TEXT_EXAMPLES: dict[tuple[str, str], str] = {
    ("Invoice", "text/csv"): "line,kind,dataset,product_id,quantity,unit_price_minor,amount_minor,currency\n"
                             "1,usage,residents,,3,500,1500,CNY\n",
}
