"""The service fixtures themselves: a real Postgres database and a real moto S3 server."""

import pytest

from tests.services import s3_client


@pytest.mark.postgres
def test_postgres_database_is_real_and_empty(postgres_dsn):
    import psycopg2

    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert cursor.fetchone() == (0,)


@pytest.mark.s3
def test_moto_server_round_trips_an_object(s3_endpoint, s3_bucket):
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
