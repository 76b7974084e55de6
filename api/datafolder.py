"""Who works in a data folder: one process at a time holds it, and a running
stack says where it listens.

    <data folder>/stack.lock   flock()ed by `tlounge dev` for its whole life, and
                               by an ops command that owns the folder's PostgreSQL
                               while it runs; the holder's PID is written in it
    <data folder>/stack.json   written by `tlounge dev` once it is up, removed on
                               a clean stop
    <data folder>/postgres     the embedded PostgreSQL cluster, made by the first
                               `tlounge dev` (or `migrate`, `create-owner`)

The kernel drops the lock with the process that held it, so a crashed stack
leaves no stale lock; the stack.json it leaves is told apart by its PID and
by the lock being free. A stack killed outright leaves its children running,
which the lock does not see; the next stack to take the folder stops them
before it starts anything (its PostgreSQL it adopts, as it always has).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

    from api.settings import Settings

LOCK_FILE = "stack.lock"
STACK_FILE = "stack.json"


class FolderInUse(Exception):
    """Another process holds the data folder; the message says who, in one line."""


class NoStackData(Exception):
    """The data folder holds no stack's database for a command that reads one;
    the message says so in one line."""


@dataclass(frozen=True)
class RunningStack:
    """Where a running `tlounge dev` listens; None for a part it did not start."""

    pid: int
    api_url: str
    temporal_address: str
    temporal_ui_url: str | None
    valkey_port: int | None
    smtp_port: int | None
    # the SMTP server it was given, where it started no sink of its own (the
    # port is then that server's); never its credentials
    smtp_host: str | None = None
    # the rest of what the banner shows; absent from a file an older stack wrote
    mail_folder: str | None = None
    data_dir: str | None = None
    # "<worker> metrics" or "<worker> SDK metrics": its exporter's URL
    worker_metrics: dict[str, str] = field(default_factory=dict)


@dataclass
class FolderLock:
    folder: Path
    fd: int

    def release(self) -> None:
        # no PID left behind to be taken for the next holder's
        os.ftruncate(self.fd, 0)
        # closing the descriptor drops the lock
        os.close(self.fd)


# what in a data folder tells of people: sessions, mail, logs, reservation history
_PRIVATE_DIRS = ("valkey", "mail", "logs", "objects")
_PRIVATE_FILES = (
    "temporal.db", "temporal.db-wal", "temporal.db-shm", STACK_FILE, LOCK_FILE,
)  # fmt: skip


def seal_folder(folder: Path) -> None:
    """Make the folder this account's alone. Run as root, embedded PostgreSQL
    works as an account of its own that must pass through to its folder, so
    the top stays passable, and what tells of people is closed one by one."""
    folder.chmod(0o711 if os.geteuid() == 0 else 0o700)
    for name in _PRIVATE_DIRS:
        (folder / name).mkdir(mode=0o700, exist_ok=True)
        (folder / name).chmod(0o700)
    for name in _PRIVATE_FILES:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).chmod(0o600)


def hold_folder(folder: Path) -> FolderLock:
    """The folder's lock for this process, or FolderInUse at once."""
    folder.mkdir(parents=True, exist_ok=True)
    seal_folder(folder)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderInUse(
            f"the data folder {folder} is in use by {_describe_holder(folder)}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    # whoever wrote a stack.json here no longer holds the folder
    remove_running_stack(folder)
    return FolderLock(folder, fd)


def _describe_holder(folder: Path) -> str:
    """'another stack (API ..., PID ...)', or as much as the folder tells."""
    stack = running_stack(folder)
    if stack is not None:
        return f"another stack (API {stack.api_url}, PID {stack.pid})"
    pid = _holder_pid(folder)
    return "another tlounge process" + (f" (PID {pid})" if pid else "")


def write_running_stack(folder: Path, stack: RunningStack) -> None:
    path = folder / STACK_FILE
    partial = path.with_suffix(".json.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(asdict(stack), indent=2) + "\n")
    # readers see the old file or the whole new one, never half of it
    partial.replace(path)


def remove_running_stack(folder: Path) -> None:
    (folder / STACK_FILE).unlink(missing_ok=True)


def running_stack(folder: Path) -> RunningStack | None:
    """What the folder's stack.json says, if the stack that wrote it still runs."""
    try:
        stack = RunningStack(**json.loads((folder / STACK_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(stack.pid) or not _is_held(folder):
        return None
    return stack


def with_running_stack(settings: Settings) -> Settings:
    """The settings, pointed at the stack running on their data folder for each
    address they leave unset; an explicit setting always wins."""
    folder = settings.data_dir.resolve()
    stack = running_stack(folder)
    explicit = settings.model_fields_set
    if stack is None:
        unset = not settings.temporal_address and "temporal_port" not in explicit
        if unset and _is_held(folder):
            # the default port could be another stack's Temporal, beside this
            # folder's database
            raise FolderInUse(
                f"the data folder {folder} is held by {_describe_holder(folder)},"
                f" which has not said where it listens (still starting, or its"
                f" {STACK_FILE} is unreadable); wait, or set TLOUNGE_TEMPORAL_PORT"
            )
        return settings
    update: dict[str, object] = {}
    if not settings.temporal_address and "temporal_port" not in explicit:
        update["temporal_address"] = stack.temporal_address
    if stack.valkey_port and not settings.valkey_url and "valkey_port" not in explicit:
        update["valkey_port"] = stack.valkey_port
    if stack.smtp_port and not settings.smtp_host and "smtp_port" not in explicit:
        update["smtp_port"] = stack.smtp_port
        if stack.smtp_host:
            update["smtp_host"] = stack.smtp_host
    return settings.model_copy(update=update)


def holds_database(folder: Path) -> bool:
    """Whether a stack keeps its PostgreSQL here: a cluster made already, or a
    holder of the folder that may be making one now."""
    return (folder / "postgres" / "PG_VERSION").is_file() or _is_held(folder)


def _holder_pid(folder: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((folder / LOCK_FILE).read_text())
    return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process, alive
    return True


def _is_held(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # a shared lock for a moment: it is refused while anyone holds the folder
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def leftovers(folder: Path) -> list[psutil.Process]:
    """What a stack that died left running on the folder: its Temporal dev
    server by the database file it was started on, Valkey by the folder it runs
    in, the API and workers by their command and TLOUNGE_DATA_DIR. Nothing else
    that merely has the folder open is touched."""
    import psutil

    folder = folder.resolve()
    database = str(folder / "temporal.db")
    # a wrapper that started us (`timeout ... api.cli dev`) names our command too
    ours_and_above = {os.getpid()} | {
        parent.pid for parent in psutil.Process().parents()
    }
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if (
                process.pid in ours_and_above
                or process.status() == psutil.STATUS_ZOMBIE
            ):
                continue
            command = process.cmdline()
            ours = "api.cli" in command and (
                process.environ().get("TLOUNGE_DATA_DIR") == str(folder)
            )
            # Valkey rewrites its command line, so it is known by where it runs
            valkey = process.name().startswith("valkey") and (
                process.cwd() == str(folder / "valkey")
            )
            if ours or valkey or database in command[1:]:
                found.append(process)
    return found


def _known_as(command: list[str], name: str) -> str:
    """'tlounge worker mail' for one of our servers, else the program's name."""
    if "api.cli" in command:
        role = command[command.index("api.cli") + 1 :][:2]
        return " ".join(["tlounge", *role])
    return name


def stop_leftovers(folder: Path, *, timeout: float = 10.0) -> list[str]:
    """Stop them, gently and then not; a line for each, to say so."""
    import psutil

    left = leftovers(folder)
    lines = []
    for process in left:
        with contextlib.suppress(psutil.Error):
            lines.append(
                f"{_known_as(process.cmdline(), process.name())} (PID {process.pid})"
            )
            process.terminate()
    _, alive = psutil.wait_procs(left, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return lines
