"""Sign-in tells an unknown email from a wrong password by neither answer nor time."""

import statistics
import time
from dataclasses import replace

import httpx

from api.main import create_app

TRIES = 15


async def test_sign_in_unknown_email_and_wrong_password_indistinguishable(
    resources, db
) -> None:
    # limits out of the way: this test measures, it does not brute-force
    settings = resources.settings.model_copy(
        update={"auth_rate_per_account": 10_000, "auth_rate_per_address": 10_000}
    )
    app = create_app(settings, resources=replace(resources, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        # registered through the API, so the stored hash has the real cost
        registered = await http.post("/api/client/register", json={
            "email": "known@example.com", "password": "the right password",
            "name": "Kim", "surname": "Known", "patronymic": "",
        })  # fmt: skip
        assert registered.status_code == 200, registered.text
        timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
        answers: dict[str, set] = {"unknown": set(), "wrong": set()}
        for attempt in range(TRIES + 1):
            # interleaved, so drift in machine load falls on both alike
            for case, email in (("unknown", f"nobody{attempt}@example.com"),
                                ("wrong", "known@example.com")):  # fmt: skip
                began = time.perf_counter()
                response = await http.post("/api/client/login", json={
                    "email": email, "password": "not the password"})  # fmt: skip
                elapsed = time.perf_counter() - began
                answers[case].add((response.status_code, response.text))
                if attempt:  # the first round warms caches and is not counted
                    timings[case].append(elapsed)
    assert answers["unknown"] == answers["wrong"] == {(
        400, '{"error":"invalid_credentials","description":"Wrong email or password"}'
    )}  # fmt: skip
    medians = {case: statistics.median(values) for case, values in timings.items()}
    # each pair ran back to back, so the median of their differences is what
    # load on a shared machine cannot drift; both figures show on failure
    paired = statistics.median(
        u - w for u, w in zip(timings["unknown"], timings["wrong"], strict=True)
    )
    assert abs(paired) < 0.010, (paired, medians)
