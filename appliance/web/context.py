"""What the web service shares across requests: data, policy, clock, sessions."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance.clock import Clock, SystemClock
from appliance.config import Config, load_config
from appliance.errors import ConfigError
from appliance.governance.access import Policy
from appliance.governance.retention import RetentionPolicy
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir
from appliance.web.sessions import LoginThrottle, SessionStore


@dataclass(frozen=True)
class WebSettings:
    """``[web]`` in appliance.toml, plus what the command line decides."""

    idle_minutes: float = 15.0
    #: failed sign-ins of one user name before it is locked, and for how long
    max_failures: int = 5
    lock_minutes: float = 15.0
    #: largest request body accepted (JSON forms are small)
    max_body_bytes: int = 64 * 1024
    certificate: Path | None = None
    private_key: Path | None = None
    exports_dir: Path | None = None
    #: failed sign-ins from one client address before the address is locked
    max_failures_per_address: int = 20
    #: reverse proxies (addresses or networks) whose X-Forwarded-For is believed;
    #: empty (the default): proxy headers are ignored, the peer's address counts
    trusted_proxies: tuple[str, ...] = ()
    #: further origins (scheme://host[:port]) allowed to send state-changing requests,
    #: besides the service's own (needed only behind a proxy that rewrites Host)
    origins: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, table: dict | None) -> "WebSettings":
        table = dict(table or {})
        known = {"idle_minutes", "max_failures", "lock_minutes", "max_body_bytes",
                 "certificate", "private_key", "exports_dir", "max_failures_per_address",
                 "trusted_proxies", "origins"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[web] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        for k in ("certificate", "private_key", "exports_dir"):
            if k in table:
                table[k] = Path(table[k])
        for k in ("trusted_proxies", "origins"):
            if k in table:
                value = table[k]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value) \
                        or len(value) > 32:
                    raise ConfigError(f"[web] {k} は文字列の配列 / {k} is a list of strings")
                table[k] = tuple(value)
        for proxy in table.get("trusted_proxies", ()):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError("[web] trusted_proxies はアドレスかネットワーク / "
                                  "trusted_proxies holds addresses or networks") from None
        for origin in table.get("origins", ()):
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]{1,253}", origin):
                raise ConfigError("[web] origins は scheme://host[:port] / origins are "
                                  "scheme://host[:port]")
        try:
            s = cls(**table)
        except TypeError as exc:
            raise ConfigError(f"[web] {exc}") from None
        if not 1 <= s.idle_minutes <= 480 or not 1 <= s.max_failures <= 100 \
                or not 1 <= s.lock_minutes <= 1440 or not 1024 <= s.max_body_bytes <= 1 << 20 \
                or not 1 <= s.max_failures_per_address <= 1000:
            raise ConfigError("[web] idle_minutes 1–480, max_failures 1–100, lock_minutes 1–1440, "
                              "max_body_bytes 1024–1048576, max_failures_per_address 1–1000")
        if (s.certificate is None) != (s.private_key is None):
            raise ConfigError("[web] certificate と private_key は両方指定 / give both "
                              "certificate and private_key")
        return s

    def server_options(self) -> dict:
        """uvicorn's proxy settings: off unless ``trusted_proxies`` names the proxy.

        uvicorn believes X-Forwarded-For from 127.0.0.1 by default, which let
        any local client choose the address the sign-in lockout counts.
        """
        if not self.trusted_proxies:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": list(self.trusted_proxies)}


@dataclass
class WebContext:
    datadir: DataDir
    config: Config
    settings: WebSettings
    clock: Clock
    secure_cookies: bool = True
    demo_login: str | None = None
    policy: Policy = field(init=False)
    retention: RetentionPolicy = field(init=False)
    sessions: SessionStore = field(init=False)
    throttle: LoginThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.policy = Policy.from_config(self.config.raw.get("policy"))
        self.retention = RetentionPolicy.from_config(self.config.raw.get("retention"))
        self.sessions = SessionStore(self.clock.now, self.settings.idle_minutes * 60)
        self.throttle = LoginThrottle(
            self.clock.now, self.settings.max_failures,
            window_s=self.settings.lock_minutes * 60, lock_s=self.settings.lock_minutes * 60,
            max_failures_per_address=self.settings.max_failures_per_address)

    @classmethod
    def load(cls, data_dir: Path, config_path: Path | None, *, clock: Clock | None = None,
             secure_cookies: bool = True, settings: WebSettings | None = None,
             demo_login: str | None = None) -> "WebContext":
        config = load_config(config_path)
        dd = DataDir(data_dir)
        dd.require()
        return cls(dd, config, settings or WebSettings.from_config(config.raw.get("web")),
                   clock or SystemClock(), secure_cookies, demo_login)

    @property
    def exports_dir(self) -> Path:
        return self.settings.exports_dir or self.datadir.root / "exports"

    @contextlib.contextmanager
    def catalog(self) -> Iterator[Catalog]:
        # one connection per request: sqlite connections are not shared between threads
        cat = self.datadir.open_catalog(self.clock.now())
        try:
            yield cat
        finally:
            cat.close()
