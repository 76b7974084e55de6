from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import os; from api.settings import Settings;"
    " from workers.mail import yield_to_bookings;"
    " print(yield_to_bookings(Settings()), os.getpriority(os.PRIO_PROCESS, 0))"
)


def _probe(nice: str | None, *, start_at: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TLOUNGE_MAIL_WORKER_NICE"}
    if nice is not None:
        env["TLOUNGE_MAIL_WORKER_NICE"] = nice
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=(lambda: os.nice(start_at)) if start_at else None,  # noqa: PLW1509
        check=False,
    )


@pytest.mark.parametrize(
    ("configured", "start_at", "runs_at"),
    [("7", 0, 7), (None, 0, 10), ("0", 0, 0), ("7", 12, 12)],
    ids=["configured", "default", "off", "never-raised"],
)
def test_the_mail_worker_yields_the_cpu_to_bookings(
    configured: str | None, start_at: int, runs_at: int
) -> None:
    probe = _probe(configured, start_at=start_at)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(runs_at), str(runs_at)]


def test_a_niceness_out_of_range_is_refused() -> None:
    probe = _probe("20")
    assert probe.returncode != 0
    assert "mail_worker_nice" in probe.stderr


def test_a_failure_the_mail_server_caused_is_logged_on_one_line() -> None:
    import io
    import logging

    from temporalio.exceptions import ApplicationError

    from workers.mail import OneLineForServerFailures

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("tests.one-line")
    logger.addHandler(handler)
    logger.addFilter(OneLineForServerFailures())
    logger.propagate = False

    def failed(error: Exception) -> str:
        out.truncate(0)
        out.seek(0)
        try:
            raise error
        except Exception:
            logger.warning("Completing activity as failed (%s)", {"attempt": 3},
                           exc_info=True)  # fmt: skip
        return out.getvalue()

    unreachable = ApplicationError(
        "the SMTP server is unreachable: SMTPConnectError (refused)",
        type="MailUnreachable",
    )
    assert failed(unreachable) == (
        "Completing activity as failed ({'attempt': 3}): MailUnreachable:"
        " the SMTP server is unreachable: SMTPConnectError (refused)\n"
    )
    # a fault of ours keeps the traceback that finds it
    ours = failed(ApplicationError("boom", type="MailUnbuildable"))
    assert "Traceback (most recent call last)" in ours
    assert failed(KeyError("x")).count("\n") > 2
