"""Real Postgres and S3 (moto server) for the tests that need them.

Both fixtures skip when the service cannot be had; in CI (``DIAG_REQUIRE_SERVICES=1``) the
root conftest turns such a skip into a failure.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_HOST = os.environ.get("DIAG_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DIAG_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("DIAG_TEST_PG_USER", "postgres")


def pg_dsn(database: str) -> str:
    """A libpq DSN for ``database`` on the test server."""
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database} connect_timeout=5"


def _admin_connection():
    import psycopg2

    connection = psycopg2.connect(pg_dsn("postgres"))
    connection.autocommit = True
    return connection


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A database of its own on the test server, dropped on exit; yields its name.

    Skips the test when the server cannot be reached.
    """
    try:
        admin = _admin_connection()
    except Exception as error:  # noqa: BLE001 - any connection failure means "no server here"
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {error}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def pg_query(dsn: str) -> Callable[[str], list[tuple[Any, ...]]]:
    """A function that runs one SQL query on ``dsn`` in a connection of its own."""
    import psycopg2

    def run(sql: str) -> list[tuple[Any, ...]]:
        connection = psycopg2.connect(dsn)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            connection.close()

    return run


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, empty database for this test session; dropped afterwards. Yields its DSN."""
    with fresh_database("diag_test") as name:
        yield pg_dsn(name)


@pytest.fixture
def postgres_dsn(postgres_database: str) -> Iterator[str]:
    """The session database, emptied of every table before each test."""
    import psycopg2

    connection = psycopg2.connect(postgres_database)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    connection.close()
    yield postgres_database


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _moto_server_command() -> list[str]:
    local = Path(sys.executable).parent / "moto_server"
    return [str(local)] if local.exists() else [sys.executable, "-m", "moto.server"]


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto S3 server on loopback for this test session. Yields its endpoint URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as log_file:
        try:
            process = subprocess.Popen(
                [*_moto_server_command(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            pytest.skip(f"moto_server could not start: {error}")
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.skip(f"moto_server exited early; see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            process.kill()
            pytest.skip(f"moto_server did not listen on {port} within 30 s; see {log}")
        try:
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def s3_client(endpoint: str):
    """A boto3 S3 client for the moto server (any credentials work)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    """A fresh bucket on the moto server."""
    name = f"diag-test-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name
