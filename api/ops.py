"""Ops subcommands of `tlounge`: accounts that only an operator may create.

    tlounge create-owner --email ops@example.com             # prompts twice
    TLOUNGE_OWNER_PASSWORD=... tlounge create-owner --email ops@example.com
    tlounge create-owner --email ops@example.com --generate  # prints it once

Exit codes: 0 created; 2 bad input (email, weak password, no password given);
3 an admin with this email exists; 4 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import secrets
import sys
from collections.abc import AsyncIterator

import asyncpg
from pydantic import TypeAdapter, ValidationError

from api.cli import command
from api.datafolder import NoStackData, holds_database
from api.db import migrate
from api.errors import EmailTaken
from api.models.common import EmailAddress
from api.passwords import hash_password, staff_password_problem
from api.services.admins import create_admin
from api.settings import Settings

PASSWORD_ENV = "TLOUNGE_OWNER_PASSWORD"  # noqa: S105 - a variable name
# An owner can do everything, so more than the API's 8 characters.
EXIT_BAD_INPUT, EXIT_TAKEN, EXIT_NO_DATABASE = 2, 3, 4


class InputError(Exception):
    """The operator's input is refused; the message says why in one line."""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the owner's email address")
    parser.add_argument(
        "--generate",
        action="store_true",
        help="generate a strong password and print it once",
    )


def _password(args: argparse.Namespace, email: str) -> tuple[str, bool]:
    """The password and whether it was generated here."""
    if args.generate:
        return secrets.token_urlsafe(18), True
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise InputError(
                f"no password: set {PASSWORD_ENV}, use --generate or run in a terminal"
            )
        password = getpass.getpass("Password for the new owner: ")
        if getpass.getpass("The same password again: ") != password:
            raise InputError("the two passwords differ")
    problem = staff_password_problem(password, email)
    if problem:
        raise InputError(f"password refused: it {problem}")
    return password, False


@contextlib.asynccontextmanager
async def command_dsn(settings: Settings, *, create: bool) -> AsyncIterator[str]:
    """The configured database, or the embedded one under the data folder; an
    embedded one that this command had to start is stopped when it ends.

    Only a command that sets a database up (`create`) makes a cluster where
    there is none: one that reads would find no tables in a new one, and leave
    a data folder behind wherever it was typed.
    """
    if settings.database_url:
        yield settings.database_url
        return
    from api.devstack import postgres_for_command

    folder = settings.data_dir.resolve()
    if not create and not holds_database(folder):
        raise NoStackData(
            f"TLOUNGE_DATABASE_URL is not set and {folder} holds no stack's"
            " database; set it, or set TLOUNGE_DATA_DIR to a stack's data folder"
        )
    async with postgres_for_command(folder) as dsn:
        yield dsn


@contextlib.asynccontextmanager
async def _database(
    settings: Settings, *, create: bool
) -> AsyncIterator[asyncpg.Connection]:
    async with command_dsn(settings, create=create) as dsn:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            yield conn
        finally:
            await conn.close()


def _refuse(code: int, message: str) -> int:
    print(f"tlounge: {message}", file=sys.stderr)  # noqa: T201 - a CLI's answer
    return code


@command("create-owner", _configure)
async def create_owner(settings: Settings, args: argparse.Namespace) -> int:
    """Create an owner admin account (the first one, or one more)."""
    try:
        email = TypeAdapter(EmailAddress).validate_python(args.email)
    except ValidationError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ")
        return _refuse(EXIT_BAD_INPUT, f"--email: {message}")
    try:
        password, generated = _password(args, email)
    except InputError as error:
        return _refuse(EXIT_BAD_INPUT, str(error))
    password_hash = await hash_password(password)
    try:
        # the first step of setting up, so it may make the embedded cluster
        async with _database(settings, create=True) as conn:
            await migrate(conn)
            admin_id = await create_admin(
                conn, email=email, password_hash=password_hash, role="owner"
            )
    except EmailTaken:
        return _refuse(EXIT_TAKEN, f"an admin with the email {email} already exists")
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        return _refuse(EXIT_NO_DATABASE, f"cannot reach the database: {error}")
    print(f"owner {email} created (id {admin_id})")  # noqa: T201
    if generated:
        print(f"password (shown only now): {password}")  # noqa: T201
    return 0
