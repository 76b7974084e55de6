import asyncio
import io

import pytest

from tests import conftest


async def test_bounded_teardown_abandons_a_hung_step_and_prints_the_stacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = io.StringIO()
    monkeypatch.setattr(conftest, "TEARDOWN_SECONDS", 0.05)
    monkeypatch.setattr(conftest, "TEARDOWN_REPORT", report)

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def waits_on_it() -> None:
        await asyncio.sleep(3600)

    bystander = asyncio.create_task(waits_on_it())
    await asyncio.sleep(0)
    assert await conftest.bounded_teardown(hangs(), "stopping a thing") is False
    bystander.cancel()
    text = report.getvalue()
    assert text.startswith("teardown: stopping a thing did not finish in 0.05 s")
    assert "waits_on_it" in text


async def test_bounded_teardown_reports_a_step_that_finishes() -> None:
    report = io.StringIO()

    async def quick() -> int:
        return 1

    assert await conftest.bounded_teardown(quick(), "a quick step") is True
    assert report.getvalue() == ""
