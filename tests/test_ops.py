"""`tlounge create-owner`: the only way an owner account comes to be."""

import argparse
import os
import sys
import uuid

import asyncpg
import pytest

from api.datafolder import FolderInUse, hold_folder
from api.devstack import (
    free_port,
    postgres_for_command,
    postgres_is_running,
    start_postgres,
    stop_postgres,
)
from api.ops import (
    EXIT_BAD_INPUT,
    EXIT_NO_DATABASE,
    EXIT_TAKEN,
    PASSWORD_ENV,
    create_owner,
)
from api.ops_reservations import EXIT_UNREACHABLE
from tests.conftest import make_settings, run_tlounge

STRONG = "violet-harbour-97-lantern"


def _args(email: str = "Ops@Example.com", generate: bool = False) -> argparse.Namespace:
    return argparse.Namespace(email=email, generate=generate)


async def _sign_in(api, email: str, password: str):
    return await api.post(
        "/api/admin/login", json={"email": email, "password": password}
    )


async def test_create_owner_from_environment(
    api, db, settings, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG)

    code = await create_owner(settings, _args())

    assert code == 0
    assert "owner Ops@example.com created" in capsys.readouterr().out
    row = await db.fetchrow("SELECT email, email_key, role FROM admin.admins")
    assert dict(row) == {
        "email": "Ops@example.com",
        "email_key": "ops@example.com",
        "role": "owner",
    }
    response = await _sign_in(api, "ops@example.com", STRONG)
    assert response.json()["admin"]["role"] == "owner"


async def test_create_owner_generated_password_printed_once(
    api, db, settings, monkeypatch, capsys
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)

    code = await create_owner(settings, _args(generate=True))

    assert code == 0
    out = capsys.readouterr().out
    password = out.split("password (shown only now): ", 1)[1].strip()
    assert len(password) >= 20
    assert (await _sign_in(api, "ops@example.com", password)).status_code == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-1", "is shorter than 12 characters"),
        ("aaaaaaaaaaaaaaaa", "repeats too few different characters"),
        (
            "my-ops-password-2024",
            "contains the email's name, before the @",
        ),
        ("x" * 60 + "y" * 41 + "abcdef", "is longer than 100 characters"),
        ("password1234",
         "is too easy to guess (This is a very common password)"),
        ("123456123456",
         'is too easy to guess (Repeats like "abcabcabc" are only slightly harder'
         ' to guess than "abc")'),
        ("qwertyuiop123",
         "is too easy to guess (This is a very common password)"),
        # invisible characters count for nothing: eight shown
        ("\u200b\u2060\ufeff\u202eZq9!xT#k", "is shorter than 12 characters"),
        ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11\uff12\uff13\uff14",
         "is too easy to guess (This is a very common password)"),
    ],
    ids=["short", "repetitive", "has-email", "long", "common", "repeated-run",
         "keyboard-row", "invisible", "full-width"],
)  # fmt: skip
async def test_create_owner_refuses_weak_password(
    db, settings, monkeypatch, capsys, password, reason
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, password)

    code = await create_owner(settings, _args())

    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"tlounge: password refused: it {reason}"
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 0


async def test_create_owner_refuses_bad_email(
    db, settings, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG)

    code = await create_owner(settings, _args(email="ops@localhost"))

    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(
        "tlounge: --email: not a valid email address"
    )


async def test_create_owner_refuses_taken_email(
    db, settings, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG)
    assert await create_owner(settings, _args()) == 0

    code = await create_owner(settings, _args(email="OPS@example.com"))

    assert code == EXIT_TAKEN
    assert "already exists" in capsys.readouterr().err
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 1


async def test_create_owner_without_password_source(
    db, settings, monkeypatch, capsys
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)

    code = await create_owner(settings, _args())

    assert code == EXIT_BAD_INPUT
    assert "set TLOUNGE_OWNER_PASSWORD, use --generate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("answers", "expected"),
    [([STRONG, STRONG], 0), ([STRONG, STRONG + "!"], EXIT_BAD_INPUT)],
    ids=["same-twice", "differ"],
)  # fmt: skip
async def test_create_owner_prompts_twice(
    db, settings, monkeypatch, answers, expected
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    replies = iter(answers)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(replies))

    assert await create_owner(settings, _args()) == expected
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == (
        1 if expected == 0 else 0
    )


async def test_create_owner_unreachable_database(monkeypatch, capsys) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG)
    settings = make_settings(database_url="postgresql://nobody@127.0.0.1:1/none")

    code = await create_owner(settings, _args())

    assert code == EXIT_NO_DATABASE
    assert capsys.readouterr().err.startswith("tlounge: cannot reach the database")


async def test_create_owner_on_the_embedded_database(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG)
    settings = make_settings(data_dir=tmp_path / "data")

    assert await create_owner(settings, _args()) == 0

    # the cluster it started for this run is stopped again; start it to look
    assert not postgres_is_running(tmp_path / "data" / "postgres")
    server, dsn = start_postgres(tmp_path / "data" / "postgres")
    try:
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT role FROM admin.admins") == "owner"
        await conn.close()
    finally:
        stop_postgres(server, mode="immediate")


@pytest.mark.parametrize("held", [True, False], ids=["under-a-stack", "by-hand"])
async def test_create_owner_leaves_a_running_embedded_database_running(
    monkeypatch, tmp_path, held
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG)
    settings = make_settings(data_dir=tmp_path / "data")
    # as under `tlounge dev`, which holds the folder and stops the server itself
    lock = hold_folder(tmp_path / "data") if held else None
    server, dsn = start_postgres(tmp_path / "data" / "postgres")
    try:
        assert await create_owner(settings, _args()) == 0

        assert postgres_is_running(tmp_path / "data" / "postgres")
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT count(*) FROM admin.admins") == 1
        await conn.close()
    finally:
        stop_postgres(server, mode="immediate")
        if lock is not None:
            lock.release()


async def test_embedded_database_command_holds_the_folder_while_it_runs(
    tmp_path,
) -> None:
    folder = tmp_path.resolve() / "data"

    async with postgres_for_command(folder) as dsn:
        # a `tlounge dev` started now would adopt a server this command stops
        with pytest.raises(FolderInUse) as caught:
            hold_folder(folder)
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()

    assert str(caught.value) == (
        f"the data folder {folder} is in use by another tlounge process "
        f"(PID {os.getpid()})"
    )
    assert not postgres_is_running(folder / "postgres")
    hold_folder(folder).release()


def test_tlounge_command_on_a_held_folder_without_its_database_refuses(
    tmp_path,
) -> None:
    folder = tmp_path.resolve() / "data"
    # a stack that holds the folder and has not started its PostgreSQL yet
    lock = hold_folder(folder)
    try:
        result = run_tlounge("migrate", env={"TLOUNGE_DATA_DIR": str(folder)})
    finally:
        lock.release()

    assert result.returncode == EXIT_UNREACHABLE, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"tlounge: the data folder {folder} is in use by another tlounge process "
        f"(PID {os.getpid()}), and no PostgreSQL runs there yet; try again once "
        "it is up"
    )
    assert not (folder / "postgres").exists()


def test_tlounge_reservation_command_stops_the_embedded_database_it_started(
    tmp_path,
) -> None:
    # a stack's data folder whose stack is not running
    server, _ = start_postgres(tmp_path / "data" / "postgres")
    stop_postgres(server)
    # no Temporal answers: the command fails after it started the database
    env = {
        "TLOUNGE_DATA_DIR": str(tmp_path / "data"),
        "TLOUNGE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    result = run_tlounge("reservation", "show", str(uuid.uuid4()), env=env)

    assert result.returncode == EXIT_UNREACHABLE, result.stderr
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    assert not postgres_is_running(tmp_path / "data" / "postgres")
    # and it let go of the folder
    hold_folder(tmp_path / "data").release()


@pytest.mark.parametrize(
    "command",
    [
        ("reservation", "show", str(uuid.uuid4())),
        ("reservation", "cancel", str(uuid.uuid4())),
        ("availability", "rebuild"),
        ("demo",),
    ],
    ids=["reservation-show", "reservation-cancel", "availability-rebuild", "demo"],
)
def test_tlounge_reading_command_on_a_folder_without_a_stack_refuses_and_makes_none(
    tmp_path, command
) -> None:
    folder = tmp_path.resolve() / "data"
    env = {
        "TLOUNGE_DATA_DIR": str(folder),
        "TLOUNGE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }

    result = run_tlounge(*command, env=env)

    assert (result.returncode, result.stdout, result.stderr) == (
        EXIT_UNREACHABLE,
        "",
        f"tlounge: TLOUNGE_DATABASE_URL is not set and {folder} holds no stack's"
        " database; set it, or set TLOUNGE_DATA_DIR to a stack's data folder\n",
    )
    assert not folder.exists()


@pytest.mark.parametrize(
    "command", [("failed",), ("retry", "--all")], ids=["failed", "retry-all"]
)
def test_tlounge_notifications_on_a_folder_without_a_stack_makes_none(
    tmp_path, command
) -> None:
    folder = tmp_path / "data"
    env = {
        "TLOUNGE_DATA_DIR": str(folder),
        "TLOUNGE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }

    result = run_tlounge("notifications", *command, env=env)

    assert result.returncode == EXIT_UNREACHABLE, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("tlounge: Temporal is unreachable: ")
    assert not folder.exists()


@pytest.mark.parametrize(
    "command",
    [("notifications", "retry", "--all"), ("reservation", "show", str(uuid.uuid4()))],
    ids=["notifications", "reservation-show"],
)
def test_tlounge_temporal_command_without_a_stack_or_an_address_refuses(
    tmp_path, command
) -> None:
    folder = tmp_path.resolve() / "data"

    # a database named, but no Temporal: the default port may be another stack's
    result = run_tlounge(
        *command,
        env={
            "TLOUNGE_DATA_DIR": str(folder),
            "TLOUNGE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        },
    )

    assert (result.returncode, result.stdout, result.stderr) == (
        EXIT_UNREACHABLE,
        "",
        f"tlounge: no stack runs on {folder}; start one there, or set"
        " TLOUNGE_TEMPORAL_ADDRESS\n",
    )
    assert not folder.exists()


def test_tlounge_reservation_without_a_stack_names_both_settings_it_needs(
    tmp_path,
) -> None:
    folder = tmp_path.resolve() / "data"
    result = run_tlounge(
        "reservation", "show", str(uuid.uuid4()),
        env={"TLOUNGE_DATA_DIR": str(folder)},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        EXIT_UNREACHABLE,
        f"tlounge: no stack runs on {folder}; start one there, or set"
        " TLOUNGE_TEMPORAL_ADDRESS and TLOUNGE_DATABASE_URL\n",
    )


@pytest.mark.parametrize(
    ("action", "said"),
    [
        (("retry", "{id}", "--all"), "--all takes no reservation id"),
        (("failed", "{id}"), "failed takes no reservation id"),
        # asked before any stack is looked for: retrying whatever failed is
        # asked for by name, never by leaving the id out
        (("retry",), "name a reservation id or --all"),
        (("failed", "--all"), "--all goes with retry"),
    ],
    ids=["retry-all", "failed", "retry-nothing", "failed-all"],
)
def test_tlounge_notifications_refuses_what_it_would_ignore_or_guess(
    tmp_path, action: tuple[str, ...], said: str
) -> None:
    reservation_id = "3f1c9a52-0a4e-4c55-9d61-5b0e2f7f2a10"
    result = run_tlounge(
        "notifications", *(word.format(id=reservation_id) for word in action),
        env={"TLOUNGE_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        EXIT_BAD_INPUT,
        f"tlounge: {said}\n",
    )


def test_tlounge_reservation_show_refuses_a_reason_it_would_ignore(tmp_path) -> None:
    result = run_tlounge(
        "reservation", "show", "3f1c9a52-0a4e-4c55-9d61-5b0e2f7f2a10", "--reason",
        "x", env={"TLOUNGE_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        EXIT_BAD_INPUT,
        "tlounge: --reason goes with cancel\n",
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", ["notifications", "reservation"])
def test_an_ops_commands_help_says_what_each_argument_does_and_its_exit_codes(
    name: str,
) -> None:
    from api.cli import _load_command_modules, _parser

    _load_command_modules()
    parser = _parser()
    [child] = [
        action.choices[name]
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction)
    ]
    helps = {
        tuple(action.option_strings) or (action.dest,): action.help
        for action in child._actions
    }
    # every argument but --help has words of its own
    assert all(helps.values()), helps
    text = child.format_help()
    assert text.endswith(
        "exit codes:\n  0  done (a reservation cancelled already counts)\n"
        "  2  bad input, or refused as the API refuses it with a 409\n"
        "  4  a dependency cannot be reached\n  5  not found\n"
    )


def test_tlounge_cli_has_create_owner(pg_dsn) -> None:
    env = {"TLOUNGE_DATABASE_URL": pg_dsn, PASSWORD_ENV: "x"}
    result = run_tlounge("create-owner", "--email", "cli@example.com", env=env)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr.strip().endswith(
        "password refused: it is shorter than 12 characters"
    )


def test_cli_whose_reader_closes_the_pipe_ends_quietly(tmp_path) -> None:
    import subprocess
    import sys

    script = (
        "from api import cli\n"
        "@cli.command('spew')\n"
        "async def spew(settings, args):\n"
        "    '''Print a lot.'''\n"
        "    for n in range(200_000):\n"
        "        print('line', n)\n"
        "    return 0\n"
        "cli.main(['spew'])\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "TLOUNGE_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `| head -1` does once it has its line
    code = process.wait(timeout=60)
    with process.stderr:
        assert (first, code, process.stderr.read()) == (b"line 0\n", 141, b"")


@pytest.mark.parametrize(
    "command", [("availability", "rebuild"), ("demo",)], ids=["rebuild", "demo"]
)
async def test_tlounge_command_on_a_database_never_migrated_says_to_migrate(
    pg_dsn, command
) -> None:
    from urllib.parse import urlsplit

    name = f"never_migrated_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        empty = urlsplit(pg_dsn)._replace(path=f"/{name}").geturl()
        result = run_tlounge(*command, env={"TLOUNGE_DATABASE_URL": empty})
    finally:
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()

    assert (result.returncode, result.stdout) == (EXIT_UNREACHABLE, ""), result.stderr
    assert result.stderr.startswith("tlounge: the database has no T-Lounge tables (")
    assert result.stderr.endswith("); run `tlounge migrate` first\n")
