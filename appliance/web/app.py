"""The staff LAN service (issue 7): FastAPI app, pages and JSON API.

``create_app(ctx)`` builds the app around a :class:`WebContext`; every screen
lives in its own module under ``routes/`` and has a JSON API behind it
(``/api/…``, described at ``/openapi.json``). Pages are rendered on the
server with Jinja2; a small script (``static/app.js``) sends forms to the
API. No front-end build step.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from appliance.governance.users import ROLE_LABELS_JA
from appliance.web import errors
from appliance.web.context import WebContext
from appliance.web.deps import SESSION_COOKIE, csrf_guard
from appliance.web.i18n import pick_lang, translator
from appliance.web.routes import ROUTERS

HERE = Path(__file__).parent

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'")


class BodyLimit:
    """Refuse request bodies over the limit (413) before any route parses them."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = True
            if too_big:
                return await self._refuse(send)
        # read (bounded) and replay: chunked bodies have no length to trust
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(send)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send):
        payload = ('{"error":"too_large","message":"送信内容が大きすぎます / request body too '
                   'large"}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def create_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(
        title="通話録音装置 職員サービス / call-recorder staff service",
        version="1",
        description="Search, listen, hold, disclosure requests, exports and the ledger. Every "
                    "decision is made by the governance layer; refusals are on the ledger.",
        docs_url=None, redoc_url=None,            # no third-party scripts on the appliance
        dependencies=[Depends(csrf_guard)],
    )
    app.state.ctx = ctx
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def render(request: Request, name: str, data: dict, status: int = 200) -> HTMLResponse:
        lang = pick_lang(request.cookies.get("lang"), request.headers.get("accept-language"))
        ws, _ = ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
        page = {"request": request, "t": translator(lang), "lang": lang, "ws": ws,
                "csrf": ws.csrf if ws else "", "roles_ja": ROLE_LABELS_JA,
                "demo_login": ctx.demo_login, **data}
        return templates.TemplateResponse(request, name, page, status_code=status)

    app.state.render = render
    errors.install(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        h = response.headers
        h.setdefault("Content-Security-Policy", _CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            h["Cache-Control"] = "no-store"   # numbers and audio never sit in a browser cache
        if ctx.secure_cookies:
            h["Strict-Transport-Security"] = "max-age=31536000"
        return response

    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes)
    return app


def json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)
