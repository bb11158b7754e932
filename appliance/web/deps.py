"""Who is asking: the session cookie, the CSRF token, the governance Session.

The web decides nothing itself: it finds the signed-in person and hands a
:class:`appliance.governance.access.Session` to the governance functions,
which authorise (and ledger refusals) exactly as for the command line.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, Request

from appliance.errors import ConfigError
from appliance.governance.access import Session
from appliance.governance.users import Role, User, get_user
from appliance.store.catalog import Catalog
from appliance.web.context import WebContext
from appliance.web.sessions import WebSession

SESSION_COOKIE = "acr_session"
LOGIN_CSRF_COOKIE = "acr_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WebError(Exception):
    """An answer other than success, with a stable code for the API's clients."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


NO_SESSION = ("ログインしてください / please log in")
EXPIRED = ("一定時間操作がなかったためログアウトしました。再度ログインしてください / "
           "the session expired after inactivity: please log in again")
BAD_CSRF = ("画面を再読み込みしてから操作してください (CSRF トークンがありません) / "
            "missing or wrong CSRF token: reload the page and try again")


def get_ctx(request: Request) -> WebContext:
    return request.app.state.ctx


def get_catalog(ctx: WebContext = Depends(get_ctx)) -> Iterator[Catalog]:
    with ctx.catalog() as cat:
        yield cat


@dataclass
class Staff:
    """The signed-in person of this request."""

    ctx: WebContext
    ws: WebSession
    user: User
    catalog: Catalog

    def session(self, password: bytes = b"") -> Session:
        """A governance Session; the password only where a key must be unwrapped."""
        return Session(self.user, password, self.ctx.datadir, self.catalog, self.ctx.clock.now,
                       self.ctx.policy)


def current_staff(request: Request, ctx: WebContext = Depends(get_ctx),
                  catalog: Catalog = Depends(get_catalog)) -> Staff:
    token = request.cookies.get(SESSION_COOKIE)
    ws, expired = ctx.sessions.get(token)
    if ws is None:
        raise WebError(401, "session_expired" if expired else "no_session",
                       EXPIRED if expired else NO_SESSION)
    try:
        user = get_user(catalog, ws.user)   # removed staff lose their sessions at once
    except ConfigError:
        ctx.sessions.destroy_user(ws.user)
        raise WebError(401, "no_session", NO_SESSION) from None
    if user.role == Role.TECHNICIAN:
        ctx.sessions.destroy_user(ws.user)
        raise WebError(403, "technician", "保守担当者は職員画面を利用できません / "
                                          "technicians cannot use the staff service")
    return Staff(ctx, ws, user, catalog)


BAD_ORIGIN = ("この画面以外からの操作は受け付けません / refused: the request comes from "
              "another site (Origin)")


def origin_allowed(request: Request, ctx: WebContext) -> bool:
    """A browser names the page's origin on every state-changing request: it must be ours.

    Ours is the scheme and Host of this request, or one of ``[web] origins``.
    A request without Origin (not a browser: curl, the API's clients) passes
    here and still needs the CSRF token; ``Origin: null`` (sandboxed frames,
    file: pages) is refused.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return origin.lower() in (own, *(o.lower() for o in ctx.settings.origins))


def csrf_guard(request: Request, ctx: WebContext = Depends(get_ctx)) -> None:
    """Every state-changing request comes from our pages and carries the session's token.

    SameSite=Strict already keeps other sites' requests cookie-less; the
    Origin check and the header are the second and third locks (a form on
    another site can set neither). Sign-in has no session yet: it uses a
    double-submit cookie set by the login page.
    """
    if request.method not in UNSAFE_METHODS:
        return
    if not origin_allowed(request, ctx):
        raise WebError(403, "origin", BAD_ORIGIN)
    sent = request.headers.get(CSRF_HEADER, "")
    if request.url.path == "/api/session" and request.method == "POST":
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise WebError(403, "csrf", BAD_CSRF)
        return
    ws, _ = ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
    if ws is None:
        return      # the route answers 401
    if not sent or not hmac.compare_digest(sent.encode(), ws.csrf.encode()):
        raise WebError(403, "csrf", BAD_CSRF)
