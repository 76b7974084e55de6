import asyncio

import asyncpg
import pytest

from api.db import MigrationError, load_migrations, migrate


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
