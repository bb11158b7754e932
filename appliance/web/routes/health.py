"""Health without login: liveness (``/livez``) and readiness (``/healthz``).

``GET /livez`` answers ``{"status": "ok"}`` while the web process serves
requests — what a process supervisor restarts on. ``GET /healthz`` says
whether the appliance is ready to do its job: the recorder answers on its
live socket, and the catalog opens and is at this software's schema
version. 200 when both are ready, 503 otherwise, with which one is not —
and nothing else (no counts, no lines, no numbers).
"""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from appliance.ops.status import live_status
from appliance.store.migrations import MIGRATIONS, current_version

router = APIRouter()


@router.get("/livez", tags=["health"], summary="liveness of the web service (no login)")
def livez() -> dict:
    return {"status": "ok"}


def _catalog_ready(ctx) -> bool:
    try:
        with ctx.datadir.open_catalog(ctx.clock.now()) as cat:
            return current_version(cat.conn) == max(m.version for m in MIGRATIONS)
    except Exception:                    # noqa: BLE001 — any failure is "not ready"
        return False


@router.get("/healthz", tags=["health"], summary="readiness: recorder and catalog (no login)",
            responses={503: {"description": "the recorder or the catalog is not ready"}})
def healthz(request: Request):
    ctx = request.app.state.ctx
    recorder = live_status(ctx.datadir.root, timeout=1.0) is not None
    catalog = _catalog_ready(ctx)
    ready = recorder and catalog
    body = {"status": "ok" if ready else "not_ready",
            "recorder": "ready" if recorder else "not_answering",
            "catalog": "ready" if catalog else "unavailable"}
    return JSONResponse(body, status_code=200 if ready else 503)
