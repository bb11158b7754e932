"""One module per screen; each has its page and the JSON API behind it."""

from appliance.web.routes import (calls, exports, health, holds, ledger, login, player,
                                  requests, status)

ROUTERS = [health.router, login.router, calls.router, player.router, holds.router,
           requests.router, exports.router, ledger.router, status.router]
