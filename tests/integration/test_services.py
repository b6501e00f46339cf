"""The local database servers from scripts/services.sh really replicate.

DSNs come from the environment (`. .services/env`): PG_PRIMARY_DSN, PG_REPLICA_DSN,
MYSQL_PRIMARY_DSN, MYSQL_REPLICA_DSN.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

pytestmark = pytest.mark.integration

PG_PRIMARY_DSN = os.environ.get("PG_PRIMARY_DSN", "")
PG_REPLICA_DSN = os.environ.get("PG_REPLICA_DSN", "")
MYSQL_PRIMARY_DSN = os.environ.get("MYSQL_PRIMARY_DSN", "")
MYSQL_REPLICA_DSN = os.environ.get("MYSQL_REPLICA_DSN", "")

HOW_TO = "start them with `make services` (scripts/services.sh start) and `. .services/env`"
needs_pg = pytest.mark.skipif(
    not (PG_PRIMARY_DSN and PG_REPLICA_DSN),
    reason=f"PG_PRIMARY_DSN / PG_REPLICA_DSN not set: no PostgreSQL primary+replica; {HOW_TO}",
)
needs_mysql = pytest.mark.skipif(
    not (MYSQL_PRIMARY_DSN and MYSQL_REPLICA_DSN),
    reason=f"MYSQL_PRIMARY_DSN / MYSQL_REPLICA_DSN not set: no MariaDB primary+replica; {HOW_TO}",
)

REPLICATION_DEADLINE_S = 30.0
POLL_INTERVAL_S = 0.02


def _table_name() -> str:
    return f"svc_check_{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------------------
# PostgreSQL


async def _pg_round_trip(table: str, token: str) -> None:
    import asyncpg

    primary = await asyncpg.connect(PG_PRIMARY_DSN, timeout=10)
    replica = await asyncpg.connect(PG_REPLICA_DSN, timeout=10)
    try:
        assert await primary.fetchval("SELECT pg_is_in_recovery()") is False
        assert await replica.fetchval("SELECT pg_is_in_recovery()") is True

        # The servers run with synchronous_commit=off: make this session's commits flush locally
        # so that pg_current_wal_lsn() below is at or past the commit record.
        await primary.execute("SET synchronous_commit = on")
        await primary.execute(f'CREATE TABLE "{table}" (id integer PRIMARY KEY, token text NOT NULL)')
        try:
            await primary.execute(f'INSERT INTO "{table}" (id, token) VALUES ($1, $2)', 1, token)
            target_lsn = await primary.fetchval("SELECT pg_current_wal_lsn()::text")

            deadline = time.monotonic() + REPLICATION_DEADLINE_S
            while not await replica.fetchval(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", target_lsn
            ):
                assert time.monotonic() < deadline, (
                    f"replica did not replay up to {target_lsn} within {REPLICATION_DEADLINE_S}s"
                )
                await asyncio.sleep(POLL_INTERVAL_S)

            assert await replica.fetchval(f'SELECT token FROM "{table}" WHERE id = 1') == token
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await replica.execute(f'INSERT INTO "{table}" (id, token) VALUES (2, $1)', token)
        finally:
            await primary.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        await replica.close()
        await primary.close()


@needs_pg
def test_postgres_replica_streams_from_primary() -> None:
    asyncio.run(_pg_round_trip(_table_name(), uuid.uuid4().hex))


# --------------------------------------------------------------------------------------------------
# MariaDB


def _mysql_connect(dsn: str) -> Any:
    import pymysql

    url = urlparse(dsn)
    assert url.scheme in ("mysql", "mariadb"), f"unexpected DSN scheme in {url.scheme!r}"
    return pymysql.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/") or None,
        autocommit=True,
        connect_timeout=10,
        read_timeout=REPLICATION_DEADLINE_S + 30,
    )


def _scalar(conn: Any, sql: str, *args: Any) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, args or None)
        row = cur.fetchone()
    assert row is not None, sql
    return row[0]


def _wait_for_replica(primary: Any, replica: Any) -> str:
    pos = _scalar(primary, "SELECT @@gtid_binlog_pos")
    result = _scalar(replica, "SELECT MASTER_GTID_WAIT(%s, %s)", pos, REPLICATION_DEADLINE_S)
    assert result == 0, f"replica did not reach GTID {pos!r} within {REPLICATION_DEADLINE_S}s"
    return str(pos)


@needs_mysql
def test_mariadb_replica_follows_primary_by_gtid() -> None:
    table = _table_name()
    token = uuid.uuid4().hex
    primary = _mysql_connect(MYSQL_PRIMARY_DSN)
    replica = _mysql_connect(MYSQL_REPLICA_DSN)
    try:
        assert _scalar(primary, "SELECT @@read_only") == 0
        assert _scalar(replica, "SELECT @@read_only") == 1
        assert _scalar(primary, "SELECT @@server_id") != _scalar(replica, "SELECT @@server_id")

        with primary.cursor() as cur:
            cur.execute(f"CREATE TABLE `{table}` (id INT PRIMARY KEY, token VARCHAR(64) NOT NULL)")
        try:
            with primary.cursor() as cur:
                cur.execute(f"INSERT INTO `{table}` (id, token) VALUES (%s, %s)", (1, token))
            pos = _wait_for_replica(primary, replica)
            assert pos, "the primary wrote no GTID"
            assert _scalar(replica, f"SELECT token FROM `{table}` WHERE id = %s", 1) == token

            with replica.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                columns = [d[0] for d in cur.description]
                status = dict(zip(columns, cur.fetchone(), strict=True))
            assert status["Slave_IO_Running"] == "Yes"
            assert status["Slave_SQL_Running"] == "Yes"
            assert status["Using_Gtid"] == "Slave_Pos"

            # read_only must hold for the DSN's user too. sql_log_bin=0 first: should the write go
            # through after all, it must not leave an errant GTID that would break replication.
            import pymysql

            with replica.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                with pytest.raises(pymysql.err.OperationalError) as refused:
                    cur.execute(f"INSERT INTO `{table}` (id, token) VALUES (%s, %s)", (2, token))
            assert refused.value.args[0] == 1290, refused.value  # ER_OPTION_PREVENTS_STATEMENT
        finally:
            with primary.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            # Leave the replica in step with the primary for whatever runs next.
            _wait_for_replica(primary, replica)
    finally:
        replica.close()
        primary.close()
