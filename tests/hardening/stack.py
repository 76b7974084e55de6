"""The embedded stack on free loopback ports in a temporary folder, for scripts.

Every process is a child of ours and stops with the context, whatever
happened in between; a fault script may kill and restart any of them. Any
process still at work in the data folder after the stop is killed and named.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

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
    # processes found in the data folder once the stack stopped, and killed then
    leftovers: list[str] = field(default_factory=list)
    _hands: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        return self.stack.env["TLOUNGE_DATABASE_URL"]

    @property
    def temporal_address(self) -> str:
        return self.stack.env["TLOUNGE_TEMPORAL_ADDRESS"]

    def child(self, name: str) -> Child:
        return next(child for child in self.stack.children if child.name == name)

    def hands_on(self, name: str) -> asyncio.Lock:
        """Held around every kill and restart of a child.

        Two of them overlapping on one child each started a process, and the
        stack knows, and stops, only the last one.
        """
        return self._hands.setdefault(name, asyncio.Lock())

    async def replace_if_exited(self, child: Child) -> bool:
        """Start a child that died by itself again; one killed by a fault is not."""
        hands = self.hands_on(child.name)
        process = child.process
        if hands.locked() or process is None or process.returncode is None:
            return False
        async with hands:
            await child.start()
        return True

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


def processes_in(folder: Path) -> list[psutil.Process]:
    """Live processes that work in the folder: named in their command line, or
    with their working directory or TLOUNGE_DATA_DIR under it."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.status() != psutil.STATUS_ZOMBIE and _works_in(
                process, str(folder)
            ):
                found.append(process)
    return found


def _works_in(process: psutil.Process, folder: str) -> bool:
    return (
        any(folder in part for part in process.cmdline())
        or process.cwd().startswith(folder)
        or process.environ().get("TLOUNGE_DATA_DIR", "").startswith(folder)
    )


def end_leftovers(folder: Path) -> list[str]:
    """Kill what still runs in the folder; a line for each, to report."""
    left = processes_in(folder)
    lines = []
    for process in left:
        with contextlib.suppress(psutil.Error):
            lines.append(f"{process.pid} {' '.join(process.cmdline())}")
            process.kill()
    psutil.wait_procs(left, timeout=10)
    return lines


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
        # a few clients carry the whole load here; the limits have their own tests
        booking_rate_per_client=1_000_000,
        mail_recipient_limit=0,
    )  # type: ignore[call-arg]
    stack = Stack(settings, temporal_ui=False, load_demo=False)
    leftovers: list[str] = []
    pool = None
    try:
        await stack.start()
        pool = await asyncpg.create_pool(
            stack.env["TLOUNGE_DATABASE_URL"], min_size=0, max_size=5
        )
        yield Harness(stack, settings, pool, leftovers)
    finally:
        if pool is not None:
            pool.terminate()
        # a PostgreSQL stopped by the script must be up again for a clean stop
        if stack.postgres is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stack.postgres.ensure_postgres_running)  # type: ignore[attr-defined]
        await stack.stop()
        leftovers += await asyncio.to_thread(end_leftovers, data_dir)
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
