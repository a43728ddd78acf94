"""The capture catalog on a real PostgreSQL: the contract of tests/unit/test_catalog.py, plus
what only a server can do (be unreachable, drop a connection)."""

from collections.abc import Callable
from typing import Any

import pytest

from diag_assets.core.storage.catalog.catalog import PostgresCatalog
from diag_assets.core.storage.catalog.model import CatalogUnavailable
from tests.services import pg_query
from tests.unit.test_catalog import CatalogContract, begin, ck

pytestmark = pytest.mark.postgres


class TestPostgresCatalog(CatalogContract):
    @pytest.fixture
    def location(self, postgres_dsn) -> tuple[str, str]:
        return ("postgres", postgres_dsn)

    @pytest.fixture
    def query(self, postgres_dsn) -> Callable[[str], list[tuple[Any, ...]]]:
        return pg_query(postgres_dsn)

    def test_stores_timestamptz(self, catalog, query):
        begin(catalog, ck(1))
        assert query(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'diagnostic_capture' AND column_name = 'created_at'"
        ) == [("timestamp with time zone",)]

    def test_a_dropped_connection_fails_one_call_then_reconnects(self, catalog, query):
        begin(catalog, ck(1))
        query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with pytest.raises(CatalogUnavailable, match="DIAG_PG_DSN"):
            catalog.get(ck(1))
        entry = catalog.get(ck(1))
        assert entry is not None and entry.key == ck(1)


def test_unreachable_server_names_where_and_the_fix():
    dsn = "host=127.0.0.1 port=1 dbname=diag user=diag password=hunter2 connect_timeout=2"
    with pytest.raises(CatalogUnavailable) as raised:
        PostgresCatalog(dsn, connect_timeout_s=1)
    message = str(raised.value)
    assert "postgres capture catalog at host=127.0.0.1 port=1 dbname=diag user=diag" in message
    assert "check that PostgreSQL is running at 127.0.0.1:1 and DIAG_PG_DSN is right" in message
    assert "hunter2" not in message
    assert raised.value.backend == "postgres"


def test_an_unreachable_uri_hides_its_password_too():
    with pytest.raises(CatalogUnavailable) as raised:
        PostgresCatalog("postgresql://diag:hunter2@127.0.0.1:1/diag", connect_timeout_s=1)
    assert "127.0.0.1:1" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_an_invalid_dsn_is_reported_without_its_secrets():
    with pytest.raises(CatalogUnavailable, match="not a valid libpq") as raised:
        PostgresCatalog("host=127.0.0.1 password=hunter2 bogus_option")
    assert "hunter2" not in str(raised.value)
