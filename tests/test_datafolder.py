"""Who holds a data folder, and what ops commands take from its stack.json."""

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.datafolder import (
    FolderInUse,
    FolderLock,
    RunningStack,
    hold_folder,
    running_stack,
    with_running_stack,
    write_running_stack,
)
from api.resources import temporal_address, valkey_url
from tests.conftest import make_settings


def _stack(pid: int) -> RunningStack:
    return RunningStack(
        pid=pid,
        api_url="http://127.0.0.1:18080",
        temporal_address="127.0.0.1:17233",
        temporal_ui_url="http://127.0.0.1:18233",
        valkey_port=16379,
        smtp_port=18025,
    )


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def held(tmp_path: Path) -> Iterator[FolderLock]:
    """The folder as a running stack leaves it: held, and its stack.json written."""
    lock = hold_folder(tmp_path)
    write_running_stack(tmp_path, _stack(os.getpid()))
    yield lock
    lock.release()


def test_take_addresses_from_the_running_stack(held: FolderLock) -> None:
    settings = with_running_stack(make_settings(data_dir=held.folder))

    assert running_stack(held.folder) == _stack(os.getpid())
    assert temporal_address(settings) == "127.0.0.1:17233"
    assert valkey_url(settings) == "redis://127.0.0.1:16379/0"
    assert settings.smtp_port == 18025


@pytest.mark.parametrize(
    "explicit",
    [{"smtp_port": 2525}, {"smtp_host": "mail.internal", "smtp_port": 2525}],
    ids=["smtp-port", "smtp-host"],
)
def test_keep_explicit_smtp_over_the_running_stack(
    held: FolderLock, explicit: dict
) -> None:
    settings = with_running_stack(make_settings(data_dir=held.folder, **explicit))

    assert settings.smtp_port == 2525


def test_take_the_running_stacks_own_smtp_server_not_the_default_port(
    tmp_path: Path,
) -> None:
    lock = hold_folder(tmp_path)
    try:
        given = dataclasses.replace(
            _stack(os.getpid()), smtp_host="127.0.0.1", smtp_port=28026
        )
        write_running_stack(tmp_path, given)
        settings = with_running_stack(make_settings(data_dir=tmp_path))
        assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 28026)
    finally:
        lock.release()


def test_a_stack_file_written_before_smtp_host_was_recorded_still_reads(
    tmp_path: Path,
) -> None:
    lock = hold_folder(tmp_path)
    try:
        write_running_stack(tmp_path, _stack(os.getpid()))
        old = json.loads((tmp_path / "stack.json").read_text())
        del old["smtp_host"]
        (tmp_path / "stack.json").write_text(json.dumps(old))
        assert running_stack(tmp_path) == _stack(os.getpid())
    finally:
        lock.release()


@pytest.mark.parametrize(
    ("explicit", "temporal", "valkey"),
    [
        ({"temporal_port": 7233}, "127.0.0.1:7233", "redis://127.0.0.1:16379/0"),
        ({"temporal_address": "temporal.internal:7233"}, "temporal.internal:7233",
         "redis://127.0.0.1:16379/0"),
        ({"valkey_port": 6379}, "127.0.0.1:17233", "redis://127.0.0.1:6379/0"),
        ({"valkey_url": "redis://cache.internal:6379/2"}, "127.0.0.1:17233",
         "redis://cache.internal:6379/2"),
    ],
    ids=["temporal-port", "temporal-address", "valkey-port", "valkey-url"],
)  # fmt: skip
def test_keep_explicit_settings_over_the_running_stack(
    held: FolderLock, explicit: dict, temporal: str, valkey: str
) -> None:
    settings = with_running_stack(make_settings(data_dir=held.folder, **explicit))

    assert (temporal_address(settings), valkey_url(settings)) == (temporal, valkey)


def test_refuse_to_guess_while_the_holder_has_not_said_where_it_listens(
    held: FolderLock,
) -> None:
    # its stack.json is another process's, long gone, or cannot be read
    for stale in (_stack(_dead_pid()), None):
        if stale is None:
            (held.folder / "stack.json").write_text('{"pid": ')
        else:
            write_running_stack(held.folder, stale)
        settings = make_settings(data_dir=held.folder)

        assert running_stack(held.folder) is None
        with pytest.raises(FolderInUse) as caught:
            with_running_stack(settings)
        assert str(caught.value) == (
            f"the data folder {held.folder} is held by another tlounge process"
            f" (PID {os.getpid()}), which has not said where it listens (still"
            " starting, or its stack.json is unreadable); wait, or set"
            " TLOUNGE_TEMPORAL_PORT"
        )
        # an explicit address needs no guess
        pinned = make_settings(data_dir=held.folder, temporal_port=7234)
        assert temporal_address(with_running_stack(pinned)) == "127.0.0.1:7234"


def test_ignore_stack_file_when_nobody_holds_the_folder(tmp_path: Path) -> None:
    # a live PID, but that process does not hold the lock: reused, or not a stack
    write_running_stack(tmp_path, _stack(os.getpid()))
    settings = make_settings(data_dir=tmp_path)

    assert running_stack(tmp_path) is None
    assert temporal_address(with_running_stack(settings)) == "127.0.0.1:7233"


def test_ignore_unreadable_stack_file(held: FolderLock) -> None:
    (held.folder / "stack.json").write_text('{"pid": ')

    assert running_stack(held.folder) is None


def test_refuse_second_holder_naming_the_stack(held: FolderLock) -> None:
    with pytest.raises(FolderInUse) as caught:
        hold_folder(held.folder)

    assert str(caught.value) == (
        f"the data folder {held.folder} is in use by another stack "
        f"(API http://127.0.0.1:18080, PID {os.getpid()})"
    )


def test_release_lets_the_next_holder_in_and_drops_a_stale_stack_file(
    tmp_path: Path,
) -> None:
    hold_folder(tmp_path).release()
    write_running_stack(tmp_path, _stack(_dead_pid()))

    lock = hold_folder(tmp_path)
    try:
        assert not (tmp_path / "stack.json").exists()
        assert (tmp_path / "stack.lock").read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_leftovers_spare_the_process_that_started_us(tmp_path: Path) -> None:
    # a wrapper whose command names api.cli, as `timeout 60 python -m api.cli dev`
    # does, with the folder in its environment: the stack it starts must not
    # take it for a stack that died, or it stops its own parent
    look = (
        "import sys; from pathlib import Path;"
        " from api.datafolder import leftovers;"
        " print(sorted(p.pid for p in leftovers(Path(sys.argv[1]))))"
    )
    wrapper = (
        "import subprocess, sys, os;"
        f" out = subprocess.run([sys.executable, '-c', {look!r}, sys.argv[1]],"
        " capture_output=True, text=True, check=True).stdout;"
        " print(os.getpid(), out)"
    )
    env = {**os.environ, "TLOUNGE_DATA_DIR": str(tmp_path.resolve())}
    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(tmp_path), "api.cli"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    wrapper_pid, found = done.stdout.split(" ", 1)
    assert found.strip() == "[]", (wrapper_pid, found)
