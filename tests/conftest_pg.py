"""Review-store fixtures on SQLite and on a real PostgreSQL (a throwaway cluster, one per test
session, a fresh database per test). Load with `pytest_plugins = ["conftest_pg"]`.

`db_url` runs a test once per backend (ids `sqlite` and `postgresql`; `-k sqlite` picks one);
the PostgreSQL cases skip with the reason where no cluster can be made here.
"""
from __future__ import annotations

import pytest

from pg_cluster import ClusterUnavailable, PostgresCluster


@pytest.fixture(scope="session")
def pg_cluster():
    try:
        cluster = PostgresCluster().start()
    except ClusterUnavailable as why:
        pytest.skip(f"no throwaway PostgreSQL here: {why}")
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh PostgreSQL database for one test (dropped afterwards)."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty review database: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    return request.getfixturevalue("pg_url")
