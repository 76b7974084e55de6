"""What both workers share: waits for their dependencies, a clean stop on SIGTERM.

A worker process outlives any outage of PostgreSQL or Temporal: at start it
waits for each, and a Temporal worker that the SDK gives up on is replaced
inside the process. Only a signal, or a fault of configuration, ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from api.db import create_pool
from api.errors import DEPENDENCY_DOWN
from api.resources import connect_temporal, database_url
from api.settings import Settings
from workers.metrics import temporal_runtime

logger = logging.getLogger(__name__)
T = TypeVar("T")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
FIRST_DELAY, MAX_DELAY = 0.5, 5.0
# a server that is down, starting or stopping; a wrong password or database
# name is no outage, and ends the process with its error
DATABASE_DOWN = (*DEPENDENCY_DOWN, asyncpg.ConnectionDoesNotExistError)
# what Client.connect raises for a server it cannot reach
TEMPORAL_DOWN = (RuntimeError,)


class Stopped(Exception):
    """A signal came while the process still waited for a dependency."""


class StopSignal:
    """SIGINT or SIGTERM, which every wait of a worker process gives way to."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def request(self) -> None:
        self._event.set()

    async def came_first(self, task: asyncio.Future[Any]) -> bool:
        """Wait for the task or the signal; True when the signal came first."""
        waiter = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return not task.done()

    async def unless_stopped(self, awaitable: Awaitable[T]) -> T:
        """The awaitable's result; on a signal, Stopped and the awaitable cancelled."""
        task = asyncio.ensure_future(awaitable)
        try:
            if await self.came_first(task):
                raise Stopped
            return task.result()
        finally:
            task.cancel()


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[StopSignal]:
    """A signal while a dependency is awaited ends the process cleanly."""
    stop = StopSignal()
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, stop.request)
    try:
        yield stop
    except Stopped:
        logger.info("stopped while waiting for a dependency")
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)


async def wait_until_up(
    name: str,
    connect: Callable[[], Awaitable[T]],
    stop: StopSignal,
    *,
    down: tuple[type[BaseException], ...],
) -> T:
    """Connect, and while the dependency is down, retry with backoff until a signal."""
    delay = FIRST_DELAY
    while True:
        try:
            return await stop.unless_stopped(connect())
        except down as error:
            logger.warning(
                "%s not reachable (%s); retrying in %.1fs", name, error, delay
            )
        await stop.unless_stopped(asyncio.sleep(delay))
        delay = min(delay * 2, MAX_DELAY)


@contextlib.asynccontextmanager
async def database_pool(
    settings: Settings, stop: StopSignal, *, min_size: int, max_size: int
) -> AsyncIterator[asyncpg.Pool]:
    dsn = database_url(settings)
    pool = await wait_until_up(
        "PostgreSQL",
        lambda: create_pool(dsn, min_size=min_size, max_size=max_size),
        stop,
        down=DATABASE_DOWN,
    )
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def steady_collections(interval: float) -> AsyncIterator[None]:
    """A full cyclic collection every `interval` seconds while there is work.

    Every workflow the cache evicts leaves its objects behind in reference
    cycles. Left to its thresholds, the collector let about 78,000 of them
    pile up and freed them in one pause of 100 to 200 ms, which every booking
    in flight waited out; a pass each second frees a second's worth instead.
    """

    async def collect() -> None:
        while True:
            await asyncio.sleep(interval)
            # no young collection since the last pass: nothing new has lived
            # long enough to be worth a full one
            if gc.get_count()[2] > 0:
                gc.collect()

    task = asyncio.create_task(collect())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def connect_with_retry(
    settings: Settings, stop: StopSignal, *, runtime: Runtime | None = None
) -> Client:
    """Temporal may still be starting or restarting: wait for it rather than crash."""
    return await wait_until_up(
        "Temporal",
        lambda: connect_temporal(settings, runtime=runtime),
        stop,
        down=TEMPORAL_DOWN,
    )


async def serve_until_stopped(
    settings: Settings, build: Callable[[Client], Worker], stop: StopSignal
) -> None:
    """Poll until a signal; a worker that the SDK gave up on is replaced.

    Each replacement gets a new connection: the SDK keeps a worker that failed
    its start registered on its client, which refuses a second one for the
    same task queue.
    """
    # one per process: it owns the SDK metrics port
    runtime = temporal_runtime(settings) if settings.temporal_metrics_port else None
    delay = FIRST_DELAY
    while True:
        client = await connect_with_retry(settings, stop, runtime=runtime)
        worker = build(client)
        error = await _poll_until_stopped(worker, stop)
        if error is None:
            return
        logger.error(
            "worker on %s failed (%s); replacing it in %.1fs",
            worker.task_queue, error, delay,
        )  # fmt: skip
        await stop.unless_stopped(asyncio.sleep(delay))
        delay = min(delay * 2, MAX_DELAY)


async def _poll_until_stopped(worker: Worker, stop: StopSignal) -> BaseException | None:
    """None once a signal stopped the worker, in-flight tasks done; else its error."""
    run = asyncio.create_task(worker.run())
    logger.info("worker polling %s", worker.task_queue)
    if await stop.came_first(run):
        logger.info("stopping worker on %s", worker.task_queue)
        await worker.shutdown()
        return None
    return run.exception() or RuntimeError("the worker stopped by itself")
