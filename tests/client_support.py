"""Helpers of the client tests: a demo client for a gateway, its budget, recorded waits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support import Gateway

ROOT = Path(__file__).resolve().parent.parent
BY_TOWNSHIP = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= {age} " \
              "GROUP BY township"
TOWNSHIPS = 20
TOWNSHIP_NAMES = {"Chengguan", "Lingxi", "Baishi", "Qiaotou", "Dongfeng", "Xinhe", "Shuangquan", "Yangliu",
                  "Gaoping", "Longtan", "Shiban", "Huanggang", "Nanshan", "Beiling", "Hetang", "Zhuyuan",
                  "Fengshu", "Meilin", "Tianxin", "Guanyin"}
SKIP_REASON = "the client is not installed: pip install -e 'clients/python[polars]'"


def creds(gw: Gateway) -> Path:
    return gw.state_dir / "demo-credentials.json"


def client(gw: Gateway, client_id: str = "demo-bank", **options: Any) -> Any:
    from gateway_client import Client

    return Client.from_credentials_file(creds(gw), client_id, **options)


def spent(gw_client: Any, dataset: str) -> float:
    return float(next(line["epsilon_spent"] for line in gw_client.budget()["datasets"] if line["dataset"] == dataset))


class Sleeps:
    """The client's waits, recorded, then really waited (a retry must honour Retry-After)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)
