"""Shared fixtures: demo data generated once per session, and a demo gateway process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import FAST_RATES, Gateway, demo_gateway

TEST_SCALE = 0.1  # 52,000 residents: realistic shapes, quick to copy


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gateway.data.demo import generate

    out = tmp_path_factory.mktemp("demo-data")
    generate(out, scale=TEST_SCALE)
    return out


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    """One demo gateway for the read-mostly HTTP tests of the session. Fast rate limits: a dozen
    modules share its demo clients, and a test late in the run must not meet an earlier one's 429s
    (rate limits have tests and gateways of their own)."""
    with demo_gateway(tmp_path_factory.mktemp("gw-state"), demo_data, env=FAST_RATES) as gw:
        yield gw


@pytest.fixture(scope="session")
def client_gateway(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    """The Python client's tests spend budget here (each asks its own question: no cache shared)."""
    with demo_gateway(tmp_path_factory.mktemp("client-gw"), demo_data) as gw:
        yield gw


@pytest.fixture
def fresh_gateway(tmp_path: Path, demo_data: Path) -> Iterator[Gateway]:
    """A gateway of its own, for tests that spend budget or change state."""
    with demo_gateway(tmp_path, demo_data) as gw:
        yield gw


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_DSN", "")
    if not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_DSN is not set (.ci/run sets it when PostgreSQL answers)")
    return dsn
