"""What both workers share: a Temporal connection that waits, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.worker import Worker

from api.logging_setup import configure_logging
from api.resources import connect_temporal
from api.settings import Settings, settings_or_exit
from workers.metrics import start_metrics_server, temporal_runtime

logger = logging.getLogger(__name__)


async def connect_with_retry(settings: Settings, *, attempts: int = 120) -> Client:
    """Temporal may still be starting or restarting: wait for it rather than crash."""
    runtime = temporal_runtime(settings) if settings.temporal_metrics_port else None
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return await connect_temporal(settings, runtime=runtime)
        except RuntimeError as error:
            if attempt == attempts:
                raise
            logger.warning(
                "Temporal not reachable (%s); retrying in %.1fs", error, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


async def run_until_signal(worker: Worker) -> None:
    """Poll until SIGINT or SIGTERM; in-flight tasks finish before the worker stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        logger.info("worker polling %s", worker.task_queue)
        await stop.wait()
        logger.info("stopping worker on %s", worker.task_queue)


def worker_main(name: str, serve: Callable[[Settings], Awaitable[None]]) -> None:
    """A worker process: settings checked, logs and metrics set up, served until a signal."""
    settings = settings_or_exit()
    configure_logging(settings, f"{name}-worker")
    start_metrics_server(settings)
    asyncio.run(serve(settings))
