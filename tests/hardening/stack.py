"""The embedded stack on free loopback ports in a temporary folder, for scripts.

Every process is a child of ours and stops with the context, whatever
happened in between; a fault script may kill and restart any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from api.devstack import (
    Child,
    Stack,
    free_port,
    load_or_create_secret,
    stop_postgres,
    wait_for_port,
)
from api.settings import Settings


@dataclass
class Harness:
    stack: Stack
    settings: Settings
    pool: asyncpg.Pool

    @property
    def dsn(self) -> str:
        return self.stack.env["TLOUNGE_DATABASE_URL"]

    @property
    def temporal_address(self) -> str:
        return self.stack.env["TLOUNGE_TEMPORAL_ADDRESS"]

    def child(self, name: str) -> Child:
        return next(child for child in self.stack.children if child.name == name)

    async def kill(self, name: str) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost node would."""
        process = self.child(name).process
        assert process is not None
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()

    async def restart(self, name: str) -> None:
        child = self.child(name)
        await child.start()
        if name == "temporal":
            await wait_for_port("127.0.0.1", self.settings.temporal_port, timeout=60)

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(stop_postgres, self.stack.postgres, mode="immediate")

    async def start_postgres(self) -> None:
        server = self.stack.postgres
        await asyncio.to_thread(server.ensure_postgres_running)  # type: ignore[attr-defined]

    async def revive(self) -> list[str]:
        """Start again any child that died on its own; their names."""
        died = []
        for child in self.stack.children:
            if child.process is not None and child.process.returncode is not None:
                died.append(child.name)
                await child.start()
        return died


@contextlib.asynccontextmanager
async def running_stack(*, keep: bool = False) -> AsyncIterator[Harness]:
    data_dir = Path(tempfile.mkdtemp(prefix="tlounge-hardening-"))
    settings = Settings(
        env="dev",
        data_dir=data_dir,
        jwt_secret=load_or_create_secret(data_dir / "jwt_secret"),
        api_port=free_port(),
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        valkey_port=free_port(),
        smtp_port=free_port(),
    )  # type: ignore[call-arg]
    stack = Stack(settings, temporal_ui=False, load_demo=False)
    pool = None
    try:
        await stack.start()
        pool = await asyncpg.create_pool(
            stack.env["TLOUNGE_DATABASE_URL"], min_size=0, max_size=5
        )
        yield Harness(stack, settings, pool)
    finally:
        if pool is not None:
            pool.terminate()
        # a PostgreSQL stopped by the script must be up again for a clean stop
        if stack.postgres is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stack.postgres.ensure_postgres_running)  # type: ignore[attr-defined]
        await stack.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
