from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import ResourcesDep
from api.errors import error_body
from api.resources import probe

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(resources: ResourcesDep) -> JSONResponse:
    checks = await probe(resources)
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        body = error_body("not_ready", "unavailable: " + ", ".join(failing))
        return JSONResponse(
            {**body, "checks": checks}, status_code=503, headers={"Retry-After": "5"}
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/api/health", response_class=PlainTextResponse)
async def api_health() -> str:
    return "OK"


@router.get("/api/ping", response_class=PlainTextResponse)
async def api_ping() -> str:
    return "pong"
