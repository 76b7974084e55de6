import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from api.devstack import free_port
from api.ops_runtime import uvicorn_config
from tests.conftest import make_settings

BIN = Path(sys.executable).parent


def test_build_uvicorn_config_from_settings() -> None:
    config = uvicorn_config(make_settings(api_host="127.0.0.1", api_port=18123))
    assert (config.app, config.factory) == ("api.main:app_factory", True)
    assert (config.host, config.port) == ("127.0.0.1", 18123)
    assert config.access_log is False
    assert config.log_config is None
    # a forwarded address counts only from a proxy the operator named
    assert config.proxy_headers is False
    behind = uvicorn_config(make_settings(trusted_proxies="10.0.0.0/8, 192.0.2.7"))
    assert (behind.proxy_headers, behind.forwarded_allow_ips) == (
        True,
        ["10.0.0.0/8", "192.0.2.7"],
    )


def test_serve_api_command_logs_json_lines_only(
    tmp_path: Path, pg_dsn: str, valkey_server: str, time_env: WorkflowEnvironment
) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TLOUNGE_")
    } | {
        "TLOUNGE_API_HOST": "127.0.0.1",
        "TLOUNGE_API_PORT": str(port),
        "TLOUNGE_DATABASE_URL": pg_dsn,
        "TLOUNGE_DATABASE_POOL_MIN": "1",
        "TLOUNGE_VALKEY_URL": valkey_server,
        "TLOUNGE_TEMPORAL_ADDRESS": time_env.client.service_client.config.target_host,
        "TLOUNGE_DATA_DIR": str(tmp_path),
        "TLOUNGE_LOG_JSON": "true",
    }
    log = tmp_path / "api.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "tlounge"), "api"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{base}/health", timeout=1).status_code == 200
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        missing = httpx.get(f"{base}/no/such/page", headers={"X-Request-ID": "cmd-1"})
        scrape = httpx.get(f"{base}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    # uvicorn re-raises the signal once it has shut down gracefully
    assert code in (0, -signal.SIGTERM)
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "cmd-1"
    assert 'route="<unmatched>",status="404"' in scrape
    events = [json.loads(line) for line in log.read_text().splitlines()]
    access = [e for e in events if e["logger"] == "tlounge.access"]
    assert [(e["path"], e["status"], e["request_id"]) for e in access] == [
        ("/no/such/page", 404, "cmd-1")
    ]
    assert {e["service"] for e in events} == {"api"}
    assert not [e for e in events if "color_message" in e]
    messages = [e["message"] for e in events if e["logger"] == "uvicorn.error"]
    assert "Application startup complete." in messages
    assert any(m.startswith("Finished server process") for m in messages)
