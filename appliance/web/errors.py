"""Errors as answers: the right status, a Japanese/English message, nothing leaked.

Validation errors never echo what was sent (it may be a telephone number or
a password); unexpected errors answer a bare 500 and are logged without the
request's content.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.errors import (ApplianceError, AuthError, ConfigError, DataDirError, Forbidden,
                              GroundError, KeyStoreError, SealedFileError, UnknownCall)
from appliance.governance.exports import (ExportError, ExportNotHere, NotTheExporter,
                                          UnknownExport)
from appliance.governance.holds import HoldError
from appliance.governance.requests import RequestError
from appliance.web.deps import WebError

log = logging.getLogger("appliance.web")

_STATUS = (  # most specific first
    (AuthError, 401, "auth"), (NotTheExporter, 403, "not_yours"),
    (Forbidden, 403, "forbidden"), (GroundError, 422, "ground"),
    (UnknownExport, 404, "not_found"), (ExportNotHere, 404, "not_here"),
    (UnknownCall, 404, "not_found"), (RequestError, 409, "conflict"),
    (HoldError, 409, "conflict"), (ExportError, 409, "conflict"),
    (SealedFileError, 409, "recording"), (KeyStoreError, 409, "recording"),
    (ConfigError, 422, "invalid"), (DataDirError, 503, "unavailable"),
)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path not in ("/healthz", "/livez")


def _answer(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_html(request):
        if status == 401:
            return RedirectResponse("/login", status_code=303)
        render = request.app.state.render
        return render(request, "error.html", {"status": status, "message": message},
                      status=status)
    return JSONResponse({"error": code, "message": message}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError):
        return _answer(request, exc.status, exc.code, exc.message)

    @app.exception_handler(ApplianceError)
    async def appliance_error(request: Request, exc: ApplianceError):
        for cls, status, code in _STATUS:
            if isinstance(exc, cls):
                return _answer(request, status, code, str(exc))
        return _answer(request, 400, "error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # names of the offending fields only: never the values sent
        fields = sorted({".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query",
                                                                               "path"))
                         for e in exc.errors()})
        return _answer(request, 422, "invalid",
                       "入力が正しくありません / invalid input: " + ", ".join(f for f in fields if f))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        messages = {404: "見つかりません / not found",
                    405: "この操作はできません / method not allowed",
                    413: "送信内容が大きすぎます / request body too large"}
        msg = messages.get(exc.status_code, "要求を処理できません / cannot handle the request")
        return _answer(request, exc.status_code, str(exc.status_code), msg)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("internal error on %s %s: %s", request.method, request.url.path,
                  type(exc).__name__)
        return JSONResponse({"error": "internal", "message": "内部エラー / internal error"},
                            status_code=500)
