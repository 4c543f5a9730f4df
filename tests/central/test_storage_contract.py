"""The hub storage contract on every backend: SQLite always, PostgreSQL when MOTCUA_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os

import pytest

from central.storage.testing import StorageContract, postgres_schema

POSTGRES_URL = os.environ.get("MOTCUA_TEST_POSTGRES_URL", "")


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    def storage_url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.mark.skipif(not POSTGRES_URL, reason="MOTCUA_TEST_POSTGRES_URL is not set")
class TestPostgreSQLStorage(StorageContract):
    @pytest.fixture
    def storage_url(self):
        with postgres_schema(POSTGRES_URL) as url:
            yield url


def test_unknown_scheme_is_refused():
    from central.storage import open_storage

    with pytest.raises(ValueError, match="mysql"):
        open_storage("mysql://x")
