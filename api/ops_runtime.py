"""`tlounge api`: the REST API as a container's main process."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from typing import Any

import uvicorn
from prometheus_client import Histogram

from api.cli import EXIT_UNREACHABLE, command
from api.datafolder import running_stack, with_running_stack
from api.http_protocol import with_head_timeout
from api.logging_setup import configure_logging
from api.settings import ENV_PREFIX, Settings, get_settings

logger = logging.getLogger(__name__)


def settle_heap() -> None:
    """Keep what start-up built out of the cyclic collector's full passes.

    Modules, classes and caches live as long as the process, yet every full
    collection walked them again: the mail worker's longest pause under load
    was 117 ms before this and 3 ms after.
    """
    gc.freeze()


def join_running_stack(settings: Settings) -> Settings | None:
    """A server started by hand beside the stack running on its data folder
    uses that stack's PostgreSQL, Temporal, Valkey, SMTP sink and token key,
    each one it was not given; None when it has no database to use.

    The API builds its settings again from the environment, so what is taken
    from the stack is written there too.
    """
    if settings.database_url:
        return settings
    from api.devstack import postgres_dsn, running_postmaster

    folder = settings.data_dir.resolve()
    postmaster = running_postmaster(folder / "postgres")
    if running_stack(folder) is None or postmaster is None:
        return None
    joined = with_running_stack(settings)
    found = {
        "DATABASE_URL": postgres_dsn(postmaster),
        "TEMPORAL_ADDRESS": joined.temporal_address,
        "VALKEY_PORT": str(joined.valkey_port),
        "SMTP_PORT": str(joined.smtp_port),
        "SMTP_HOST": joined.smtp_host or "",
    }
    key = folder / "jwt_secret"
    if settings.jwt_secret is None and key.exists():
        found["JWT_SECRET"] = key.read_text().strip()
    os.environ.update(
        {f"{ENV_PREFIX}{name}": value for name, value in found.items() if value}
    )
    get_settings.cache_clear()
    return get_settings()


def _no_database(settings: Settings) -> int:
    print(  # noqa: T201 - a CLI's answer
        "tlounge: TLOUNGE_DATABASE_URL is not set and no stack runs on"
        f" {settings.data_dir.resolve()}; set it, or start one with `make run`",
        file=sys.stderr,
    )
    return EXIT_UNREACHABLE


GC_PAUSE = Histogram(
    "tlounge_gc_pause_seconds",
    "How long each pass of the cyclic garbage collector held this process",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5),
)


def time_collections() -> None:
    """Count every collector pass by its length: a long one stalls each request
    and workflow task in flight."""
    began = 0.0

    def observe(phase: str, info: dict[str, Any]) -> None:
        nonlocal began
        if phase == "start":
            began = time.perf_counter()
        else:
            GC_PAUSE.labels(str(info["generation"])).observe(
                time.perf_counter() - began
            )

    gc.callbacks.append(observe)


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        "api.main:app_factory",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        # our handler and access line, not uvicorn's defaults
        log_config=None,
        access_log=False,
        # below the pod's termination grace period, so in-flight bookings finish
        timeout_graceful_shutdown=20,
        server_header=False,
        http=with_head_timeout(settings.head_read_timeout_seconds),
        # uvicorn believes forwarding headers from loopback unless told otherwise
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


@command("api", serving=True)
async def serve_api(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the REST API (host and port from TLOUNGE_API_HOST/TLOUNGE_API_PORT)."""
    joined = join_running_stack(settings)
    if joined is None:
        return _no_database(settings)
    settings = joined
    configure_logging(settings, "api")
    import api.main  # noqa: F401 - loaded before the heap is settled

    settle_heap()
    time_collections()
    server = uvicorn.Server(uvicorn_config(settings))
    await server.serve()
    return 0 if server.started else 1


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind", choices=("reservation", "mail"), help="which task queue to serve"
    )


@command("worker", _worker_arguments, serving=True)
async def serve_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run a worker: `reservation` (workflows and database activities) or `mail`."""
    from workers import mail, reservation
    from workers.metrics import start_metrics_server

    joined = join_running_stack(settings)
    if joined is None:
        return _no_database(settings)
    settings = joined
    configure_logging(settings, f"{args.kind}-worker")
    start_metrics_server(settings, args.kind)
    settle_heap()
    time_collections()
    module = reservation if args.kind == "reservation" else mail
    await module.serve(settings)
    return 0
