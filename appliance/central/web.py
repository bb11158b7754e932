"""The staff service at the centre: the appliance's web package over the centre's store.

Same pages, same API, same governance decisions; what differs is where the
records are — a :class:`CentreWebContext` hands each request a
:class:`~appliance.central.pgcatalog.PgCatalog` from the pool instead of a
SQLite connection, and the centre's directory (keys, content-addressed
store) instead of an appliance's. Every site's calls are in one list; the
list's 庁舎 column and filter tell the sites apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from appliance.central.centre import Centre
from appliance.config import load_config
from appliance.web.context import WebContext, WebSettings


@dataclass
class CentreWebContext(WebContext):
    centre: Centre | None = field(default=None, kw_only=True)

    @property
    def exports_dir(self):
        return self.settings.exports_dir or self.centre.dir.exports

    @contextlib.contextmanager
    def catalog(self) -> Iterator:
        with self.centre.catalog() as cat:
            yield cat


def centre_app(centre: Centre, args, *, secure: bool = True):
    """The FastAPI app and uvicorn's TLS arguments (the centre's server certificate)."""
    from appliance.central.ca import CityCA
    from appliance.web import create_app
    config = load_config(args.config)
    ctx = CentreWebContext(centre.dir, config, WebSettings.from_config(config.raw.get("web")),
                           centre.clock, secure, None, centre=centre)
    tls = {}
    if secure:
        s = ctx.settings
        if s.certificate and s.private_key:
            tls = {"ssl_certfile": str(s.certificate), "ssl_keyfile": str(s.private_key)}
        else:
            ca = CityCA(centre.dir.ca_dir)
            tls = {"ssl_certfile": str(ca.server_cert), "ssl_keyfile": str(ca.server_key)}
    return create_app(ctx), tls
