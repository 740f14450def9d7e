"""Fixtures for the monitoring tests: a kernel with a MonitoringHub on a private SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

import flowlib
from flowlib.config import Config
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.monitoring import MonitoringHub


@pytest.fixture
def db_path(tmp_path: Any) -> str:
    return str(tmp_path / "runinfo" / "monitoring.db")


@pytest.fixture
def monitored(tmp_path: Any) -> Callable[..., Config]:
    """Build a Config with a MonitoringHub (default store: <tmp>/runinfo/monitoring.db)."""

    def build(hub: MonitoringHub | None = None, **kwargs: Any) -> Config:
        kwargs.setdefault("run_dir", str(tmp_path / "runinfo"))
        kwargs.setdefault("executors", [ThreadPoolExecutor(label="threads", max_threads=4)])
        return Config(monitoring=hub or MonitoringHub(flush_period=0.05), **kwargs)

    return build


@pytest.fixture
def query(db_path: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """Run a read-only query against the test's monitoring database."""
    conns: list[sqlite3.Connection] = []

    def run(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if not conns:
            conns.append(sqlite3.connect(db_path))
        return conns[0].execute(sql, params).fetchall()

    yield run
    for conn in conns:
        conn.close()
    flowlib.clear()
