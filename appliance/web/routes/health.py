"""``GET /healthz``: liveness only, without login; it reveals nothing else."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz", tags=["health"], summary="liveness (no login)")
def healthz() -> dict:
    return {"status": "ok"}
