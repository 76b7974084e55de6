"""Schemathesis against the app's own OpenAPI, on a uvicorn of our own on loopback.

    python -m tests.hardening.fuzz_api [--max-examples N] [--seed S]

starts the embedded stack (PostgreSQL, Valkey, an SMTP sink, the time-skipping
Temporal server and both workers in-process), serves the app on a free
loopback port, runs every schemathesis check with a client and an admin token,
prints its figures and the server's memory, and exits non-zero when a check
fails or fewer requests than promised were made. The suite runs a small
version of the same (tests/hardening/test_hardening_fuzz.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.devstack import free_port

BIN = Path(sys.executable).parent
# calls that end the fuzzer's own session or account: after them every other
# operation would only meet a 401; their own tests live beside the routes
SELF_ENDING = [
    "DELETE /api/client", "DELETE /api/admin",
    "POST /api/client/logout", "POST /api/admin/logout",
]  # fmt: skip
# Rules JSON Schema cannot state: across fields, or over every code point of a
# text (unassigned and formatting characters are refused, and no pattern can
# list them), or on an address's domain (reserved names). A schema-valid
# request may still get a 400 naming the field here, and only here.
_TEXT = "text refuses unassigned and formatting characters; reserved mail domains"
BEYOND_SCHEMA = {
    "GET /api/coworking/availability": "to after from",
    "GET /api/coworkings/{coworking_id}/availability": "to after from",
    "GET /api/coworking/seats/{seat_id}/availability": "to after from",
    "GET /api/coworkings/{coworking_id}/seats/{seat_id}/availability": "to after from",
    "GET /api/coworking/closures": "to after from",
    "GET /api/coworkings/{coworking_id}/closures": "to after from",
    "POST /api/coworking/closures": "ends after starts",
    "POST /api/coworkings/{coworking_id}/closures": "ends after starts",
    "PATCH /api/coworking/closures/{closure_id}": "ends after starts",
    "PATCH /api/coworkings/{coworking_id}/closures/{closure_id}": "ends after starts",
    "PATCH /api/coworking": "an opening interval is not empty",
    "PATCH /api/coworkings/{coworking_id}": "an opening interval is not empty",
    "POST /api/coworkings": "an opening interval is not empty",
    "PUT /api/client/password": "the confirmation equals the new password",
    "PUT /api/admin/password": "the confirmation equals the new password",
    "POST /api/reservations": "booking rules: grid, lead time, opening hours",
    "PATCH /api/reservations/{reservation_id}": "booking rules, as for a booking",
    "POST /api/admin/register": "coworking_ids only for a manager",
    "PATCH /api/admin/{admin_id}": "coworking_ids only for a manager",
    # rules over the coworking's other rows, which staff's token now reaches
    **{
        f"POST {base}/seats{bulk}": "a seat number is used once in a coworking"
        for base in ("/api/coworking", "/api/coworkings/{coworking_id}")
        for bulk in ("", "/bulk")
    },
    **{
        f"PUT {base}{seat}/images/order": "the order lists each of its images once"
        for base in ("/api/coworking", "/api/coworkings/{coworking_id}")
        for seat in ("", "/seats/{seat_id}")
    },
    **{
        name: _TEXT
        for name in (
            "POST /api/client/register",
            "PATCH /api/client",
            "PATCH /api/client/{client_id}",
            "POST /api/client/login",
            "POST /api/admin/login",
            "PATCH /api/admin",
        )
    },
}
_ACCEPTED_WITH_RULES = [200, 201, 202, 204, 400, 401, 403, 404, 409, 429]


@dataclass
class FuzzResult:
    returncode: int
    requests: int
    failures: int
    output: str


def _config(path: Path, *, seed: int, max_examples: int, coworking_id: str) -> None:
    lines = [
        f"seed = {seed}",
        "[checks]", "enabled = true",
        "[generation]", f"max-examples = {max_examples}",
        "[parameters]", f'"path.coworking_id" = "{coworking_id}"',
        '[auth.openapi.client]', 'bearer = "${TLOUNGE_FUZZ_CLIENT_TOKEN}"',
        '[auth.openapi.admin]', 'bearer = "${TLOUNGE_FUZZ_ADMIN_TOKEN}"',
    ]  # fmt: skip
    for name in SELF_ENDING:
        lines += ["[[operations]]", f'include-name = "{name}"', "enabled = false"]
    for name in BEYOND_SCHEMA:
        lines += [
            "[[operations]]", f'include-name = "{name}"',
            "checks.positive_data_acceptance.expected-statuses = "
            f"{_ACCEPTED_WITH_RULES}",
        ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def serving(app: FastAPI, **config: Any) -> AsyncIterator[str]:
    """The app on a free loopback port, in this event loop, for as long as needed."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="critical",
        **config,
    ))  # fmt: skip
    task = asyncio.create_task(server.serve())
    try:
        # uvicorn offers a flag, not an event, for having bound its socket
        while not server.started:  # noqa: ASYNC110
            if task.done():
                await task
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def run_schemathesis(
    base_url: str, *, client_token: str, admin_token: str, coworking_id: str,
    max_examples: int, seed: int = 1, extra: tuple[str, ...] = (),
) -> FuzzResult:  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="tlounge-fuzz-"))
    try:
        config = workdir / "schemathesis.toml"
        _config(config, seed=seed, max_examples=max_examples, coworking_id=coworking_id)
        report = workdir / "events.ndjson"
        env = {
            **os.environ, "TLOUNGE_FUZZ_CLIENT_TOKEN": client_token,
            "TLOUNGE_FUZZ_ADMIN_TOKEN": admin_token, "NO_COLOR": "1",
            "SCHEMATHESIS_HOOKS": "",
        }  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            str(BIN / "schemathesis"), "--config-file", str(config), "run",
            f"{base_url}/openapi.json", "--checks", "all", "--workers", "1",
            "--report", "ndjson", "--report-ndjson-path", str(report),
            "--output-truncate", "true", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=env, cwd=workdir,
        )  # fmt: skip
        stdout, _ = await process.communicate()
        output = stdout.decode(errors="replace")
        requests = _count_requests(report)
        failures = _count_failures(output)
        assert process.returncode is not None
        return FuzzResult(process.returncode, requests, failures, output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _count_requests(report: Path) -> int:
    """Every HTTP interaction schemathesis recorded in its event stream."""
    if not report.exists():
        return 0
    count = 0
    for line in report.read_text().splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            count += _interactions(event)
    return count


def _interactions(node: object) -> int:
    if isinstance(node, dict):
        here = 1 if {"request", "response"} <= node.keys() else 0
        return here + sum(_interactions(v) for v in node.values())
    if isinstance(node, list):
        return sum(_interactions(v) for v in node)
    return 0


def _count_failures(output: str) -> int:
    found = re.search(r"(\d+) failures?\b", output)
    return int(found.group(1)) if found else 0


async def _main(max_examples: int, seed: int, minimum: int) -> int:
    from tests.hardening.fuzz_stack import fuzz_stack

    async with fuzz_stack() as stack:
        rss_before = _memory_mb("VmRSS")
        result = await run_schemathesis(
            stack.base_url, client_token=stack.client_token,
            admin_token=stack.admin_token, coworking_id=stack.coworking_id,
            max_examples=max_examples, seed=seed,
        )  # fmt: skip
        rss_after, rss_peak = _memory_mb("VmRSS"), _memory_mb("VmHWM")
    print(result.output)  # noqa: T201
    figures = {
        "requests": result.requests, "failures": result.failures,
        "schemathesis_exit": result.returncode,
        "server_rss_mb_before": round(rss_before, 1),
        "server_rss_mb_after": round(rss_after, 1),
        "server_rss_mb_peak": round(rss_peak, 1),
    }  # fmt: skip
    print(json.dumps(figures))  # noqa: T201
    ok = result.returncode == 0 and result.requests >= minimum
    return 0 if ok else 1


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process: the app, workers and pools."""
    status = Path("/proc/self/status").read_text()
    found = re.search(rf"{field}:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-requests", type=int, default=1000)
    args = parser.parse_args()
    sys.exit(asyncio.run(_main(args.max_examples, args.seed, args.min_requests)))


if __name__ == "__main__":
    main()
