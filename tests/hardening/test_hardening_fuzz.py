"""A short schemathesis run in the suite; the long one is in fuzz_api.py beside it."""

from dataclasses import replace

from api.main import create_app
from tests.hardening.fuzz_api import run_schemathesis, serving


async def test_fuzz_every_operation_from_own_openapi_no_failure(scene) -> None:
    settings = scene.resources.settings.model_copy(update={
        "default_coworking_id": scene.coworking_id,
        "auth_rate_per_account": 100_000, "auth_rate_per_address": 100_000,
    })  # fmt: skip
    app = create_app(settings, resources=replace(scene.resources, settings=settings))
    async with serving(app) as base_url:
        result = await run_schemathesis(
            base_url, client_token=scene.client.token, admin_token=scene.admin.token,
            coworking_id=str(scene.coworking_id), max_examples=1, seed=7,
            extra=("--phases", "fuzzing"),
        )  # fmt: skip
    assert (result.returncode, result.failures) == (0, 0), result.output[-4000:]
    assert result.requests >= 80
