"""The chaos faults and its supervisor leave one process per child, none after."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from api.devstack import Child, Stack
from tests.conftest import make_settings
from tests.hardening.chaos import Journal, kill_and_restart, supervise
from tests.hardening.stack import Harness, end_leftovers, processes_in

NAME = "reservation-worker"


def _harness(folder: Path) -> Harness:
    """A stack of one child that only sleeps, working in the folder as a worker does."""
    env = {**os.environ, "TLOUNGE_DATA_DIR": str(folder)}
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    stack = Stack(make_settings(data_dir=folder))
    stack.children.append(Child(NAME, sleeper, env, folder / "child.log"))
    return Harness(stack, stack.settings, pool=None)  # type: ignore[arg-type]


async def _later(delay: float, action) -> None:
    await asyncio.sleep(delay)
    await action


async def test_overlapping_kills_and_a_death_of_its_own_leave_one_process(
    tmp_path: Path,
) -> None:
    harness = _harness(tmp_path)
    child = harness.child(NAME)
    journal, stop = Journal(), asyncio.Event()
    await child.start()
    supervisor = asyncio.create_task(supervise(harness, journal, stop))
    try:
        # a second kill lands while the first waits to restart; then the child
        # dies by itself, and a third kill comes as the supervisor replaces it
        await asyncio.gather(
            kill_and_restart(harness, journal, NAME, pause=1.5),
            _later(0.3, kill_and_restart(harness, journal, NAME, pause=0.2)),
        )
        assert child.process is not None
        os.kill(child.process.pid, signal.SIGKILL)
        await _later(1.0, kill_and_restart(harness, journal, NAME, pause=0.2))
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await supervisor

    assert [p.pid for p in processes_in(tmp_path)] == [child.process.pid]
    await child.stop()
    assert processes_in(tmp_path) == []
    assert len(journal.faults) == 3


async def test_end_leftovers_kills_and_names_what_still_runs(tmp_path: Path) -> None:
    harness = _harness(tmp_path)
    await harness.child(NAME).start()

    left = end_leftovers(tmp_path)

    assert len(left) == 1 and left[0].endswith("import time; time.sleep(120)")
    assert processes_in(tmp_path) == []
