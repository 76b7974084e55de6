import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY, Counter, Histogram
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from api.devstack import free_port
from tests.conftest import make_settings
from workers import metrics


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("RESERVATIONS_CREATED", Counter, ()),
        ("RESERVATIONS_CONFIRMED", Counter, ()),
        ("RESERVATIONS_CANCELLED", Counter, ()),
        ("RESERVATIONS_EXPIRED", Counter, ()),
        ("RESERVATIONS_NO_SHOW", Counter, ()),
        ("BOOKING_CONFLICTS", Counter, ()),
        ("MAILS_SENT", Counter, ("kind",)),
        ("MAILS_FAILED", Counter, ("kind", "reason")),
        ("REMINDER_LATENESS", Histogram, ()),
    ],
)
def test_define_project_metric_with_prefix_and_labels(
    name: str, kind: type, labels: tuple
) -> None:
    metric = getattr(metrics, name)
    assert isinstance(metric, kind)
    assert metric._name.startswith("tlounge_")
    assert metric._labelnames == labels


def test_observe_reminder_lateness_clamps_early_sends() -> None:
    due = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    count = REGISTRY.get_sample_value("tlounge_reminder_lateness_seconds_count") or 0
    under_two_minutes = (
        REGISTRY.get_sample_value(
            "tlounge_reminder_lateness_seconds_bucket", {"le": "120.0"}
        )
        or 0
    )
    assert (
        metrics.observe_reminder_lateness(due=due, sent=due + timedelta(seconds=90))
        == 90
    )
    assert (
        metrics.observe_reminder_lateness(due=due, sent=due - timedelta(seconds=3)) == 0
    )
    assert (
        REGISTRY.get_sample_value("tlounge_reminder_lateness_seconds_count")
        == count + 2
    )
    assert (
        REGISTRY.get_sample_value(
            "tlounge_reminder_lateness_seconds_bucket", {"le": "120.0"}
        )
        == under_two_minutes + 2
    )
    assert metrics.REMINDER_LATENESS._upper_bounds[0] == 0.1
    assert metrics.REMINDER_LATENESS._upper_bounds[-2] == 3600


@pytest.mark.parametrize(
    ("process", "shown", "hidden"),
    [
        ("mail", "tlounge_mails_sent_total", "tlounge_reservations_created_total"),
        ("reservation", "tlounge_reservations_created_total",
         "tlounge_mails_sent_total"),
    ],
)  # fmt: skip
def test_a_worker_serves_the_metrics_it_counts_and_not_the_others(
    process: metrics.Process, shown: str, hidden: str
) -> None:
    import api.metrics  # noqa: F401 - a worker's command line imports it

    port = free_port()
    server = metrics.start_metrics_server(
        make_settings(worker_metrics_port=port), process
    )
    assert server is not None
    try:
        metrics.MAILS_SENT.labels(kind="confirmation").inc()
        metrics.RESERVATIONS_CREATED.inc()
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        # a scrape that names families keeps the others hidden still
        named = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            params=[("name[]", shown), ("name[]", hidden)],
            timeout=5,
        ).text
    finally:
        server.shutdown()
        server.server_close()
    assert shown in body
    # the other process's counter would read 0 here, as if nothing happened
    assert hidden not in body
    assert "process_cpu_seconds_total" in body
    assert "tlounge_http_requests" not in body
    assert (shown in named, hidden in named) == (True, False)


def test_start_metrics_server_off_when_port_zero() -> None:
    assert (
        metrics.start_metrics_server(make_settings(worker_metrics_port=0), "mail")
        is None
    )


def test_temporal_runtime_default_when_port_zero() -> None:
    assert (
        metrics.temporal_runtime(make_settings(temporal_metrics_port=0))
        is Runtime.default()
    )


# In a child process: a second SDK runtime can crash CPython's shutdown
# (sdk-python issue 300), and this one would live until the suite's end.
_SCRAPE = textwrap.dedent(
    """
    import asyncio, json, os, sys
    import httpx
    from temporalio.client import Client
    from tests.conftest import make_settings
    from workers.metrics import temporal_runtime

    async def main():
        port, target = int(sys.argv[1]), sys.argv[2]
        runtime = temporal_runtime(make_settings(temporal_metrics_port=port))
        client = await Client.connect(target, runtime=runtime)
        await client.service_client.check_health()
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        print(json.dumps(body.splitlines()), flush=True)

    asyncio.run(main())
    os._exit(0)
    """
)


def test_temporal_runtime_exports_sdk_metrics_on_port(
    time_env: WorkflowEnvironment,
) -> None:
    port = free_port()
    target = time_env.client.service_client.config.target_host
    done = subprocess.run(
        [sys.executable, "-c", _SCRAPE, str(port), target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = json.loads(done.stdout.strip().splitlines()[-1])
    assert "# TYPE temporal_request counter" in lines
    assert any(line.startswith('temporal_request{operation="Check"') for line in lines)
    assert any(line.startswith("temporal_request_latency_bucket{") for line in lines)


def test_start_metrics_server_refuses_a_busy_port_in_one_line() -> None:
    port = free_port()
    first = metrics.start_metrics_server(
        make_settings(worker_metrics_port=port), "mail"
    )
    assert first is not None
    try:
        with pytest.raises(SystemExit) as refused:
            metrics.start_metrics_server(
                make_settings(worker_metrics_port=port), "mail"
            )
    finally:
        first.shutdown()
        first.server_close()
    assert str(refused.value) == (
        f"tlounge: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    )


_BUSY_SDK_PORT = textwrap.dedent(
    """
    import os, socket, sys
    from tests.conftest import make_settings
    from workers.metrics import temporal_runtime

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        temporal_runtime(make_settings(temporal_metrics_port=taken.getsockname()[1]))
    except SystemExit as refused:
        print(refused, flush=True)
    os._exit(0)
    """
)


def test_temporal_runtime_refuses_a_busy_port_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BUSY_SDK_PORT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip()
    assert line.startswith("tlounge: cannot serve SDK metrics: ")
    assert "Address already in use" in line
    assert "\n" not in line
