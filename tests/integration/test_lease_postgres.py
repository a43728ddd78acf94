"""The lease contract on a real PostgreSQL, plus what only the Postgres backend does."""

import logging
import time
import uuid
from collections.abc import Iterator

import pytest

from diag_assets.core.errors import DiagInputError
from diag_assets.core.storage.lease.base import Lease, LeaseLost, LeaseUnavailable
from diag_assets.core.storage.lease.postgres import PostgresLease, _lock_tag, advisory_lock_id
from tests.unit.test_lease import LeaseContract

pytestmark = pytest.mark.postgres

LOCK_ID_SQL = (
    "SELECT ('x' || left(encode(sha256(convert_to(%s, 'UTF8')), 'hex'), 16))::bit(64)::bigint"
)

HOLDERS_SQL = """
SELECT l.pid, a.application_name
FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
  AND l.classid = ((%(id)s::bigint >> 32) & 4294967295)::oid
  AND l.objid = (%(id)s::bigint & 4294967295)::oid
"""


@pytest.fixture
def admin(postgres_dsn: str) -> Iterator:
    import psycopg2

    connection = psycopg2.connect(postgres_dsn)
    connection.autocommit = True
    yield connection
    connection.close()


def query(connection, sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class TestPostgresLease(LeaseContract):
    backend = "postgres"

    @pytest.fixture
    def target(self, postgres_dsn: str) -> str:
        return postgres_dsn

    def make(self, target: str) -> Lease:
        return PostgresLease(target)


def test_unreachable_server_is_unavailable():
    lease = PostgresLease(
        "host=127.0.0.1 port=1 dbname=postgres user=postgres", connect_timeout_s=2
    )
    started = time.monotonic()
    with pytest.raises(LeaseUnavailable) as info, lease.hold("ck-1", wait_s=30):
        pytest.fail("held a lease without a server")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "127.0.0.1:1" in message and "Fix:" in message and "session-mode" in message
    with pytest.raises(LeaseUnavailable, match="127.0.0.1:1"):
        lease.is_held("ck-1")
    lease.close()


def test_dsn_password_never_reaches_messages():
    lease = PostgresLease("postgresql://postgres:s3cret@127.0.0.1:1/postgres", connect_timeout_s=2)
    with pytest.raises(LeaseUnavailable) as info:
        lease.is_held("ck-1")
    assert "s3cret" not in str(info.value)


def test_malformed_dsn_is_refused():
    with pytest.raises(ValueError, match="Invalid lease DSN"):
        PostgresLease("host=127.0.0.1 port")


@pytest.mark.parametrize(
    "dsn", ["host=127.0.0.1 password=hunter2 bogus", "postgresql://diag:hunter2@[::1/diag"]
)
def test_a_malformed_dsn_names_the_setting_and_the_fix_without_the_password(dsn: str):
    with pytest.raises(DiagInputError) as raised:
        PostgresLease(dsn)
    message = str(raised.value)
    assert "Invalid lease DSN" in message and "Fix: set DIAG_PG_DSN" in message
    assert "host=127.0.0.1 port=5432 dbname=diag user=diag" in message
    assert "hunter2" not in message and raised.value.__cause__ is None


def test_a_terminated_lease_session_loses_the_lease(postgres_dsn: str, admin):
    key = f"ck-{uuid.uuid4().hex}"
    lease = PostgresLease(postgres_dsn, holder="fenced-holder")
    other = PostgresLease(postgres_dsn)
    with lease.hold(key, wait_s=0) as grant:
        grant.ensure_held()
        [(pid, name)] = query(admin, HOLDERS_SQL, {"id": advisory_lock_id(key)})
        assert name == "diag-lease fenced-holder"
        query(admin, "SELECT pg_terminate_backend(%s)", (pid,))
        with other.hold(key, wait_s=5) as taken:
            taken.ensure_held()  # the second holder's proof stands, the first one's fails
            with pytest.raises(LeaseLost) as lost:
                grant.ensure_held()
        with pytest.raises(LeaseLost):
            grant.ensure_held()  # a dead session never comes back
    message = str(lost.value)
    assert f"Lease {key!r} (postgres backend) was lost" in message
    assert "lease session to PostgreSQL" in message and "is gone" in message
    assert "Fix: nothing to repair, retry the run" in message
    lease.close()
    other.close()


def test_a_lock_released_behind_the_holders_back_loses_the_lease(postgres_dsn: str):
    # What a transaction-mode pooler does: the session is still there, the lock is not.
    key = f"ck-{uuid.uuid4().hex}"
    lease = PostgresLease(postgres_dsn)
    attempt = lease._open_attempt(key)
    try:
        assert attempt.try_acquire() and attempt.why_lost() is None
        with attempt._connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (advisory_lock_id(key),))
        assert "no longer holds advisory lock" in (attempt.why_lost() or "")
    finally:
        attempt.abandon()
    lease.close()


@pytest.mark.parametrize("key", ["ck-abc", "x", "ck-" + "f" * 64, "K" * 200])
def test_lock_id_is_sha256_prefix_as_signed_int64(admin, key: str):
    lock_id = advisory_lock_id(key)
    # The SQL the module docstring gives operators computes the same id.
    assert query(admin, LOCK_ID_SQL, (key,)) == [(lock_id,)]
    assert -(2**63) <= lock_id < 2**63


def test_each_held_lease_has_a_dedicated_session_shown_in_pg_locks(postgres_dsn: str, admin):
    # "ck-" + "f" * 64 has a negative id: the operator query must handle the sign.
    keys = ["ck-" + "f" * 64, f"ck-{uuid.uuid4().hex}"]
    assert advisory_lock_id(keys[0]) < 0
    lease = PostgresLease(postgres_dsn, holder="run-42")

    def lease_sessions() -> int:
        rows = query(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'diag-lease run-42'",
        )
        return rows[0][0]

    with lease.hold(keys[0], wait_s=0), lease.hold(keys[1], wait_s=0):
        holders = [query(admin, HOLDERS_SQL, {"id": advisory_lock_id(k)}) for k in keys]
        assert all(len(rows) == 1 for rows in holders), holders
        assert holders[0][0][0] != holders[1][0][0]  # two backends, one per lease
        assert {rows[0][1] for rows in holders} == {"diag-lease run-42"}
        assert lease_sessions() == 2
    assert all(query(admin, HOLDERS_SQL, {"id": advisory_lock_id(k)}) == [] for k in keys)
    # Released leases close their connections.
    deadline = time.monotonic() + 5
    while lease_sessions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lease_sessions() == 0
    lease.close()


def test_is_held_reads_pg_locks_and_matches_the_lock_tag(postgres_dsn: str, admin):
    key = f"ck-{uuid.uuid4().hex}"
    classid, objid = _lock_tag(advisory_lock_id(key))
    # A lock taken by any session, not only by PostgresLease, counts as held.
    query(admin, "SELECT pg_advisory_lock(%s)", (advisory_lock_id(key),))
    lease = PostgresLease(postgres_dsn)
    try:
        assert lease.is_held(key)
        rows = query(
            admin,
            "SELECT classid::bigint, objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        )
        assert rows == [(classid, objid)]
    finally:
        query(admin, "SELECT pg_advisory_unlock(%s)", (advisory_lock_id(key),))
    assert not lease.is_held(key)
    lease.close()


def test_is_held_reconnects_after_its_connection_is_killed(postgres_dsn: str, admin):
    lease = PostgresLease(postgres_dsn, holder="probe-test")
    assert not lease.is_held("ck-1")
    query(
        admin,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'diag-lease probe-test'",
    )
    with lease.hold("ck-1", wait_s=0):
        assert lease.is_held("ck-1")
    lease.close()


def test_lost_connection_is_logged_not_raised(postgres_dsn: str, admin, caplog):
    key = f"ck-{uuid.uuid4().hex}"
    lease = PostgresLease(postgres_dsn)
    with (
        caplog.at_level(logging.WARNING, logger="diag_assets.core.storage.lease.postgres"),
        lease.hold(key, wait_s=0),
    ):
        [(pid, _)] = query(admin, HOLDERS_SQL, {"id": advisory_lock_id(key)})
        query(admin, "SELECT pg_terminate_backend(%s)", (pid,))
    assert "lost before release" in caplog.text
    assert not lease.is_held(key)
    with lease.hold(key, wait_s=0) as grant:
        assert not grant.waited
    lease.close()


def test_lease_session_survives_idle_session_timeout_and_has_keepalives(postgres_dsn: str):
    lease = PostgresLease(postgres_dsn)
    connection = lease._connect()
    try:
        settings = dict(
            query(
                connection,
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('idle_session_timeout', 'tcp_keepalives_idle', 'tcp_keepalives_count')",
            )
        )
    finally:
        connection.close()
    assert settings.get("idle_session_timeout", "0") == "0"
    # Over TCP the server reports what the session set.
    assert settings["tcp_keepalives_idle"] == "30"
    assert settings["tcp_keepalives_count"] == "3"


def test_lease_sessions_time_out_on_the_client_side_too(postgres_dsn: str):
    lease = PostgresLease(postgres_dsn)
    connection = lease._connect()
    try:
        parameters = connection.get_dsn_parameters()
    finally:
        connection.close()
    assert parameters["keepalives"] == "1"
    assert parameters["tcp_user_timeout"] == "60000"
