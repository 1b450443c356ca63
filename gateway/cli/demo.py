"""The demo county's organisations, clients and grants, and its credentials file."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.auth.secrets import hash_secret, new_secret
from gateway.cli.demo_pricing import seed_demo_pricing, trial_end
from gateway.core.agreements import Terms
from gateway.core.budget import to_nano
from gateway.settings import Settings
from gateway.statefolder import state_lock
from gateway.store import agreements, grants, identity
from gateway.store.db import Store, Tx

# (client id, organisation, organisation kind, roles)
CLIENTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("demo-bank", "lingxi-rural-bank", "requester", ("requester",)),
    ("demo-insurer", "county-mutual-insurance", "requester", ("requester",)),
    ("demo-research", "county-rural-research-institute", "requester", ("requester",)),
    ("demo-bureau", "bureau", "bureau", ("bureau",)),
    ("demo-source-psb", "psb", "source", ("source",)),
    ("demo-source-amr", "amr", "source", ("source",)),
    ("demo-source-hrss", "hrss", "source", ("source",)),
    ("demo-merchant", "datasmith", "merchant", ("merchant",)),
    ("demo-ops", "ops", "ops", ("ops",)),
)
# (organisation, dataset, epsilon limit per month)
GRANTS: tuple[tuple[str, str, str], ...] = (
    ("lingxi-rural-bank", "residents", "10"),
    ("lingxi-rural-bank", "enterprises", "10"),
    ("lingxi-rural-bank", "social_insurance", "5"),
    ("county-mutual-insurance", "vehicles", "10"),
    ("county-mutual-insurance", "residents", "5"),
)
# Free public-interest use (priced 0, budgeted and audited): (organisation, dataset, limit, class)
PUBLIC_GRANTS: tuple[tuple[str, str, str, str], ...] = (
    ("county-rural-research-institute", "residents", "10", "public_interest"),
)


def _seed(tx: Tx, secrets: dict[str, str]) -> None:
    for client_id, org, kind, roles in CLIENTS:
        identity.ensure_org(tx, org, org.replace("-", " ").title(), kind)
        if identity.get_client(tx, client_id) is None:
            identity.create_client(tx, client_id, org, roles, hash_secret(secrets[client_id]))
        else:
            identity.set_client_secret(tx, client_id, hash_secret(secrets[client_id]))
    _ensure_agreement(tx)
    for n, (org, dataset, limit) in enumerate(GRANTS, start=1):
        grant_id = f"demo-grant-{n}"
        if tx.one("SELECT 1 FROM grants WHERE grant_id = ?", (grant_id,)) is None:
            grants.create_grant(tx, grant_id, org, dataset, to_nano(Decimal(limit)), "system",
                                agreement_id=DEMO_AGREEMENT)
    for n, (org, dataset, limit, purpose_class) in enumerate(PUBLIC_GRANTS, start=1):
        grant_id = f"demo-public-grant-{n}"
        if tx.one("SELECT 1 FROM grants WHERE grant_id = ?", (grant_id,)) is None:
            grants.create_grant(tx, grant_id, org, dataset, to_nano(Decimal(limit)), "system",
                                purpose_class=purpose_class, agreement_id=DEMO_AGREEMENT)


# The demo county's authorisation agreement: every demo dataset and product stands on it.
DEMO_AGREEMENT = "agr-demo-county"


def _ensure_agreement(tx: Tx) -> None:
    if agreements.get(tx, DEMO_AGREEMENT) is not None:
        return
    datasets = tuple(sorted(r[0] for r in tx.all("SELECT dataset FROM datasets")))
    terms = Terms(
        authorising_body="Lingxi County People's Government", operator=DEMO_MERCHANT, datasets=datasets,
        product_ids=tuple(sorted(p[0] for p in PRODUCTS)), starts_on=date(2025, 1, 1), ends_on=date(2045, 12, 31),
        duties="Serve the county's public data only through the gateway's differentially private releases; "
               "keep the audit log; report yearly to the data bureau.",
        exit_terms="On exit or at the end of the term every grant and product standing on this agreement ends; "
                   "nothing derived from the data is kept.",
        document_sha256=hashlib.sha256(b"demo county authorisation agreement").hexdigest())
    agreements.create(tx, terms, ZoneInfo("Asia/Shanghai"), "system", DEMO_AGREEMENT)


def ensure_demo_county(store: Store, state_dir: Path, base_url: str) -> Path:
    """Create (or keep) the demo clients and grants; write DIR/demo-credentials.json (0600)."""
    path = state_dir / "demo-credentials.json"
    with state_lock(state_dir, ".demo.lock", wait=True):  # replicas sharing a state folder take turns
        return _write_credentials(store, path, base_url)


def _write_credentials(store: Store, path: Path, base_url: str) -> Path:
    secrets = _known_secrets(path)
    for client_id, *_ in CLIENTS:
        secrets.setdefault(client_id, new_secret())
    store.run_sync(_seed, secrets)
    seed_demo_products(store)
    seed_demo_pricing(store)
    clients: list[dict[str, Any]] = [
        {"client_id": cid, "client_secret": secrets[cid], "roles": list(roles), "organisation": org}
        for cid, org, _kind, roles in CLIENTS]
    from gateway.console.demo_users import ensure_demo_users

    users = ensure_demo_users(store, path)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"base_url": base_url, "clients": clients, "users": users}, fh, indent=2, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def _known_secrets(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {c["client_id"]: c["client_secret"] for c in data["clients"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def prepare_demo_state(settings: Settings) -> None:
    """Generate the demo datasets (deterministic seed) into the data folder unless present."""
    from gateway.data.demo import DATASETS, ensure

    settings.data_path.mkdir(parents=True, exist_ok=True)
    if all((settings.data_path / f"{name}.parquet").is_file() for name in DATASETS):
        return
    started = time.monotonic()
    print(f"generating the demo county in {settings.data_path.resolve()} (once; seconds to a minute)...", flush=True)
    ensure(settings.data_path)
    print(f"demo county ready in {time.monotonic() - started:.0f} s; starting the gateway...", flush=True)


# The demo merchant's published products: (id, dataset, draft body as a merchant would send it).
PRODUCTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("income-by-township", "residents", {
        "title": "Income by township for an age band",
        "description": "Residents and their mean annual income per township, for ages in a band.",
        "sql": "SELECT township, COUNT(*) AS residents, AVG(income) AS mean_income FROM residents "
               "WHERE age BETWEEN :min_age AND :max_age GROUP BY township",
        "parameters": [
            {"name": "min_age", "type": "integer", "minimum": 16, "maximum": 100, "example": 25,
             "description": "Youngest age in the band."},
            {"name": "max_age", "type": "integer", "minimum": 16, "maximum": 110, "example": 60,
             "description": "Oldest age in the band."}],
        "epsilon": "0.5", "price_minor": 800}),
    ("vehicle-values-by-type", "vehicles", {
        "title": "Vehicle values by type in a township",
        "description": "Registered vehicles and their mean estimated value per vehicle type in one township.",
        "sql": "SELECT vehicle_type, COUNT(*) AS vehicles, AVG(value) AS mean_value FROM vehicles "
               "WHERE township = :township GROUP BY vehicle_type",
        "parameters": [{"name": "township", "type": "string", "example": "Lingxi",
                        "description": "One of the county's townships."}],
        "epsilon": "0.4", "price_minor": 600}),
)
DEMO_MERCHANT = "datasmith"
TRIAL_PRODUCT, TRIAL_PRICE_MINOR = "vehicle-values-by-type", 300


def seed_demo_products(store: Store) -> None:
    """Publish the demo merchant's products once, as the bureau would after review."""
    from gateway.runtime.registry import DatasetRegistry
    from gateway.service.products import build_definition, seed_published

    registry = DatasetRegistry()
    store.run_sync(registry.refresh, write=False)
    for product_id, dataset, body in PRODUCTS:
        policy = registry.policies.get(dataset)
        if policy is None:
            continue
        if product_id == TRIAL_PRODUCT:  # on a trial price for its first months
            body = {**body, "trial_price_minor": TRIAL_PRICE_MINOR, "trial_until": trial_end()}
        definition = build_definition(policy, body, max_sql_chars=8192)
        store.run_sync(seed_published, product_id, DEMO_MERCHANT, dataset, definition, policy.version,
                       "system", DEMO_AGREEMENT)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from gateway.data.demo import DEFAULT_SEED, generate

    seed = DEFAULT_SEED if args.seed is None else args.seed
    paths = generate(Path(args.out), seed=seed, scale=args.scale)
    for dataset, path in sorted(paths.items()):
        print(f"{dataset}\t{path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo-data", help="write the demo county's Parquet datasets")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=None, help="default: the demo seed")
    demo.add_argument("--scale", type=float, default=1.0)
    demo.set_defaults(func=cmd_demo_data)
