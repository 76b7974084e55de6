import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from api.db import (
    _MIGRATION_LOCK_KEY,
    MigrationError,
    SessionFree,
    create_pool,
    load_migrations,
    migrate,
)


async def test_migrate_twice_applies_nothing_second_time(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn) == []
        versions = await conn.fetch(
            "SELECT version FROM public.schema_migrations ORDER BY 1"
        )
    assert [row["version"] for row in versions] == [
        m.version for m in load_migrations()
    ]


async def test_migrate_concurrently_on_fresh_database(pg_dsn: str) -> None:
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute("DROP DATABASE IF EXISTS migrate_race")
    await admin.execute("CREATE DATABASE migrate_race")
    dsn = pg_dsn.replace("/postgres?", "/migrate_race?")
    try:
        conns = [await asyncpg.connect(dsn) for _ in range(3)]
        results = await asyncio.gather(*(migrate(conn) for conn in conns))
        for conn in conns:
            await conn.close()
        applied = sorted(v for result in results for v in result)
        assert applied == [m.version for m in load_migrations()]
        check = await asyncpg.connect(dsn)
        schemas = {
            row["nspname"]
            for row in await check.fetch("SELECT nspname FROM pg_namespace")
        }
        await check.close()
        assert {
            "client",
            "admin",
            "coworking",
            "reservation",
            "images",
            "notifications",
        } <= schemas
    finally:
        await admin.execute("DROP DATABASE IF EXISTS migrate_race WITH (FORCE)")
        await admin.close()


async def test_migrate_refuses_edited_migration(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = load_migrations()[0]
        await conn.execute(
            "UPDATE public.schema_migrations SET checksum = 'edited'"
            " WHERE version = $1",
            first.version,
        )
        try:
            with pytest.raises(MigrationError, match="was edited after it was applied"):
                await migrate(conn)
        finally:
            await conn.execute(
                "UPDATE public.schema_migrations SET checksum = $2 WHERE version = $1",
                first.version,
                first.checksum,
            )


@contextlib.asynccontextmanager
async def _database_before(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, name: str, version: int
) -> AsyncIterator[asyncpg.Connection]:
    """A database of its own, as a deployment before migration `version` left
    it; the migrations to come are loaded again once the block has set it up."""
    every = load_migrations()
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(pg_dsn.replace("/postgres?", f"/{name}?"))
    try:
        monkeypatch.setattr(
            "api.db.load_migrations", lambda: [m for m in every if m.version < version]
        )
        await migrate(conn)
        monkeypatch.setattr("api.db.load_migrations", lambda: every)
        yield conn
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_a_grace_of_zero_becomes_none_and_is_refused_after(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _database_before(pg_dsn, monkeypatch, "grace_zero", 400) as conn:
        # with a grace of 0, which 0400 forbids
        insert = (
            "INSERT INTO coworking.coworkings"
            " (id, name, address, timezone, checkin_grace_minutes)"
            " VALUES (gen_random_uuid(), $1, 'a street', 'UTC', $2)"
        )
        await conn.execute(insert, "zero", 0)
        await conn.execute(insert, "ten", 10)

        assert 400 in await migrate(conn)

        rows = await conn.fetch(
            "SELECT name, checkin_grace_minutes FROM coworking.coworkings ORDER BY 1"
        )
        assert [tuple(row) for row in rows] == [("ten", 10), ("zero", None)]
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, "again", 0)


async def test_open_rows_get_deadlines_read_from_their_coworking_of_today(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows claimed before 0900 kept no deadlines: the sweep reads them from
    the coworking's rules of today and the row's last change."""
    async with _database_before(pg_dsn, monkeypatch, "deadlines", 900) as conn:
        coworking = await conn.fetchval(
            "INSERT INTO coworking.coworkings"
            " (id, name, address, timezone, hold_minutes, checkin_grace_minutes)"
            " VALUES (gen_random_uuid(), 'c', 'a street', 'UTC', 45, 10) RETURNING id"
        )
        changed = datetime(2027, 3, 1, 8, tzinfo=UTC)
        starts_at = datetime(2027, 3, 2, 9, tzinfo=UTC)
        for status in ("held", "confirmed", "completed"):
            await conn.execute(
                "INSERT INTO reservation.reservations (id, client_id, seat_id,"
                " coworking_id, starts_at, ends_at, status, updated_at)"
                " VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),"
                " $1, $2::timestamptz, $2::timestamptz + interval '1 hour', $3, $4)",
                coworking, starts_at, status, changed,
            )  # fmt: skip

        assert 900 in await migrate(conn)

        rows = await conn.fetch(
            "SELECT status, hold_expires_at, no_show_at"
            " FROM reservation.reservations ORDER BY status"
        )
        graced = starts_at + timedelta(minutes=10)
        assert [tuple(row) for row in rows] == [
            ("completed", None, None),
            ("confirmed", None, graced),
            ("held", changed + timedelta(minutes=45), graced),
        ]


async def test_a_released_connection_comes_back_without_its_open_transaction(
    pg_dsn: str,
) -> None:
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (n int)")
            first = await conn.fetchval("SELECT pg_backend_pid()")
        async with pool.acquire() as conn:
            # the same session, so only the rollback can have dropped the table
            assert await conn.fetchval("SELECT pg_backend_pid()") == first
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
    finally:
        await pool.close()


class _UnlockInterrupted(SessionFree):
    """A connection whose task is cancelled as it releases the migration lock."""

    async def execute(self, query: str, *args: object, **kwargs: object) -> str:
        if "pg_advisory_unlock" in query:
            raise asyncio.CancelledError
        return await super().execute(query, *args, **kwargs)


async def test_a_migration_that_cannot_unlock_closes_its_connection(
    pg_dsn: str,
) -> None:
    conn = await asyncpg.connect(pg_dsn, connection_class=_UnlockInterrupted)
    other = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(asyncio.CancelledError):
            await migrate(conn)
        assert conn.is_closed()
        # the session went with it, so its lock is free for the next migrator;
        # the server notices the closed socket a moment later
        taken = False
        for _ in range(50):
            taken = await other.fetchval(
                "SELECT pg_try_advisory_lock($1)", _MIGRATION_LOCK_KEY
            )
            if taken:
                break
            await asyncio.sleep(0.05)
        assert taken
        await other.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
    finally:
        await other.close()


async def test_a_hung_database_answers_503_within_the_apis_query_timeout(
    db: asyncpg.Pool, pg_dsn: str, valkey_server: str, tmp_path
) -> None:
    import time

    import httpx

    from api.main import create_app
    from api.resources import API_QUERY_TIMEOUT, open_resources
    from tests.conftest import make_settings
    from tests.pg_proxy import PostgresProxy

    proxy = PostgresProxy(pg_dsn, tmp_path / "pg")
    await proxy.restore()
    settings = make_settings(database_url=proxy.dsn, valkey_url=valkey_server)
    resources = await open_resources(settings)
    app = create_app(settings, resources=resources)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/api/coworkings")).status_code == 200
            proxy.freeze()
            began = time.monotonic()
            hung = await http.get("/api/coworkings")
            waited = time.monotonic() - began
            proxy.thaw()
            again = await http.get("/api/coworkings")
    finally:
        proxy.thaw()
        resources.pool.terminate()
        await resources.close()
        proxy.cut()

    assert (hung.status_code, hung.json()["error"]) == (503, "unavailable")
    # the query's timeout, and the connection's release after it, well inside
    # the 20 s a booking promises
    assert API_QUERY_TIMEOUT <= waited < 15
    assert hung.headers["retry-after"]
    assert again.status_code == 200


async def test_requests_queued_on_a_hung_database_are_answered_by_the_deadline(
    db: asyncpg.Pool, pg_dsn: str, valkey_server: str, tmp_path, monkeypatch
) -> None:
    """More requests than connections, with PostgreSQL hung: each waited for a
    connection, whose replacement waited out asyncpg's 60 s connect timeout,
    and the last heard its 503 after three minutes."""
    import time

    import httpx

    import api.deadline
    from api.main import create_app
    from api.resources import open_resources
    from tests.conftest import make_settings
    from tests.pg_proxy import PostgresProxy

    monkeypatch.setattr(api.deadline, "REQUEST_DEADLINE_SECONDS", 8.0)
    proxy = PostgresProxy(pg_dsn, tmp_path / "pg")
    await proxy.restore()
    settings = make_settings(
        database_url=proxy.dsn,
        valkey_url=valkey_server,
        database_pool_min=1,
        database_pool_max=2,
    )
    resources = await open_resources(settings)
    app = create_app(settings, resources=resources)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def timed(http: httpx.AsyncClient) -> tuple[float, httpx.Response]:
        began = time.monotonic()
        response = await http.get("/api/coworkings")
        return time.monotonic() - began, response

    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", timeout=60
        ) as http:
            assert (await http.get("/api/coworkings")).status_code == 200
            proxy.freeze()
            answers = await asyncio.wait_for(
                asyncio.gather(*(timed(http) for _ in range(12))), 30
            )
            proxy.thaw()
    finally:
        proxy.thaw()
        resources.pool.terminate()
        await resources.close()
        proxy.cut()

    assert {(r.status_code, r.json()["error"]) for _, r in answers} == {
        (503, "unavailable")
    }
    assert max(waited for waited, _ in answers) < 8.0 + 2
    assert {"request: no answer within 8 s; retry shortly"} <= {
        r.json()["description"] for _, r in answers
    }
