"""The embedded stack, as `make run` starts it: up, serving, stopped, started again."""

import asyncio
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from api.devstack import Stack, StackError, free_port
from tests.conftest import make_settings


def _stack_settings(data_dir: Path):
    return make_settings(
        data_dir=data_dir,
        jwt_secret=None,
        api_port=free_port(),
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        valkey_port=free_port(),
        smtp_port=free_port(),
    )


def _descendants(stack: Stack) -> list[psutil.Process]:
    pids = [child.process.pid for child in stack.children if child.process]
    if stack.postgres is not None:
        pids.append(stack.postgres.get_pid())  # type: ignore[attr-defined]
    if stack.valkey is not None:
        pids.append(stack.valkey._process.pid)  # type: ignore[attr-defined]
    return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]


async def test_stack_starts_books_mails_stops_and_restarts_with_its_data(
    tmp_path: Path,
) -> None:
    settings = _stack_settings(tmp_path / "data")
    stack = Stack(settings)
    try:
        await stack.start()
        processes = _descendants(stack)
        assert stack.demo_banner is not None
        password = re.search(
            r"client  client@demo\.tlounge\.example  (\S+)", stack.demo_banner
        )
        assert password is not None
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
            assert (await http.get("/ready")).status_code == 200
            ui = await http.get(f"http://127.0.0.1:{settings.temporal_ui_port}/")
            assert ui.status_code == 200
            login = await http.post(
                "/api/client/login",
                json={
                    "email": "client@demo.tlounge.example",
                    "password": password.group(1),
                },
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            coworking = (await http.get("/api/coworking")).json()
            assert coworking["name"] == "T-Lounge Berlin Mitte"
            seats = (
                await http.get(
                    "/api/coworking/seats", headers={"Authorization": f"Bearer {token}"}
                )
            ).json()
            # a weekday morning a few days ahead, inside the Berlin opening hours
            day = datetime.now(UTC) + timedelta(days=3)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            starts_at = day.replace(hour=9, minute=0, second=0, microsecond=0)
            booked = await http.post(
                "/api/reservations",
                json={
                    "seat_id": seats[0]["id"],
                    "starts_at": starts_at.isoformat(),
                    "ends_at": (starts_at + timedelta(hours=1)).isoformat(),
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert booked.status_code == 200, booked.text
            reservation_id = booked.json()["id"]
        mail_dir = settings.mail_dir
        for _ in range(200):
            mails = list(mail_dir.glob(f"*reservation-{reservation_id}*.eml"))
            if mails:
                break
            await asyncio.sleep(0.1)
        assert len(mails) == 1
        assert (
            "Subject: Your seat is booked: T-Lounge Berlin Mitte"
            in mails[0].read_text()
        )
    finally:
        await stack.stop()
    assert processes and all(
        not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes
    )

    # a second start keeps the data: no new demo accounts, the reservation is there
    again = Stack(settings)
    try:
        await again.start()
        assert again.demo_banner is None
        async with httpx.AsyncClient(base_url=again.api_url, timeout=30) as http:
            got = await http.get(
                f"/api/reservations/{reservation_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert got.status_code == 200
        assert got.json()["status"] == "confirmed"
    finally:
        await again.stop()


async def test_stack_port_taken_stops_with_clear_message(tmp_path: Path) -> None:
    settings = _stack_settings(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.api_port))
        taken.listen()
        with pytest.raises(StackError) as caught:
            await Stack(settings).start()
    assert str(caught.value) == (
        f"port {settings.api_port} (API) on 127.0.0.1 is already in use; "
        "stop what holds it or set TLOUNGE_API_PORT"
    )
