"""The centre: its settings, its PostgreSQL pool, its directory, its clock.

One :class:`Centre` per process (the service, a command). Every piece of
work borrows a connection from the pool and wraps it in a
:class:`~appliance.central.pgcatalog.PgCatalog`, the interface the
governance code already speaks.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from appliance.central.pgcatalog import PgCatalog
from appliance.central.schema import migrate
from appliance.central.store import CentreDir
from appliance.clock import Clock
from appliance.errors import CatalogError, ConfigError
from appliance.store.catalog import to_utc_text


@dataclass(frozen=True)
class CentralSettings:
    """``[central]`` of the centre's configuration file."""

    database: str = "dbname=acr_central"
    store_dir: Path | None = None
    #: the sites' listener (mutual TLS) and the staff service (HTTPS)
    sites_listen: str = "0.0.0.0:8444"
    web_listen: str = "0.0.0.0:8443"
    #: the centre's name as sites reach it (in its certificate and in the enrolment answer)
    public_host: str = "localhost"
    pool_size: int = 8
    #: enrolment tokens expire after this many hours
    token_hours: int = 72
    #: a site silent this long raises an alarm at the centre
    site_silent_s: int = 900

    @classmethod
    def from_config(cls, table: dict | None) -> "CentralSettings":
        table = dict(table or {})
        known = {"database", "store_dir", "sites_listen", "web_listen", "public_host",
                 "pool_size", "token_hours", "site_silent_s"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[central] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        if "store_dir" in table:
            table["store_dir"] = Path(table["store_dir"])
        try:
            s = cls(**table)
        except TypeError as exc:
            raise ConfigError(f"[central] {exc}") from None
        if not 2 <= s.pool_size <= 64 or not 1 <= s.token_hours <= 24 * 30 \
                or not 60 <= s.site_silent_s <= 7 * 86400:
            raise ConfigError("[central] pool_size 2–64, token_hours 1–720, "
                              "site_silent_s 60–604800")
        for name in ("sites_listen", "web_listen"):
            parse_listen(getattr(s, name))
        return s


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        if host not in ("", "localhost"):
            ipaddress.ip_address(host.strip("[]"))
        p = int(port)
        if not 0 <= p <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{text!r}: HOST:PORT で指定してください / expected HOST:PORT") from None
    return host.strip("[]") or "0.0.0.0", p


class Centre:
    def __init__(self, root: Path, settings: CentralSettings, clock: Clock, *,
                 pool_size: int | None = None, migrate_schema: bool = True) -> None:
        self.settings = settings
        self.clock = clock
        self.pool = ConnectionPool(settings.database, min_size=1,
                                   max_size=pool_size or settings.pool_size,
                                   kwargs={"autocommit": True}, open=False,
                                   name="acr-central", timeout=30,
                                   # a restarted server leaves dead connections in the pool:
                                   # each is checked when borrowed, and replaced
                                   check=ConnectionPool.check_connection)
        try:
            self.pool.open(wait=True, timeout=30)
        except PoolTimeout:
            self.pool.close()
            raise CatalogError("センターのデータベースに接続できません / cannot reach the centre's "
                               f"PostgreSQL ({settings.database})") from None
        self.dir = CentreDir(root, self.connect, settings.store_dir)
        if migrate_schema:
            with self.connect() as conn:
                migrate(conn, to_utc_text(clock.now()))

    @contextlib.contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise CatalogError("センターのデータベースに接続できません / the centre's PostgreSQL "
                               "does not answer") from None

    @contextlib.contextmanager
    def catalog(self) -> Iterator[PgCatalog]:
        with self.connect() as conn:
            yield PgCatalog(conn)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "Centre":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
