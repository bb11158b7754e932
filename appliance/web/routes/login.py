"""Sign-in and sign-out; the login page; the language switch.

Failed sign-ins are on the ledger (as for the command line). After
``max_failures`` failures of one user name (or many from one address) the
name or address is locked for a while: the lockout itself is a ledger entry,
and attempts during it are refused without checking the password.
Technicians are refused here: the staff service is not theirs (R11).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from appliance.errors import AuthError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import (ROLE_LABELS_JA, Role, User, authenticate,
                                        refusal_actor)
from appliance.store.catalog import Catalog
from appliance.web.routes.common import set_cookie
from appliance.web.context import WebContext
from appliance.web.deps import (LOGIN_CSRF_COOKIE, SESSION_COOKIE, Staff, WebError,
                                current_staff, get_catalog, get_ctx)

router = APIRouter()
api = APIRouter(prefix="/api/session", tags=["session"])


class LoginIn(BaseModel):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def _me(staff: Staff) -> dict:
    u = staff.user
    return {"user": u.name, "role": str(u.role), "role_ja": ROLE_LABELS_JA[u.role],
            "acting": u.acting, "csrf": staff.ws.csrf,
            "idle_minutes": staff.ctx.settings.idle_minutes}


def _refuse(catalog: Catalog, ctx: WebContext, name: str, reason: str) -> None:
    # a name nobody has may be a password typed into the user field: never kept in clear
    Ledger(catalog).append(EntryKind.REFUSED, ctx.clock.now(),
                           actor=refusal_actor(catalog, name),
                           detail={"action": "web sign-in", "reason": reason})


def client_address(request: Request) -> str:
    """The peer's address. Proxy headers count only when ``[web] trusted_proxies`` names
    the proxy: the server (uvicorn) is started with them off otherwise, so a client
    cannot pick the address the lockout counts by sending X-Forwarded-For."""
    return request.client.host if request.client else "-"


def check_password(ctx: WebContext, catalog: Catalog, name: str, password: bytes,
                   address: str) -> User:
    """Sign-in, and the password again (listen, export), under one throttle."""
    name_key, addr_key = f"user:{name}", f"addr:{address}"
    if ctx.throttle.locked(name_key, addr_key):
        raise WebError(429, "locked", LOCKED)
    try:
        return authenticate(catalog, name, password)
    except AuthError as exc:
        _refuse(catalog, ctx, name, str(exc))
        if ctx.throttle.failure(name_key, addr_key):
            _refuse(catalog, ctx, name, LOCKOUT_ENTRY)
        raise


LOCKED = ("ログイン失敗が続いたため一時的にロックしています。しばらくしてから再度お試しください / "
          "too many failed attempts: locked for a while")
LOCKOUT_ENTRY = "ログイン失敗が続いたためロック / locked out after repeated failed sign-ins"


@api.get("/login-csrf", summary="token for the sign-in form (double-submit cookie)")
def login_csrf(response: Response, ctx: WebContext = Depends(get_ctx)) -> dict:
    token = secrets.token_urlsafe(24)
    set_cookie(response, ctx, LOGIN_CSRF_COOKIE, token)
    return {"csrf": token}


@api.post("", summary="sign in (staff only)")
def sign_in(body: LoginIn, request: Request, response: Response,
            ctx: WebContext = Depends(get_ctx), catalog: Catalog = Depends(get_catalog)) -> dict:
    user = check_password(ctx, catalog, body.user, body.password.encode(),
                          client_address(request))
    if user.role == Role.TECHNICIAN:
        reason = "保守担当者は職員画面を利用できません / technicians cannot use the staff service"
        _refuse(catalog, ctx, user.name, reason)
        raise WebError(403, "technician", reason)
    ctx.throttle.success(f"user:{user.name}")
    token, ws = ctx.sessions.create(user.name)
    set_cookie(response, ctx, SESSION_COOKIE, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return {"user": user.name, "role": str(user.role), "role_ja": ROLE_LABELS_JA[user.role],
            "acting": user.acting, "csrf": ws.csrf,
            "idle_minutes": ctx.settings.idle_minutes}


@api.get("", summary="who is signed in")
def whoami(staff: Staff = Depends(current_staff)) -> dict:
    return _me(staff)


@api.delete("", summary="sign out")
def sign_out(request: Request, response: Response, staff: Staff = Depends(current_staff)) -> dict:
    staff.ctx.sessions.destroy(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


router.include_router(api)


@router.get("/login", include_in_schema=False)
def login_page(request: Request, ctx: WebContext = Depends(get_ctx)):
    token = secrets.token_urlsafe(24)
    resp = request.app.state.render(request, "login.html", {"login_csrf": token})
    set_cookie(resp, ctx, LOGIN_CSRF_COOKIE, token)
    return resp


@router.get("/", include_in_schema=False)
def root():
    return RedirectResponse("/calls", status_code=303)


@router.get("/lang/{code}", include_in_schema=False)
def switch_lang(code: str, request: Request, next: str = "/calls",
                ctx: WebContext = Depends(get_ctx)):
    # only a path on this site: no open redirect
    target = next if next.startswith("/") and not next.startswith("//") and "\\" not in next \
        else "/calls"
    resp = RedirectResponse(target, status_code=303)
    if code in ("ja", "en"):
        set_cookie(resp, ctx, "lang", code, max_age=365 * 86400)
    return resp
