"""The staff LAN service: a thin web front end over the governance layer (issue 7)."""

from appliance.web.app import create_app
from appliance.web.context import WebContext, WebSettings

__all__ = ["WebContext", "WebSettings", "create_app"]
