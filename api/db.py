"""The asyncpg pool and the versioned SQL migrations."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same in every process.
_MIGRATION_LOCK_KEY = 0x746C6F756E6765


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    """An applied migration no longer matches its file."""


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("api.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text())
            )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migrations share a version: {versions}")
    return found


# far past any pool's command timeout: a migration waits for another process's
# and may rewrite a large table
MIGRATION_TIMEOUT = 3600.0


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply what is missing; safe to run twice and from two processes at once."""
    applied_now = []
    # The lock serialises concurrent starters; the second one finds the work done.
    await conn.execute(
        "SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY, timeout=MIGRATION_TIMEOUT
    )
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS public.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch(
            "SELECT version, checksum FROM public.schema_migrations"
        )
        done = {row["version"]: row["checksum"] for row in rows}
        for migration in load_migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was edited "
                        "after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT)
                await conn.execute(
                    "INSERT INTO public.schema_migrations (version, name, checksum)"
                    " VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration.version)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
        except BaseException:
            # a pooled connection is not reset on release (see SessionFree):
            # one that may still hold the lock must not go back to the pool
            conn.terminate()
            raise
    return applied_now


class SessionFree(asyncpg.Connection):  # type: ignore[misc]
    """A connection that the pool hands on without a reset query.

    The default reset (unlock advisory locks, close cursors, unlisten, reset
    settings) is a second round trip on every release: a one-query acquire
    took 260 us instead of 117. Nothing we run leaves session state behind: no
    SET, LISTEN or open cursor, and no session lock but the migration's, which
    `migrate` releases or takes down with its connection. The pool still rolls
    back a transaction left open.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    command_timeout: float = 30,
    connect_timeout: float = 60,
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        timeout=connect_timeout,
        connection_class=SessionFree,
    )
    assert pool is not None
    return pool
