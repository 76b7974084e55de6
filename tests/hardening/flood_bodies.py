"""Hostile bodies against a real uvicorn: does the server's memory stay bounded?

    python -m tests.hardening.flood_bodies [--rounds N]

Sends oversized JSON (declared and chunked), JSON nested ten thousand deep and
oversized uploads, round after round, and prints the answers and the server's
resident memory before and after. Exits non-zero when any answer is not the
refusal expected, or when memory grows by more than 64 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys

import httpx

from tests.hardening.fuzz_api import _memory_mb
from tests.hardening.fuzz_stack import fuzz_stack

MIB = 1024 * 1024
GROWTH_LIMIT_MB = 64


async def _chunks(total: int):  # type: ignore[no-untyped-def]
    for _ in range(total // MIB):
        yield b" " * MIB


# built once, so the client's own buffers do not count as the server's growth
BIG = b'{"email": "' + b"x" * (11 * MIB) + b'"}'
NESTED = b'{"email": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
UPLOAD = b"\x89PNG" + b"\x00" * (30 * MIB)


async def _one_round(http: httpx.AsyncClient, admin: dict, coworking_id: str) -> list:
    json_headers = {"Content-Type": "application/json"}
    big, nested = BIG, NESTED
    answers = []
    for name, request in (
        ("declared_11mib", http.post("/api/client/login", content=big,
                                     headers=json_headers)),
        ("chunked_11mib", http.post("/api/client/login", content=_chunks(11 * MIB),
                                    headers=json_headers)),
        ("nested_10000", http.post("/api/client/login", content=nested,
                                   headers=json_headers)),
        ("upload_30mib", http.post(
            f"/api/coworkings/{coworking_id}/images", headers=admin,
            files={"file": ("a.png", UPLOAD, "image/png")})),
    ):  # fmt: skip
        try:
            response = await request
            answers.append((name, response.status_code))
        except httpx.HTTPError as error:
            # the server may close while the rest of the body is still being sent
            answers.append((name, type(error).__name__))
    return answers


async def _main(rounds: int) -> int:
    async with fuzz_stack() as stack:
        admin = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            await _one_round(http, admin, stack.coworking_id)
            before = _memory_mb("VmRSS")
            seen: collections.Counter = collections.Counter()
            for _ in range(rounds):
                for answer in await _one_round(http, admin, stack.coworking_id):
                    seen[answer] += 1
            after, peak = _memory_mb("VmRSS"), _memory_mb("VmHWM")
    expected = {"declared_11mib": 413, "chunked_11mib": 413, "nested_10000": 400,
                "upload_30mib": 413}  # fmt: skip
    wrong = {f"{n} {s}": c for (n, s), c in seen.items() if s != expected[n]}
    figures = {
        "rounds": rounds, "answers": {f"{n} {s}": c for (n, s), c in seen.items()},
        "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1),
        "rss_mb_peak": round(peak, 1), "unexpected": wrong,
    }  # fmt: skip
    print(json.dumps(figures, indent=1))  # noqa: T201
    return 1 if wrong or after - before > GROWTH_LIMIT_MB else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    sys.exit(asyncio.run(_main(parser.parse_args().rounds)))


if __name__ == "__main__":
    main()
